//! Canary Router as a native Envoy dynamic module: the same core (`canary-router`) and the same
//! filter logic (`canary-router-filter`'s root, stream, metrics and guard, written against its
//! host traits) as the proxy-wasm filter, on a host made of Envoy's dynamic-module C ABI instead
//! of proxy-wasm's. No sandbox and no Wasm VM: each host call is a C function call, and a header
//! map is read without copying it into a VM.
//!
//! Loaded by Envoy's `envoy.filters.http.dynamic_modules` filter as `libcanary_router.so`
//! (`dynamic_module_config: {name: canary_router}`, `filter_name: canary-router`, and
//! `filter_config` a `google.protobuf.StringValue` holding the Wasm plugin's JSON
//! configuration).
//!
//! - `abi.rs`: the C ABI bindings (the one place that names Envoy's symbols).
//! - `hooks.rs`: the event hooks Envoy calls.
//! - `worker.rs`: one filter root per worker thread and configuration, as one Wasm VM per
//!   worker; its timer runs on the worker's own requests.
//! - `host.rs`: the host traits over the ABI; `shared.rs`: the guard's state shared by the
//!   workers; `metrics.rs`: the metric families; `notify.rs`: guard notifications, sent by the
//!   main thread; `scheduler.rs`: waking the main thread (a worker's notification, the timer).

// The benchmark's floor build replaces the stream hooks: what only they use is unused there.
#![cfg_attr(feature = "floor", allow(unused))]

mod abi;
#[cfg(feature = "floor")]
mod floor;
mod hooks;
mod host;
mod metrics;
mod notify;
mod scheduler;
mod shared;
mod worker;

use std::sync::atomic::AtomicBool;

use canary_router::{Config, Environment};

use crate::metrics::{Counters, FamilyIds};
use crate::notify::Relay;
use crate::scheduler::Scheduler;

/// The filter name a configuration must use (`filter_name` in Envoy's configuration).
pub const FILTER_NAME: &str = "canary-router";

/// One Envoy filter configuration, shared by the workers: the plugin JSON and Envoy's metric
/// families. Each worker compiles its own `Config` from the JSON, as each Wasm VM does.
pub struct ModuleConfig {
    pub json: Vec<u8>,
    pub families: FamilyIds,
    /// Set when Envoy destroys the configuration: workers then drop their roots of it.
    pub destroyed: AtomicBool,
    /// Guard notifications, sent by the main thread.
    pub relay: Relay,
    /// The workers' counts, added to Envoy's counters by the main thread.
    pub counters: Counters,
    /// Wakes the main thread (for both).
    pub scheduler: Scheduler,
    /// Envoy's configuration, used on the main thread only.
    pub config_envoy: usize,
}

// Shared by Envoy's threads through a raw pointer, where the compiler cannot check it.
const _: fn() = || {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<ModuleConfig>();
};

impl ModuleConfig {
    /// Checks the configuration the way each worker will compile it, and what the native host
    /// cannot do. Errors name the JSON path, as the Wasm filter's do.
    pub fn check(name: &[u8], json: &[u8]) -> Result<Config, Vec<String>> {
        if name != FILTER_NAME.as_bytes() {
            return Err(vec![format!(
                "filter_name: expected \"{FILTER_NAME}\", got \"{}\"",
                String::from_utf8_lossy(name)
            )]);
        }
        let config = Config::from_json_in(json, &environment())
            .map_err(|e| e.errors().iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        if config.route_metadata() {
            return Err(vec![
                "route_metadata: the native module does not read route metadata (Envoy's \
                 dynamic-module ABI does not give it as a whole); use the Wasm filter"
                    .to_string(),
            ]);
        }
        Ok(config)
    }
}

/// What the configuration is compiled with: no node metadata (the ABI does not give it), the
/// process's environment for `${NAME}` references.
pub fn environment() -> Environment {
    Environment {
        node_overrides: None,
        labels: Vec::new(),
        vars: Some(std::env::vars().collect()),
    }
}
