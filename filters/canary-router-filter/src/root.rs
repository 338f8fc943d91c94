//! The root context: one per plugin in a VM. It compiles the configuration (`on_configure`),
//! runs the timer (counter flush, guard merge into shared data, ramps, route cache expiry) and
//! takes the answers to guard notifications.

use std::cell::RefCell;
use std::rc::Rc;

use canary_router::overrides::{NODE_LABELS_KEY, NODE_METADATA_KEY};
use canary_router::stats::ErrorSource;
use canary_router::{Config, Environment};

use crate::active::{self, Active};
use crate::guard;
use crate::host::{HeaderMap, HeaderPairs, Host, LogLevel, MapType};
use crate::metrics::{self, Metrics};
use crate::routes::Routes;
use crate::stream::Stream;

/// The root context's timer: pending counters are flushed and ramps applied at every tick.
pub const TICK_MS: u32 = 1000;
/// The timer with guards: how soon outcomes reach the shared window and a trip reaches every
/// worker.
pub const GUARD_TICK_MS: u32 = 250;
/// How often cached route metadata is dropped and read again (routes may change by RDS) and
/// the VM memory gauge is set.
pub const ROUTE_CACHE_MS: u32 = 10_000;

pub struct Root<H: Host> {
    host: H,
    active: Option<Rc<Active<H>>>,
    /// The `canary_router_weight` gauges set by the configuration in force.
    weight_gauges: Vec<String>,
    tick_ms: u32,
    /// Milliseconds of ticks since the route cache was last expired.
    since_expiry_ms: u32,
    /// This proxy's node id, for guard messages.
    node: String,
    /// Guard notifications waiting, in flight or to be retried.
    outbox: guard::Outbox,
}

impl<H: Host> Root<H> {
    pub fn new(host: H) -> Root<H> {
        Root {
            host,
            active: None,
            weight_gauges: Vec::new(),
            tick_ms: TICK_MS,
            since_expiry_ms: 0,
            node: String::new(),
            outbox: guard::Outbox::default(),
        }
    }

