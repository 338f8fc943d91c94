//! The filter's host traits (`canary-router-filter/src/host.rs`) over Envoy's dynamic-module
//! ABI. The filter's root and stream logic run on this host unchanged, one root per worker
//! thread and configuration (`worker.rs`), as one Wasm VM per worker would.
//!
//! Stream calls go to the stream Envoy is calling the module for (the thread's current filter,
//! set by `hooks.rs` around every call), as proxy-wasm's calls go to the current context.
//! Headers, attributes and gauges are reached through that filter; counters are added by the
//! main thread (`metrics.rs`). The module calls Envoy only inside Envoy's own callbacks, except
//! its timer thread's commit of the configuration's scheduler, which is thread-safe.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use canary_router_filter::host::{
    Clock, Entropy, HeaderPairs, Headers, HttpCalls, Log, LogLevel, MapType, MetricType, Plugin,
    Properties, SharedData, Stats, Status,
};

use crate::abi::{self, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoyPtr, ModuleBuffer};
use crate::metrics::{self, PendingCount, Series, MAX_LABELS};
use crate::shared;
use crate::ModuleConfig;

thread_local! {
    /// The stream Envoy is calling the module for on this thread, and its configuration.
    static CURRENT: Cell<(FilterEnvoyPtr, *const ModuleConfig)> =
        const { Cell::new((std::ptr::null_mut(), std::ptr::null())) };
    /// The answer headers of the guard notification being handed to a root
    /// (`on_http_call_response` reads them as proxy-wasm's `HttpCallResponseHeaders`), pointing
    /// into `with_call_answer`'s strings while it runs.
    static CALL_ANSWER: RefCell<Vec<EnvoyHttpHeader>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `status` as the answer headers of a guard notification.
pub fn with_call_answer<R>(status: Option<u16>, f: impl FnOnce() -> R) -> R {
    let status = status.map(|s| s.to_string());
    let answer = status.as_deref().map(|s| EnvoyHttpHeader {
        key_ptr: b":status".as_ptr().cast(),
        key_length: 7,
        value_ptr: s.as_ptr().cast(),
        value_length: s.len(),
    });
    CALL_ANSWER.set(answer.into_iter().collect());
    let r = f();
    // The header points into `status`, which ends here.
    CALL_ANSWER.take();
    r
}

/// Runs `f` with `filter` (of configuration `config`) as this thread's current stream.
pub fn with_current<R>(filter: FilterEnvoyPtr, config: &ModuleConfig, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.replace((filter, config as *const ModuleConfig));
    let r = f();
    CURRENT.set(previous);
    r
}

/// `Status` of a call this host does not offer (proxy-wasm's `Unimplemented`).
const UNIMPLEMENTED: Status = Status(12);

/// One worker's view of one configuration: what its host calls need.
pub struct WorkerConfig {
    pub config: Arc<ModuleConfig>,
    /// The label sets defined so far; a metric id is an index. Counters have their pending
    /// count (added to Envoy's by the main thread).
    series: RefCell<Vec<(Series, Option<Arc<PendingCount>>)>>,
    /// The root's timer period (`set_tick_period_ms`).
    pub tick_ms: Cell<u32>,
}

/// The filter's host on one worker for one configuration.
#[derive(Clone)]
pub struct NativeHost(Rc<WorkerConfig>);

impl NativeHost {
    pub fn new(config: Arc<ModuleConfig>) -> NativeHost {
        NativeHost(Rc::new(WorkerConfig {
            config,
            series: RefCell::new(Vec::new()),
            tick_ms: Cell::new(0),
        }))
    }

    pub fn worker(&self) -> &WorkerConfig {
        &self.0
    }

    /// The current stream if it belongs to this host's configuration (metric ids and label
    /// sets are per configuration, so a stream of another one must not be used).
    fn filter(&self) -> Option<FilterEnvoyPtr> {
        let (filter, config) = CURRENT.get();
        (!filter.is_null() && std::ptr::eq(config, Arc::as_ptr(&self.0.config))).then_some(filter)
    }

    fn header_type(map: MapType) -> Option<u32> {
        match map {
            MapType::RequestHeaders => Some(abi::REQUEST_HEADER),
            MapType::ResponseHeaders => Some(abi::RESPONSE_HEADER),
            MapType::ResponseTrailers => Some(abi::RESPONSE_TRAILER),
            MapType::HttpCallResponseHeaders => None,
        }
    }
}

/// A header map of the current stream, read in place: Envoy's own header strings, valid until
/// the callback that read them returns (the filter keeps a map no longer: `HostRequest` and the
/// response's reading live inside one callback). A guard notification's answer is in the same
/// form, over this module's strings (`with_call_answer`).
pub struct NativeMap(Vec<EnvoyHttpHeader>);

fn key(h: &EnvoyHttpHeader) -> &[u8] {
    let b = EnvoyBuffer {
        ptr: h.key_ptr,
        length: h.key_length,
    };
    // SAFETY: bytes Envoy (or `with_call_answer`) keeps until the current callback returns, and
    // the map is not kept past it (see `NativeMap`).
    unsafe { b.bytes() }
}

fn value(h: &EnvoyHttpHeader) -> &[u8] {
    let b = EnvoyBuffer {
        ptr: h.value_ptr,
        length: h.value_length,
    };
    // SAFETY: as in `key`.
    unsafe { b.bytes() }
}

impl HeaderPairs for NativeMap {
    /// Positions in Envoy's array: lookups scan it directly.
    type At = usize;

    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|h| (key(h), value(h)))
    }

    fn index(&self) -> Vec<usize> {
        (0..self.0.len()).collect()
    }

    fn name_len(&self, at: &usize) -> usize {
        self.0.get(*at).map_or(0, |h| h.key_length)
    }

    fn name(&self, at: &usize) -> &[u8] {
        self.0.get(*at).map(key).unwrap_or_default()
    }

    fn value(&self, at: &usize) -> &[u8] {
        self.0.get(*at).map(value).unwrap_or_default()
    }
}

