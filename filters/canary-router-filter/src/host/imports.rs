//! The real host: the proxy-wasm ABI 0.2.1 imports (and the two WASI ones), wrapped so that
//! they never panic. Zero-sized: the contexts hold a copy for free.

use std::ptr::null_mut;

use super::{
    map, Clock, Entropy, HeaderMap, Headers, HttpCalls, Log, LogLevel, MapType, MetricType, Plugin,
    Properties, SharedData, Stats, Status,
};

/// `BufferType::PluginConfiguration` of the ABI.
const PLUGIN_CONFIGURATION: u32 = 7;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: LogLevel, message_data: *const u8, message_size: usize) -> Status;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> Status;
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> Status;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> Status;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> Status;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// WASI's entropy source. Proxy-wasm hosts (Envoy's proxy-wasm-cpp-host) provide WASI
    /// preview 1 to every module, whatever it was built for.
    fn random_get(buf: *mut u8, len: usize) -> u16;
    /// The VM's environment (Envoy's `vm_config.environment_variables`, Istio's
    /// `vmConfig.env`): the count of `NAME=value` strings and their total size with NULs.
    fn environ_sizes_get(count: *mut usize, size: *mut usize) -> u16;
    /// Writes the pointers to the strings into `environ` and the strings into `buf`.
    fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> u16;
}

/// Takes ownership of a buffer the host allocated through `proxy_on_memory_allocate`.
///
/// # Safety
/// `data` must be null or a pointer the host returned with `size`, allocated by this module's
/// allocator (`abi.rs` exports it), and not yet freed.
unsafe fn take_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: guaranteed by the caller; this is how the SDK itself receives host buffers.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

fn ok(status: Status) -> Result<(), Status> {
    match status {
        Status::OK => Ok(()),
        s => Err(s),
    }
}

/// The proxy-wasm host this module runs in.
#[derive(Clone, Copy, Default)]
pub struct Imports;

impl Headers for Imports {
    type Map = HeaderMap;

    fn header_map(&self, map: MapType) -> HeaderMap {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: out-pointers are valid; on Ok the host hands over a buffer of `size` bytes.
        let buf = unsafe {
            match proxy_get_header_map_pairs(map, &mut data, &mut size) {
                Status::OK => take_buffer(data, size),
                _ => Vec::new(),
            }
        };
        HeaderMap::from_bytes(buf)
    }

    fn replace_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        // SAFETY: pointers and lengths describe live slices for the duration of the call.
        ok(unsafe {
            proxy_replace_header_map_value(
                map,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    fn add_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        // SAFETY: pointers and lengths describe live slices for the duration of the call.
        ok(unsafe {
            proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
        })
    }
}

impl Properties for Imports {
    fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: as in `header_map`.
        unsafe {
            match proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) {
                Status::OK if !data.is_null() => Some(take_buffer(data, size)),
                _ => None,
            }
        }
    }

    fn set_property(&self, path: &[u8], value: &[u8]) {
        // SAFETY: both slices are valid for the call.
        let _ =
            unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) };
    }
}

impl Clock for Imports {
    fn now_nanos(&self) -> u64 {
        let mut t = 0u64;
        // SAFETY: the out-pointer is valid for the call.
        match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
            Status::OK => t,
            _ => 0,
        }
    }
}

impl Stats for Imports {
    fn define_metric(&self, kind: MetricType, name: &str) -> Option<u32> {
        let mut id = 0u32;
        // SAFETY: the name slice and the out-pointer are valid for the call.
        match unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) } {
            Status::OK => Some(id),
            _ => None,
        }
    }

    fn increment_metric(&self, id: u32, by: i64) {
        // SAFETY: plain values.
        let _ = unsafe { proxy_increment_metric(id, by) };
    }

    fn record_metric(&self, id: u32, value: u64) {
        // SAFETY: plain values.
        let _ = unsafe { proxy_record_metric(id, value) };
    }

    fn vm_memory_bytes(&self) -> Option<u64> {
        Some(core::arch::wasm32::memory_size(0) as u64 * 65_536)
    }
}

impl SharedData for Imports {
    fn get_shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        let mut cas: u32 = 0;
        // SAFETY: as in `header_map`.
        unsafe {
            match proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) {
                Status::OK => Ok(Some((take_buffer(data, size), cas))),
                Status::NOT_FOUND => Ok(None),
                s => Err(s),
            }
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        // SAFETY: both slices are valid for the call.
        ok(unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
        })
    }
}

impl HttpCalls for Imports {
    fn http_call(
        &self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, Status> {
        let headers = map::serialize(headers);
        let trailers = map::serialize::<&str, &str>(&[]);
        let mut token = 0u32;
        // SAFETY: every slice is valid for the call; the out-pointer too.
        let status = unsafe {
            proxy_http_call(
                upstream.as_ptr(),
                upstream.len(),
                headers.as_ptr(),
                headers.len(),
                body.as_ptr(),
                body.len(),
                trailers.as_ptr(),
                trailers.len(),
                timeout_ms,
                &mut token,
            )
        };
        ok(status).map(|()| token)
    }
}

impl Log for Imports {
    fn log(&self, level: LogLevel, message: &str) {
        // SAFETY: the slice is valid for the call.
        let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
    }
}

impl Entropy for Imports {
    fn random_fill(&self, buf: &mut [u8]) -> bool {
        // SAFETY: the slice is valid and writable for the call.
        unsafe { random_get(buf.as_mut_ptr(), buf.len()) == 0 }
    }
}

impl Plugin for Imports {
    fn plugin_configuration(&self, size: usize) -> Vec<u8> {
        let mut data: *mut u8 = null_mut();
        let mut len: usize = 0;
        // SAFETY: as in `header_map`.
        unsafe {
            match proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, &mut data, &mut len) {
                Status::OK => take_buffer(data, len),
                _ => Vec::new(),
            }
        }
    }

    fn environment(&self) -> Vec<(String, String)> {
        let (mut count, mut size) = (0usize, 0usize);
        // SAFETY: two valid out-pointers.
        if unsafe { environ_sizes_get(&mut count, &mut size) } != 0 || count == 0 {
            return Vec::new();
        }
        let mut pointers: Vec<*mut u8> = vec![null_mut(); count];
        let mut buf = vec![0u8; size];
        // SAFETY: `pointers` has room for `count` pointers and `buf` for `size` bytes, the
        // sizes the host just gave.
        if unsafe { environ_get(pointers.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
            return Vec::new();
        }
        // The strings lie in `buf` one after another, each ended by a NUL: read them from
        // there rather than through the pointers.
        buf.split(|&b| b == 0)
            .take(count)
            .filter_map(|entry| {
                let entry = std::str::from_utf8(entry).ok()?;
                let (name, value) = entry.split_once('=')?;
                Some((name.to_string(), value.to_string()))
            })
            .collect()
    }

    fn set_tick_period_ms(&self, period: u32) {
        // SAFETY: a plain value.
        let _ = unsafe { proxy_set_tick_period_milliseconds(period) };
    }
}
