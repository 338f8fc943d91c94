//! Guard notifications from the workers, sent by the main thread. The guard's code decides on a
//! worker (`guard.rs`'s outbox, on the worker root's timer) and calls `http_call`; the ABI sends
//! HTTP requests from a configuration only on the main thread, so the call is queued here and
//! the main thread woken (`scheduler.rs`); it sends it, and puts the answer
//! (or its absence) back for the worker, which hands it to its root on its next timer run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::abi::{self, ConfigEnvoyPtr, ModuleBuffer, ModuleHttpHeader};
use crate::scheduler::Scheduler;

/// A request a worker asked for.
pub struct Call {
    worker: u64,
    token: u32,
    upstream: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: u32,
}

/// The answer to a worker's call: `:status`, or `None` if none came.
pub struct Answer {
    pub token: u32,
    pub status: Option<u16>,
}

/// One configuration's calls on their way, and Envoy's pointers for sending them.
pub struct Relay {
    /// Envoy's configuration, used on the main thread only.
    config_envoy: usize,
    queued: Mutex<Vec<Call>>,
    /// Callout id → (worker, token).
    in_flight: Mutex<HashMap<u64, (u64, u32)>>,
    answers: Mutex<Vec<(u64, Answer)>>,
    /// How many answers wait in `answers`: each request checks this, not the lock.
    waiting: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one push, insert or drain: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static NEXT_TOKEN: AtomicU32 = AtomicU32::new(1);
static NEXT_WORKER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static WORKER: u64 = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
}

fn this_worker() -> u64 {
    WORKER.with(|w| *w)
}

impl Relay {
    /// On the main thread, in `on_http_filter_config_new`.
    pub fn new(config_envoy: ConfigEnvoyPtr) -> Relay {
        Relay {
            config_envoy: config_envoy as usize,
            queued: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            answers: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
        }
    }

    /// On a worker: queues a call and wakes the main thread; returns the token its answer will
    /// carry.
    pub fn call(
        &self,
        scheduler: &Scheduler,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Option<u32> {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        lock(&self.queued).push(Call {
            worker: this_worker(),
            token,
            upstream: upstream.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
        });
        scheduler.wake();
        Some(token)
    }

    /// On the main thread (`on_http_filter_config_scheduled`): sends the queued calls.
    pub fn send_queued(&self) {
        let calls = std::mem::take(&mut *lock(&self.queued));
        for c in calls {
            let headers: Vec<ModuleHttpHeader> = c
                .headers
                .iter()
                .map(|(k, v)| ModuleHttpHeader::new(k, v))
                .collect();
            let mut id = 0u64;
            // SAFETY: main thread; the buffers outlive the call (Envoy copies them).
            let result = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
                    self.config_envoy as ConfigEnvoyPtr,
                    &mut id,
                    ModuleBuffer::new(c.upstream.as_bytes()),
                    headers.as_ptr(),
                    headers.len(),
                    ModuleBuffer::new(&c.body),
                    u64::from(c.timeout_ms),
                )
            };
            if result == abi::CALLOUT_SUCCESS {
                lock(&self.in_flight).insert(id, (c.worker, c.token));
            } else {
                // Not sent (no such cluster, …): answered at once, as a failure.
                self.answer(c.worker, c.token, None);
            }
        }
    }

    /// On the main thread (`on_http_filter_config_http_callout_done`).
    pub fn done(&self, callout_id: u64, status: Option<u16>) {
        if let Some((worker, token)) = lock(&self.in_flight).remove(&callout_id) {
            self.answer(worker, token, status);
        }
    }

    fn answer(&self, worker: u64, token: u32, status: Option<u16>) {
        let mut all = lock(&self.answers);
        all.push((worker, Answer { token, status }));
        // Counted under the lock, as `answers` uncounts: the count never runs below the list.
        self.waiting.fetch_add(1, Ordering::Release);
    }

    /// On a worker: the answers to its calls that arrived.
    pub fn answers(&self) -> Vec<Answer> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let me = this_worker();
        let mut all = lock(&self.answers);
        let (mine, others): (Vec<_>, Vec<_>) = all.drain(..).partition(|(w, _)| *w == me);
        *all = others;
        self.waiting.fetch_sub(mine.len(), Ordering::Release);
        mine.into_iter().map(|(_, a)| a).collect()
    }
}
