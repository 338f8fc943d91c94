//! The guard: what counts as a failure, the window across workers (encode/decode, slices
//! expiring), trips on failure rate and on p99 with and without enough requests, abort (the
//! default) and re-arm with `max_trips`, the ramp stopped at the first trip, relative limits
//! (failure-rate increase, p99 ratio) against the baseline, the diverted split (sticky users,
//! rules, trusted header, route weights), and the configuration errors. The messages are in
//! `notify.rs`.

use crate::guard::{is_failure, Cause, Event, GuardView, OnTrip, Outcomes, Pending, Window};
use crate::{Config, ConfigErrors, Environment, Reason, SimpleRequest, SplitMix64};

use super::config;

/// Unix seconds (2026-12-01T10:00:00Z); the guard's clock is in milliseconds.
const NOW: i64 = 1_796_119_200;
const DAY: i64 = 86_400;

/// `t` seconds after `NOW`, in unix milliseconds.
fn ms(t: i64) -> i64 {
    (NOW + t) * 1000
}

/// `(now, tripped, ramp stopped at, weights, divert)`.
type RampCase = (i64, bool, Option<i64>, [u16; 2], Option<(usize, usize)>);
/// Requests of one variant in a window: `(requests, failures, latency in ms)`.
type Requests = (u32, u32, u64);
/// The Wasm VM's environment variables; `None` for the command.
type Vars = Option<&'static [(&'static str, &'static str)]>;

/// Variants of [`guarded`]: `beta` 10 %, `canary` 20 % (the guarded one), `stable` 70 %.
const BETA: usize = 0;
const CANARY: usize = 1;
const STABLE: usize = 2;

fn guarded(guard: &str) -> Config {
    config(&format!(
        r#"{{"policies":[{{"name":"p",
        "variants":[{{"name":"beta","weight":10}},{{"name":"canary","weight":20}},{{"name":"stable","weight":70}}],
        "sticky":{{"keys":[{{"header":"x-user-id"}}]}},
        "rules":[{{"variant":"canary","match":[{{"header":"x-beta","exact":"true"}}]}}],
        "guard":{guard}}}]}}"#
    ))
}

/// Re-arms 30 s after a trip (at most 3 trips, the default).
const BASIC: &str = r#"{"variant":"canary","min_requests":10,"max_failure_rate":0.1,"max_p99_ms":500,"window_seconds":10,"on_trip":"rearm","hold_seconds":30}"#;
/// Aborts on its first trip (the default).
const ABORTING: &str = r#"{"variant":"canary","min_requests":10,"max_failure_rate":0.1}"#;

/// Records `n` requests of `variant` (`failed` of them failures) of `latency_ms` each in
/// `pending`, as a worker does.
fn add(c: &Config, pending: &mut Pending, variant: usize, n: u32, failed: u32, latency_ms: u64) {
    let g = c.policy(0).unwrap().guard().unwrap();
    for i in 0..n {
        g.record(pending, variant, i < failed, Some(latency_ms));
    }
}

/// `n` requests of the guarded variant (`failed` of them failures) of `latency_ms` each.
fn outcomes(c: &Config, n: u32, failed: u32, latency_ms: u64) -> Pending {
    let mut p = Pending::default();
    add(c, &mut p, CANARY, n, failed, latency_ms);
    p
}

/// The window as another worker reads it from shared data.
fn shared(w: &Window, c: &Config) -> Window {
    let g = c.policy(0).unwrap().guard().unwrap();
    let read = Window::decode(&w.encode(), g);
    assert_eq!(&read, w, "the window round-trips through shared data");
    read
}

