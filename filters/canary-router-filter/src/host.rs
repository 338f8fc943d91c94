//! The few host calls the per-request path makes, as thin wrappers that never panic.
//!
//! The proxy-wasm SDK's own wrappers `panic!` on an unexpected status and copy every header into
//! a `String` (failing on non-UTF-8 values). Here an unexpected status is an error the caller
//! turns into a safe default, and the header map is read once into one buffer and viewed in place.

use std::ptr::null_mut;

/// A host call's result (`WasmResult` of the ABI); only `Ok` (0) is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Status(u32);

impl Status {
    pub const OK: Status = Status(0);
    pub const NOT_FOUND: Status = Status(1);
    pub const CAS_MISMATCH: Status = Status(8);

    /// The status code, for logs.
    pub fn code(self) -> u32 {
        self.0
    }
}

/// Which header map a call reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    RequestHeaders = 0,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    HttpCallResponseHeaders = 6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

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

/// Takes ownership of a buffer the host allocated through `proxy_on_memory_allocate`.
///
/// # Safety
/// `data` must be null or a pointer the host returned with `size`, allocated by this module's
/// allocator (the SDK exports it), and not yet freed.
unsafe fn take_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: guaranteed by the caller; this is how the SDK itself receives host buffers.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// All pairs of a header map (or a map-valued property), kept in the host's serialization:
/// `count: u32`, `count × (key_len: u32, value_len: u32)`, then each `key \0 value \0`.
pub struct HeaderMap {
    buf: Vec<u8>,
}

impl HeaderMap {
    pub fn read(map: MapType) -> HeaderMap {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: out-pointers are valid; on Ok the host hands over a buffer of `size` bytes.
        let buf = unsafe {
            match proxy_get_header_map_pairs(map, &mut data, &mut size) {
                Status::OK => take_buffer(data, size),
                _ => Vec::new(),
            }
        };
        HeaderMap { buf }
    }

    /// A map in the same serialization from elsewhere (e.g. a map-valued property).
    pub fn from_bytes(buf: Vec<u8>) -> HeaderMap {
        HeaderMap { buf }
    }

    /// The `(name, value)` pairs; stops early (safely) if the buffer is malformed.
    pub fn pairs(&self) -> Pairs<'_> {
        let count = read_u32(&self.buf, 0).unwrap_or(0);
        // Data starts after the count and the size table; a count too large for the buffer
        // makes `data` fail on first use and ends the iteration.
        let data = (count as usize).saturating_mul(8).saturating_add(4);
        Pairs {
            buf: &self.buf,
            count,
            n: 0,
            data,
        }
    }
}

/// Where one pair of a [`HeaderMap`] lies in its buffer.
#[derive(Clone, Copy)]
pub struct PairAt {
    pub name_len: usize,
    name_start: usize,
    value_start: usize,
    value_len: usize,
}

impl HeaderMap {
    /// The position of every pair, for repeated lookups.
    pub fn index(&self) -> Vec<PairAt> {
        let mut out = Vec::with_capacity(read_u32(&self.buf, 0).unwrap_or(0).min(256) as usize);
        let mut pairs = self.pairs();
        loop {
            let data = pairs.data;
            let Some((name, value)) = pairs.next() else {
                break;
            };
            out.push(PairAt {
                name_len: name.len(),
                name_start: data,
                value_start: data + name.len() + 1,
                value_len: value.len(),
            });
        }
        out
    }

    pub fn name(&self, at: &PairAt) -> &[u8] {
        self.buf
            .get(at.name_start..at.name_start + at.name_len)
            .unwrap_or_default()
    }

    pub fn value(&self, at: &PairAt) -> &[u8] {
        self.buf
            .get(at.value_start..at.value_start + at.value_len)
            .unwrap_or_default()
    }
}

pub struct Pairs<'a> {
    buf: &'a [u8],
    count: u32,
    n: u32,
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.n >= self.count {
            return None;
        }
        let entry = 4 + 8 * self.n as usize;
        let key_len = read_u32(self.buf, entry)? as usize;
        let value_len = read_u32(self.buf, entry + 4)? as usize;
        let key_end = self.data.checked_add(key_len)?;
        let key = self.buf.get(self.data..key_end)?;
        let value_start = key_end + 1;
        let value_end = value_start.checked_add(value_len)?;
        let value = self.buf.get(value_start..value_end)?;
        self.data = value_end + 1;
        self.n += 1;
        Some((key, value))
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

pub fn replace_header(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices for the duration of the call.
    match unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    } {
        Status::OK => Ok(()),
        s => Err(s),
    }
}

pub fn add_header(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: pointers and lengths describe live slices for the duration of the call.
    match unsafe {
        proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    } {
        Status::OK => Ok(()),
        s => Err(s),
    }
}

