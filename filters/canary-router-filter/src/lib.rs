//! Canary Router proxy-wasm filter: reads the request from the host, asks the core for a
//! decision, writes the variant header and (on the response) the minted cookie.
//!
//! The root context compiles the plugin configuration (with this proxy's node metadata) once in
//! `on_configure` and keeps it behind an `Rc`; each request context clones the pointer. Route
//! metadata (when `"route_metadata": true`) is compiled on a route's first request and cached by
//! route name.
//!
//! Host calls per request, the typical case: read the request headers (one call), write the
//! variant header, read the clock twice and record the latency histogram, read the response
//! headers. Counters are batched in the VM and flushed every second. With a guard, the guarded
//! variant's outcomes are also counted in the VM and merged into shared data on the timer
//! (see `guard.rs`); the per-request path makes no extra host call. Envoy re-selects the route
//! after the header edit by itself: with ABI 0.2.1 (proxy-wasm 0.2.5) it clears the route cache
//! on any header change, so no `clear_route_cache` call is needed.

mod abi;
mod guard;
mod host;
mod metrics;

use std::cell::{Cell, OnceCell, RefCell};
use std::io::Write;
use std::rc::Rc;

use canary_router::index::NameMap;
use canary_router::overrides::{NODE_LABELS_KEY, NODE_METADATA_KEY, ROUTE_METADATA_NAMESPACE};
use canary_router::stats::ErrorSource;
use canary_router::{
    pb, Config, Environment, Random, RequestView, RouteOverride, Split, SplitMix64,
};
use host::{HeaderMap, LogLevel, MapType};
use metrics::Metrics;

/// The root context's timer: pending counters are flushed and ramps applied at every tick.
const TICK_MS: u32 = 1000;
/// The timer with guards: how soon outcomes reach the shared window and a trip reaches every
/// worker.
const GUARD_TICK_MS: u32 = 250;
/// How often cached route metadata is dropped and read again (routes may change by RDS) and
/// the VM memory gauge is set.
const ROUTE_CACHE_MS: u32 = 10_000;

/// A configuration in force and what was derived from it.
struct Active {
    config: Config,
    /// Route name → index into `routes`.
    route_names: RefCell<NameMap>,
    routes: RefCell<Vec<RouteEntry>>,
    /// With ramps or guards: each policy's split in force now (ramp applied, a tripped guard's
    /// variant diverted), refreshed at every tick. Empty otherwise (the configured splits hold).
    live: RefCell<Vec<Split>>,
    /// Some policy has a ramp (checked once, not at every tick).
    ramps: bool,
    guards: Option<RefCell<guard::Guards>>,
    metrics: Metrics,
}

/// What is known of one route's `filter_metadata["canary-router"]`.
struct RouteEntry {
    /// The compiled override; `None`: nothing to apply (absent or invalid).
    compiled: Option<Rc<RouteOverride>>,
    /// False once the cache period ended: read the metadata again (routes change by RDS).
    fresh: bool,
    /// The last problem logged, so a bad override is logged once, not at every refresh.
    logged: Option<String>,
}

impl Drop for Active {
    /// A replaced configuration lives until its last request ends; its counts are kept.
    fn drop(&mut self) {
        self.metrics.flush(&self.config);
    }
}