/// The guard's state as the filter derives it from the window for
/// [`Config::splits_in_force`].
fn view(w: &Window, now_ms: i64) -> GuardView {
    GuardView {
        tripped: w.tripped(now_ms),
        ramp_stopped_at: w.first_trip_ms().map(|ms| ms.div_euclid(1000)),
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn failures_are_5xx_failing_grpc_statuses_and_no_response() {
    for (status, grpc, failed) in [
        (None, None, true),
        (Some(200), None, false),
        (Some(404), None, false),
        (Some(429), None, false),
        (Some(499), None, false),
        (Some(500), None, true),
        (Some(503), None, true),
        (Some(599), None, true),
        (Some(200), Some("OK"), false),
        (Some(200), Some("NOT_FOUND"), false),
        (Some(200), Some("ALREADY_EXISTS"), false),
        (Some(200), Some("INVALID_ARGUMENT"), false),
        (Some(200), Some("FAILED_PRECONDITION"), false),
        (Some(200), Some("OUT_OF_RANGE"), false),
        (Some(200), Some("UNAUTHENTICATED"), false),
        (Some(200), Some("PERMISSION_DENIED"), false),
        (Some(200), Some("UNAVAILABLE"), true),
        (Some(200), Some("INTERNAL"), true),
        (Some(200), Some("DEADLINE_EXCEEDED"), true),
        (Some(200), Some("UNKNOWN"), true),
        (Some(200), Some("CANCELLED"), true),
        (Some(200), Some("RESOURCE_EXHAUSTED"), true),
        (Some(200), Some("UNIMPLEMENTED"), true),
        (Some(200), Some("DATA_LOSS"), true),
        (Some(200), Some("ABORTED"), true),
    ] {
        assert_eq!(is_failure(status, grpc), failed, "{status:?} {grpc:?}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn trips_on_failure_rate_with_enough_requests_across_workers() {
    let c = guarded(BASIC);
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!((g.on_trip(), g.max_trips()), (OnTrip::Rearm, 3));
    let mut w = Window::new(g);
    // Worker 1: 5 requests, all failed: below min_requests, nothing happens.
    assert_eq!(w.advance(g, ms(0), &outcomes(&c, 5, 5, 3)), None);
    // Through shared data: the bytes round-trip.
    let mut w = shared(&w, &c);
    assert_eq!(w.totals(g, ms(0)).variant.total, 5);
    // Worker 2, a second later: 4 healthy; 9 requests, still below 10.
    assert_eq!(w.advance(g, ms(1), &outcomes(&c, 4, 0, 3)), None);
    // Worker 1: one more healthy request: 10 requests, 5 failed (50 % > 10 %).
    match w.advance(g, ms(1), &outcomes(&c, 1, 0, 3)) {
        Some(Event::Tripped {
            cause,
            window,
            until_ms,
            trip,
        }) => {
            assert_eq!(cause, Cause::FailureRate);
            assert_eq!((window.variant.total, window.variant.failures), (10, 5));
            assert_eq!(window.variant.failure_ppm(), 500_000);
            // No relative limit: the baseline is not counted.
            assert!(window.baseline.is_empty());
            assert_eq!(until_ms, Some(ms(1 + 30)));
            assert_eq!(trip, 1);
        }
        other => panic!("expected a trip, got {other:?}"),
    }
    assert!(w.tripped(ms(1)));
    assert!(w.tripped(ms(30)));
    assert!(!w.aborted());
    assert_eq!(w.trips(), 1);
    assert_eq!(w.first_trip_ms(), Some(ms(1)));
    // While tripped, late outcomes are dropped and nothing else happens.
    assert_eq!(w.advance(g, ms(5), &outcomes(&c, 50, 50, 3)), None);
    assert_eq!(w.totals(g, ms(5)).variant.total, 10);
    // The hold ends: re-armed, with an empty window.
    let mut w = shared(&w, &c);
    assert_eq!(
        w.advance(g, ms(31), &Pending::default()),
        Some(Event::Rearmed)
    );
    assert!(!w.tripped(ms(31)));
    assert_eq!(w.totals(g, ms(31)), Pending::default());
    // It can trip again; the first trip's time stays.
    assert!(matches!(
        w.advance(g, ms(32), &outcomes(&c, 10, 2, 3)),
        Some(Event::Tripped {
            trip: 2,
            until_ms: Some(_),
            ..
        })
    ));
    assert_eq!(w.trips(), 2);
    assert_eq!(w.first_trip_ms(), Some(ms(1)));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn limits_are_exclusive_and_old_slices_leave_the_window() {
    let c = guarded(BASIC);
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    // Exactly 10 % failed: not above the limit.
    assert_eq!(w.advance(g, ms(0), &outcomes(&c, 100, 10, 3)), None);
    // Ten seconds later the first slice is out of the window: 9 failures of 10 are new.
    assert_eq!(w.totals(g, ms(9)).variant.total, 100);
    assert_eq!(w.totals(g, ms(10)).variant.total, 0);
    let mut w2 = w.clone();
    assert!(matches!(
        w2.advance(g, ms(10), &outcomes(&c, 10, 2, 3)),
        Some(Event::Tripped { window, .. }) if window.variant.total == 10
    ));
    // Within the window the same outcomes dilute: 12 of 110 is 10.9 %, above.
    assert!(matches!(
        w.advance(g, ms(9), &outcomes(&c, 10, 2, 3)),
        Some(Event::Tripped { window, .. }) if window.variant.total == 110
    ));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn trips_on_p99_when_more_than_one_percent_are_slower() {
    let c = guarded(BASIC);
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    // 1 of 100 slower than 500 ms: the p99 is still within the limit.
    let mut o = outcomes(&c, 99, 0, 40);
    g.record(&mut o, CANARY, false, Some(900));
    assert_eq!(w.advance(g, ms(0), &o), None);
    assert!(w.totals(g, ms(0)).variant.p99_ms().unwrap() <= 500);
    // One more slow one: 2 of 101.
    match w.advance(g, ms(0), &outcomes(&c, 1, 0, 900)) {
        Some(Event::Tripped { cause, window, .. }) => {
            assert_eq!(cause, Cause::P99);
            assert_eq!((window.variant.slow, window.variant.timed), (2, 101));
            let p99 = window.variant.p99_ms().unwrap();
            assert!((700..=1_000).contains(&p99), "{p99}");
        }
        other => panic!("expected a trip, got {other:?}"),
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn p99_estimates() {
    let c = guarded(BASIC);
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!(Outcomes::default().p99_ms(), None);
    for (latency, low, high) in [
        (0, 0, 1),
        (3, 2, 3),
        (250, 200, 300),
        (400_000, 60_000, 60_000),
    ] {
        let p99 = outcomes(&c, 50, 0, latency).variant.p99_ms().unwrap();
        assert!((low..=high).contains(&p99), "{latency}: {p99}");
    }
    // No response: a failure without a latency.
    let mut o = Pending::default();
    g.record(&mut o, CANARY, true, None);
    let v = &o.variant;
    assert_eq!((v.total, v.failures, v.timed), (1, 1, 0));
    assert_eq!(v.p99_ms(), None);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn long_windows_use_slices_of_several_seconds() {
    let c = guarded(
        r#"{"variant":"canary","max_failure_rate":0.5,"window_seconds":600,"min_requests":1000}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    // 60 slices of 10 s: a 24-byte header and 60 slices of 8 + 2 × 4 × (4 + 44) bytes (both
    // variants' outcomes), 23 KB in shared data at most, whatever the window.
    assert_eq!(w.encode().len(), 28 + 60 * (8 + 2 * 4 * (4 + 44)));
    for t in 0..60 {
        assert_eq!(w.advance(g, ms(t * 10), &outcomes(&c, 1, 0, 1)), None);
    }
    assert_eq!(w.totals(g, ms(599)).variant.total, 60);
    // The oldest slice (NOW .. NOW + 10 s) leaves at NOW + 600 s (NOW is a multiple of 10).
    assert_eq!(w.totals(g, ms(600)).variant.total, 59);
    // A short window: one slice a second.
    let short = guarded(ABORTING);
    let g = short.policy(0).unwrap().guard().unwrap();
    assert_eq!(Window::new(g).encode().len(), 28 + 10 * 392);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn foreign_or_damaged_shared_data_starts_a_fresh_window() {
    let c = guarded(BASIC);
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    let _ = w.advance(g, ms(0), &outcomes(&c, 3, 0, 1));
    let bytes = w.encode();
    assert_eq!(&bytes[..4], b"2CRG", "\"GRC2\" as a little-endian u32");
    assert_eq!(Window::decode(&bytes, g), w);
    for bad in [
        Vec::new(),
        bytes[..bytes.len() - 1].to_vec(),
        [bytes.as_slice(), &[0]].concat(),
        [b"XXXX".as_slice(), &bytes[4..]].concat(),
        // The previous encoding's magic ("GRC1").
        [0x4752_4331u32.to_le_bytes().as_slice(), &bytes[4..]].concat(),
    ] {
        assert_eq!(Window::decode(&bad, g), Window::new(g));
    }
    // A window of another length (a different guard) is not read either.
    let other = guarded(r#"{"variant":"canary","max_failure_rate":0.1,"window_seconds":5}"#);
    let og = other.policy(0).unwrap().guard().unwrap();
    assert_eq!(Window::decode(&bytes, og), Window::new(og));
}

/// Abort is the default: the first trip holds the variant off until the configuration
/// changes, in every worker that reads the window.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_default_is_to_abort_for_good() {
    let c = guarded(ABORTING);
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!(g.on_trip(), OnTrip::Abort);
    assert_eq!(g.on_trip().as_str(), "abort");
    let mut w = Window::new(g);
    assert!(!w.aborted());
    assert_eq!((w.trips(), w.first_trip_ms()), (0, None));
    match w.advance(g, ms(0), &outcomes(&c, 10, 5, 3)) {
        Some(Event::Tripped {
            cause,
            window,
            until_ms,
            trip,
        }) => {
            assert_eq!(cause, Cause::FailureRate);
            assert_eq!(window.variant.total, 10);
            assert_eq!(until_ms, None, "final");
            assert_eq!(trip, 1);
        }
        other => panic!("expected a trip, got {other:?}"),
    }
    // Another worker reads the window from shared data: it sees the abort too.
    let mut other = shared(&w, &c);
    for w in [&mut w, &mut other] {
        assert!(w.aborted());
        assert_eq!((w.trips(), w.first_trip_ms()), (1, Some(ms(0))));
        for t in [0, 1, 300, 301, DAY, 365 * DAY] {
            assert!(w.tripped(ms(t)), "tripped at +{t} s");
            // Outcomes are dropped and nothing happens, whatever the time.
            assert_eq!(w.advance(g, ms(t), &outcomes(&c, 100, 100, 3)), None);
            assert_eq!(w.advance(g, ms(t), &Pending::default()), None);
        }
        assert_eq!(w.totals(g, ms(0)).variant.total, 10);
        assert_eq!(w.totals(g, ms(DAY)).variant.total, 0);
        assert!(w.aborted());
        assert_eq!(w.trips(), 1);
    }
    assert_eq!(w, other);
    let w = shared(&w, &c);
    assert!(w.aborted() && w.tripped(ms(365 * DAY)));
    // The split stays diverted, and the ramp (none here) would stay where it stood.
    let splits = c.splits_in_force(NOW + DAY, &[view(&w, ms(DAY))]);
    assert_eq!(splits[0].weights_bp(), [1_000, 0, 9_000]);
    assert_eq!(splits[0].divert(), Some((CANARY, STABLE)));
    // A new configuration starts a new window (the filter keys the shared data by the
    // configuration's fingerprint): armed again.
    assert!(!Window::new(g).tripped(ms(DAY)));
}

/// The states hold whatever the clock: armed is not tripped before 1970, a hold that ends
/// after the end of time is not an abort, and an aborted guard never changes again.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_states_hold_at_any_clock() {
    let c = guarded(ABORTING);
    let g = c.policy(0).unwrap().guard().unwrap();
    // Armed, before 1970.
    let w = Window::new(g);
    assert!(!w.tripped(-1), "an armed guard is tripped at -1 ms");
    // Aborted, at the end of time.
    let mut w = Window::new(g);
    assert!(w.advance(g, ms(0), &outcomes(&c, 10, 10, 3)).is_some());
    assert!(w.aborted());
    assert!(
        w.tripped(i64::MAX),
        "an aborted guard is not tripped at i64::MAX"
    );
    assert_eq!(w.advance(g, i64::MAX, &Pending::default()), None);
    assert!(w.aborted());
    // A re-arming trip 1 s before the end of time (hold 5 s).
    let c = guarded(
        r#"{"variant":"canary","min_requests":10,"max_failure_rate":0.1,"on_trip":"rearm","hold_seconds":5}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    let event = w.advance(g, i64::MAX - 1000, &outcomes(&c, 10, 10, 3));
    assert!(matches!(
        event,
        Some(Event::Tripped {
            until_ms: Some(_),
            trip: 1,
            ..
        })
    ));
    assert!(!w.aborted(), "a trip with a hold is an abort");
}

/// `on_trip: rearm`: back after `hold_seconds`, and the `max_trips`-th trip is final.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rearm_up_to_max_trips_then_abort() {
    for (max_trips, want) in [(None, 3), (Some(1), 1), (Some(2), 2), (Some(5), 5)] {
        let max = max_trips.map_or(String::new(), |n| format!(r#","max_trips":{n}"#));
        let c = guarded(&format!(
            r#"{{"variant":"canary","min_requests":10,"max_failure_rate":0.1,"on_trip":"rearm","hold_seconds":5{max}}}"#
        ));
        let g = c.policy(0).unwrap().guard().unwrap();
        assert_eq!(
            (g.on_trip(), g.max_trips(), g.hold_seconds()),
            (OnTrip::Rearm, want, 5)
        );
        let mut w = Window::new(g);
        // A trip every 10 s: trips at t = 0, 10, 20 …, re-armed 5 s after each.
        let mut t = 0;
        for trip in 1..=want {
            let event = w.advance(g, ms(t), &outcomes(&c, 10, 5, 3));
            let last = trip == want;
            match event {
                Some(Event::Tripped {
                    until_ms,
                    trip: n,
                    cause: Cause::FailureRate,
                    ..
                }) => {
                    assert_eq!(n, trip, "{max_trips:?}");
                    assert_eq!(
                        until_ms,
                        (!last).then_some(ms(t + 5)),
                        "{max_trips:?} {trip}"
                    );
                }
                other => panic!("{max_trips:?}: trip {trip}: {other:?}"),
            }
            w = shared(&w, &c);
            assert_eq!(w.trips(), trip);
            assert_eq!(w.aborted(), last, "{max_trips:?} {trip}");
            assert_eq!(w.first_trip_ms(), Some(ms(0)));
            assert!(w.tripped(ms(t + 4)));
            assert_eq!(w.advance(g, ms(t + 4), &Pending::default()), None);
            if !last {
                assert!(!w.tripped(ms(t + 5)));
                assert_eq!(
                    w.advance(g, ms(t + 5), &outcomes(&c, 10, 10, 3)),
                    Some(Event::Rearmed),
                    "{max_trips:?} {trip}"
                );
                // Re-armed with an empty window: the outcomes given with the re-arm are
                // dropped too.
                assert_eq!(w.totals(g, ms(t + 5)), Pending::default());
            }
            t += 10;
        }
        // Never another trip nor re-arm.
        for t in [t, t + 5, t + 300, DAY, 365 * DAY] {
            assert!(w.tripped(ms(t)));
            assert_eq!(w.advance(g, ms(t), &outcomes(&c, 100, 100, 3)), None);
        }
        assert_eq!(w.trips(), want);
    }
}

/// A trip stops the policy's ramp where it stood at the first trip (re-armed or not); the
/// tripped variant is diverted on top of it.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_trip_stops_the_ramp_where_it_stood() {
    let ramped = |guard: &str| {
        config(&format!(
            r#"{{"policies":[{{"name":"p",
            "variants":[{{"name":"canary","weight":0}},{{"name":"stable","weight":100}}],
            "ramp":{{"variant":"canary","start":"2026-12-01T10:00:00Z","steps":[10,50,100],"step_seconds":60}},
            "guard":{guard}}}]}}"#
        ))
    };
    let c = ramped(r#"{"variant":"canary","max_failure_rate":0.05}"#);
    let at = |now: i64, tripped: bool, stopped: Option<i64>| {
        let view = GuardView {
            tripped,
            ramp_stopped_at: stopped,
        };
        let s = &c.splits_in_force(now, &[view])[0];
        (s.weights_bp().to_vec(), s.divert())
    };
    // (now, tripped, ramp stopped at, weights, divert)
    #[rustfmt::skip]
    let cases: Vec<RampCase> = vec![
        // Never tripped: the ramp runs.
        (NOW - 1, false, None, [0, 10_000], None),
        (NOW + 30, false, None, [1_000, 9_000], None),
        (NOW + 60, false, None, [5_000, 5_000], None),
        (NOW + 600, false, None, [10_000, 0], None),
        // Tripped at NOW + 30 (10 %): diverted, and the ramp stays at 10 %.
        (NOW + 30, true, Some(NOW + 30), [0, 10_000], Some((0, 1))),
        (NOW + 600, true, Some(NOW + 30), [0, 10_000], Some((0, 1))),
        // Re-armed: the variant gets the 10 % of the first trip, not the ramp's 100 %.
        (NOW + 600, false, Some(NOW + 30), [1_000, 9_000], None),
        (NOW + DAY, false, Some(NOW + 30), [1_000, 9_000], None),
        (NOW + 600, false, Some(NOW + 60), [5_000, 5_000], None),
        // Stopped before the start: the configured weights.
        (NOW + 600, false, Some(NOW - 10), [0, 10_000], None),
        // A stop in this worker's future (clocks differ): the ramp at now.
        (NOW + 30, false, Some(NOW + 600), [1_000, 9_000], None),
    ];
    for (now, tripped, stopped, weights, divert) in cases {
        assert_eq!(
            at(now, tripped, stopped),
            (weights.to_vec(), divert),
            "now +{} tripped {tripped} stopped {stopped:?}",
            now - NOW
        );
        // The same as the split of the time it stopped at.
        let t = stopped.map_or(now, |t| t.min(now));
        assert_eq!(
            c.splits_in_force(
                now,
                &[GuardView {
                    tripped,
                    ramp_stopped_at: stopped
                }]
            ),
            c.effective_splits(t, &[tripped])
        );
    }
    // A missing view is an armed guard that never tripped.
    assert_eq!(c.splits_in_force(NOW + 60, &[]), c.live_splits(NOW + 60));
    assert_eq!(c.effective_splits(NOW + 60, &[]), c.live_splits(NOW + 60));

    // From the window, as the filter reads it: a re-arming guard trips at NOW + 30.5 s.
    let c = ramped(
        r#"{"variant":"canary","min_requests":10,"max_failure_rate":0.05,"on_trip":"rearm","hold_seconds":5}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    assert_eq!(view(&w, ms(30)), GuardView::default());
    let mut p = Pending::default();
    add(&c, &mut p, 0, 10, 10, 3);
    let trip_ms = ms(30) + 500;
    assert!(matches!(
        w.advance(g, trip_ms, &p),
        Some(Event::Tripped {
            until_ms: Some(_),
            ..
        })
    ));
    let w = shared(&w, &c);
    assert_eq!(w.first_trip_ms(), Some(trip_ms));
    let v = view(&w, ms(31));
    assert_eq!(
        v,
        GuardView {
            tripped: true,
            ramp_stopped_at: Some(NOW + 30)
        }
    );
    assert_eq!(
        c.splits_in_force(NOW + 31, &[v])[0].weights_bp(),
        [0, 10_000]
    );
    // After the hold, the variant is back at the weight of the trip, not the ramp's.
    let v = view(&w, ms(600));
    assert!(!v.tripped);
    assert_eq!(
        c.splits_in_force(NOW + 600, &[v])[0].weights_bp(),
        [1_000, 9_000]
    );
    assert_eq!(c.live_splits(NOW + 600)[0].weights_bp(), [10_000, 0]);
}

/// The baseline's outcomes are counted only when a limit compares with them.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_baseline_is_counted_only_for_relative_limits() {
    for (guard, relative) in [
        (r#"{"variant":"canary","max_failure_rate":0.1}"#, false),
        (r#"{"variant":"canary","max_p99_ms":100}"#, false),
        (
            r#"{"variant":"canary","max_failure_rate_increase":0.05}"#,
            true,
        ),
        (r#"{"variant":"canary","max_p99_ratio":1.5}"#, true),
        (
            r#"{"variant":"canary","max_p99_ms":100,"max_p99_ratio":2}"#,
            true,
        ),
        (
            r#"{"variant":"canary","baseline":"beta","max_p99_ratio":2}"#,
            true,
        ),
    ] {
        let c = guarded(guard);
        let g = c.policy(0).unwrap().guard().unwrap();
        assert_eq!(g.relative(), relative, "{guard}");
        let baseline = g.baseline();
        for v in [BETA, CANARY, STABLE, 3] {
            let counted = v == CANARY || (relative && v == baseline);
            assert_eq!(g.counts(v), counted, "{guard}: variant {v}");
            let mut p = Pending::default();
            g.record(&mut p, v, true, Some(10));
            assert_eq!(p.is_empty(), !counted, "{guard}: variant {v}");
            let o = if v == CANARY { &p.variant } else { &p.baseline };
            if counted {
                assert_eq!((o.total, o.failures, o.timed), (1, 1, 1), "{guard}");
            }
        }
    }
}

/// Relative limits: the failure-rate increase (a significance test) and the p99 ratio, each
/// with `min_requests` of both variants; absolute limits with the variant's alone; any broken
/// limit trips.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn relative_limits_compare_with_the_baseline() {
    const INCREASE: &str = r#""max_failure_rate_increase":0.05"#;
    const RATIO: &str = r#""max_p99_ratio":1.5"#;
    const ALL: &str = r#""max_failure_rate_increase":0.05,"max_p99_ratio":1.5,"max_failure_rate":0.5,"max_p99_ms":1000"#;
    // (limits, variant (requests, failures, latency), baseline (…), cause)
    #[rustfmt::skip]
    let cases: Vec<(&str, Requests, Requests, Option<Cause>)> = vec![
        // Equal rates never trip.
        (INCREASE, (200, 20, 10), (200, 20, 10), None),
        (INCREASE, (2000, 400, 10), (2000, 400, 10), None),
        // 50 % against 5 %.
        (INCREASE, (200, 100, 10), (200, 10, 10), Some(Cause::FailureRateIncrease)),
        // 8 % against 5 %: within the margin.
        (INCREASE, (200, 16, 10), (200, 10, 10), None),
        // Not enough baseline requests (below min_requests 20): no comparison …
        (INCREASE, (200, 100, 10), (19, 0, 10), None),
        (INCREASE, (200, 100, 10), (0, 0, 10), None),
        // … nor enough of the variant's.
        (INCREASE, (19, 19, 10), (200, 0, 10), None),
        // … unless an absolute limit breaks, which needs the variant's only.
        (r#""max_failure_rate_increase":0.05,"max_failure_rate":0.1"#, (200, 100, 10), (19, 0, 10), Some(Cause::FailureRate)),
        // p99 400 ms against 100 ms (4 ×).
        (RATIO, (100, 0, 400), (100, 0, 100), Some(Cause::P99Ratio)),
        // 120 ms against 100 ms (1.2 ×).
        (RATIO, (100, 0, 120), (100, 0, 100), None),
        // The variant faster.
        (RATIO, (100, 0, 100), (100, 0, 400), None),
        (RATIO, (100, 0, 400), (19, 0, 100), None),
        (r#""max_p99_ratio":1.5,"max_p99_ms":300"#, (100, 0, 400), (19, 0, 100), Some(Cause::P99)),
        // Every limit at once: each broken one trips.
        (ALL, (200, 20, 10), (200, 20, 10), None),
        (ALL, (200, 120, 10), (200, 120, 10), Some(Cause::FailureRate)),
        (ALL, (200, 0, 2000), (200, 0, 2000), Some(Cause::P99)),
        (ALL, (200, 60, 10), (200, 10, 10), Some(Cause::FailureRateIncrease)),
        (ALL, (200, 0, 400), (200, 0, 100), Some(Cause::P99Ratio)),
    ];
    for (limits, (vn, vf, vl), (bn, bf, bl), want) in cases {
        let c = guarded(&format!(
            r#"{{"variant":"canary","min_requests":20,{limits}}}"#
        ));
        let g = c.policy(0).unwrap().guard().unwrap();
        let mut p = Pending::default();
        add(&c, &mut p, CANARY, vn, vf, vl);
        add(&c, &mut p, STABLE, bn, bf, bl);
        // Beta is never counted.
        add(&c, &mut p, BETA, 100, 100, 5_000);
        let what = format!("{limits}: {vf}/{vn} at {vl} ms against {bf}/{bn} at {bl} ms");
        assert_eq!(g.judge(&p.variant, &p.baseline), want, "{what}");
        let mut w = Window::new(g);
        match (w.advance(g, ms(0), &p), want) {
            (None, None) => {
                let totals = w.totals(g, ms(0));
                assert_eq!(
                    (totals.variant.total, totals.baseline.total),
                    (vn, bn),
                    "{what}"
                );
            }
            (Some(Event::Tripped { cause, window, .. }), Some(want)) => {
                assert_eq!(cause, want, "{what}");
                assert_eq!(*window, p, "{what}: the window's figures, both variants'");
            }
            (got, _) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
}

/// A baseline that answers within a millisecond: its p99 estimate is 0 ms (the first bucket,
/// 0..=1 ms, interpolated down), and the ratio must not trip on any variant p99 above 0.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_sub_millisecond_baseline_does_not_trip_every_p99_ratio() {
    // (max_p99_ratio, variant latency, baseline latency): the true ratio is below the limit.
    for (ratio, variant_ms, baseline_ms) in [("3", 2, 1), ("5", 3, 1), ("1000", 2, 1)] {
        let c = guarded(&format!(
            r#"{{"variant":"canary","max_p99_ratio":{ratio}}}"#
        ));
        let g = c.policy(0).unwrap().guard().unwrap();
        let mut p = Pending::default();
        add(&c, &mut p, CANARY, 100, 0, variant_ms);
        add(&c, &mut p, STABLE, 100, 0, baseline_ms);
        assert_eq!(
            g.judge(&p.variant, &p.baseline),
            None,
            "ratio {ratio}: p99 {:?} against {:?} ({variant_ms} ms against {baseline_ms} ms)",
            p.variant.p99_ms(),
            p.baseline.p99_ms()
        );
    }
}

/// While tripped, every decision for the canary goes to the baseline (reason `guard`):
/// sticky users, rule matches and the trusted header alike; nobody else moves.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_tripped_guard_diverts_every_decision_for_its_variant() {
    let c = guarded(BASIC);
    let armed = c.effective_splits(NOW, &[false]);
    let tripped = c.effective_splits(NOW, &[true]);
    let view = |tripped| GuardView {
        tripped,
        ramp_stopped_at: Some(NOW),
    };
    assert_eq!(c.splits_in_force(NOW, &[view(false)]), armed);
    assert_eq!(c.splits_in_force(NOW, &[view(true)]), tripped);
    assert_eq!(armed[0].weights_bp(), [1_000, 2_000, 7_000]);
    assert_eq!(tripped[0].weights_bp(), [1_000, 0, 9_000]);
    assert_eq!(tripped[0].divert(), Some((1, 2)));
    let mut rng = SplitMix64::new(3);
    let name = |v: usize| c.policy(0).unwrap().variant(v).unwrap().name().to_string();
    let mut diverted = 0;
    for i in 0..3_000 {
        let req = SimpleRequest::new("h", "/").header("x-user-id", &format!("u{i}"));
        let before = c.decide_live(&req, None, &armed, &mut rng).unwrap();
        let after = c.decide_live(&req, None, &tripped, &mut rng).unwrap();
        if name(before.variant) == "canary" {
            assert_eq!(name(after.variant), "stable");
            assert_eq!(after.reason, Reason::Guard);
            diverted += 1;
        } else {
            assert_eq!(after, before);
        }
    }
    assert!((500..700).contains(&diverted), "{diverted}");
    let beta = SimpleRequest::new("h", "/").header("x-beta", "true");
    let d = c.decide_live(&beta, None, &tripped, &mut rng).unwrap();
    assert_eq!(
        (name(d.variant).as_str(), d.reason),
        ("stable", Reason::Guard)
    );
    // The baseline may be another variant than the last.
    let c = guarded(r#"{"variant":"canary","baseline":"beta","max_failure_rate":0.1}"#);
    let tripped = c.effective_splits(NOW, &[true]);
    assert_eq!(tripped[0].weights_bp(), [3_000, 0, 7_000]);
    let d = c.decide_live(&beta, None, &tripped, &mut rng).unwrap();
    assert_eq!(
        c.policy(0).unwrap().variant(d.variant).unwrap().name(),
        "beta"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_guard_also_beats_route_weights_and_trusted_headers() {
    let c = config(
        r#"{"policies":[{"name":"p","trust_incoming":true,
        "variants":[{"name":"canary","weight":50},{"name":"stable","weight":50}],
        "guard":{"variant":"canary","max_failure_rate":0.01}}]}"#,
    );
    let tripped = c.effective_splits(NOW, &[true]);
    let mut rng = SplitMix64::new(5);
    let forged = SimpleRequest::new("h", "/").header("x-canary-variant", "canary");
    let d = c.decide_live(&forged, None, &tripped, &mut rng).unwrap();
    assert_eq!((d.variant, d.reason), (1, Reason::Guard));
    let route = c
        .route_override(
            &crate::json::parse(br#"{"variants":[{"name":"canary","weight":100}]}"#).unwrap(),
            "route",
        )
        .unwrap()
        .unwrap();
    for i in 0..50 {
        let req = SimpleRequest::new("h", &format!("/{i}"));
        let d = c
            .decide_live(&req, Some(&route), &tripped, &mut rng)
            .unwrap();
        assert_eq!((d.variant, d.reason), (1, Reason::Guard));
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn ramp_and_guard_together() {
    let c = config(
        r#"{"policies":[{"name":"p",
        "variants":[{"name":"canary","weight":0},{"name":"stable","weight":100}],
        "ramp":{"variant":"canary","start":"2026-12-01T10:00:00Z","steps":[10,50],"step_seconds":60},
        "guard":{"variant":"canary","max_failure_rate":0.05}}]}"#,
    );
    assert_eq!(
        c.effective_splits(NOW + 60, &[false])[0].weights_bp(),
        [5_000, 5_000]
    );
    assert_eq!(
        c.effective_splits(NOW + 60, &[true])[0].weights_bp(),
        [0, 10_000]
    );
    assert!(c.has_guards() && c.has_ramps());
}

/// Compiles a document with one guarded policy for a VM with environment variables `vars`
/// (`None`: the command, which checks references only).
fn compile_guard(guard: &str, vars: Vars) -> Result<Config, ConfigErrors> {
    let json = format!(
        r#"{{"policies":[{{"name":"p","variants":[{{"name":"canary","weight":10}},{{"name":"stable","weight":90}}],"guard":{guard}}}]}}"#
    );
    let env = Environment {
        vars: vars.map(|v| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        ..Environment::default()
    };
    Config::from_json_in(json.as_bytes(), &env)
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invalid_guards_name_the_field() {
    const VARS: Vars = Some(&[("TOKEN", "t0k"), ("HOOK", "T0/B0/X")]);
    // (guard, VM environment, path of an error, part of its message)
    #[rustfmt::skip]
    let cases: Vec<(&str, Vars, &str, &str)> = vec![
        (r#"{"variant":"gamma","max_failure_rate":0.1}"#, None, "policies[0].guard.variant", "unknown variant \"gamma\""),
        (r#"{"variant":"canary","baseline":"nope","max_failure_rate":0.1}"#, None, "policies[0].guard.baseline", "unknown variant \"nope\""),
        (r#"{"variant":"stable","max_failure_rate":0.1}"#, None, "policies[0].guard.baseline", "another variant than \"stable\""),
        (r#"{"variant":"canary"}"#, None, "policies[0].guard", "set a limit (\"max_failure_rate\", \"max_p99_ms\", \"max_failure_rate_increase\" or \"max_p99_ratio\")"),
        (r#"{"variant":"canary","on_trip":"rearm"}"#, None, "policies[0].guard", "a guard without a limit never trips"),
        (r#"{"variant":"canary","max_failure_rate":1.5}"#, None, "policies[0].guard.max_failure_rate", "fraction from 0 to 1"),
        (r#"{"variant":"canary","max_failure_rate":-0.1}"#, None, "policies[0].guard.max_failure_rate", "fraction from 0 to 1"),
        (r#"{"variant":"canary","max_failure_rate":5}"#, None, "policies[0].guard.max_failure_rate", "(0.05 is 5 %)"),
        (r#"{"variant":"canary","max_failure_rate":0.0000001}"#, None, "policies[0].guard.max_failure_rate", "more than six decimals"),
        (r#"{"variant":"canary","max_failure_rate":"5%"}"#, None, "policies[0].guard.max_failure_rate", "invalid type: string \"5%\", expected a number"),
        (r#"{"variant":"canary","max_p99_ms":0}"#, None, "policies[0].guard.max_p99_ms", "0 is out of range; expected 1 to 3600000"),
        (r#"{"variant":"canary","max_p99_ms":800,"window_seconds":0}"#, None, "policies[0].guard.window_seconds", "expected 1 to 3600"),
        (r#"{"variant":"canary","max_p99_ms":800,"window_seconds":3601}"#, None, "policies[0].guard.window_seconds", "3601 is out of range"),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"rearm","hold_seconds":0}"#, None, "policies[0].guard.hold_seconds", "expected 1 to 86400"),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"rearm","hold_seconds":86401}"#, None, "policies[0].guard.hold_seconds", "86401 is out of range"),
        (r#"{"variant":"canary","max_p99_ms":800,"min_requests":0}"#, None, "policies[0].guard.min_requests", "0 is out of range"),
        (r#"{"variant":"canary","max_p99_ms":800,"hold":5}"#, None, "policies[0].guard.hold", "unknown field `hold`, expected one of"),
        (r#"{"max_p99_ms":800}"#, None, "policies[0].guard", "missing field `variant`"),
        // on_trip, and the fields that apply to rearm only.
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"stop"}"#, None, "policies[0].guard.on_trip", "\"stop\" is not a choice: \"abort\""),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"Abort"}"#, None, "policies[0].guard.on_trip", "\"Abort\" is not a choice"),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":true}"#, None, "policies[0].guard.on_trip", "expected a string"),
        (r#"{"variant":"canary","max_p99_ms":800,"hold_seconds":30}"#, None, "policies[0].guard.hold_seconds", "applies to \"on_trip\": \"rearm\" only"),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"abort","hold_seconds":30}"#, None, "policies[0].guard.hold_seconds", "applies to \"on_trip\": \"rearm\" only"),
        (r#"{"variant":"canary","max_p99_ms":800,"max_trips":2}"#, None, "policies[0].guard.max_trips", "applies to \"on_trip\": \"rearm\" only"),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"rearm","max_trips":0}"#, None, "policies[0].guard.max_trips", "0 is out of range; expected 1 to 1000"),
        (r#"{"variant":"canary","max_p99_ms":800,"on_trip":"rearm","max_trips":1001}"#, None, "policies[0].guard.max_trips", "1001 is out of range"),
        // Relative limits.
        (r#"{"variant":"canary","max_p99_ratio":0.5}"#, None, "policies[0].guard.max_p99_ratio", "0.5 must be a factor from 1 to 1000"),
        (r#"{"variant":"canary","max_p99_ratio":0}"#, None, "policies[0].guard.max_p99_ratio", "must be a factor from 1 to 1000"),
        (r#"{"variant":"canary","max_p99_ratio":1001}"#, None, "policies[0].guard.max_p99_ratio", "must be a factor from 1 to 1000"),
        (r#"{"variant":"canary","max_p99_ratio":1.2345}"#, None, "policies[0].guard.max_p99_ratio", "1.2345 has more than three decimals"),
        (r#"{"variant":"canary","max_p99_ratio":"1.5"}"#, None, "policies[0].guard.max_p99_ratio", "expected a number"),
        (r#"{"variant":"canary","max_failure_rate_increase":2}"#, None, "policies[0].guard.max_failure_rate_increase", "2 must be a fraction from 0 to 1"),
        (r#"{"variant":"canary","max_failure_rate_increase":-0.05}"#, None, "policies[0].guard.max_failure_rate_increase", "fraction from 0 to 1"),
        (r#"{"variant":"canary","max_failure_rate_increase":0.0000001}"#, None, "policies[0].guard.max_failure_rate_increase", "more than six decimals"),
        // Receivers, in a list: each error names its element.
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"path":"/x"}]}"#, None, "policies[0].guard.notify[0]", "missing field `cluster`"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x"},{"cluster":"","path":"/x"}]}"#, None, "policies[0].guard.notify[1].cluster", "must name an Envoy cluster"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x"},{"cluster":"s","path":"x"}]}"#, None, "policies[0].guard.notify[1].path", "must start with '/'"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","timeout_ms":0}]}"#, None, "policies[0].guard.notify[0].timeout_ms", "expected 1 to 60000"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"bad name":"v"}}]}"#, None, "policies[0].guard.notify[0].headers.bad name", "not a valid header name"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{":path":"v"}}]}"#, None, "policies[0].guard.notify[0].headers.:path", "pseudo-headers"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"a":"v\n"}}]}"#, None, "policies[0].guard.notify[0].headers.a", "control characters"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"a":1}}]}"#, None, "policies[0].guard.notify[0].headers.a", "expected a string"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x"},{"cluster":"s","path":"/x","format":"teams"}]}"#, None, "policies[0].guard.notify[1].format", "\"teams\" is not a format: one of \"slack\", \"msteams\", \"discord\", \"generic\", \"github\""),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","format":"Slack"}]}"#, None, "policies[0].guard.notify[0].format", "\"Slack\" is not a format"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","retries":11}]}"#, None, "policies[0].guard.notify[0].retries", "11 is out of range"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","retries":-1}]}"#, None, "policies[0].guard.notify[0].retries", "expected"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","colour":"red"}]}"#, None, "policies[0].guard.notify[0].colour", "unknown field `colour`"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":"hooks"}"#, None, "policies[0].guard.notify", "invalid type"),
        // ${NAME} references: checked with or without the VM's environment …
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"authorization":"Bearer ${}"}}]}"#, None, "policies[0].guard.notify[0].headers.authorization", "names the environment variable \"\": use letters, digits and '_'"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"authorization":"Bearer ${1X}"}}]}"#, None, "policies[0].guard.notify[0].headers.authorization", "names the environment variable \"1X\""),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"authorization":"Bearer ${A-B}"}}]}"#, VARS, "policies[0].guard.notify[0].headers.authorization", "names the environment variable \"A-B\""),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"authorization":"Bearer ${TOKEN"}}]}"#, None, "policies[0].guard.notify[0].headers.authorization", "has \"${\" without a closing \"}\""),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"authorization":"Bearer ${TOKEN"}}]}"#, VARS, "policies[0].guard.notify[0].headers.authorization", "without a closing"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/services/${}"}]}"#, None, "policies[0].guard.notify[0].path", "names the environment variable \"\""),
        // … and, with it, a variable the VM does not have.
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"authorization":"Bearer ${GITHUB_TOKEN}"}}]}"#, VARS, "policies[0].guard.notify[0].headers.authorization", "names the environment variable GITHUB_TOKEN, which the Wasm VM does not have"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/services/${SLACK}"}]}"#, VARS, "policies[0].guard.notify[0].path", "names the environment variable SLACK, which the Wasm VM does not have"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"x":"${HOOK}"}},{"cluster":"s","path":"/${token}"}]}"#, VARS, "policies[0].guard.notify[1].path", "environment variable token, which"),
        // A variable's value is checked as a header value.
        (r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","headers":{"a":"${BAD}"}}]}"#, Some(&[("BAD", "v\r\nx-injected: 1")]), "policies[0].guard.notify[0].headers.a", "control characters"),
    ];
    for (guard, vars, path, message) in cases {
        let Err(errors) = compile_guard(guard, vars) else {
            panic!("{guard} ({vars:?}) should not compile");
        };
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{guard} ({vars:?}): want {path}: {message}, got {errors:?}"
        );
    }
    // References that are fine without the VM's environment (the command).
    let guard = r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/services/${UNSET}","headers":{"a":"${A_1}${_b}"}}]}"#;
    assert!(compile_guard(guard, None).is_ok(), "{guard}");
}

