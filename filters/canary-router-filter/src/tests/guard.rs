//! The guards' windows in shared data: every VM's outcomes reach the window once, including
//! when two VMs find the window missing and create it at the same time.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use canary_router::guard::{Guard, Window};
use canary_router::Config;

use super::fake::{Fake, SharedCall, Store};
use crate::guard::TOKEN_KEY;
use crate::root::Root;

/// The typical policy with a guard on the canary (outcomes of `x-beta: true` requests).
fn guarded() -> String {
    super::TYPICAL.replace(
        "\"rules\"",
        "\"guard\": {\"variant\": \"canary\", \"window_seconds\": 60, \"min_requests\": 1000, \
         \"max_failure_rate\": 0.5}, \"rules\"",
    )
}

/// The shared-data key of the guard's window and the guard.
fn window_of(config: &str) -> (String, Config) {
    let config = Config::from_json(config.as_bytes()).unwrap();
    let key = format!("canary_router/guard/{:016x}/reviews", config.fingerprint());
    (key, config)
}

fn guard(config: &Config) -> &Guard {
    config.policy(0).and_then(|p| p.guard()).unwrap()
}

/// The canary's requests counted in the shared window at the host's time.
fn counted(host: &Fake) -> u32 {
    let (key, config) = window_of(&guarded());
    let Some(bytes) = host.store.get(&key) else {
        return 0;
    };
    let now_ms = i64::try_from(host.now_ns.get() / 1_000_000).unwrap();
    Window::decode(&bytes, guard(&config))
        .totals(guard(&config), now_ms)
        .variant
        .total
}

fn canary_requests(host: &Fake, root: &Root<Fake>, n: usize, status: u16) {
    for _ in 0..n {
        host.request(root, &[("x-beta", "true")], status);
    }
}

#[test]
fn outcomes_reach_the_shared_window_once() {
    let host = Fake::new(&guarded());
    let mut root = host.root().unwrap();
    assert_eq!(host.tick_ms.get(), 250);
    // Made at configure, before any outcome; no window yet (nothing to store).
    assert_eq!(host.store.get(TOKEN_KEY), Some(Vec::new()));
    assert_eq!(counted(&host), 0);
    canary_requests(&host, &root, 4, 200);
    // Stable's requests are not the guard's business.
    host.request(&root, &[("x-user-id", "alice")], 500);
    root.on_tick();
    assert_eq!(counted(&host), 4);
    root.on_tick();
    assert_eq!(counted(&host), 4, "merged once");
    canary_requests(&host, &root, 2, 503);
    host.advance_ms(250);
    root.on_tick();
    assert_eq!(counted(&host), 6);
}

/// Two VMs of one proxy; B's tick runs right after A's `n`-th shared-data call of A's tick.
/// Returns the canary requests counted (A made 5, B 3).
fn two_vms_at_once(n: usize) -> u32 {
    let store = Rc::new(Store::default());
    let a = Fake::vm_of(store.clone(), &guarded());
    let b = Fake::vm_of(store.clone(), &guarded());
    let mut root_a = a.root().unwrap();
    let root_b = Rc::new(RefCell::new(b.root().unwrap()));
    canary_requests(&a, &root_a, 5, 200);
    canary_requests(&b, &root_b.borrow(), 3, 500);

    let calls = Rc::new(Cell::new(0));
    let fired = Rc::new(Cell::new(false));
    *a.after_shared.borrow_mut() = Some(Box::new({
        let (calls, fired, root_b) = (calls.clone(), fired.clone(), root_b.clone());
        move |_: &SharedCall| {
            calls.set(calls.get() + 1);
            if calls.get() == n {
                fired.set(true);
                root_b.borrow_mut().on_tick();
            }
        }
    }));
    root_a.on_tick();
    assert!(fired.get(), "A made only {} shared-data calls", calls.get());
    *a.after_shared.borrow_mut() = None;
    // A VM that waited on the other's claim merges at its next tick.
    for _ in 0..2 {
        a.advance_ms(250);
        b.advance_ms(250);
        root_a.on_tick();
        root_b.borrow_mut().on_tick();
    }
    counted(&a)
}

