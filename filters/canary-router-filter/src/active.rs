//! The configuration in force in a VM and what was derived from it (`Active`): shared by the
//! root context, which replaces it, and every stream context, which keeps the one it started
//! with until it ends.

use std::cell::{Cell, RefCell};

use canary_router::{Config, Split};

use crate::guard;
use crate::host::Host;
use crate::metrics::Metrics;
use crate::routes::Routes;

thread_local! {
    /// Whether this VM has served a request (the main thread's VM never does).
    static SERVED: Cell<bool> = const { Cell::new(false) };
}

/// Notes that this VM serves requests (for the VM memory gauge).
pub fn served() {
    SERVED.set(true);
}

/// Whether this VM has served a request.
pub fn served_any() -> bool {
    SERVED.get()
}

/// A configuration in force and what was derived from it.
pub struct Active<H: Host> {
    pub host: H,
    pub config: Config,
    pub routes: Routes,
    /// With ramps or guards: each policy's split in force now (ramp applied, a tripped guard's
    /// variant diverted), refreshed at every tick. Empty otherwise (the configured splits hold).
    pub live: RefCell<Vec<Split>>,
    /// Some policy has a ramp (checked once, not at every tick).
    pub ramps: bool,
    pub guards: Option<RefCell<guard::Guards>>,
    pub metrics: Metrics,
}

impl<H: Host> Drop for Active<H> {
    /// A replaced configuration lives until its last request ends; its counts are kept.
    fn drop(&mut self) {
        self.metrics.flush(&self.host, &self.config);
    }
}

impl<H: Host> Active<H> {
    /// Recomputes the splits in force at `now` (unix seconds) if they change with time or
    /// guards; returns them when they differ from the ones in force.
    pub fn refresh_live(&self, now: i64) -> Option<Vec<Split>> {
        let config = &self.config;
        if !self.ramps && self.guards.is_none() {
            return None;
        }
        let live = match &self.guards {
            Some(g) => config.splits_in_force(now, g.borrow().views()),
            None => config.live_splits(now),
        };
        (*self.live.borrow() != live).then_some(live)
    }
}
