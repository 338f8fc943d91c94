//! The filter's metrics. Names and labels come from `canary_router::stats`.
//!
//! Counters cost no host call on the request path: each (policy, variant) has a slot of pending
//! counts in the VM's memory, which [`Metrics::flush`] adds to Envoy's counters on the root
//! context's timer (every second) and when a configuration is replaced. A metric is defined on
//! the first flush of its label set, so label sets that never occur never appear. The latency
//! histogram is recorded as each response arrives (a histogram takes one value per call).

use std::cell::RefCell;

use crate::host::{MetricType, Stats};
use canary_router::stats::{
    self, tagged_name, ErrorSource, CODE_CLASS, CONFIG_ERRORS_TOTAL, GRPC_STATUS, POLICY, REASON,
    REQUESTS_TOTAL, RESPONSES_TOTAL, RESPONSE_TIME_MS, SOURCE, VARIANT, WEIGHT,
};
use canary_router::{Config, Decision, Reason, Split};

/// A metric id: `None` until defined, then what the host answered.
type Id = Option<Option<u32>>;

#[derive(Clone, Copy, Default)]
struct Counter {
    id: Id,
    pending: u32,
}

#[derive(Clone, Default)]
struct Slot {
    /// `(policy, variant)` of the slot.
    at: (usize, usize),
    /// Listed in `Metrics::dirty` (has pending counts).
    dirty: bool,
    requests: [Counter; Reason::ALL.len()],
    response_time: Id,
    /// By `(code_class, grpc_status)`; a handful per slot.
    responses: Vec<(&'static str, &'static str, Counter)>,
}

/// Metrics of one configuration, by policy and variant index.
pub struct Metrics {
    /// Index of the first slot of each policy.
    first: Vec<usize>,
    slots: RefCell<Vec<Slot>>,
    /// Indices of the slots with pending counts.
    dirty: RefCell<Vec<usize>>,
}

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let mut first = Vec::with_capacity(config.policies().len());
        let mut slots = Vec::new();
        for (p, policy) in config.policies().iter().enumerate() {
            first.push(slots.len());
            for v in 0..policy.variants().len() {
                slots.push(Slot {
                    at: (p, v),
                    ..Slot::default()
                });
            }
        }
        Metrics {
            first,
            slots: RefCell::new(slots),
            dirty: RefCell::new(Vec::new()),
        }
    }

    /// Runs `f` on the slot of `at`; `pending`: `f` adds counts for the next flush.
    fn with_slot(&self, at: (usize, usize), pending: bool, f: impl FnOnce(&mut Slot)) {
        let Some(i) = self.first.get(at.0).map(|first| first + at.1) else {
            return;
        };
        if let Some(slot) = self.slots.borrow_mut().get_mut(i) {
            if pending && !slot.dirty {
                slot.dirty = true;
                self.dirty.borrow_mut().push(i);
            }
            f(slot);
        }
    }

    pub fn request(&self, d: &Decision) {
        self.with_slot((d.policy, d.variant), true, |slot| {
            if let Some(c) = slot.requests.get_mut(d.reason as usize) {
                c.pending = c.pending.saturating_add(1);
            }
        });
    }

    pub fn response(&self, at: (usize, usize), class: &'static str, grpc: &'static str) {
        self.with_slot(at, true, |slot| {
            match slot
                .responses
                .iter_mut()
                .find(|(c, g, _)| *c == class && *g == grpc)
            {
                Some((_, _, counter)) => counter.pending = counter.pending.saturating_add(1),
                None => slot.responses.push((
                    class,
                    grpc,
                    Counter {
                        id: None,
                        pending: 1,
                    },
                )),
            }
        });
    }

    pub fn response_time(&self, host: &impl Stats, config: &Config, at: (usize, usize), ms: u64) {
        self.with_slot(at, false, |slot| {
            let id = *slot.response_time.get_or_insert_with(|| {
                define(
                    host,
                    config,
                    at,
                    MetricType::Histogram,
                    RESPONSE_TIME_MS,
                    &[],
                )
            });
            if let Some(id) = id {
                host.record_metric(id, ms);
            }
        });
    }

    /// Adds the pending counts to Envoy's counters. Only slots with pending counts are
    /// visited: the cost follows the traffic, not the size of the configuration.
    pub fn flush(&self, host: &impl Stats, config: &Config) {
        let mut slots = self.slots.borrow_mut();
        for i in self.dirty.borrow_mut().drain(..) {
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            slot.dirty = false;
            let at = slot.at;
            for (reason, c) in Reason::ALL.iter().zip(slot.requests.iter_mut()) {
                let labels = [(REASON, reason.as_str())];
                add(host, config, at, c, REQUESTS_TOTAL, &labels);
            }
            for (class, grpc, c) in &mut slot.responses {
                let labels = [(CODE_CLASS, *class), (GRPC_STATUS, *grpc)];
                add(host, config, at, c, RESPONSES_TOTAL, &labels);
            }
        }
    }
}

