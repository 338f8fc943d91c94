//! The guards' plumbing: outcomes recorded per request in this VM, merged on the root
//! context's timer into the proxy-wide window in shared data (compare-and-swap), and the trip
//! state read back. The judging itself is the core's ([`canary_router::guard`]).
//!
//! Every VM of the proxy (one per worker, and the main thread's) runs the same loop, so each
//! learns of a trip at its next tick. The VM whose write made a change (trip or re-arm) is the
//! only one that reports it: it counts the trip, logs it and sends the notification.

use canary_router::guard::{describe, message, Event, Guard, Outcomes, Subject, Window};
use canary_router::stats::{
    tagged_name, GUARD_NOTIFY_FAILURES_TOTAL, GUARD_TRIPPED, GUARD_TRIPS_TOTAL, POLICY, VARIANT,
};
use canary_router::Config;

use crate::host::{self, LogLevel, MetricType, Status};

/// Attempts to store a window before the pending outcomes wait for the next tick.
const CAS_ATTEMPTS: usize = 8;

/// The guards of one configuration, in this VM.
pub struct Guards {
    /// Per policy: index into `entries`, or `u32::MAX` without a guard.
    of_policy: Vec<u32>,
    entries: Vec<Entry>,
    /// Per policy: whether this VM sees its guard tripped (for [`Config::effective_splits`]).
    tripped: Vec<bool>,
}

struct Entry {
    policy: usize,
    /// Shared-data key of the window: configuration fingerprint and policy name, so a new
    /// configuration starts afresh and two configurations never mix.
    key: String,
    /// Outcomes recorded in this VM since the last merge.
    pending: Outcomes,
}

/// A change this VM made and must report.
pub struct Change {
    pub policy: usize,
    pub event: Event,
}

impl Guards {
    /// `None` when no policy has a guard.
    pub fn new(config: &Config) -> Option<Guards> {
        if !config.has_guards() {
            return None;
        }
        let mut of_policy = vec![u32::MAX; config.policies().len()];
        let mut entries = Vec::new();
        for (i, p) in config.policies().iter().enumerate() {
            if p.guard().is_some() {
                if let Some(slot) = of_policy.get_mut(i) {
                    *slot = u32::try_from(entries.len()).unwrap_or(u32::MAX);
                }
                entries.push(Entry {
                    policy: i,
                    key: format!(
                        "canary_router/guard/{:016x}/{}",
                        config.fingerprint(),
                        p.name()
                    ),
                    pending: Outcomes::default(),
                });
            }
        }
        Some(Guards {
            of_policy,
            entries,
            tripped: vec![false; config.policies().len()],
        })
    }

    /// Records a finished request of `(policy, variant)` if that variant is guarded.
    pub fn record(
        &mut self,
        config: &Config,
        at: (usize, usize),
        failed: bool,
        latency_ms: Option<u64>,
    ) {
        let Some(&i) = self.of_policy.get(at.0) else {
            return;
        };
        let (Some(entry), Some(guard)) = (
            self.entries.get_mut(i as usize),
            config.policy(at.0).and_then(|p| p.guard()),
        ) else {
            return;
        };
        if guard.variant() == at.1 {
            guard.record(&mut entry.pending, failed, latency_ms);
        }
    }

    /// Empties this configuration's windows in shared data (which has no delete): called when a
    /// different configuration replaces it, so replaced configurations leave only their keys.
    pub fn release(&self) {
        for entry in &self.entries {
            let _ = host::set_shared_data(&entry.key, &[], 0);
        }
    }

    /// Per policy: tripped in this VM's view.
    pub fn tripped(&self) -> &[bool] {
        &self.tripped
    }

    /// Merges pending outcomes into the shared windows and reads back the trip states at
    /// `now_ms` (unix milliseconds). Returns the changes this VM made, to report, and whether
    /// this VM's view of some guard changed (its splits must then be recomputed).
    pub fn tick(&mut self, config: &Config, now_ms: i64) -> (Vec<Change>, bool) {
        let mut changes = Vec::new();
        let mut view_changed = false;
        for entry in &mut self.entries {
            let Some(guard) = config.policy(entry.policy).and_then(|p| p.guard()) else {
                continue;
            };
            let Some((window, event)) = merge(&entry.key, guard, now_ms, &entry.pending) else {
                continue;
            };
            entry.pending = Outcomes::default();
            if let Some(event) = event {
                changes.push(Change {
                    policy: entry.policy,
                    event,
                });
            }
            let tripped = window.tripped(now_ms);
            if let Some(t) = self.tripped.get_mut(entry.policy) {
                if *t != tripped {
                    *t = tripped;
                    view_changed = true;
                    set_tripped_gauge(config, entry.policy, tripped);
                }
            }
        }
        (changes, view_changed)
    }
}

