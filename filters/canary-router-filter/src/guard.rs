//! The guards' plumbing: outcomes recorded per request in this VM, merged on the root
//! context's timer into the proxy-wide window in shared data (compare-and-swap), the trip
//! state read back, and the messages to the receivers sent and retried. The judging itself is
//! the core's ([`canary_router::guard`]), and so are the message bodies
//! ([`canary_router::notify`]).
//!
//! Every VM of the proxy (one per worker, and the main thread's) runs the same loop, so each
//! learns of a trip at its next tick. The VM whose write made a change (trip or re-arm) is the
//! only one that reports it: it counts the trip, logs it and sends the notifications.
//!
//! The state lives in shared data under a key that holds the configuration's fingerprint: a
//! VM that replaces a failed one (`FAIL_RELOAD`) or a new worker reads the same state (an
//! aborted guard stays aborted), and a new configuration starts afresh.
//!
//! Creating a window is claimed first. Envoy creates a missing key on any `set`, whatever
//! compare-and-swap token it is given, so two VMs that both find a window missing and both
//! `set` it would each write their own outcomes and one VM's would be lost. A VM that finds
//! the window missing therefore claims its creation by compare-and-swap on [`TOKEN_KEY`] (which
//! every VM creates at configure, before any outcome exists) and only the VM whose claim
//! succeeded creates the window; the others keep their outcomes and merge them into the created
//! window (`tests/guard.rs` interleaves two VMs at every host call).

use canary_router::guard::{Event, GuardView, Pending, Receiver, Window};
use canary_router::notify::{body, default_headers, describe, Subject};
use canary_router::stats::{
    tagged_name, GUARD_NOTIFY_FAILURES_TOTAL, GUARD_TRIPPED, GUARD_TRIPS_TOTAL, POLICY, VARIANT,
};
use canary_router::Config;

use crate::host::{Host, LogLevel, MetricType, SharedData, Stats, Status};

/// Attempts to store a window before the pending outcomes wait for the next tick.
const CAS_ATTEMPTS: usize = 8;

/// The shared-data key whose value names the window key being created (see the module's
/// documentation); one for every configuration and policy of the proxy.
pub const TOKEN_KEY: &str = "canary_router/guard/token";

/// The guards of one configuration, in this VM.
pub struct Guards {
    /// Per policy: index into `entries`, or `u32::MAX` without a guard.
    of_policy: Vec<u32>,
    entries: Vec<Entry>,
    /// Per policy: the guard's state as this VM last read it (for
    /// [`Config::splits_in_force`]).
    views: Vec<GuardView>,
}