impl Active {
    /// The override of the route the request matched, reading and compiling it on first use.
    fn route_override(&self, req: &HostRequest) -> Option<Rc<RouteOverride>> {
        let name = req.route_name()?;
        let at = self.route_names.borrow().get(name).copied();
        if let Some(i) = at {
            if let Some(entry) = self.routes.borrow().get(i as usize).filter(|e| e.fresh) {
                return entry.compiled.clone();
            }
        }
        let path = format!("route[{name}].filter_metadata.{ROUTE_METADATA_NAMESPACE}");
        let compiled = host::property(b"xds\0route_metadata")
            .map(|bytes| pb::filter_metadata(&bytes, ROUTE_METADATA_NAMESPACE))
            .transpose()
            .map(Option::flatten)
            .map_err(|e| format!("{path}: cannot decode route metadata: {e}"))
            .and_then(|value| match value {
                Some(value) => self
                    .config
                    .route_override(&value, &path)
                    .map_err(|errors| errors.to_string()),
                None => Ok(None),
            });
        let mut routes = self.routes.borrow_mut();
        let i = match at {
            Some(i) => i as usize,
            None => {
                let i = routes.len();
                routes.push(RouteEntry {
                    compiled: None,
                    fresh: true,
                    logged: None,
                });
                self.route_names
                    .borrow_mut()
                    .insert(name.to_string(), u32::try_from(i).unwrap_or(u32::MAX));
                i
            }
        };
        let entry = routes.get_mut(i)?;
        entry.fresh = true;
        entry.compiled = match compiled {
            Ok(o) => o.map(Rc::new),
            Err(e) => {
                if entry.logged.as_ref() != Some(&e) {
                    host::log(
                        LogLevel::Error,
                        &format!("invalid route metadata override, ignored: {e}"),
                    );
                    metrics::config_errors(ErrorSource::Route, 1);
                    entry.logged = Some(e);
                }
                None
            }
        };
        entry.compiled.clone()
    }

    /// Recomputes the splits in force at `now` (unix seconds) if they change with time or
    /// guards; returns them when they differ from the ones in force.
    fn refresh_live(&self, now: i64) -> Option<Vec<Split>> {
        let config = &self.config;
        if !self.ramps && self.guards.is_none() {
            return None;
        }
        let live = match &self.guards {
            Some(g) => config.splits_in_force(now, g.borrow().views()),
            None => config.live_splits(now),
        };
        (*self.live.borrow() != live).then_some(live)
    }

    /// Marks every cached route override stale (read again on the route's next request).
    fn expire_routes(&self) {
        for entry in self.routes.borrow_mut().iter_mut() {
            entry.fresh = false;
        }
    }
}

struct Root {
    active: Option<Rc<Active>>,
    /// The `canary_router_weight` gauges set by the configuration in force.
    weight_gauges: Vec<String>,
    tick_ms: u32,
    /// Milliseconds of ticks since the route cache was last expired.
    since_expiry_ms: u32,
    /// This proxy's node id, for guard messages.
    node: String,
    /// Guard notifications waiting, in flight or to be retried.
    outbox: guard::Outbox,
}

