//! The filter's metrics as Envoy's dynamic-module metrics: one labelled family per metric name,
//! defined when the configuration is created (Envoy refuses definitions afterwards), and the
//! filter's tagged names (`policy=.=reviews;.;…;canary_router_requests_total`, which Envoy's
//! `stats_tags` split for the Wasm filter) read back into a family and label values. The
//! Prometheus output has the same names and labels for both modules (under Envoy's
//! dynamic-module namespace here, renamed as docs/metrics.md shows).
//!
//! Counters are added on the main thread: a labelled counter add costs Envoy ~4.8 K
//! instructions (it resolves the labels every time; measured in the benchmark's profile), so the
//! workers only add to a [`PendingCount`] (an atomic), and the main thread hands the sums to
//! Envoy every second (`scheduler.rs`), as the Wasm filter's timer does per VM.

use canary_router::stats::{
    CODE_CLASS, CONFIG_ERRORS_TOTAL, GRPC_STATUS, GUARD_NOTIFY_FAILURES_TOTAL, GUARD_TRIPPED,
    GUARD_TRIPS_TOTAL, POLICY, REASON, REQUESTS_TOTAL, RESPONSES_TOTAL, RESPONSE_TIME_MS, SOURCE,
    VARIANT, WEIGHT,
};
use canary_router_filter::host::MetricType;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::abi::{self, ConfigEnvoyPtr, ModuleBuffer};

/// The most labels a family has.
pub const MAX_LABELS: usize = 4;

/// Every metric the filter defines, with its labels in the order the filter tags them.
/// (`canary_router_vm_memory_bytes` is the Wasm VM's memory: no VM here.)
pub const FAMILIES: [(&str, MetricType, &[&str]); 8] = [
    (
        REQUESTS_TOTAL,
        MetricType::Counter,
        &[POLICY, VARIANT, REASON],
    ),
    (
        RESPONSES_TOTAL,
        MetricType::Counter,
        &[POLICY, VARIANT, CODE_CLASS, GRPC_STATUS],
    ),
    (RESPONSE_TIME_MS, MetricType::Histogram, &[POLICY, VARIANT]),
    (WEIGHT, MetricType::Gauge, &[POLICY, VARIANT]),
    (CONFIG_ERRORS_TOTAL, MetricType::Counter, &[SOURCE]),
    (GUARD_TRIPPED, MetricType::Gauge, &[POLICY, VARIANT]),
    (GUARD_TRIPS_TOTAL, MetricType::Counter, &[POLICY, VARIANT]),
    (
        GUARD_NOTIFY_FAILURES_TOTAL,
        MetricType::Counter,
        &[POLICY, VARIANT],
    ),
];

/// Envoy's id of each family of [`FAMILIES`] in one configuration (`None`: Envoy refused it).
pub type FamilyIds = [Option<usize>; FAMILIES.len()];

/// Defines every family in Envoy's configuration `config` (in `on_http_filter_config_new`).
pub fn define_families(config: ConfigEnvoyPtr) -> FamilyIds {
    let mut ids = [None; FAMILIES.len()];
    for (slot, (name, kind, labels)) in ids.iter_mut().zip(FAMILIES) {
        let mut names = [ModuleBuffer::new(b""); MAX_LABELS];
        for (n, l) in names.iter_mut().zip(labels.iter()) {
            *n = ModuleBuffer::new(l.as_bytes());
        }
        let define = match kind {
            MetricType::Counter => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_counter
            }
            MetricType::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricType::Histogram => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0usize;
        // SAFETY: `config` is the configuration Envoy is creating; the buffers outlive the call.
        let result = unsafe {
            define(
                config,
                ModuleBuffer::new(name.as_bytes()),
                names.as_ptr(),
                labels.len().min(MAX_LABELS),
                &mut id,
            )
        };
        *slot = (result == abi::METRICS_SUCCESS).then_some(id);
    }
    ids
}

/// A metric of one label set: its family (index in [`FAMILIES`]) and label values.
#[derive(Debug, PartialEq, Eq)]
pub struct Series {
    pub family: usize,
    pub kind: MetricType,
    pub values: Vec<String>,
}