struct Entry {
    policy: usize,
    /// Shared-data key of the window: configuration fingerprint and policy name, so a new
    /// configuration starts afresh and two configurations never mix.
    key: String,
    /// Outcomes recorded in this VM since the last merge.
    pending: Pending,
    /// The token of another VM's claim to create this window that this VM waited on: still
    /// unfulfilled a tick later, it is taken over.
    waited_on: Option<u32>,
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
                    pending: Pending::default(),
                    waited_on: None,
                });
            }
        }
        Some(Guards {
            of_policy,
            entries,
            views: vec![GuardView::default(); config.policies().len()],
        })
    }

    /// Records a finished request of `(policy, variant)` if the policy's guard counts that
    /// variant (the guarded one; the baseline too with a relative limit).
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
        guard.record(&mut entry.pending, at.1, failed, latency_ms);
    }

    /// Empties this configuration's windows in shared data (which has no delete): called when a
    /// different configuration replaces it, so replaced configurations leave only their keys.
    pub fn release(&self, host: &impl SharedData) {
        for entry in &self.entries {
            let _ = host.set_shared_data(&entry.key, &[], 0);
        }
    }

    /// Creates [`TOKEN_KEY`] if this proxy has none yet. Called at configure, before this VM
    /// records any outcome, so a VM that creates it cannot erase a claim: claims are made on
    /// later ticks, by VMs that found the key.
    pub fn create_token(host: &impl SharedData) {
        if let Ok(None) = host.get_shared_data(TOKEN_KEY) {
            let _ = host.set_shared_data(TOKEN_KEY, &[], 0);
        }
    }

    /// Per policy: the guard's state in this VM's view.
    pub fn views(&self) -> &[GuardView] {
        &self.views
    }

    /// Merges pending outcomes into the shared windows and reads back the trip states at
    /// `now_ms` (unix milliseconds). Returns the changes this VM made, to report, and whether
    /// this VM's view of some guard changed (its splits must then be recomputed).
    pub fn tick(
        &mut self,
        host: &(impl SharedData + Stats),
        config: &Config,
        now_ms: i64,
    ) -> (Vec<Change>, bool) {
        let mut changes = Vec::new();
        let mut view_changed = false;
        for entry in &mut self.entries {
            let Some(guard) = config.policy(entry.policy).and_then(|p| p.guard()) else {
                continue;
            };
            let merged = merge(host, entry, guard, now_ms);
            let Some((window, event)) = merged else {
                continue;
            };
            entry.pending = Pending::default();
            if let Some(event) = event {
                changes.push(Change {
                    policy: entry.policy,
                    event,
                });
            }
            let view = GuardView {
                tripped: window.tripped(now_ms),
                ramp_stopped_at: window.first_trip_ms().map(|ms| ms.div_euclid(1000)),
            };
            if let Some(v) = self.views.get_mut(entry.policy) {
                if *v != view {
                    if v.tripped != view.tripped {
                        set_tripped_gauge(host, config, entry.policy, view.tripped);
                    }
                    *v = view;
                    view_changed = true;
                }
            }
        }
        (changes, view_changed)
    }
}

/// Adds the entry's pending outcomes to its shared window and judges it; retries when another
/// VM wrote in between. `None` if the window could not be read or stored, or another VM is
/// creating it (the outcomes stay pending).
fn merge(
    host: &impl SharedData,
    entry: &mut Entry,
    guard: &canary_router::guard::Guard,
    now_ms: i64,
) -> Option<(Window, Option<Event>)> {
    let (key, pending) = (entry.key.as_str(), &entry.pending);
    for _ in 0..CAS_ATTEMPTS {
        let Some((bytes, cas)) = host.get_shared_data(key).ok()? else {
            let mut window = Window::decode(&[], guard);
            let event = window.advance(guard, now_ms, pending);
            if event.is_none() && pending.is_empty() {
                // Nothing to store: a missing window is an empty one.
                return Some((window, None));
            }
            match claim(host, key, &mut entry.waited_on).ok()? {
                Claim::Won => {
                    // No other VM creates the key now: `set` cannot overwrite anyone's outcomes.
                    host.set_shared_data(key, &window.encode(), 0).ok()?;
                    return Some((window, event));
                }
                Claim::Retry => continue,
                Claim::Wait => return None,
            }
        };
        entry.waited_on = None;
        let mut window = Window::decode(&bytes, guard);
        let event = window.advance(guard, now_ms, pending);
        if event.is_none() && (pending.is_empty() || window.aborted()) && !bytes.is_empty() {
            // Nothing to write: the window only told us the state (an aborted guard drops
            // what it is given).
            return Some((window, None));
        }
        match host.set_shared_data(key, &window.encode(), cas) {
            Ok(()) => return Some((window, event)),
            Err(Status::CAS_MISMATCH) => continue,
            Err(_) => return None,
        }
    }
    None
}

enum Claim {
    /// This VM may create the key.
    Won,
    /// Something changed in between (the key was created, or another claim made): look again.
    Retry,
    /// Another VM claimed the key and is creating it: merge at the next tick.
    Wait,
}