/// A property as raw bytes; `path` is the segments joined by NUL (`b"xds\0route_name"`).
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `HeaderMap::read`.
    unsafe {
        match proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) {
            Status::OK if !data.is_null() => Some(take_buffer(data, size)),
            _ => None,
        }
    }
}

/// A property as a UTF-8 string (`None` if absent or not UTF-8).
pub fn property_string(path: &[u8]) -> Option<String> {
    property(path).and_then(|b| String::from_utf8(b).ok())
}

/// Defines (or finds) a metric; `None` if the host refuses.
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: the name slice and the out-pointer are valid for the call.
    match unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) } {
        Status::OK => Some(id),
        _ => None,
    }
}

/// Adds to a counter; failures are ignored (a stat must never fail a request).
pub fn increment_metric(id: u32, by: i64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

/// Sets a gauge or records a histogram value; failures are ignored.
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// The host's clock in nanoseconds since the epoch (0 if unavailable).
pub fn now_nanos() -> u64 {
    let mut t = 0u64;
    // SAFETY: the out-pointer is valid for the call.
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        Status::OK => t,
        _ => 0,
    }
}

/// Sets a property (Envoy: filter state `wasm.<path>`, readable by access logs).
pub fn set_property(path: &[u8], value: &[u8]) {
    // SAFETY: both slices are valid for the call.
    let _ = unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) };
}

/// A value of the VM-wide shared data (shared by every worker's VM of this plugin's `vm_id`)
/// and its compare-and-swap token; an absent key is `(empty, 0)`. `None` on other errors.
pub fn shared_data(key: &str) -> Option<(Vec<u8>, u32)> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: as in `HeaderMap::read`.
    unsafe {
        match proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) {
            Status::OK => Some((take_buffer(data, size), cas)),
            Status::NOT_FOUND => Some((Vec::new(), 0)),
            _ => None,
        }
    }
}

/// Stores a shared-data value if the key still has the token `cas` (0: unconditionally);
/// `Err(Status::CAS_MISMATCH)` when another VM wrote it in between.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    // SAFETY: both slices are valid for the call.
    match unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    } {
        Status::OK => Ok(()),
        s => Err(s),
    }
}

/// Serializes header pairs in the proxy-wasm map encoding (the inverse of [`HeaderMap`]).
fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        for part in [k, v] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
    }
    out
}

/// Sends an HTTP request through the Envoy cluster `upstream`; the answer (or its failure)
/// arrives in `proxy_on_http_call_response` with the returned token.
pub fn http_call(
    upstream: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let headers = serialize_map(headers);
    let trailers = serialize_map(&[]);
    let mut token = 0u32;
    // SAFETY: every slice is valid for the call; the out-pointer too.
    match unsafe {
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
    } {
        Status::OK => Ok(token),
        s => Err(s),
    }
}

/// Writes to Envoy's log (the `wasm` logger); failures are ignored.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the slice is valid for the call.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// The plugin configuration (in `on_configure`), empty if the host has none.
pub fn plugin_configuration(size: usize) -> Vec<u8> {
    let mut data: *mut u8 = null_mut();
    let mut len: usize = 0;
    // SAFETY: as in `HeaderMap::read`.
    unsafe {
        match proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, &mut data, &mut len) {
            Status::OK => take_buffer(data, len),
            _ => Vec::new(),
        }
    }
}

/// Sets the calling root context's timer.
pub fn set_tick_period_ms(period: u32) {
    // SAFETY: a plain value.
    let _ = unsafe { proxy_set_tick_period_milliseconds(period) };
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

/// The VM's environment variables, `(name, value)`; empty if the host has none.
pub fn environment() -> Vec<(String, String)> {
    let (mut count, mut size) = (0usize, 0usize);
    // SAFETY: two valid out-pointers.
    if unsafe { environ_sizes_get(&mut count, &mut size) } != 0 || count == 0 {
        return Vec::new();
    }
    let mut pointers: Vec<*mut u8> = vec![null_mut(); count];
    let mut buf = vec![0u8; size];
    // SAFETY: `pointers` has room for `count` pointers and `buf` for `size` bytes, the sizes
    // the host just gave.
    if unsafe { environ_get(pointers.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return Vec::new();
    }
    // The strings lie in `buf` one after another, each ended by a NUL: read them from there
    // rather than through the pointers.
    buf.split(|&b| b == 0)
        .take(count)
        .filter_map(|entry| {
            let entry = std::str::from_utf8(entry).ok()?;
            let (name, value) = entry.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Fills `buf` with the host's entropy; `false` if the host refused.
pub fn random_fill(buf: &mut [u8]) -> bool {
    // SAFETY: the slice is valid and writable for the call.
    unsafe { random_get(buf.as_mut_ptr(), buf.len()) == 0 }
}
