//! The stream context: one per HTTP request, with the callbacks of its life. On the request
//! headers it asks the core for a decision and writes it; on the response it sets the minted
//! cookie and measures; at its end (`finish`, when the context is deleted) it counts the
//! outcome. `abi.rs` makes it on the request headers and keeps it only while
//! `needs_response` says the response has work.

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;

use canary_router::{Random, RequestView, SplitMix64};

use crate::active::{self, Active};
use crate::host::{Entropy, HeaderPairs, Host, MapType};
use crate::metrics;
use crate::request::HostRequest;

/// What a stream callback tells the host: go on with the request, or hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    /// The ABI's other answer; no callback of this filter holds a request.
    #[allow(dead_code)]
    Pause = 1,
}

pub struct Stream<H: Host> {
    active: Option<Rc<Active<H>>>,
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

impl<H: Host> Stream<H> {
    /// A stream under the configuration `active` (`None`: not configured, the stream does
    /// nothing).
    pub fn new(active: Option<Rc<Active<H>>>) -> Stream<H> {
        Stream {
            active,
            decided: None,
            set_cookie: None,
            started_ns: 0,
            latency_ms: None,
            status: None,
            grpc_status: None,
        }
    }

    pub fn on_request_headers(&mut self) -> Action {
        let Some(active) = &self.active else {
            return Action::Continue;
        };
        let (host, config) = (&active.host, &active.config);
        active::served();
        let req = HostRequest::read(host);
        #[cfg(all(feature = "fault-injection", target_arch = "wasm32"))]
        if req.header_values("x-canary-router-fault").next() == Some("trap") {
            core::arch::wasm32::unreachable();
        }
        // The route name is a host call: read only when route metadata is in use.
        let route = if config.route_metadata() {
            req.route_name()
                .and_then(|name| active.routes.get(host, config, name))
        } else {
            None
        };

        let decided = {
            let live = active.live.borrow();
            config.decide_live(&req, route.as_deref(), &live, &mut HostRandom(host))
        };
        let Some(d) = decided else {
            return Action::Continue;
        };
        let Some(policy) = config.policy(d.policy) else {
            return Action::Continue;
        };
        let variant = policy.variant(d.variant).map_or("", |v| v.name());
        // Envoy selects the route again after this edit (ABI 0.2.1 clears the route cache).
        let _ = host.replace_header(MapType::RequestHeaders, config.variant_header(), variant);

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
            host.set_property(b"canary_router", buf.get(..len).unwrap_or_default());
        }

        self.set_cookie = match (d.minted, policy.sticky_cookie()) {
            (Some(id), Some(cookie)) => Some(cookie.set_cookie_value(id.as_str())),
            _ => None,
        };
        self.decided = Some((d.policy, d.variant));
        if reads_responses(active) {
            self.started_ns = host.now_nanos();
        }
        Action::Continue
    }

    pub fn on_response_headers(&mut self) -> Action {
        // A second pointer to the configuration (no copy): `read_response` fills in `self`.
        let (Some(active), Some(at)) = (self.active.clone(), self.decided) else {
            return Action::Continue;
        };
        let (host, config) = (&active.host, &active.config);
        if reads_responses(&active) {
            self.read_response(&active, at);
        }

        if let Some(cookie) = self.set_cookie.take() {
            let _ = host.add_header(MapType::ResponseHeaders, "set-cookie", &cookie);
        }
        if config.expose_variant() {
            if let Some(variant) = config.policy(at.0).and_then(|p| p.variant(at.1)) {
                let _ = host.replace_header(
                    MapType::ResponseHeaders,
                    config.variant_header(),
                    variant.name(),
                );
            }
        }
        Action::Continue
    }

    /// The response's latency, status and gRPC status, for the metrics and the guard.
    fn read_response(&mut self, active: &Active<H>, at: (usize, usize)) {
        let host = &active.host;
        let elapsed_ms = host.now_nanos().saturating_sub(self.started_ns) / 1_000_000;
        if active.config.response_metrics() {
            active
                .metrics
                .response_time(host, &active.config, at, elapsed_ms);
        }
        self.latency_ms = Some(elapsed_ms);

        let headers = host.header_map(MapType::ResponseHeaders);
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
    }