impl Headers for NativeHost {
    type Map = NativeMap;

    fn header_map(&self, map: MapType) -> NativeMap {
        if map == MapType::HttpCallResponseHeaders {
            return NativeMap(CALL_ANSWER.with_borrow(|a| a.clone()));
        }
        let (Some(filter), Some(t)) = (self.filter(), Self::header_type(map)) else {
            return NativeMap(Vec::new());
        };
        // SAFETY: `filter` is the stream Envoy is calling us for.
        let n = unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(filter, t) };
        let mut headers = vec![EnvoyHttpHeader::EMPTY; n];
        // SAFETY: `headers` has room for the `n` headers Envoy said it has.
        if n == 0
            || !unsafe {
                abi::envoy_dynamic_module_callback_http_get_headers(filter, t, headers.as_mut_ptr())
            }
        {
            return NativeMap(Vec::new());
        }
        NativeMap(headers)
    }

    fn replace_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        let (Some(filter), Some(t)) = (self.filter(), Self::header_type(map)) else {
            return Err(Status::NOT_FOUND);
        };
        let (k, v) = (
            ModuleBuffer::new(name.as_bytes()),
            ModuleBuffer::new(value.as_bytes()),
        );
        // SAFETY: `filter` is current; the buffers outlive the call.
        let ok = unsafe { abi::envoy_dynamic_module_callback_http_set_header(filter, t, k, v) };
        if ok && map == MapType::RequestHeaders {
            // Unlike proxy-wasm's header calls, this one leaves the route Envoy selected on
            // arrival in place: the decision must select it again.
            // SAFETY: `filter` is current.
            unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(filter) };
        }
        ok.then_some(()).ok_or(Status::NOT_FOUND)
    }

    fn add_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        let (Some(filter), Some(t)) = (self.filter(), Self::header_type(map)) else {
            return Err(Status::NOT_FOUND);
        };
        let (k, v) = (
            ModuleBuffer::new(name.as_bytes()),
            ModuleBuffer::new(value.as_bytes()),
        );
        // SAFETY: `filter` is current; the buffers outlive the call.
        let ok = unsafe { abi::envoy_dynamic_module_callback_http_add_header(filter, t, k, v) };
        ok.then_some(()).ok_or(Status::NOT_FOUND)
    }
}