/// Defaults, a single receiver written as an object, a list of receivers, and `${NAME}`
/// references replaced from the VM's environment (left as written without it).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn guard_defaults_and_receivers() {
    use crate::guard::Format;
    let c = config(
        r#"{"policies":[{"name":"p","variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
        "guard":{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"hooks","path":"/x","authority":"hooks.example.com","headers":{"Authorization":"Bearer t"}}}}]}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!(
        (
            g.baseline(),
            g.window_seconds(),
            g.min_requests(),
            g.on_trip(),
            g.hold_seconds(),
            g.max_trips(),
            g.max_p99_ms(),
            g.relative()
        ),
        (1, 10, 20, OnTrip::Abort, 300, 3, Some(800), false)
    );
    let [n] = g.receivers() else {
        panic!("one receiver: {:?}", g.receivers());
    };
    assert_eq!(
        (
            n.format,
            n.cluster.as_str(),
            n.authority.as_str(),
            n.path.as_str(),
            n.timeout_ms,
            n.retries
        ),
        (Format::Slack, "hooks", "hooks.example.com", "/x", 5000, 3)
    );
    assert_eq!(
        n.headers,
        [("authorization".to_string(), "Bearer t".to_string())]
    );
    // No receiver; an empty list.
    for notify in ["", r#","notify":[]"#] {
        let c = compile_guard(
            &format!(r#"{{"variant":"canary","max_p99_ms":800{notify}}}"#),
            None,
        )
        .unwrap();
        assert!(c.policy(0).unwrap().guard().unwrap().receivers().is_empty());
    }

    // A list, every format, references replaced from the VM's environment.
    let guard = r#"{"variant":"canary","max_failure_rate_increase":0.05,"on_trip":"rearm","max_trips":1,
        "notify":[
          {"format":"slack","cluster":"slack","path":"/services/${HOOK}","retries":0},
          {"format":"msteams","cluster":"teams","path":"/workflows/x","timeout_ms":60000,"retries":10},
          {"format":"discord","cluster":"discord","path":"/api/webhooks/1/${HOOK}"},
          {"format":"generic","cluster":"hooks","path":"/canary","headers":{"x-token":"${TOKEN}","x-both":"${TOKEN}:${HOOK}"}},
          {"format":"github","cluster":"github","authority":"api.github.com","path":"/repos/acme/mesh/dispatches",
           "headers":{"Authorization":"Bearer ${TOKEN}"}}]}"#;
    let vars: &[(&str, &str)] = &[("TOKEN", "t0k"), ("HOOK", "T0/B0/X"), ("UNUSED", "u")];
    let c = compile_guard(guard, Some(vars)).unwrap();
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!(
        (g.on_trip(), g.max_trips(), g.hold_seconds()),
        (OnTrip::Rearm, 1, 300)
    );
    assert!(g.relative());
    let got: Vec<_> = g
        .receivers()
        .iter()
        .map(|r| {
            (
                r.format,
                r.cluster.as_str(),
                r.authority.as_str(),
                r.path.as_str(),
                r.timeout_ms,
                r.retries,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                Format::Slack,
                "slack",
                "slack",
                "/services/T0/B0/X",
                5000,
                0
            ),
            (Format::MsTeams, "teams", "teams", "/workflows/x", 60000, 10),
            (
                Format::Discord,
                "discord",
                "discord",
                "/api/webhooks/1/T0/B0/X",
                5000,
                3
            ),
            (Format::Generic, "hooks", "hooks", "/canary", 5000, 3),
            (
                Format::Github,
                "github",
                "api.github.com",
                "/repos/acme/mesh/dispatches",
                5000,
                3
            ),
        ]
    );
    let headers = |i: usize| -> Vec<(&str, &str)> {
        g.receivers()[i]
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    let mut generic = headers(3);
    generic.sort_unstable();
    assert_eq!(generic, [("x-both", "t0k:T0/B0/X"), ("x-token", "t0k")]);
    assert_eq!(headers(4), [("authorization", "Bearer t0k")]);

    // Without the VM's environment (the command): checked, and left as written.
    let c = compile_guard(guard, None).unwrap();
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!(g.receivers()[0].path, "/services/${HOOK}");
    assert_eq!(
        g.receivers()[4].headers,
        [("authorization".to_string(), "Bearer ${TOKEN}".to_string())]
    );
    // A value is not expanded again.
    let c = compile_guard(
        r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"/${A}","headers":{"x":"${A}"}}}"#,
        Some(&[("A", "${B}"), ("B", "no")]),
    )
    .unwrap();
    let n = &c.policy(0).unwrap().guard().unwrap().receivers()[0];
    assert_eq!(n.path, "/${B}");
    assert_eq!(n.headers, [("x".to_string(), "${B}".to_string())]);
}