/// Adds a counter's pending count to `metric{policy, variant, labels…}` of `at`, defining it
/// on first use.
fn add(
    host: &impl Stats,
    config: &Config,
    at: (usize, usize),
    c: &mut Counter,
    metric: &str,
    labels: &[(&str, &str)],
) {
    if c.pending == 0 {
        return;
    }
    let define = || define(host, config, at, MetricType::Counter, metric, labels);
    if let Some(id) = *c.id.get_or_insert_with(define) {
        host.increment_metric(id, i64::from(c.pending));
    }
    c.pending = 0;
}

/// Defines `metric{policy, variant, extra…}` for the policy and variant at `at`.
fn define(
    host: &impl Stats,
    config: &Config,
    at: (usize, usize),
    kind: MetricType,
    metric: &str,
    extra: &[(&str, &str)],
) -> Option<u32> {
    let p = config.policy(at.0)?;
    let v = p.variant(at.1)?;
    let mut labels = vec![(POLICY, p.name()), (VARIANT, v.name())];
    labels.extend_from_slice(extra);
    host.define_metric(kind, &tagged_name(metric, &labels))
}

/// Sets `canary_router_weight` for every policy and variant of `config` from the splits in
/// force (`live`, with ramps applied); a gauge of the previous configuration that `config` no
/// longer has is set to 0. Returns the gauges set.
pub fn set_weights(
    host: &impl Stats,
    config: &Config,
    live: &[Split],
    previous: &[String],
) -> Vec<String> {
    let mut names = Vec::new();
    for (i, p) in config.policies().iter().enumerate() {
        let split = live.get(i).unwrap_or(p.split());
        for (v, w) in p.variants().iter().zip(split.weights_bp()) {
            let name = tagged_name(WEIGHT, &[(POLICY, p.name()), (VARIANT, v.name())]);
            if let Some(id) = host.define_metric(MetricType::Gauge, &name) {
                host.record_metric(id, u64::from(*w));
            }
            names.push(name);
        }
    }
    for old in previous.iter().filter(|o| !names.contains(o)) {
        if let Some(id) = host.define_metric(MetricType::Gauge, old) {
            host.record_metric(id, 0);
        }
    }
    names
}

/// Counts configuration problems by source.
pub fn config_errors(host: &impl Stats, source: ErrorSource, n: usize) {
    if n == 0 {
        return;
    }
    let name = tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, source.as_str())]);
    if let Some(id) = host.define_metric(MetricType::Counter, &name) {
        host.increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Defines every config error counter at 0, so dashboards see the series before any error.
pub fn define_config_errors(host: &impl Stats) {
    for source in ErrorSource::ALL {
        let name = tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, source.as_str())]);
        let _ = host.define_metric(MetricType::Counter, &name);
    }
}

/// Sets `canary_router_vm_memory_bytes`: this VM's linear memory (it only grows, so a leak
/// shows as growth).
pub fn vm_memory(host: &impl Stats) {
    if let Some(bytes) = host.vm_memory_bytes() {
        if let Some(id) = host.define_metric(MetricType::Gauge, stats::VM_MEMORY_BYTES) {
            host.record_metric(id, bytes);
        }
    }
}

pub use stats::{code_class, grpc_status_name, parse_status, NOT_GRPC};
