//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`). The HTTP filter hooks the module
//! does not use are exported as no-ops: Envoy's loader requires them.
//!
//! Ownership: `on_http_filter_config_new` returns an `Arc<ModuleConfig>` turned into a pointer,
//! released by `on_http_filter_config_destroy`; each stream's `Filter` is a `Box` released by
//! `on_http_filter_destroy`. Envoy calls a stream's hooks on the worker thread that created it.

use std::ffi::{c_char, c_void};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use canary_router_filter::host::LogLevel;
use canary_router_filter::stream::Stream;

use crate::abi::{self, ConfigEnvoyPtr, EnvoyBuffer, EnvoyHttpHeader, FilterEnvoyPtr};
use crate::host::{log, with_current, NativeHost};
use crate::metrics::Counters;
use crate::notify::Relay;
use crate::scheduler::Scheduler;
use crate::{metrics, worker, ModuleConfig};

/// One stream's state: its configuration, and the filter's stream once the request headers
/// arrive (a stream that never gets them costs nothing more).
struct Filter {
    config: Arc<ModuleConfig>,
    stream: Option<Stream<NativeHost>>,
}

/// # Safety
/// `ptr` is a `Filter` pointer this module returned from `on_http_filter_new` and Envoy has not
/// destroyed yet; Envoy never calls two hooks of one stream at once.
unsafe fn filter<'a>(ptr: *const c_void) -> Option<&'a mut Filter> {
    // SAFETY: the caller's contract.
    unsafe { ptr.cast_mut().cast::<Filter>().as_mut() }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr()
}

/// Compiles and checks the configuration once here, so that a bad one is refused by Envoy with
/// its errors in the log (the listener is not created, or a reload keeps the old one).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: ConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's buffers are valid during this call; copied before it returns.
    let (name, json) = unsafe { (name.bytes(), config.bytes()) };
    match ModuleConfig::check(name, json) {
        Ok(compiled) => {
            let n = compiled.policies().len();
            log(
                LogLevel::Info,
                &format!(
                    "configured {n} polic{}, variant header {}",
                    if n == 1 { "y" } else { "ies" },
                    compiled.variant_header()
                ),
            );
            let config = ModuleConfig {
                json: json.to_vec(),
                families: metrics::define_families(config_envoy),
                destroyed: Default::default(),
                relay: Relay::new(config_envoy),
                counters: Counters::default(),
                scheduler: Scheduler::new(config_envoy),
                config_envoy: config_envoy as usize,
            };
            Arc::into_raw(Arc::new(config)).cast::<c_void>()
        }
        Err(errors) => {
            for e in errors {
                log(
                    LogLevel::Error,
                    &format!("invalid plugin configuration: {e}"),
                );
            }
            std::ptr::null()
        }
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    // SAFETY: `config` came from `Arc::into_raw` in `on_http_filter_config_new`; this releases
    // that reference (streams hold their own).
    let config = unsafe { Arc::from_raw(config.cast::<ModuleConfig>()) };
    config.destroyed.store(true, Ordering::Relaxed);
    config.scheduler.close();
    // The last counts (the configuration's destructor is running: its stats still exist).
    config
        .counters
        .flush(config.config_envoy as ConfigEnvoyPtr, &config.families);
}

/// # Safety
/// `ptr` is a configuration pointer from `on_http_filter_config_new` not destroyed yet.
unsafe fn module_config<'a>(ptr: *const c_void) -> Option<&'a ModuleConfig> {
    // SAFETY: the caller's contract (the `Arc` keeps it alive).
    unsafe { ptr.cast::<ModuleConfig>().as_ref() }
}

#[cfg(not(feature = "floor"))]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    if config.is_null() {
        return std::ptr::null();
    }
    let config = config.cast::<ModuleConfig>();
    // SAFETY: a live `Arc` pointer from `on_http_filter_config_new` (Envoy keeps the
    // configuration while it creates streams of it): one more reference for this stream.
    let config = unsafe {
        Arc::increment_strong_count(config);
        Arc::from_raw(config)
    };
    Box::into_raw(Box::new(Filter {
        config,
        stream: None,
    }))
    .cast_const()
    .cast::<c_void>()
}