/// Adds `pending` to the shared window under `key` and judges it; retries when another VM
/// wrote in between. `None` if the window could not be read or stored (the outcomes stay
/// pending).
fn merge(
    key: &str,
    guard: &Guard,
    now_ms: i64,
    pending: &Outcomes,
) -> Option<(Window, Option<Event>)> {
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, cas) = host::shared_data(key)?;
        let mut window = Window::decode(&bytes, guard);
        let event = window.advance(guard, now_ms, pending);
        if event.is_none() && pending.is_empty() && !bytes.is_empty() {
            // Nothing to write: the window only told us the state.
            return Some((window, None));
        }
        match host::set_shared_data(key, &window.encode(), cas) {
            Ok(()) => return Some((window, event)),
            Err(Status::CAS_MISMATCH) => continue,
            Err(_) => return None,
        }
    }
    None
}

fn labels(config: &Config, policy: usize) -> Option<[(&'static str, &str); 2]> {
    let p = config.policy(policy)?;
    let v = p.variant(p.guard()?.variant())?;
    Some([(POLICY, p.name()), (VARIANT, v.name())])
}

/// Sets `canary_router_guard_tripped{policy, variant}`.
pub fn set_tripped_gauge(config: &Config, policy: usize, tripped: bool) {
    if let Some(labels) = labels(config, policy) {
        if let Some(id) =
            host::define_metric(MetricType::Gauge, &tagged_name(GUARD_TRIPPED, &labels))
        {
            host::record_metric(id, u64::from(tripped));
        }
    }
}

/// Defines the guard metrics of every guarded policy (so they exist at 0 before any trip).
pub fn define_metrics(config: &Config) {
    for (i, p) in config.policies().iter().enumerate() {
        let Some(labels) = labels(config, i) else {
            continue;
        };
        let _ = host::define_metric(
            MetricType::Counter,
            &tagged_name(GUARD_TRIPS_TOTAL, &labels),
        );
        if p.guard().is_some_and(|g| g.notify().is_some()) {
            let name = tagged_name(GUARD_NOTIFY_FAILURES_TOTAL, &labels);
            let _ = host::define_metric(MetricType::Counter, &name);
        }
        set_tripped_gauge(config, i, false);
    }
}

/// Reports a change this VM made: counts a trip, logs, and posts the notification. Returns
/// the notification's call token and the failure counter to bump if it fails.
pub fn report(config: &Config, change: &Change, node: &str, now: i64) -> Option<(u32, String)> {
    let p = config.policy(change.policy)?;
    let guard = p.guard()?;
    let labels = labels(config, change.policy)?;
    let who = Subject {
        policy: p.name(),
        variant: p.variant(guard.variant())?.name(),
        baseline: p.variant(guard.baseline())?.name(),
        node,
    };
    if let Event::Tripped { .. } = change.event {
        if let Some(id) = host::define_metric(
            MetricType::Counter,
            &tagged_name(GUARD_TRIPS_TOTAL, &labels),
        ) {
            host::increment_metric(id, 1);
        }
    }
    host::log(LogLevel::Warn, &describe(guard, &change.event, &who));
    let notify = guard.notify()?;
    let failures = tagged_name(GUARD_NOTIFY_FAILURES_TOTAL, &labels);
    let body = message(guard, &change.event, &who, now);
    let mut headers = vec![
        (":method", "POST"),
        (":path", notify.path.as_str()),
        (":authority", notify.authority.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend(notify.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match host::http_call(
        &notify.cluster,
        &headers,
        body.as_bytes(),
        notify.timeout_ms,
    ) {
        Ok(token) => Some((token, failures)),
        Err(status) => {
            notify_failed(
                &failures,
                &format!(
                    "cannot send to cluster {} (status {}; is the cluster defined?)",
                    notify.cluster,
                    status.code()
                ),
            );
            None
        }
    }
}

/// Logs and counts a notification that did not arrive.
pub fn notify_failed(counter: &str, why: &str) {
    host::log(
        LogLevel::Error,
        &format!("canary-router: guard notification failed: {why}"),
    );
    if let Some(id) = host::define_metric(MetricType::Counter, counter) {
        host::increment_metric(id, 1);
    }
}
