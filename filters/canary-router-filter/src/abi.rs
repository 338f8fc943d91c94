//! Hand-written, not the proxy-wasm SDK: the SDK exports every callback, so Envoy calls the response body callback twice more per request: +4.9 K instructions/request (319.7 K → 324.6 K) and +37.6 KB of .wasm.
//!
//! The proxy-wasm ABI 0.2.1 entry points this filter needs, and the contexts behind them
//! (wasm32 only). Envoy (through proxy-wasm-cpp-host) calls an export only if the module has
//! it; an HTTP callback the module lacks is a `Continue`. So the module exports just what it
//! uses: context creation and deletion, configure, tick, request headers, response headers and
//! trailers, the answer to an HTTP call (guard notifications), and the allocator the host
//! hands buffers through. Every exported callback is paid on every request (about 1.5 K
//! instructions of host glue each), so there is no `proxy_on_log` and no `proxy_on_done`: the
//! response is counted and judged when the stream is deleted (`Stream::finish`, right after
//! Envoy's access log), and a missing `proxy_on_done` means "done" to the host.
//!
//! Contexts: root contexts (one per plugin in this VM, parent id 0), created on
//! `proxy_on_context_create`, and HTTP stream contexts, created lazily: a stream's state is
//! made on its request headers (under the configuration its root has in force then) and kept
//! in the table only if something is left for the response (`Stream::needs_response`: a cookie
//! or the variant to set, the response to read for the metrics or a guard). A stream no policy
//! applies to, or one decided under `"response_metrics": false` with nothing to set on the
//! response, costs no allocation and no table entry, and its response callbacks find nothing.
//! Creating a stream context records nothing while the VM has one root (a stream's parent is
//! then the one root created before it); only with several roots is the parent noted until the
//! request headers. Both are dropped on `proxy_on_delete`. A callback for an unknown context,
//! or one arriving while the same table is in use (the host never does this), does nothing and
//! answers `Continue`.

use std::cell::RefCell;
use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

use crate::host::imports::Imports;
use crate::root::Root;
use crate::stream::{Action, Stream};

thread_local! {
    /// Root contexts by id: a VM usually serves one plugin.
    static ROOTS: RefCell<Vec<(u32, Root<Imports>)>> = const { RefCell::new(Vec::new()) };
    /// Stream contexts created while the VM had several roots: `(stream, parent)` until the
    /// stream's request headers or its deletion. Empty with one root.
    static PARENTS: RefCell<Vec<(u32, u32)>> = const { RefCell::new(Vec::new()) };
    /// HTTP stream contexts with something left for the response, by id.
    static STREAMS: RefCell<HashMap<u32, Stream<Imports>, IdHash>> =
        const { RefCell::new(HashMap::with_hasher(IdHash::new())) };
}

/// Context ids are small integers the host hands out in sequence: a multiplicative hash spreads
/// them (hashbrown reads the top bits) without a seeded hasher's set-up.
type IdHash = BuildHasherDefault<IdHasher>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The ABI version marker the host looks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// WASI reactor initialisation (the host calls it once after instantiation).
#[no_mangle]
pub extern "C" fn _initialize() {}

/// The host allocates the buffers it returns (headers, properties) in module memory through
/// this; host/imports.rs takes them back with `Vec::from_raw_parts(ptr, size, size)`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    if parent_id == 0 {
        ROOTS.with(|roots| {
            if let Ok(mut roots) = roots.try_borrow_mut() {
                roots.push((context_id, Root::new(Imports)));
            }
        });
        return;
    }
    // Nothing to make yet (see the top of the file); with several roots, remember which.
    let several = ROOTS.with(|roots| roots.try_borrow().is_ok_and(|r| r.len() > 1));
    if several {
        PARENTS.with(|parents| {
            if let Ok(mut parents) = parents.try_borrow_mut() {
                parents.push((context_id, parent_id));
            }
        });
    }
}

/// The state of stream `context_id`, made now under its root's configuration in force.
fn create_stream(context_id: u32) -> Option<Stream<Imports>> {
    let noted = PARENTS.with(|parents| {
        let mut parents = parents.try_borrow_mut().ok()?;
        let i = parents.iter().position(|(id, _)| *id == context_id)?;
        Some(parents.swap_remove(i).1)
    });
    ROOTS.with(|roots| {
        let roots = roots.try_borrow().ok()?;
        let (_, root) = match noted {
            Some(parent) => roots.iter().find(|(id, _)| *id == parent)?,
            // Not noted: the VM had one root when the stream was created, and that root is its
            // parent. The host numbers contexts in one sequence, so a root created since has a
            // higher id than the stream: the parent is the one root with a lower id.
            None => roots
                .iter()
                .filter(|(id, _)| *id < context_id)
                .max_by_key(|(id, _)| *id)?,
        };
        Some(root.create_stream())
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, plugin_configuration_size: usize) -> u32 {
    with_root(context_id, false, |root| {
        root.on_configure(plugin_configuration_size)
    }) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    with_root(context_id, (), Root::on_tick);
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, _eos: u32) -> u32 {
    let Some(mut stream) = create_stream(context_id) else {
        return Action::Continue as u32;
    };
    let action = stream.on_request_headers();
    if stream.needs_response() {
        STREAMS.with(|streams| {
            if let Ok(mut streams) = streams.try_borrow_mut() {
                streams.insert(context_id, stream);
            }
        });
    }
    action as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _headers: usize, _eos: u32) -> u32 {
    with_stream(context_id, Action::Continue, Stream::on_response_headers) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _trailers: usize) -> u32 {
    with_stream(context_id, Action::Continue, Stream::on_response_trailers) as u32
}

/// The answer to a guard notification (`proxy_http_call`), delivered to the root context.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    headers: usize,
    _body_size: usize,
    _trailers: usize,
) {
    with_root(context_id, (), |root| {
        root.on_http_call_response(token, headers)
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    // The stream (or root) is dropped after the table is released: dropping the last reference
    // to a replaced configuration flushes its counters through host calls.
    let stream = STREAMS.with(|s| s.try_borrow_mut().ok()?.remove(&context_id));
    if let Some(mut stream) = stream {
        stream.finish();
        drop(stream);
        return;
    }
    // A stream deleted before its request headers, in a VM with several roots.
    let noted = PARENTS.with(|parents| {
        let mut parents = parents.try_borrow_mut().ok()?;
        let i = parents.iter().position(|(id, _)| *id == context_id)?;
        Some(parents.swap_remove(i))
    });
    if noted.is_some() {
        return;
    }
    let root = ROOTS.with(|roots| {
        let mut roots = roots.try_borrow_mut().ok()?;
        let i = roots.iter().position(|(id, _)| *id == context_id)?;
        Some(roots.swap_remove(i))
    });
    drop(root);
}

fn with_root<T>(context_id: u32, default: T, f: impl FnOnce(&mut Root<Imports>) -> T) -> T {
    ROOTS.with(|roots| {
        let Ok(mut roots) = roots.try_borrow_mut() else {
            return default;
        };
        match roots.iter_mut().find(|(id, _)| *id == context_id) {
            Some((_, root)) => f(root),
            None => default,
        }
    })
}

fn with_stream<T>(context_id: u32, default: T, f: impl FnOnce(&mut Stream<Imports>) -> T) -> T {
    STREAMS.with(|streams| {
        let Ok(mut streams) = streams.try_borrow_mut() else {
            return default;
        };
        match streams.get_mut(&context_id) {
            Some(stream) => f(stream),
            None => default,
        }
    })
}
