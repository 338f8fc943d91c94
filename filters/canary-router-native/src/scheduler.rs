//! Work on Envoy's main thread for one configuration: the configuration's scheduler (which runs
//! `on_http_filter_config_scheduled` there) woken by a worker (a guard notification to send)
//! or by this module's timer thread every [`PERIOD`] (counters to add to Envoy's). The timer
//! thread only wakes the main thread; it never touches Envoy's state itself.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::abi::{self, ConfigEnvoyPtr, ConfigSchedulerPtr};

/// How often the main thread adds the workers' counts to Envoy's counters (the Wasm filter
/// flushes on the same period).
pub const PERIOD: Duration = Duration::from_secs(1);

/// The scheduler's pointer, 0 once deleted: committing and deleting hold the lock, so no commit
/// reaches a deleted scheduler. And the timer thread, joined when the configuration goes: Envoy
/// may unload the library once no configuration uses it, and no thread of ours may outlive it.
pub struct Scheduler {
    ptr: Arc<Mutex<usize>>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

fn lock(m: &Mutex<usize>) -> MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn commit(ptr: usize) {
    // SAFETY: a live scheduler (the caller holds the lock and checked it is not deleted);
    // committing is thread-safe.
    unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
            ptr as ConfigSchedulerPtr,
            0,
        );
    }
}

impl Scheduler {
    /// On the main thread, in `on_http_filter_config_new`; starts the timer thread.
    pub fn new(config_envoy: ConfigEnvoyPtr) -> Scheduler {
        // SAFETY: the configuration Envoy is creating, on the main thread.
        let ptr = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(config_envoy)
        };
        let shared = Arc::new(Mutex::new(ptr as usize));
        let timer = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("canary-router".into())
            .spawn(move || loop {
                // Unparked by `close` at once; a spurious wake-up only flushes early.
                std::thread::park_timeout(PERIOD);
                let ptr = lock(&timer);
                if *ptr == 0 {
                    return;
                }
                commit(*ptr);
            });
        if started.is_err() {
            crate::host::log(
                canary_router_filter::host::LogLevel::Error,
                "cannot start the timer thread: counters reach Envoy only with guard notifications",
            );
        }
        Scheduler {
            ptr: shared,
            timer: Mutex::new(started.ok()),
        }
    }

    /// Runs `on_http_filter_config_scheduled` on the main thread soon (any thread).
    pub fn wake(&self) {
        let ptr = lock(&self.ptr);
        if *ptr != 0 {
            commit(*ptr);
        }
    }

    /// On the main thread, in `on_http_filter_config_destroy`: no event after this, and the
    /// timer thread has ended.
    pub fn close(&self) {
        {
            let mut ptr = lock(&self.ptr);
            if *ptr != 0 {
                // SAFETY: created in `new`, deleted once (the lock and the 0 guard it).
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                        *ptr as ConfigSchedulerPtr,
                    );
                }
                *ptr = 0;
            }
        }
        let timer = self
            .timer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = timer {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
