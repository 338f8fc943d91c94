//! One filter root per worker thread and configuration, as the Wasm filter has one VM (and root
//! context) per worker: the same compiled configuration, counters, guard outcomes and route
//! cache per worker, and the guard's shared state across them (`shared.rs`).
//!
//! The root's timer (counter flush, guard merge and trip propagation, ramps) runs on the worker's
//! own requests, when it is due, before the request is decided: the ABI offers no worker-thread
//! timer outside a stream, and a decision never uses a view older than the timer's period.
//! So that an idle worker holds nothing back, each stream's counts go to the configuration's
//! pending counters when it ends (added to Envoy's by the main thread every second, see
//! `metrics.rs`), and a guarded stream's outcome is merged into the shared window then
//! (`hooks.rs`). The answers to the worker's guard notifications (`notify.rs`) reach it with its
//! next request, and so do its retries of failed ones.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use canary_router_filter::host::Clock;
use canary_router_filter::root::Root;
use canary_router_filter::stream::Stream;

use crate::host::{with_call_answer, NativeHost};
use crate::ModuleConfig;

struct Worker {
    host: NativeHost,
    root: Root<NativeHost>,
    /// When the root's timer is next due (unix ms).
    next_tick_ms: i64,
}

thread_local! {
    static WORKERS: RefCell<Vec<Worker>> = const { RefCell::new(Vec::new()) };
}

/// After a stream of `config` ended on this thread (inside its callback): with guards, its
/// outcome goes to the shared window now and any change is reported, so a trip never waits
/// for this worker's next request.
pub fn stream_ended(config: &Arc<ModuleConfig>) {
    WORKERS.with(|workers| {
        let mut workers = workers.borrow_mut();
        if let Some(w) = workers
            .iter_mut()
            .find(|w| Arc::ptr_eq(&w.host.worker().config, config))
        {
            w.root.tick_guards_now();
        }
    });
}

/// The stream of a new request of `config` on this thread: the worker's root for `config` is
/// created (and the configuration compiled) on its first request, and its timer run if due.
/// Must run inside a stream callback of `config` (`host::with_current`).
pub fn new_stream(config: &Arc<ModuleConfig>) -> Stream<NativeHost> {
    WORKERS.with(|workers| {
        let mut workers = workers.borrow_mut();
        // Roots of configurations Envoy destroyed (replaced by a reload) go; their host calls
        // are no-ops from here on (no stream of theirs is current).
        workers.retain(|w| !w.host.worker().config.destroyed.load(Ordering::Relaxed));
        let at = workers
            .iter()
            .position(|w| Arc::ptr_eq(&w.host.worker().config, config));
        let worker = match at.and_then(|i| workers.get_mut(i)) {
            Some(w) => {
                for answer in config.relay.answers() {
                    let headers = usize::from(answer.status.is_some());
                    with_call_answer(answer.status, || {
                        w.root.on_http_call_response(answer.token, headers)
                    });
                }
                let now = w.host.unix_ms();
                if now >= w.next_tick_ms {
                    w.root.on_tick();
                    w.next_tick_ms = now + i64::from(w.host.worker().tick_ms.get().max(1));
                }
                w
            }
            None => {
                let host = NativeHost::new(Arc::clone(config));
                let mut root = Root::new(host.clone());
                // Checked when Envoy created the configuration (`hooks.rs`): compiles here.
                let _ = root.on_configure(config.json.len());
                let next_tick_ms = host.unix_ms() + i64::from(host.worker().tick_ms.get().max(1));
                workers.push(Worker {
                    host,
                    root,
                    next_tick_ms,
                });
                let last = workers.len() - 1;
                match workers.get_mut(last) {
                    Some(w) => w,
                    None => return Stream::new(None),
                }
            }
        };
        worker.root.create_stream()
    })
}