    /// This proxy's node metadata: the `CANARY_ROUTER` overrides and the workload `LABELS`.
    fn environment(&self) -> Environment {
        let host = &self.host;
        let node_overrides =
            host.property_string(format!("xds\0node\0metadata\0{NODE_METADATA_KEY}").as_bytes());
        let labels = host
            .property(format!("xds\0node\0metadata\0{NODE_LABELS_KEY}").as_bytes())
            .map(|bytes| {
                HeaderMap::from_bytes(bytes)
                    .pairs()
                    .filter_map(|(k, v)| {
                        Some((
                            String::from_utf8(k.to_vec()).ok()?,
                            String::from_utf8(v.to_vec()).ok()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Environment {
            node_overrides,
            labels,
            vars: Some(host.environment()),
        }
    }

    /// Compiles the plugin configuration; `false` (and the last valid one kept) if invalid.
    pub fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let host = &self.host;
        let bytes = host.plugin_configuration(plugin_configuration_size);
        metrics::define_config_errors(host);
        match Config::from_json_in(&bytes, &self.environment()) {
            Ok(config) => {
                for w in config.warnings() {
                    host.log(
                        LogLevel::Error,
                        &format!("invalid node metadata override, ignored: {w}"),
                    );
                }
                metrics::config_errors(host, ErrorSource::Node, config.warnings().len());
                let n = config.policies().len();
                host.log(
                    LogLevel::Info,
                    &format!(
                        "configured {n} polic{}, variant header {}",
                        if n == 1 { "y" } else { "ies" },
                        config.variant_header()
                    ),
                );
                let metrics = Metrics::new(&config);
                let guards = guard::Guards::new(&config).map(RefCell::new);
                if guards.is_some() {
                    guard::define_metrics(host, &config);
                    guard::Guards::create_token(host);
                    self.node = host.property_string(b"xds\0node\0id").unwrap_or_default();
                }
                self.tick_ms = if guards.is_some() {
                    GUARD_TICK_MS
                } else {
                    TICK_MS
                };
                let active = Rc::new(Active {
                    host: self.host.clone(),
                    ramps: config.has_ramps(),
                    config,
                    routes: Routes::default(),
                    live: RefCell::new(Vec::new()),
                    guards,
                    metrics,
                });
                // Learn the guards' state (another VM may have tripped one) and set the
                // weights in force.
                let now_ms = self.host.unix_ms();
                self.tick_guards(&active, now_ms);
                let live = active.refresh_live(now_ms / 1000).unwrap_or_default();
                self.weight_gauges =
                    metrics::set_weights(&self.host, &active.config, &live, &self.weight_gauges);
                *active.live.borrow_mut() = live;
                let fingerprint = active.config.fingerprint();
                if let Some(old) = self.active.replace(active) {
                    if let Some(guards) = &old.guards {
                        if old.config.fingerprint() != fingerprint {
                            guards.borrow().release(&self.host);
                        }
                    }
                }
                self.host.set_tick_period_ms(self.tick_ms);
                true
            }
            Err(errors) => {
                for e in errors.errors() {
                    host.log(
                        LogLevel::Error,
                        &format!("invalid plugin configuration: {e}"),
                    );
                }
                if self.active.is_some() {
                    host.log(LogLevel::Error, "keeping the last valid configuration");
                }
                metrics::config_errors(host, ErrorSource::Plugin, 1);
                false
            }
        }
    }

    pub fn on_tick(&mut self) {
        let Some(active) = self.active.clone() else {
            return;
        };
        active.metrics.flush(&self.host, &active.config);
        let now_ms = self.host.unix_ms();
        // Without a ramp the splits change only when a guard trips or re-arms in this VM's view:
        // the per-tick cost then does not grow with the number of policies.
        let view_changed = self.tick_guards(&active, now_ms);
        self.outbox.send_due(&self.host, now_ms);
        if active.ramps || view_changed {
            if let Some(live) = active.refresh_live(now_ms / 1000) {
                self.weight_gauges =
                    metrics::set_weights(&self.host, &active.config, &live, &self.weight_gauges);
                *active.live.borrow_mut() = live;
            }
        }
        self.since_expiry_ms += self.tick_ms;
        if self.since_expiry_ms >= ROUTE_CACHE_MS {
            self.since_expiry_ms = 0;
            active.routes.expire();
            if active::served_any() {
                metrics::vm_memory(&self.host);
            }
        }
    }

    /// The guards' part of the timer, run now: this VM's outcomes reach the shared windows, the
    /// changes it makes are reported and due notifications sent. For a host whose shared data
    /// is a plain lock (the native module runs it after every guarded request, so that nothing
    /// waits in a worker that gets no more traffic).
    pub fn tick_guards_now(&mut self) {
        let Some(active) = self.active.clone() else {
            return;
        };
        if active.guards.is_none() {
            return;
        }
        let now_ms = self.host.unix_ms();
        let view_changed = self.tick_guards(&active, now_ms);
        self.outbox.send_due(&self.host, now_ms);
        if view_changed {
            if let Some(live) = active.refresh_live(now_ms / 1000) {
                self.weight_gauges =
                    metrics::set_weights(&self.host, &active.config, &live, &self.weight_gauges);
                *active.live.borrow_mut() = live;
            }
        }
    }

    /// Merges this VM's guard outcomes into the shared windows and reports the changes it made.
    /// Returns whether this VM's view of some guard changed.
    fn tick_guards(&mut self, active: &Active<H>, now_ms: i64) -> bool {
        let Some(guards) = &active.guards else {
            return false;
        };
        let (changes, view_changed) = guards.borrow_mut().tick(&self.host, &active.config, now_ms);
        for change in &changes {
            let _ = self
                .outbox
                .report(&self.host, &active.config, change, &self.node, now_ms);
        }
        view_changed
    }

    /// The answer to a guard notification: anything but a 2xx (or no answer) is a failure,
    /// sent again after a backoff while the receiver's retries last.
    pub fn on_http_call_response(&mut self, token: u32, headers: usize) {
        let status = if headers == 0 {
            None
        } else {
            self.host
                .header_map(MapType::HttpCallResponseHeaders)
                .pairs()
                .find(|(k, _)| *k == b":status")
                .and_then(|(_, v)| metrics::parse_status(v))
        };
        let now_ms = self.host.unix_ms();
        self.outbox.answered(&self.host, token, status, now_ms);
    }

    /// A stream context of this root: it keeps the configuration in force now for its whole
    /// life.
    pub fn create_stream(&self) -> Stream<H> {
        Stream::new(self.active.clone())
    }
}