/// Claims the creation of the missing window `key` through [`TOKEN_KEY`]: its value names the
/// key last claimed, and a claim is a compare-and-swap on it. The token is read before the key,
/// so a claim that succeeds was made with the key still missing after every earlier claim.
fn claim(host: &impl SharedData, key: &str, waited_on: &mut Option<u32>) -> Result<Claim, Status> {
    let Some((token, cas)) = host.get_shared_data(TOKEN_KEY)? else {
        // Made at configure; missing only if the host lost it. Created again, and nothing
        // claimed on this tick: a creation must never race with a claim.
        host.set_shared_data(TOKEN_KEY, &[], 0)?;
        return Ok(Claim::Wait);
    };
    if host.get_shared_data(key)?.is_some() {
        return Ok(Claim::Retry);
    }
    if token == key.as_bytes() && *waited_on != Some(cas) {
        // The claimant's next host call creates the key. The same claim still unfulfilled a
        // tick later means the claimant failed in between: then this VM claims it again.
        *waited_on = Some(cas);
        return Ok(Claim::Wait);
    }
    match host.set_shared_data(TOKEN_KEY, key.as_bytes(), cas) {
        Ok(()) => Ok(Claim::Won),
        Err(Status::CAS_MISMATCH) => Ok(Claim::Retry),
        Err(s) => Err(s),
    }
}

