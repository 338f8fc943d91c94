//! The filter's metrics. Names and labels come from `canary_router::stats`; a metric id is
//! defined on the first use of its label set and cached, so no request defines a metric twice.

use std::cell::RefCell;

use canary_router::stats::{
    self, tagged_name, ErrorSource, CODE_CLASS, CONFIG_ERRORS_TOTAL, GRPC_STATUS, POLICY, REASON,
    REQUESTS_TOTAL, RESPONSES_TOTAL, RESPONSE_TIME_MS, SOURCE, VARIANT, WEIGHT,
};
use canary_router::{Config, Decision, Reason};
use hashbrown::HashMap;
use proxy_wasm::types::MetricType;

use crate::host;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Requests(usize, usize, Reason),
    Responses(usize, usize, &'static str, &'static str),
    ResponseTime(usize, usize),
}

/// Metric ids for one configuration (keys are its policy and variant indices).
#[derive(Default)]
pub struct Metrics {
    ids: RefCell<HashMap<Key, Option<u32>>>,
}

impl Metrics {
    fn id(&self, config: &Config, key: Key) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(&key) {
            return *id;
        }
        let (kind, metric, policy, variant, extra) = match key {
            Key::Requests(p, v, r) => (
                MetricType::Counter,
                REQUESTS_TOTAL,
                p,
                v,
                vec![(REASON, r.as_str())],
            ),
            Key::Responses(p, v, class, grpc) => (
                MetricType::Counter,
                RESPONSES_TOTAL,
                p,
                v,
                vec![(CODE_CLASS, class), (GRPC_STATUS, grpc)],
            ),
            Key::ResponseTime(p, v) => (MetricType::Histogram, RESPONSE_TIME_MS, p, v, Vec::new()),
        };
        let id = config.policy(policy).and_then(|p| {
            let v = p.variant(variant)?;
            let mut labels = vec![(POLICY, p.name()), (VARIANT, v.name())];
            labels.extend(extra);
            host::define_metric(kind, &tagged_name(metric, &labels))
        });
        self.ids.borrow_mut().insert(key, id);
        id
    }

    pub fn request(&self, config: &Config, d: &Decision) {
        if let Some(id) = self.id(config, Key::Requests(d.policy, d.variant, d.reason)) {
            host::increment_metric(id, 1);
        }
    }

    pub fn response(
        &self,
        config: &Config,
        at: (usize, usize),
        class: &'static str,
        grpc: &'static str,
    ) {
        if let Some(id) = self.id(config, Key::Responses(at.0, at.1, class, grpc)) {
            host::increment_metric(id, 1);
        }
    }

    pub fn response_time(&self, config: &Config, at: (usize, usize), ms: u64) {
        if let Some(id) = self.id(config, Key::ResponseTime(at.0, at.1)) {
            host::record_metric(id, ms);
        }
    }
}

/// Sets `canary_router_weight` for every policy and variant of `config`; a gauge of the
/// previous configuration that `config` no longer has is set to 0. Returns the gauges set.
pub fn set_weights(config: &Config, previous: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for p in config.policies() {
        for (v, w) in p.variants().iter().zip(p.split().weights_bp()) {
            let name = tagged_name(WEIGHT, &[(POLICY, p.name()), (VARIANT, v.name())]);
            if let Some(id) = host::define_metric(MetricType::Gauge, &name) {
                host::record_metric(id, u64::from(*w));
            }
            names.push(name);
        }
    }
    for old in previous.iter().filter(|o| !names.contains(o)) {
        if let Some(id) = host::define_metric(MetricType::Gauge, old) {
            host::record_metric(id, 0);
        }
    }
    names
}

/// Counts configuration problems by source.
pub fn config_errors(source: ErrorSource, n: usize) {
    if n == 0 {
        return;
    }
    let name = tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, source.as_str())]);
    if let Some(id) = host::define_metric(MetricType::Counter, &name) {
        host::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Defines every config error counter at 0, so dashboards see the series before any error.
pub fn define_config_errors() {
    for source in ErrorSource::ALL {
        let name = tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, source.as_str())]);
        let _ = host::define_metric(MetricType::Counter, &name);
    }
}

pub use stats::{code_class, grpc_status_name, parse_status, NOT_GRPC};