#[test]
fn two_vms_creating_the_window_at_once_lose_no_outcome() {
    // A's tick with the window missing: read the window, read the token, read the window,
    // claim, create (5 calls). B's whole tick runs after each of them in turn.
    for n in 1..=5 {
        assert_eq!(two_vms_at_once(n), 8, "B ticked after A's call {n}");
    }
}

#[test]
fn a_claim_never_fulfilled_is_taken_over_a_tick_later() {
    let host = Fake::new(&guarded());
    let mut root = host.root().unwrap();
    let (key, _) = window_of(&guarded());
    // Another VM claimed the window and failed before creating it.
    host.store.put(TOKEN_KEY, key.as_bytes());
    canary_requests(&host, &root, 3, 200);
    root.on_tick();
    assert_eq!(counted(&host), 0, "waits for the claimant");
    host.advance_ms(250);
    root.on_tick();
    assert_eq!(counted(&host), 3);
}

/// The typical policy with a guard that trips at 20 failed canary requests and notifies a
/// receiver (one retry).
fn tripping() -> String {
    super::TYPICAL.replace(
        "\"rules\"",
        "\"guard\": {\"variant\": \"canary\", \"min_requests\": 20, \"max_failure_rate\": 0.05, \
         \"notify\": {\"cluster\": \"hooks\", \"path\": \"/x\", \"retries\": 1}}, \"rules\"",
    )
}

#[test]
fn a_trip_is_reported_by_the_vm_that_made_it_and_reaches_every_vm() {
    use canary_router::stats::{
        tagged_name, GUARD_NOTIFY_FAILURES_TOTAL, GUARD_TRIPPED, GUARD_TRIPS_TOTAL, POLICY, VARIANT,
    };
    let store = Rc::new(Store::default());
    let a = Fake::vm_of(store.clone(), &tripping());
    let b = Fake::vm_of(store, &tripping());
    let (mut root_a, mut root_b) = (a.root().unwrap(), b.root().unwrap());
    let labels = [(POLICY, "reviews"), (VARIANT, "canary")];
    let trips = tagged_name(GUARD_TRIPS_TOTAL, &labels);
    let tripped = tagged_name(GUARD_TRIPPED, &labels);
    assert_eq!((a.metric(&trips), a.metric(&tripped)), (Some(0), Some(0)));

    canary_requests(&a, &root_a, 20, 503);
    root_a.on_tick();
    assert_eq!((a.metric(&trips), a.metric(&tripped)), (Some(1), Some(1)));
    assert!(a.logged(crate::host::LogLevel::Warn, "reviews"));
    // The notification went out at once.
    let sent = |host: &Fake| host.http_calls.borrow().len();
    assert_eq!(sent(&a), 1);
    assert_eq!(a.http_calls.borrow()[0].cluster, "hooks");
    // The canary's users now get the baseline.
    fn variant(host: &Fake, root: &Root<Fake>) -> String {
        let headers = host.request(root, &[("x-user-id", "dave")], 200);
        super::fake::values(&headers, "x-canary-variant").join(",")
    }
    assert_eq!(variant(&a, &root_a), "stable");

    // B learns of the trip at its next tick, and does not report it again.
    assert_eq!(variant(&b, &root_b), "canary");
    root_b.on_tick();
    assert_eq!(variant(&b, &root_b), "stable");
    assert_eq!((b.metric(&trips), b.metric(&tripped)), (Some(0), Some(1)));
    assert_eq!(sent(&b), 0);

    // The receiver fails: one retry after a second, then the failure is counted.
    let failures = tagged_name(GUARD_NOTIFY_FAILURES_TOTAL, &labels);
    *a.call_response_headers.borrow_mut() = super::fake::owned(&[(":status", "500")]);
    root_a.on_http_call_response(1, 1);
    root_a.on_tick();
    assert_eq!(sent(&a), 1, "not before the backoff");
    a.advance_ms(1000);
    root_a.on_tick();
    assert_eq!(sent(&a), 2);
    root_a.on_http_call_response(2, 0);
    assert_eq!(a.metric(&failures), Some(1));
    assert!(a.logged(crate::host::LogLevel::Error, "after 2 attempts"));
}