    pub fn on_response_trailers(&mut self) -> Action {
        // `grpc_status` is set by `read_response`: unset, the response was not read, or it is
        // gRPC without a status in its headers. Read only when the response is: otherwise the
        // trailers are a buffer nothing would look at.
        if let (Some(active), Some(_), None) = (&self.active, self.decided, self.grpc_status) {
            if !reads_responses(active) {
                return Action::Continue;
            }
            let trailers = active.host.header_map(MapType::ResponseTrailers);
            let status = trailers
                .pairs()
                .find(|(k, _)| *k == b"grpc-status")
                .map(|(_, v)| metrics::grpc_status_name(v));
            if status.is_some() {
                self.grpc_status = status;
            }
        }
        Action::Continue
    }

    /// Whether anything is left to do after the request headers: a cookie or the variant to
    /// set on the response, or the response to read for the metrics or a guard. The context
    /// table keeps only such streams (`abi.rs`); any other stream is dropped as soon as its
    /// request headers are handled, and its later callbacks find nothing and do nothing.
    pub fn needs_response(&self) -> bool {
        match (&self.active, self.decided) {
            (Some(active), Some(_)) => {
                self.set_cookie.is_some()
                    || active.config.expose_variant()
                    || reads_responses(active)
            }
            _ => false,
        }
    }

    /// The stream's end (its context is deleted): the response is counted and, with a guard,
    /// judged. No host call: counts wait in the VM for the timer's flush.
    pub fn finish(&mut self) {
        let (Some(active), Some(at)) = (&self.active, self.decided) else {
            return;
        };
        if !reads_responses(active) {
            return;
        }
        let class = metrics::code_class(self.status);
        // gRPC without a status (e.g. reset before the trailers) is a failure of unknown kind;
        // no response headers at all: neither HTTP nor gRPC answered.
        let grpc = match (self.status, self.grpc_status) {
            (None, _) => metrics::NOT_GRPC,
            (Some(_), Some(g)) => g,
            (Some(_), None) => "UNKNOWN",
        };
        if active.config.response_metrics() {
            active.metrics.response(at, class, grpc);
        }
        if let Some(guards) = &active.guards {
            let grpc = (grpc != metrics::NOT_GRPC).then_some(grpc);
            let failed = canary_router::guard::is_failure(self.status, grpc);
            guards
                .borrow_mut()
                .record(&active.config, at, failed, self.latency_ms);
        }
    }
}

impl<H: Host> Stream<H> {
    /// Adds this configuration's pending counts to the host's counters now, rather than on the
    /// root's timer: for a host whose counter calls are plain function calls (the native
    /// module), where batching saves nothing and an idle worker must not hold counts back.
    /// Whether this stream's outcome was recorded for a guard.
    pub fn guarded(&self) -> bool {
        self.decided.is_some() && self.active.as_ref().is_some_and(|a| a.guards.is_some())
    }

    pub fn flush(&self) {
        if let Some(active) = &self.active {
            active.metrics.flush(&active.host, &active.config);
        }
    }
}

/// Whether the response is read: for the response metrics, or for a guard to judge it.
fn reads_responses<H: Host>(active: &Active<H>) -> bool {
    active.config.response_metrics() || active.guards.is_some()
}

thread_local! {
    /// Per-VM generator for random buckets, seeded from the host's entropy on first use.
    static RNG: Cell<Option<SplitMix64>> = const { Cell::new(None) };
}

/// Randomness from the host: a seeded per-VM generator for random buckets, the host's
/// entropy (WASI `random_get`) for minted sticky ids.
struct HostRandom<'h, H>(&'h H);

impl<H: Entropy> Random for HostRandom<'_, H> {
    fn next_u64(&mut self) -> u64 {
        let mut rng = RNG.take().unwrap_or_else(|| {
            let mut seed = [0u8; 8];
            let _ = self.0.random_fill(&mut seed);
            SplitMix64::new(u64::from_le_bytes(seed))
        });
        let n = rng.next_u64();
        RNG.set(Some(rng));
        n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        if !self.0.random_fill(buf) {
            // No host entropy: fall back to the generator rather than fail the request.
            for chunk in buf.chunks_mut(8) {
                for (d, s) in chunk.iter_mut().zip(self.next_u64().to_le_bytes()) {
                    *d = s;
                }
            }
        }
    }
}
