//! What the filter asks of its host, as small traits its logic is written against: the real
//! host (`imports.rs`, the proxy-wasm ABI imports, wasm32 only) and the fake host of the unit
//! tests (`tests/fake.rs`) implement them.
//!
//! The real host is a zero-sized type and every user is generic over [`Host`], so the compiled
//! module makes exactly the host calls it made before the traits existed: no dispatch, no state.
//! An unexpected status is an error the caller turns into a safe default, never a panic (the
//! SDK's wrappers `panic!`), and a header map is read once into one buffer and viewed in place.

#[cfg(target_arch = "wasm32")]
pub mod imports;
pub mod map;

pub use map::HeaderMap;

/// A host call's result (`WasmResult` of the ABI); only `Ok` (0) is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Status(pub u32);

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

/// A header map as a host gives it: the proxy-wasm host copies it into one buffer
/// ([`HeaderMap`]); the native module reads Envoy's own map in place.
pub trait HeaderPairs {
    /// Where one pair lies, for repeated lookups ([`HeaderPairs::index`]).
    type At;
    /// The `(name, value)` pairs, in order.
    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])>;
    /// Where every pair lies: a decision looks up several headers (rules, sticky keys, host,
    /// path), and each lookup then scans this table.
    fn index(&self) -> Vec<Self::At>;
    /// The length of the name at `at`: checked first, before its bytes.
    fn name_len(&self, at: &Self::At) -> usize;
    fn name(&self, at: &Self::At) -> &[u8];
    fn value(&self, at: &Self::At) -> &[u8];
}

/// The header maps of the current stream (or of an HTTP call's answer).
pub trait Headers {
    type Map: HeaderPairs;
    /// All pairs of `map`, in one call; empty if the host has none. Valid until the host
    /// callback in which it was read returns.
    fn header_map(&self, map: MapType) -> Self::Map;
    fn replace_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status>;
    fn add_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status>;
}

/// Properties: `path` is the segments joined by NUL (`b"xds\0route_name"`).
pub trait Properties {
    /// A property as raw bytes; `None` if absent.
    fn property(&self, path: &[u8]) -> Option<Vec<u8>>;
    /// Sets a property (Envoy: filter state `wasm.<path>`, readable by access logs); failures
    /// are ignored.
    fn set_property(&self, path: &[u8], value: &[u8]);

    /// A property as a UTF-8 string (`None` if absent or not UTF-8).
    fn property_string(&self, path: &[u8]) -> Option<String> {
        self.property(path).and_then(|b| String::from_utf8(b).ok())
    }
}

pub trait Clock {
    /// The host's clock in nanoseconds since the epoch (0 if unavailable).
    fn now_nanos(&self) -> u64;

    /// The host clock as unix milliseconds (ramps are scheduled by wall-clock time, guards
    /// hold for wall-clock seconds).
    fn unix_ms(&self) -> i64 {
        i64::try_from(self.now_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// Envoy's stats. Failures are ignored: a stat must never fail a request.
pub trait Stats {
    /// Defines (or finds) a metric; `None` if the host refuses.
    fn define_metric(&self, kind: MetricType, name: &str) -> Option<u32>;
    /// Adds to a counter.
    fn increment_metric(&self, id: u32, by: i64);
    /// Sets a gauge or records a histogram value.
    fn record_metric(&self, id: u32, value: u64);
    /// This VM's linear memory in bytes, for `canary_router_vm_memory_bytes` (`None` off wasm).
    fn vm_memory_bytes(&self) -> Option<u64>;
}

/// The data shared by every VM of the plugin's `vm_id` (one per worker and the main thread's),
/// with compare-and-swap tokens.
pub trait SharedData {
    /// The value and its token; `Ok(None)` if the key does not exist.
    fn get_shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status>;
    /// Stores a value if the key still has the token `cas` (0: unconditionally);
    /// `Err(Status::CAS_MISMATCH)` when another VM wrote it in between. A key that does not
    /// exist is created whatever `cas` is (Envoy's `SharedData::set`): creation is never
    /// conditional, which is why `guard.rs` claims a key before creating it.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status>;
}

pub trait HttpCalls {
    /// Sends an HTTP request through the Envoy cluster `upstream`; the answer (or its failure)
    /// arrives in `proxy_on_http_call_response` with the returned token.
    fn http_call(
        &self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, Status>;
}

pub trait Log {
    /// Writes to Envoy's log (the `wasm` logger); failures are ignored.
    fn log(&self, level: LogLevel, message: &str);
}

pub trait Entropy {
    /// Fills `buf` with the host's entropy; `false` if the host refused.
    fn random_fill(&self, buf: &mut [u8]) -> bool;
}

/// What the root context gets from its host besides the above.
pub trait Plugin {
    /// The plugin configuration (in `on_configure`), empty if the host has none.
    fn plugin_configuration(&self, size: usize) -> Vec<u8>;
    /// The VM's environment variables, `(name, value)`; empty if the host has none.
    fn environment(&self) -> Vec<(String, String)>;
    /// Sets the calling root context's timer.
    fn set_tick_period_ms(&self, period: u32);
}

/// Everything the filter asks of its host. Cloned into every stream context (the real host
/// is zero-sized).
pub trait Host:
    Headers + Properties + Clock + Stats + SharedData + HttpCalls + Log + Entropy + Plugin + Clone
{
}

impl<T> Host for T where
    T: Headers
        + Properties
        + Clock
        + Stats
        + SharedData
        + HttpCalls
        + Log
        + Entropy
        + Plugin
        + Clone
{
}
