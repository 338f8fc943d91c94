//! The guard's shared state across workers. Envoy's workers are threads of one process and this
//! module is loaded once into it, so the state shared by every worker is a process-wide map
//! behind a mutex, with the compare-and-swap tokens of proxy-wasm's shared data (Envoy's
//! `SharedData`): the guard's code (`canary-router-filter/src/guard.rs`) runs unchanged over it,
//! claims and all. Like Wasm shared data it lives as long as the process: a configuration
//! reload keeps a tripped guard tripped.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use canary_router_filter::host::Status;

struct Entry {
    value: Vec<u8>,
    cas: u32,
}

struct Shared {
    entries: HashMap<String, Entry>,
    /// The last token handed out: every write gets a new one, as in Envoy.
    last_cas: u32,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

fn shared() -> MutexGuard<'static, Option<Shared>> {
    // A panic while holding the lock cannot leave the map half-written (every write is one
    // insert), so a poisoned lock is still usable.
    SHARED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The value of `key` and its token; `None` if the key does not exist.
pub fn get(key: &str) -> Option<(Vec<u8>, u32)> {
    let guard = shared();
    let e = guard.as_ref()?.entries.get(key)?;
    Some((e.value.clone(), e.cas))
}

/// Stores `value` if `key` still has the token `cas` (0: unconditionally). A key that does not
/// exist is created whatever `cas` is, as Envoy's `SharedData::set` does.
pub fn set(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    let mut guard = shared();
    let shared = guard.get_or_insert_with(|| Shared {
        entries: HashMap::new(),
        last_cas: 0,
    });
    let next = shared.last_cas.wrapping_add(1).max(1);
    match shared.entries.get_mut(key) {
        Some(e) if cas != 0 && e.cas != cas => Err(Status::CAS_MISMATCH),
        Some(e) => {
            e.value = value.to_vec();
            e.cas = next;
            shared.last_cas = next;
            Ok(())
        }
        None => {
            shared.entries.insert(
                key.to_string(),
                Entry {
                    value: value.to_vec(),
                    cas: next,
                },
            );
            shared.last_cas = next;
            Ok(())
        }
    }
}

#[cfg(test)]
// Tests may fail loudly.
#[allow(clippy::unwrap_used, clippy::type_complexity)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_as_envoy_shared_data() {
        let key = "test/compare_and_swap";
        assert_eq!(get(key), None);
        // Creation is unconditional, whatever the token.
        assert_eq!(set(key, b"a", 12345), Ok(()));
        let (value, cas) = get(key).unwrap();
        assert_eq!(value, b"a");
        // The right token writes and changes the token; a stale one is refused.
        assert_eq!(set(key, b"b", cas), Ok(()));
        assert_eq!(set(key, b"c", cas), Err(Status::CAS_MISMATCH));
        let (value, cas2) = get(key).unwrap();
        assert_eq!(value, b"b");
        assert_ne!(cas, cas2);
        // Token 0 writes unconditionally.
        assert_eq!(set(key, b"d", 0), Ok(()));
        assert_eq!(get(key).unwrap().0, b"d");
    }

    #[test]
    fn two_threads_counting_through_cas_lose_nothing() {
        let key = "test/two_threads";
        set(key, &0u32.to_le_bytes(), 0).unwrap();
        let add = || {
            for _ in 0..1000 {
                loop {
                    let (v, cas) = get(key).unwrap();
                    let n = u32::from_le_bytes(v.try_into().unwrap()) + 1;
                    if set(key, &n.to_le_bytes(), cas).is_ok() {
                        break;
                    }
                }
            }
        };
        std::thread::scope(|s| {
            s.spawn(add);
            s.spawn(add);
        });
        let (v, _) = get(key).unwrap();
        assert_eq!(u32::from_le_bytes(v.try_into().unwrap()), 2000);
    }
}
