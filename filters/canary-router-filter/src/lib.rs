//! Canary Router proxy-wasm filter: reads the request from the host, asks the core for a
//! decision, writes the variant header and (on the response) the minted cookie.
//!
//! The root context (`root.rs`) compiles the plugin configuration (with this proxy's node
//! metadata) once in `on_configure` and keeps it behind an `Rc`; each stream context
//! (`stream.rs`) clones the pointer. Route metadata (when `"route_metadata": true`) is compiled
//! on a route's first request and cached by route name (`routes.rs`).
//!
//! Host calls per request, the typical case: read the request headers (one call), write the
//! variant header, read the clock twice and record the latency histogram, read the response
//! headers (none of these three with `"response_metrics": false` and no guard). Counters are batched in the VM and flushed every second. With a guard, the guarded
//! variant's outcomes are also counted in the VM and merged into shared data on the timer
//! (see `guard.rs`); the per-request path makes no extra host call. Envoy re-selects the route
//! after the header edit by itself: with ABI 0.2.1 (proxy-wasm 0.2.5) it clears the route cache
//! on any header change, so no `clear_route_cache` call is needed.
//!
//! Everything but `abi.rs` and `host/imports.rs` is written against the traits of `host.rs`,
//! so it runs natively in the unit tests (`tests/`) against a fake host.

// Off wasm32 (unit tests, native clippy) the entry points of `abi.rs` that call the contexts
// are not compiled, so what only they use would be reported unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

#[cfg(target_arch = "wasm32")]
mod abi;
mod active;
mod guard;
// Public for the native module (`filters/canary-router-native`), which runs the same root and
// stream logic on a host of its own.
pub mod host;
mod metrics;
mod request;
pub mod root;
mod routes;
pub mod stream;
#[cfg(test)]
mod tests;