fn labels(config: &Config, policy: usize) -> Option<[(&'static str, &str); 2]> {
    let p = config.policy(policy)?;
    let v = p.variant(p.guard()?.variant())?;
    Some([(POLICY, p.name()), (VARIANT, v.name())])
}

/// Sets `canary_router_guard_tripped{policy, variant}`.
pub fn set_tripped_gauge(host: &impl Stats, config: &Config, policy: usize, tripped: bool) {
    if let Some(labels) = labels(config, policy) {
        if let Some(id) =
            host.define_metric(MetricType::Gauge, &tagged_name(GUARD_TRIPPED, &labels))
        {
            host.record_metric(id, u64::from(tripped));
        }
    }
}

/// Defines the guard metrics of every guarded policy (so they exist at 0 before any trip).
pub fn define_metrics(host: &impl Stats, config: &Config) {
    for (i, p) in config.policies().iter().enumerate() {
        let Some(labels) = labels(config, i) else {
            continue;
        };
        let _ = host.define_metric(
            MetricType::Counter,
            &tagged_name(GUARD_TRIPS_TOTAL, &labels),
        );
        if p.guard().is_some_and(|g| !g.receivers().is_empty()) {
            let name = tagged_name(GUARD_NOTIFY_FAILURES_TOTAL, &labels);
            let _ = host.define_metric(MetricType::Counter, &name);
        }
        set_tripped_gauge(host, config, i, false);
    }
}

/// A message to one receiver, with everything needed to send it again: it outlives the
/// configuration that made it.
pub struct Message {
    cluster: String,
    headers: Vec<(String, String)>,
    body: String,
    timeout_ms: u32,
    /// Sends left after a failed one.
    retries_left: u32,
    /// Attempts made so far.
    attempts: u32,
    /// The failure counter to bump when the last attempt fails.
    failures: String,
    /// What it is, for the logs (`slack message to cluster hooks`).
    what: String,
}

impl Message {
    fn new(receiver: &Receiver, body: String, failures: String) -> Message {
        let mut headers: Vec<(String, String)> = vec![
            (":method".into(), "POST".into()),
            (":path".into(), receiver.path.clone()),
            (":authority".into(), receiver.authority.clone()),
            ("content-type".into(), "application/json".into()),
        ];
        let defaults = default_headers(receiver.format).iter();
        for (k, v) in defaults.filter(|(k, _)| !receiver.headers.iter().any(|(h, _)| h == k)) {
            headers.push(((*k).into(), (*v).into()));
        }
        headers.extend(receiver.headers.iter().cloned());
        Message {
            cluster: receiver.cluster.clone(),
            headers,
            body,
            timeout_ms: receiver.timeout_ms,
            retries_left: receiver.retries,
            attempts: 0,
            failures,
            what: format!(
                "{} message to cluster {}",
                receiver.format.as_str(),
                receiver.cluster
            ),
        }
    }
}

/// First wait before a failed message is sent again; it doubles with every attempt.
const RETRY_BASE_MS: i64 = 1000;

/// Messages waiting to be sent (first sends and retries) and those in flight. Everything is
/// driven by the root context's timer and the host's call-response callback: no request ever
/// waits on a receiver.
#[derive(Default)]
pub struct Outbox {
    /// `(due at, unix ms; message)`.
    waiting: Vec<(i64, Message)>,
    /// `(call token, message)`.
    in_flight: Vec<(u32, Message)>,
}

impl Outbox {
    /// Queues the messages a change this VM made calls for, counts a trip and logs it.
    pub fn report(
        &mut self,
        host: &impl Host,
        config: &Config,
        change: &Change,
        node: &str,
        now_ms: i64,
    ) -> Option<()> {
        let p = config.policy(change.policy)?;
        let guard = p.guard()?;
        let labels = labels(config, change.policy)?;
        let who = Subject {
            policy: p.name(),
            variant: p.variant(guard.variant())?.name(),
            baseline: p.variant(guard.baseline())?.name(),
            node,
            fingerprint: config.document_fingerprint(),
        };
        if let Event::Tripped { .. } = change.event {
            if let Some(id) = host.define_metric(
                MetricType::Counter,
                &tagged_name(GUARD_TRIPS_TOTAL, &labels),
            ) {
                host.increment_metric(id, 1);
            }
        }
        host.log(LogLevel::Warn, &describe(guard, &change.event, &who));
        let failures = tagged_name(GUARD_NOTIFY_FAILURES_TOTAL, &labels);
        for r in guard.receivers() {
            if r.format.wants(&change.event) {
                let text = body(r.format, guard, &change.event, &who, now_ms / 1000);
                self.waiting
                    .push((now_ms, Message::new(r, text, failures.clone())));
            }
        }
        Some(())
    }

    /// Sends the messages that are due.
    pub fn send_due(&mut self, host: &impl Host, now_ms: i64) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting.get(i).is_some_and(|(due, _)| *due <= now_ms) {
                let (_, message) = self.waiting.swap_remove(i);
                self.send(host, message, now_ms);
            } else {
                i += 1;
            }
        }
    }

    fn send(&mut self, host: &impl Host, mut message: Message, now_ms: i64) {
        message.attempts += 1;
        let headers: Vec<(&str, &str)> = message
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match host.http_call(
            &message.cluster,
            &headers,
            message.body.as_bytes(),
            message.timeout_ms,
        ) {
            Ok(token) => self.in_flight.push((token, message)),
            Err(status) => self.failed(
                host,
                message,
                &format!(
                    "cannot send (status {}; is the cluster defined?)",
                    status.code()
                ),
                now_ms,
            ),
        }
    }

    /// Takes the answer to call `token`: `status` is the answer's `:status`, `None` without
    /// one (timeout, connection failure). Returns false for a token that is not ours.
    pub fn answered(
        &mut self,
        host: &impl Host,
        token: u32,
        status: Option<u16>,
        now_ms: i64,
    ) -> bool {
        let Some(i) = self.in_flight.iter().position(|(t, _)| *t == token) else {
            return false;
        };
        let (_, message) = self.in_flight.swap_remove(i);
        match status {
            Some(200..=299) => {}
            Some(s) => self.failed(host, message, &format!("the receiver answered {s}"), now_ms),
            None => {
                let why = "no answer (timeout or connection failure)";
                self.failed(host, message, why, now_ms);
            }
        }
        true
    }

    /// A failed attempt: queued again after a backoff while retries are left, else logged and
    /// counted.
    fn failed(&mut self, host: &impl Host, mut message: Message, why: &str, now_ms: i64) {
        if message.retries_left > 0 {
            message.retries_left -= 1;
            let wait = RETRY_BASE_MS << (message.attempts - 1).min(10);
            host.log(
                LogLevel::Warn,
                &format!(
                    "canary-router: guard {} failed ({why}); trying again in {} s",
                    message.what,
                    wait / 1000
                ),
            );
            self.waiting.push((now_ms.saturating_add(wait), message));
            return;
        }
        host.log(
            LogLevel::Error,
            &format!(
                "canary-router: guard notification failed: {} after {} attempts: {why}",
                message.what, message.attempts
            ),
        );
        if let Some(id) = host.define_metric(MetricType::Counter, &message.failures) {
            host.increment_metric(id, 1);
        }
    }
}
