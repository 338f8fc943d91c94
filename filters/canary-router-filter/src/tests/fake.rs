//! A host in memory, implementing the traits of `host.rs` the way Envoy does what the filter
//! relies on: header maps in the host's serialization, metrics by name, and shared data with
//! compare-and-swap tokens (Envoy's `SharedData`: a missing key reads as `NotFound`; `set`
//! with a token other than the key's fails with `CasMismatch`; `set` on a missing key creates
//! it whatever the token; every write takes the next token of one proxy-wide sequence).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::host::{
    map, Clock, Entropy, HeaderMap, Headers, HttpCalls, Log, LogLevel, MapType, MetricType, Plugin,
    Properties, SharedData, Stats, Status,
};
use crate::root::Root;
use crate::stream::{Action, Stream};

/// Shared data of one proxy: every fake VM made with [`Fake::vm_of`] sees the same store.
#[derive(Default)]
pub struct Store {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    last_cas: Cell<u32>,
}

impl Store {
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.map.borrow().get(key).map(|(v, _)| v.clone())
    }

    /// Writes without a token (as another VM's blind `set` would).
    pub fn put(&self, key: &str, value: &[u8]) {
        let cas = self.next_cas();
        self.map
            .borrow_mut()
            .insert(key.to_string(), (value.to_vec(), cas));
    }

    fn next_cas(&self) -> u32 {
        let cas = self.last_cas.get().wrapping_add(1).max(1);
        self.last_cas.set(cas);
        cas
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub kind: MetricType,
    pub name: String,
    /// Counter: the sum of increments; gauge: the last value.
    pub value: i64,
    /// Histogram: every recorded value.
    pub recorded: Vec<u64>,
}

/// A host call to the shared data, as seen by a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedCall {
    Get(String),
    Set(String),
}

type Hook = Box<dyn FnMut(&SharedCall)>;

/// An HTTP call the filter made (a guard notification).
pub struct HttpCall {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One VM's host.
#[derive(Default)]
pub struct Vm {
    pub store: Rc<Store>,
    pub config: RefCell<Vec<u8>>,
    pub properties: RefCell<HashMap<Vec<u8>, Vec<u8>>>,
    /// `(path, value)` of every `set_property`.
    pub set_properties: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
    /// How many times each property was read.
    pub property_reads: RefCell<HashMap<Vec<u8>, usize>>,
    pub request_headers: RefCell<Vec<(String, String)>>,
    pub response_headers: RefCell<Vec<(String, String)>>,
    pub response_trailers: RefCell<Vec<(String, String)>>,
    /// How many times the response headers were read (a header map returned by the host).
    pub response_reads: Cell<usize>,
    pub call_response_headers: RefCell<Vec<(String, String)>>,
    pub now_ns: Cell<u64>,
    pub metrics: RefCell<Vec<Metric>>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// Every HTTP call.
    pub http_calls: RefCell<Vec<HttpCall>>,
    pub tick_ms: Cell<u32>,
    /// Runs after each shared-data call of this VM (to interleave another VM's).
    pub after_shared: RefCell<Option<Hook>>,
    /// Every shared-data call of this VM.
    pub shared_calls: RefCell<Vec<SharedCall>>,
}

/// The fake host, cloned into every context of one VM.
#[derive(Clone, Default)]
pub struct Fake(pub Rc<Vm>);

impl std::ops::Deref for Fake {
    type Target = Vm;
    fn deref(&self) -> &Vm {
        &self.0
    }
}

impl Fake {
    /// A VM with `config` as its plugin configuration, at unix time 1 700 000 000 s.
    pub fn new(config: &str) -> Fake {
        Fake::vm_of(Rc::new(Store::default()), config)
    }

    /// Another VM of the same proxy: it shares `store`.
    pub fn vm_of(store: Rc<Store>, config: &str) -> Fake {
        let vm = Vm {
            store,
            ..Vm::default()
        };
        vm.now_ns.set(1_700_000_000 * 1_000_000_000);
        *vm.config.borrow_mut() = config.as_bytes().to_vec();
        Fake(Rc::new(vm))
    }

    /// A root context on this host, configured; `None` if the configuration was refused.
    pub fn root(&self) -> Option<Root<Fake>> {
        let mut root = Root::new(self.clone());
        root.on_configure(self.config.borrow().len())
            .then_some(root)
    }

    pub fn advance_ms(&self, ms: u64) {
        self.now_ns.set(self.now_ns.get() + ms * 1_000_000);
    }

    /// One request through a stream of `root`: request headers, response headers (`status`),
    /// log. Returns the request headers as the filter left them.
    pub fn request(
        &self,
        root: &Root<Fake>,
        headers: &[(&str, &str)],
        status: u16,
    ) -> Vec<(String, String)> {
        let mut stream = root.create_stream();
        let headers = self.start(&mut stream, headers);
        self.respond(&mut stream, status);
        stream.finish();
        headers
    }

    /// The request headers of a new request, through the filter.
    pub fn start(
        &self,
        stream: &mut Stream<Fake>,
        headers: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        *self.request_headers.borrow_mut() = owned(headers);
        assert_eq!(stream.on_request_headers(), Action::Continue);
        self.request_headers.borrow().clone()
    }