impl Properties for NativeHost {
    /// The properties the filter reads, as far as the dynamic-module ABI gives them: the source
    /// address and the route name; the node id as [`node_id`] says. Node metadata and route
    /// metadata are not offered (the configuration refuses route metadata, see
    /// `ModuleConfig::check`).
    fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        if path == b"xds\0node\0id" {
            return Some(node_id().into_bytes());
        }
        let filter = self.filter()?;
        let id = match path {
            b"source\0address" => abi::ATTRIBUTE_SOURCE_ADDRESS,
            b"xds\0route_name" => abi::ATTRIBUTE_XDS_ROUTE_NAME,
            _ => return None,
        };
        let mut out = EnvoyBuffer::EMPTY;
        // SAFETY: `filter` is current; Envoy writes a buffer it owns into `out`.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                filter, id, &mut out,
            )
        };
        // SAFETY: valid for the current callback; copied at once.
        found.then(|| unsafe { out.bytes() }.to_vec())
    }

    /// Filter state for access logs, under the Wasm filter's key (`wasm.canary_router`), so a
    /// log format works with either module.
    fn set_property(&self, path: &[u8], value: &[u8]) {
        let Some(filter) = self.filter() else {
            return;
        };
        let mut key = b"wasm.".to_vec();
        key.extend_from_slice(path);
        // SAFETY: `filter` is current; the buffers outlive the call.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                filter,
                ModuleBuffer::new(&key),
                ModuleBuffer::new(value),
            )
        };
    }
}