/// A worker's counts of one counter series, waiting for the main thread.
pub struct PendingCount {
    family: usize,
    values: Vec<String>,
    count: AtomicU64,
    /// Envoy has the series (created at its first add, even of 0: a defined counter shows at 0
    /// as in the Wasm filter).
    created: AtomicBool,
}

impl PendingCount {
    pub fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
    }
}

/// One configuration's pending counts, from every worker.
#[derive(Default)]
pub struct Counters(Mutex<Vec<Arc<PendingCount>>>);

impl Counters {
    /// A worker's new counter series (each worker has its own; Envoy adds them up).
    pub fn register(&self, series: &Series) -> Arc<PendingCount> {
        let cell = Arc::new(PendingCount {
            family: series.family,
            values: series.values.clone(),
            count: AtomicU64::new(0),
            created: AtomicBool::new(false),
        });
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&cell));
        cell
    }

    /// On the main thread: adds every pending count to Envoy's counters of `config`.
    pub fn flush(&self, config: ConfigEnvoyPtr, families: &FamilyIds) {
        let cells = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for c in cells.iter() {
            let n = c.count.swap(0, Ordering::Relaxed);
            if n == 0 && c.created.load(Ordering::Relaxed) {
                continue;
            }
            let Some(Some(id)) = families.get(c.family) else {
                continue;
            };
            let mut values = [ModuleBuffer::new(b""); MAX_LABELS];
            for (b, v) in values.iter_mut().zip(&c.values) {
                *b = ModuleBuffer::new(v.as_bytes());
            }
            // SAFETY: main thread, a live configuration; the label buffers outlive the call.
            let _ = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config,
                    *id,
                    values.as_ptr(),
                    c.values.len().min(MAX_LABELS),
                    n,
                )
            };
            c.created.store(true, Ordering::Relaxed);
        }
    }
}

/// Reads a tagged name back into a family and its label values; `None` for a name that is not
/// one of [`FAMILIES`] with exactly its labels.
pub fn parse(kind: MetricType, tagged: &str) -> Option<Series> {
    let mut keys = Vec::with_capacity(MAX_LABELS);
    let mut values = Vec::with_capacity(MAX_LABELS);
    let mut rest = tagged;
    while let Some((pair, tail)) = rest.split_once(";.;") {
        let (k, v) = pair.split_once("=.=")?;
        keys.push(k);
        values.push(v.to_string());
        rest = tail;
    }
    let family = FAMILIES
        .iter()
        .position(|(name, k, labels)| *name == rest && *k == kind && *labels == keys.as_slice())?;
    Some(Series {
        family,
        kind,
        values,
    })
}

#[cfg(test)]
// Tests may fail loudly.
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;
    use canary_router::stats::tagged_name;

    #[test]
    fn tagged_names_read_back_into_families() {
        let cases: [(MetricType, String, Option<(usize, &[&str])>); 5] = [
            (
                MetricType::Counter,
                tagged_name(
                    REQUESTS_TOTAL,
                    &[(POLICY, "p"), (VARIANT, "canary"), (REASON, "weight")],
                ),
                Some((0, &["p", "canary", "weight"])),
            ),
            (
                MetricType::Histogram,
                tagged_name(RESPONSE_TIME_MS, &[(POLICY, "p"), (VARIANT, "v")]),
                Some((2, &["p", "v"])),
            ),
            (
                MetricType::Counter,
                tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, "plugin")]),
                Some((4, &["plugin"])),
            ),
            // Wrong kind, or labels in another order: not a family.
            (
                MetricType::Gauge,
                tagged_name(
                    REQUESTS_TOTAL,
                    &[(POLICY, "p"), (VARIANT, "v"), (REASON, "r")],
                ),
                None,
            ),
            (
                MetricType::Gauge,
                tagged_name(WEIGHT, &[(VARIANT, "v"), (POLICY, "p")]),
                None,
            ),
        ];
        for (kind, name, want) in cases {
            let got = parse(kind, &name).map(|s| (s.family, s.values));
            let want = want.map(|(f, v)| (f, v.iter().map(|s| s.to_string()).collect()));
            assert_eq!(got, want, "{name}");
        }
    }
}