/// A receiver written as an object (the documented single-receiver form) has no index: its
/// errors should name `notify.cluster`, as its type errors (`notify.headers.a`) already do.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_single_receiver_s_errors_name_notify_without_an_index() {
    #[rustfmt::skip]
    let cases = [
        (r#"{"cluster":"","path":"/x"}"#, "policies[0].guard.notify.cluster", "must name an Envoy cluster"),
        (r#"{"cluster":"s","path":"x"}"#, "policies[0].guard.notify.path", "must start with '/'"),
        (r#"{"cluster":"s","path":"/x","timeout_ms":0}"#, "policies[0].guard.notify.timeout_ms", "expected 1 to 60000"),
        (r#"{"cluster":"s","path":"/x","format":"teams"}"#, "policies[0].guard.notify.format", "is not a format"),
        (r#"{"cluster":"s","path":"/x","headers":{"bad name":"v"}}"#, "policies[0].guard.notify.headers.bad name", "not a valid header name"),
        (r#"{"cluster":"s","path":"/x","headers":{"a":"${}"}}"#, "policies[0].guard.notify.headers.a", "environment variable"),
        (r#"{"cluster":"s","path":"/x","headers":{"a":1}}"#, "policies[0].guard.notify.headers.a", "expected a string"),
    ];
    for (notify, path, message) in cases {
        let guard = format!(r#"{{"variant":"canary","max_p99_ms":800,"notify":{notify}}}"#);
        let errors = compile_guard(&guard, None).unwrap_err().0;
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{guard}: want {path}: {message}, got {errors:?}"
        );
    }
}

/// `retries` 0 is accepted (no retry), so its range message should say so.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_retries_range_starts_at_zero() {
    let guard = r#"{"variant":"canary","max_p99_ms":800,"notify":[{"cluster":"s","path":"/x","retries":0}]}"#;
    assert!(compile_guard(guard, None).is_ok());
    let errors = compile_guard(&guard.replace(":0}", ":11}"), None)
        .unwrap_err()
        .0;
    assert!(
        errors
            .iter()
            .any(|e| e.path == "policies[0].guard.notify[0].retries"
                && e.message == "11 is out of range; expected 0 to 10"),
        "{errors:?}"
    );
}

/// The fingerprint that keys shared state: the same for the same document and node metadata,
/// different otherwise.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fingerprints_follow_the_document_and_node_metadata() {
    let doc = r#"{"policies":[{"name":"p","variants":[{"name":"a","weight":10},{"name":"b","weight":90}]}]}"#;
    let a = Config::from_json(doc.as_bytes()).unwrap().fingerprint();
    assert_eq!(a, Config::from_json(doc.as_bytes()).unwrap().fingerprint());
    let spaced = doc.replace(':', ": ");
    assert_ne!(
        a,
        Config::from_json(spaced.as_bytes()).unwrap().fingerprint()
    );
    let node = super::config_in(doc, Some(r#"{"p":{"enabled":false}}"#), &[]).fingerprint();
    assert_ne!(a, node);
    let labelled = super::config_in(doc, None, &[("app", "x")]).fingerprint();
    assert_ne!(a, labelled);
}