/// The name guard messages give this proxy: the ABI does not give Envoy's node id, so the
/// environment variable `CANARY_ROUTER_NODE` (set it to the node id), else the host name.
fn node_id() -> String {
    std::env::var("CANARY_ROUTER_NODE")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

impl Clock for NativeHost {
    fn now_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Stats for NativeHost {
    fn define_metric(&self, kind: MetricType, name: &str) -> Option<u32> {
        let series = metrics::parse(kind, name)?;
        let mut all = self.0.series.borrow_mut();
        let id = match all.iter().position(|(s, _)| *s == series) {
            Some(i) => i,
            None => {
                // A counter exists (at 0) once defined, as in the Wasm filter: the main thread's
                // next flush creates it.
                let pending =
                    (kind == MetricType::Counter).then(|| self.0.config.counters.register(&series));
                all.push((series, pending));
                all.len() - 1
            }
        };
        u32::try_from(id).ok()
    }

    /// Counted here, added to Envoy's counter by the main thread (`metrics::Counters`).
    fn increment_metric(&self, id: u32, by: i64) {
        if let Some((_, Some(pending))) = self.0.series.borrow().get(id as usize) {
            pending.add(u64::try_from(by).unwrap_or(0));
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        let gauge =
            self.0.series.borrow().get(id as usize).map(|(s, _)| s.kind) == Some(MetricType::Gauge);
        self.with_series(id, |filter, family, values, n| {
            let record = if gauge {
                abi::envoy_dynamic_module_callback_http_filter_set_gauge
            } else {
                abi::envoy_dynamic_module_callback_http_filter_record_histogram_value
            };
            // SAFETY: `filter` is current; `values` holds `n` label buffers.
            unsafe { record(filter, family, values, n, value) }
        });
    }

    fn vm_memory_bytes(&self) -> Option<u64> {
        None
    }
}

impl NativeHost {
    /// Calls `f(filter, Envoy's family id, label values, count)` for the series `id`, if there
    /// is a current stream of this configuration and Envoy defined the family.
    fn with_series(
        &self,
        id: u32,
        f: impl FnOnce(FilterEnvoyPtr, usize, *const ModuleBuffer, usize) -> u32,
    ) {
        let Some(filter) = self.filter() else {
            return;
        };
        let all = self.0.series.borrow();
        let Some((series, _)) = all.get(id as usize) else {
            return;
        };
        let Some(Some(family)) = self.0.config.families.get(series.family) else {
            return;
        };
        let mut values = [ModuleBuffer::new(b""); MAX_LABELS];
        for (b, v) in values.iter_mut().zip(&series.values) {
            *b = ModuleBuffer::new(v.as_bytes());
        }
        // The label strings stay borrowed (`all`) until Envoy has read them.
        let _ = f(
            filter,
            *family,
            values.as_ptr(),
            series.values.len().min(MAX_LABELS),
        );
    }
}

impl SharedData for NativeHost {
    fn get_shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
        Ok(shared::get(key))
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        shared::set(key, value, cas)
    }
}

impl HttpCalls for NativeHost {
    /// Queued for the main thread, which sends it (`notify.rs`).
    fn http_call(
        &self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, Status> {
        self.0
            .config
            .relay
            .call(
                &self.0.config.scheduler,
                upstream,
                headers,
                body,
                timeout_ms,
            )
            .ok_or(UNIMPLEMENTED)
    }
}

impl Log for NativeHost {
    fn log(&self, level: LogLevel, message: &str) {
        log(level, message);
    }
}

/// Writes to Envoy's log (the `dynamic_modules` logger).
pub fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Info => abi::LOG_INFO,
        LogLevel::Warn => abi::LOG_WARN,
        LogLevel::Error => abi::LOG_ERROR,
    };
    // SAFETY: the buffer outlives the call; Envoy copies it.
    unsafe {
        abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::new(message.as_bytes()));
    }
}

impl Entropy for NativeHost {
    fn random_fill(&self, buf: &mut [u8]) -> bool {
        getrandom::fill(buf).is_ok()
    }
}

impl Plugin for NativeHost {
    fn plugin_configuration(&self, _size: usize) -> Vec<u8> {
        self.0.config.json.clone()
    }

    fn environment(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }

    fn set_tick_period_ms(&self, period: u32) {
        self.0.tick_ms.set(period);
    }
}

#[cfg(test)]
// Tests may fail loudly.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(k: &'static str, v: &'static str) -> EnvoyHttpHeader {
        EnvoyHttpHeader {
            key_ptr: k.as_ptr().cast(),
            key_length: k.len(),
            value_ptr: v.as_ptr().cast(),
            value_length: v.len(),
        }
    }

    #[test]
    fn envoy_headers_read_in_place_as_the_filter_reads_them() {
        let headers = vec![
            header(":authority", "reviews"),
            header("x-user-id", ""),
            header("cookie", "a=1; b=2"),
            header("cookie", "c=3"),
        ];
        let map = NativeMap(headers);
        let pairs: Vec<(&[u8], &[u8])> = map.pairs().collect();
        assert_eq!(
            pairs,
            [
                (&b":authority"[..], &b"reviews"[..]),
                (b"x-user-id", b""),
                (b"cookie", b"a=1; b=2"),
                (b"cookie", b"c=3"),
            ]
        );
        let cookies: Vec<&[u8]> = map
            .index()
            .iter()
            .filter(|at| map.name(at) == b"cookie")
            .map(|at| map.value(at))
            .collect();
        assert_eq!(cookies, [&b"a=1; b=2"[..], b"c=3"]);
        assert_eq!(map.name(&4), b"");
        assert_eq!(NativeMap(Vec::new()).pairs().count(), 0);
    }
}