#[cfg(not(feature = "floor"))]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    if !filter.is_null() {
        // SAFETY: from `Box::into_raw` in `on_http_filter_new`; Envoy destroys it once.
        drop(unsafe { Box::from_raw(filter.cast_mut().cast::<Filter>()) });
    }
}

#[cfg(not(feature = "floor"))]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    filter_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: see `filter`.
    let Some(f) = (unsafe { filter(filter_ptr) }) else {
        return abi::CONTINUE;
    };
    let config = &f.config;
    with_current(envoy, config, || {
        let stream = f.stream.get_or_insert_with(|| worker::new_stream(config));
        stream.on_request_headers() as u32
    })
}

#[cfg(not(feature = "floor"))]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    filter_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: see `filter`.
    let Some(f) = (unsafe { filter(filter_ptr) }) else {
        return abi::CONTINUE;
    };
    match &mut f.stream {
        Some(s) => with_current(envoy, &f.config, || s.on_response_headers() as u32),
        None => abi::CONTINUE,
    }
}

#[cfg(not(feature = "floor"))]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    envoy: FilterEnvoyPtr,
    filter_ptr: *const c_void,
) -> u32 {
    // SAFETY: see `filter`.
    let Some(f) = (unsafe { filter(filter_ptr) }) else {
        return abi::CONTINUE;
    };
    match &mut f.stream {
        Some(s) => with_current(envoy, &f.config, || s.on_response_trailers() as u32),
        None => abi::CONTINUE,
    }
}

/// The stream's end: the response is counted (and judged by a guard), and the counts go to
/// Envoy now (a counter add is a plain call here, not worth batching).
#[cfg(not(feature = "floor"))]
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: FilterEnvoyPtr,
    filter_ptr: *const c_void,
) {
    // SAFETY: see `filter`.
    let Some(f) = (unsafe { filter(filter_ptr) }) else {
        return;
    };
    if let Some(s) = &mut f.stream {
        with_current(envoy, &f.config, || {
            s.finish();
            s.flush();
            if s.guarded() {
                worker::stream_ended(&f.config);
            }
        });
    }
}

/// The main thread, woken by a worker that queued a guard notification or by the timer: sends
/// the notifications and adds the workers' counts to Envoy's counters.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _envoy: ConfigEnvoyPtr,
    config: *const c_void,
    _event_id: u64,
) {
    // SAFETY: Envoy schedules events only for a live configuration.
    if let Some(c) = unsafe { module_config(config) } {
        c.relay.send_queued();
        c.counters
            .flush(c.config_envoy as ConfigEnvoyPtr, &c.families);
    }
}

/// A guard notification's answer (main thread): its `:status`, kept for the worker that sent it.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _envoy: ConfigEnvoyPtr,
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_size: usize,
) {
    // SAFETY: as above.
    let Some(c) = (unsafe { module_config(config) }) else {
        return;
    };
    let status = if result == abi::CALLOUT_SUCCESS && !headers.is_null() {
        // SAFETY: Envoy passes `headers_size` headers valid during this call.
        let headers = unsafe { std::slice::from_raw_parts(headers, headers_size) };
        headers.iter().find_map(|h| {
            let key = EnvoyBuffer {
                ptr: h.key_ptr,
                length: h.key_length,
            };
            let value = EnvoyBuffer {
                ptr: h.value_ptr,
                length: h.value_length,
            };
            // SAFETY: as above.
            let (k, v) = unsafe { (key.bytes(), value.bytes()) };
            (k == b":status")
                .then(|| canary_router::stats::parse_status(v))
                .flatten()
        })
    } else {
        None
    };
    c.relay.done(callout_id, status);
}

// ---- Hooks this module does not use (required by Envoy's loader) ----------------------------

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    abi::CONTINUE
}

/// Per-route configuration is not supported: refused (Envoy rejects the route's config).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    log(
        LogLevel::Error,
        "per-route configuration is not supported: configure policies by host and path",
    );
    std::ptr::null()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body: *const EnvoyBuffer,
    _body_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_of_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_of_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_of_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_of_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}