impl Root {
    /// This proxy's node metadata: the `CANARY_ROUTER` overrides and the workload `LABELS`.
    fn environment() -> Environment {
        let node_overrides =
            host::property_string(format!("xds\0node\0metadata\0{NODE_METADATA_KEY}").as_bytes());
        let labels = host::property(format!("xds\0node\0metadata\0{NODE_LABELS_KEY}").as_bytes())
            .map(|bytes| {
                HeaderMap::from_bytes(bytes)
                    .pairs()
                    .filter_map(|(k, v)| {
                        Some((
                            String::from_utf8(k.to_vec()).ok()?,
                            String::from_utf8(v.to_vec()).ok()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Environment {
            node_overrides,
            labels,
            vars: Some(host::environment()),
        }
    }

    fn new() -> Root {
        Root {
            active: None,
            weight_gauges: Vec::new(),
            tick_ms: TICK_MS,
            since_expiry_ms: 0,
            node: String::new(),
            outbox: guard::Outbox::default(),
        }
    }

    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = host::plugin_configuration(plugin_configuration_size);
        metrics::define_config_errors();
        match Config::from_json_in(&bytes, &Root::environment()) {
            Ok(config) => {
                for w in config.warnings() {
                    host::log(
                        LogLevel::Error,
                        &format!("invalid node metadata override, ignored: {w}"),
                    );
                }
                metrics::config_errors(ErrorSource::Node, config.warnings().len());
                let n = config.policies().len();
                host::log(
                    LogLevel::Info,
                    &format!(
                        "configured {n} polic{}, variant header {}",
                        if n == 1 { "y" } else { "ies" },
                        config.variant_header()
                    ),
                );
                let metrics = Metrics::new(&config);
                let guards = guard::Guards::new(&config).map(RefCell::new);
                if guards.is_some() {
                    guard::define_metrics(&config);
                    self.node = host::property_string(b"xds\0node\0id").unwrap_or_default();
                }
                self.tick_ms = if guards.is_some() {
                    GUARD_TICK_MS
                } else {
                    TICK_MS
                };
                let active = Rc::new(Active {
                    ramps: config.has_ramps(),
                    config,
                    route_names: RefCell::new(NameMap::new()),
                    routes: RefCell::new(Vec::new()),
                    live: RefCell::new(Vec::new()),
                    guards,
                    metrics,
                });
                // Learn the guards' state (another VM may have tripped one) and set the
                // weights in force.
                let now_ms = unix_ms();
                self.tick_guards(&active, now_ms);
                let live = active.refresh_live(now_ms / 1000).unwrap_or_default();
                self.weight_gauges =
                    metrics::set_weights(&active.config, &live, &self.weight_gauges);
                *active.live.borrow_mut() = live;
                let fingerprint = active.config.fingerprint();
                if let Some(old) = self.active.replace(active) {
                    if let Some(guards) = &old.guards {
                        if old.config.fingerprint() != fingerprint {
                            guards.borrow().release();
                        }
                    }
                }
                host::set_tick_period_ms(self.tick_ms);
                true
            }
            Err(errors) => {
                for e in errors.errors() {
                    host::log(
                        LogLevel::Error,
                        &format!("invalid plugin configuration: {e}"),
                    );
                }
                if self.active.is_some() {
                    host::log(LogLevel::Error, "keeping the last valid configuration");
                }
                metrics::config_errors(ErrorSource::Plugin, 1);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(active) = self.active.clone() else {
            return;
        };
        active.metrics.flush(&active.config);
        let now_ms = unix_ms();
        // Without a ramp the splits change only when a guard trips or re-arms in this VM's view:
        // the per-tick cost then does not grow with the number of policies.
        let view_changed = self.tick_guards(&active, now_ms);
        self.outbox.send_due(now_ms);
        if active.ramps || view_changed {
            if let Some(live) = active.refresh_live(now_ms / 1000) {
                self.weight_gauges =
                    metrics::set_weights(&active.config, &live, &self.weight_gauges);
                *active.live.borrow_mut() = live;
            }
        }
        self.since_expiry_ms += self.tick_ms;
        if self.since_expiry_ms >= ROUTE_CACHE_MS {
            self.since_expiry_ms = 0;
            active.expire_routes();
            if SERVED.get() {
                metrics::vm_memory();
            }
        }
    }

    /// Merges this VM's guard outcomes into the shared windows and reports the changes it made.
    /// Returns whether this VM's view of some guard changed.
    fn tick_guards(&mut self, active: &Active, now_ms: i64) -> bool {
        let Some(guards) = &active.guards else {
            return false;
        };
        let (changes, view_changed) = guards.borrow_mut().tick(&active.config, now_ms);
        for change in &changes {
            let _ = self
                .outbox
                .report(&active.config, change, &self.node, now_ms);
        }
        view_changed
    }

    /// The answer to a guard notification: anything but a 2xx (or no answer) is a failure,
    /// sent again after a backoff while the receiver's retries last.
    fn on_http_call_response(&mut self, token: u32, headers: usize) {
        let status = if headers == 0 {
            None
        } else {
            HeaderMap::read(MapType::HttpCallResponseHeaders)
                .pairs()
                .find(|(k, _)| *k == b":status")
                .and_then(|(_, v)| metrics::parse_status(v))
        };
        self.outbox.answered(token, status, unix_ms());
    }

    fn create_stream(&self) -> Request {
        Request {
            active: self.active.clone(),
            decided: None,
            set_cookie: None,
            started_ns: 0,
            latency_ms: None,
            status: None,
            grpc_status: None,
        }
    }
}

struct Request {
    active: Option<Rc<Active>>,
    /// `(policy, variant)` of the decision, if a policy applied.
    decided: Option<(usize, usize)>,
    /// `Set-Cookie` value for a minted sticky id, sent on the response.
    set_cookie: Option<String>,
    /// Host clock at the decision, for `canary_router_response_time_ms`.
    started_ns: u64,
    /// Milliseconds from the decision to the response headers, once they passed.
    latency_ms: Option<u64>,
    /// `:status` of the response, once its headers passed.
    status: Option<u16>,
    /// `grpc-status` name from response headers or trailers; `Some(NOT_GRPC)` for a response
    /// that is not gRPC.
    grpc_status: Option<&'static str>,
}

/// The host clock as unix milliseconds (ramps are scheduled by wall-clock time, guards hold
/// for wall-clock seconds).
fn unix_ms() -> i64 {
    i64::try_from(host::now_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `Action::Continue`: every callback lets the request go on.
const CONTINUE: u32 = 0;

impl Request {
    fn on_request_headers(&mut self) -> u32 {
        let Some(active) = &self.active else {
            return CONTINUE;
        };
        let config = &active.config;
        SERVED.set(true);
        let req = HostRequest::read();
        #[cfg(all(feature = "fault-injection", target_arch = "wasm32"))]
        if req.header_values("x-canary-router-fault").next() == Some("trap") {
            core::arch::wasm32::unreachable();
        }
        let route = if config.route_metadata() {
            active.route_override(&req)
        } else {
            None
        };

        let decided = {
            let live = active.live.borrow();
            config.decide_live(&req, route.as_deref(), &live, &mut HostRandom)
        };
        let Some(d) = decided else {
            return CONTINUE;
        };
        let Some(policy) = config.policy(d.policy) else {
            return CONTINUE;
        };
        let variant = policy.variant(d.variant).map_or("", |v| v.name());
        // Envoy selects the route again after this edit (ABI 0.2.1 clears the route cache).
        let _ = host::replace_header(MapType::RequestHeaders, config.variant_header(), variant);

        active.metrics.request(&d);
        if config.filter_state() {
            // For access logs: %FILTER_STATE(wasm.canary_router:PLAIN)% = "policy variant reason".
            // On the stack: names are at most 64 bytes, reasons 13.
            let mut buf = [0u8; 160];
            let mut w = &mut buf[..];
            for (sep, part) in [
                ("", policy.name()),
                (" ", variant),
                (" ", d.reason.as_str()),
            ] {
                let _ = w.write_all(sep.as_bytes());
                let _ = w.write_all(part.as_bytes());
            }
            let len = 160 - w.len();
            host::set_property(b"canary_router", buf.get(..len).unwrap_or_default());
        }

        self.set_cookie = match (d.minted, policy.sticky_cookie()) {
            (Some(id), Some(cookie)) => Some(cookie.set_cookie_value(id.as_str())),
            _ => None,
        };
        self.decided = Some((d.policy, d.variant));
        self.started_ns = host::now_nanos();
        CONTINUE
    }

    fn on_response_headers(&mut self) -> u32 {
        let (Some(active), Some(at)) = (&self.active, self.decided) else {
            return CONTINUE;
        };
        let config = &active.config;
        let elapsed_ms = host::now_nanos().saturating_sub(self.started_ns) / 1_000_000;
        active.metrics.response_time(config, at, elapsed_ms);
        self.latency_ms = Some(elapsed_ms);

        let headers = HeaderMap::read(MapType::ResponseHeaders);
        let mut grpc = false;
        for (k, v) in headers.pairs() {
            match k {
                b":status" => self.status = metrics::parse_status(v),
                b"grpc-status" => self.grpc_status = Some(metrics::grpc_status_name(v)),
                b"content-type" => grpc = v.starts_with(b"application/grpc"),
                _ => {}
            }
        }
        if !grpc && self.grpc_status.is_none() {
            self.grpc_status = Some(metrics::NOT_GRPC);
        }

        if let Some(cookie) = self.set_cookie.take() {
            let _ = host::add_header(MapType::ResponseHeaders, "set-cookie", &cookie);
        }
        if config.expose_variant() {
            if let Some(variant) = config.policy(at.0).and_then(|p| p.variant(at.1)) {
                let _ = host::replace_header(
                    MapType::ResponseHeaders,
                    config.variant_header(),
                    variant.name(),
                );
            }
        }
        CONTINUE
    }

    fn on_response_trailers(&mut self) -> u32 {
        if self.decided.is_some() && self.grpc_status.is_none() {
            let trailers = HeaderMap::read(MapType::ResponseTrailers);
            if let Some((_, v)) = trailers.pairs().find(|(k, _)| *k == b"grpc-status") {
                self.grpc_status = Some(metrics::grpc_status_name(v));
            }
        }
        CONTINUE
    }

    fn on_log(&mut self) {
        let (Some(active), Some(at)) = (&self.active, self.decided) else {
            return;
        };
        let class = metrics::code_class(self.status);
        // gRPC without a status (e.g. reset before the trailers) is a failure of unknown kind;
        // no response headers at all: neither HTTP nor gRPC answered.
        let grpc = match (self.status, self.grpc_status) {
            (None, _) => metrics::NOT_GRPC,
            (Some(_), Some(g)) => g,
            (Some(_), None) => "UNKNOWN",
        };
        active.metrics.response(at, class, grpc);
        if let Some(guards) = &active.guards {
            let grpc = (grpc != metrics::NOT_GRPC).then_some(grpc);
            let failed = canary_router::guard::is_failure(self.status, grpc);
            guards
                .borrow_mut()
                .record(&active.config, at, failed, self.latency_ms);
        }
    }
}

thread_local! {
    /// Whether this VM has served a request (the main thread's VM never does).
    static SERVED: Cell<bool> = const { Cell::new(false) };
    /// Per-VM generator for random buckets, seeded from the host's entropy on first use.
    static RNG: Cell<Option<SplitMix64>> = const { Cell::new(None) };
}

/// Randomness from the host: a seeded per-VM generator for random buckets, the host's
/// entropy (WASI `random_get`) for minted sticky ids.
struct HostRandom;

impl Random for HostRandom {
    fn next_u64(&mut self) -> u64 {
        let mut rng = RNG.take().unwrap_or_else(|| {
            let mut seed = [0u8; 8];
            let _ = host::random_fill(&mut seed);
            SplitMix64::new(u64::from_le_bytes(seed))
        });
        let n = rng.next_u64();
        RNG.set(Some(rng));
        n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        if !host::random_fill(buf) {
            // No host entropy: fall back to the generator rather than fail the request.
            for chunk in buf.chunks_mut(8) {
                for (d, s) in chunk.iter_mut().zip(self.next_u64().to_le_bytes()) {
                    *d = s;
                }
            }
        }
    }
}

/// The request as the core sees it: the header map read once, route name and source
/// address read only if the decision asks for them.
struct HostRequest {
    headers: HeaderMap,
    /// Where each pair lies in `headers`, parsed once: a decision looks up several headers
    /// (rules, sticky keys, host, path), and each lookup then scans this table, not the
    /// serialized map.
    index: Vec<host::PairAt>,
    route_name: OnceCell<Option<String>>,
    source_address: OnceCell<Option<String>>,
}

impl HostRequest {
    fn read() -> HostRequest {
        let headers = HeaderMap::read(MapType::RequestHeaders);
        let index = headers.index();
        HostRequest {
            headers,
            index,
            route_name: OnceCell::new(),
            source_address: OnceCell::new(),
        }
    }
}

impl RequestView for HostRequest {
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        let name = name.as_bytes();
        self.index
            .iter()
            .filter(move |at| at.name_len == name.len() && self.headers.name(at) == name)
            // A value that is not UTF-8 is treated as absent.
            .filter_map(|at| std::str::from_utf8(self.headers.value(at)).ok())
    }

    fn route_name(&self) -> Option<&str> {
        self.route_name
            .get_or_init(|| host::property_string(b"xds\0route_name").filter(|s| !s.is_empty()))
            .as_deref()
    }

    fn source_address(&self) -> Option<&str> {
        self.source_address
            .get_or_init(|| host::property_string(b"source\0address"))
            .as_deref()
    }
}