    /// The response headers, through the filter; returns them as it left them.
    pub fn respond(&self, stream: &mut Stream<Fake>, status: u16) -> Vec<(String, String)> {
        *self.response_headers.borrow_mut() = owned(&[(":status", &status.to_string())]);
        assert_eq!(stream.on_response_headers(), Action::Continue);
        self.response_headers.borrow().clone()
    }

    /// The value of the metric `name` (counter sum or gauge value), `None` if undefined.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.metrics
            .borrow()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    pub fn logged(&self, level: LogLevel, part: &str) -> bool {
        self.logs
            .borrow()
            .iter()
            .any(|(l, m)| *l == level && m.contains(part))
    }

    fn shared_call(&self, call: SharedCall) {
        self.shared_calls.borrow_mut().push(call.clone());
        // Taken out while it runs: the hook drives another VM, never this one.
        let hook = self.after_shared.borrow_mut().take();
        if let Some(mut hook) = hook {
            hook(&call);
            let mut slot = self.after_shared.borrow_mut();
            if slot.is_none() {
                *slot = Some(hook);
            }
        }
    }
}

pub fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The values of header `name` in `headers`.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

impl Vm {
    fn map(&self, map: MapType) -> &RefCell<Vec<(String, String)>> {
        match map {
            MapType::RequestHeaders => &self.request_headers,
            MapType::ResponseHeaders => &self.response_headers,
            MapType::ResponseTrailers => &self.response_trailers,
            MapType::HttpCallResponseHeaders => &self.call_response_headers,
        }
    }
}

impl Headers for Fake {
    type Map = HeaderMap;

    fn header_map(&self, map: MapType) -> HeaderMap {
        if matches!(map, MapType::ResponseHeaders | MapType::ResponseTrailers) {
            self.response_reads.set(self.response_reads.get() + 1);
        }
        HeaderMap::from_bytes(map::serialize(&self.map(map).borrow()))
    }

    fn replace_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        let mut headers = self.map(map).borrow_mut();
        headers.retain(|(k, _)| k != name);
        headers.push((name.to_string(), value.to_string()));
        Ok(())
    }

    fn add_header(&self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        self.map(map)
            .borrow_mut()
            .push((name.to_string(), value.to_string()));
        Ok(())
    }
}

impl Properties for Fake {
    fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        *self
            .property_reads
            .borrow_mut()
            .entry(path.to_vec())
            .or_default() += 1;
        self.properties.borrow().get(path).cloned()
    }

    fn set_property(&self, path: &[u8], value: &[u8]) {
        self.set_properties
            .borrow_mut()
            .push((path.to_vec(), value.to_vec()));
    }
}

impl Clock for Fake {
    fn now_nanos(&self) -> u64 {
        self.now_ns.get()
    }
}

impl Stats for Fake {
    fn define_metric(&self, kind: MetricType, name: &str) -> Option<u32> {
        let mut metrics = self.metrics.borrow_mut();
        let i = match metrics.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                metrics.push(Metric {
                    kind,
                    name: name.to_string(),
                    value: 0,
                    recorded: Vec::new(),
                });
                metrics.len() - 1
            }
        };
        u32::try_from(i).ok()
    }

    fn increment_metric(&self, id: u32, by: i64) {
        if let Some(m) = self.metrics.borrow_mut().get_mut(id as usize) {
            assert_eq!(m.kind, MetricType::Counter, "{} is not a counter", m.name);
            m.value += by;
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        if let Some(m) = self.metrics.borrow_mut().get_mut(id as usize) {
            match m.kind {
                MetricType::Histogram => m.recorded.push(value),
                _ => m.value = i64::try_from(value).unwrap_or(i64::MAX),
            }
        }
    }

    fn vm_memory_bytes(&self) -> Option<u64> {
        Some(65_536)
    }
}

impl SharedData for Fake {
    fn get_shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
        let value = self.store.map.borrow().get(key).cloned();
        self.shared_call(SharedCall::Get(key.to_string()));
        Ok(value)
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        let result = {
            let mut map = self.store.map.borrow_mut();
            match map.get_mut(key) {
                Some((_, current)) if cas != 0 && cas != *current => Err(Status::CAS_MISMATCH),
                Some(entry) => {
                    *entry = (value.to_vec(), self.store.next_cas());
                    Ok(())
                }
                None => {
                    map.insert(key.to_string(), (value.to_vec(), self.store.next_cas()));
                    Ok(())
                }
            }
        };
        self.shared_call(SharedCall::Set(key.to_string()));
        result
    }
}

impl HttpCalls for Fake {
    fn http_call(
        &self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        _timeout_ms: u32,
    ) -> Result<u32, Status> {
        let mut calls = self.http_calls.borrow_mut();
        calls.push(HttpCall {
            cluster: upstream.to_string(),
            headers: owned(headers),
            body: body.to_vec(),
        });
        u32::try_from(calls.len()).map_err(|_| Status(2))
    }
}

impl Log for Fake {
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

impl Entropy for Fake {
    fn random_fill(&self, buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        true
    }
}

impl Plugin for Fake {
    fn plugin_configuration(&self, _size: usize) -> Vec<u8> {
        self.config.borrow().clone()
    }

    fn environment(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn set_tick_period_ms(&self, period: u32) {
        self.tick_ms.set(period);
    }
}
