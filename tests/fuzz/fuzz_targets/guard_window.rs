//! A guard's shared window: decoding arbitrary bytes, then advancing it with both variants'
//! outcomes and re-encoding it; decode(encode(w)) == w at every step, valid bytes round-trip
//! unchanged, events agree with the state (a trip is judged on the window it reports, a final
//! trip aborts for good, never more than `max_trips` trips of a fresh window), the split in
//! force follows the state, and every receiver format's body of every event is valid JSON.
#![no_main]

use arbitrary::Arbitrary;
use canary_router::guard::{Event, Format, GuardView, OnTrip, Pending, Window};
use canary_router::notify::{body, describe, Subject};
use canary_router::Config;
use libfuzzer_sys::fuzz_target;

/// "GRC2", the encoding's magic.
const MAGIC: u32 = 0x4752_4332;

#[derive(Arbitrary, Debug)]
struct Input {
    window_seconds: u16,
    min_requests: u16,
    rearm: bool,
    hold_seconds: u16,
    max_trips: Option<u8>,
    max_failure_rate: Option<u16>,
    max_p99_ms: Option<u16>,
    /// Basis points above the baseline's failure rate.
    max_failure_rate_increase: Option<u16>,
    /// Thousandths.
    max_p99_ratio: Option<u16>,
    /// The baseline is the first variant instead of the last.
    baseline_first: bool,
    bytes: Vec<u8>,
    /// Whether to patch in the magic and the right length, to reach the decoder's body.
    shape: bool,
    start_ms: i64,
    steps: Vec<Step>,
    names: [String; 4],
    fingerprint: u64,
}

#[derive(Arbitrary, Debug)]
struct Step {
    dt_ms: u32,
    back: bool,
    /// Requests of each variant of the policy (the guard counts those it compares).
    requests: [Outcome; 3],
}

#[derive(Arbitrary, Debug)]
struct Outcome {
    total: u16,
    failures: u16,
    /// Latencies of the first requests; the others had no response.
    latencies: Vec<u16>,
}

const FORMATS: [Format; 5] = [
    Format::Slack,
    Format::MsTeams,
    Format::Discord,
    Format::Generic,
    Format::Github,
];

fuzz_target!(|input: Input| {
    let mut limits = String::new();
    if let Some(v) = input.max_failure_rate {
        limits.push_str(&format!(
            r#", "max_failure_rate": {}.{:04}"#,
            v / 10_000,
            v % 10_000
        ));
    }
    if let Some(ms) = input.max_p99_ms {
        limits.push_str(&format!(r#", "max_p99_ms": {ms}"#));
    }
    if let Some(v) = input.max_failure_rate_increase {
        limits.push_str(&format!(
            r#", "max_failure_rate_increase": {}.{:04}"#,
            v / 10_000,
            v % 10_000
        ));
    }
    if let Some(v) = input.max_p99_ratio {
        limits.push_str(&format!(
            r#", "max_p99_ratio": {}.{:03}"#,
            v / 1000,
            v % 1000
        ));
    }
    let on_trip = if input.rearm {
        let max = input
            .max_trips
            .map_or(String::new(), |n| format!(r#", "max_trips": {n}"#));
        format!(
            r#", "on_trip": "rearm", "hold_seconds": {}{max}"#,
            input.hold_seconds
        )
    } else {
        String::new()
    };
    let baseline = if input.baseline_first {
        "beta"
    } else {
        "stable"
    };
    let text = format!(
        r#"{{"policies": [{{"name": "p", "variants": [{{"name": "beta", "weight": 10}},
        {{"name": "canary", "weight": 10}}, {{"name": "stable", "weight": 80}}],
        "guard": {{"variant": "canary", "baseline": "{baseline}", "window_seconds": {},
        "min_requests": {}{limits}{on_trip}}}}}]}}"#,
        input.window_seconds, input.min_requests
    );
    let Ok(config) = Config::from_json(text.as_bytes()) else {
        return;
    };
    let Some(guard) = config.policies()[0].guard() else {
        return;
    };
    assert_eq!(guard.on_trip() == OnTrip::Rearm, input.rearm);
    let max_trips = guard.max_trips();
    let final_trip = if input.rearm { max_trips } else { 1 };
    let expected_len = Window::new(guard).encode().len();
    let mut bytes = input.bytes.clone();
    if input.shape {
        bytes.resize(expected_len, 0);
        bytes[..4].copy_from_slice(&MAGIC.to_le_bytes());
    }
    let mut w = Window::decode(&bytes, guard);
    // The state: a tag (0 armed, 1 held until a time, 2 aborted) and the time (0 unless held).
    let state = |at: std::ops::Range<usize>| bytes.get(at).map(|b| b.to_vec());
    let tag = state(4..8).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let until = state(8..16).map(|b| i64::from_le_bytes(b.try_into().unwrap()));
    let valid = bytes.len() == expected_len
        && bytes.starts_with(&MAGIC.to_le_bytes())
        && matches!((tag, until), (Some(0 | 2), Some(0)) | (Some(1), Some(_)));
    if valid {
        assert_eq!(w.encode(), bytes, "valid bytes round-trip unchanged");
    } else {
        assert_eq!(w, Window::new(guard), "anything else is a fresh window");
    }
    // From a fresh window, the trips are counted from 0.
    let fresh = w == Window::new(guard);
    assert_eq!(Window::decode(&w.encode(), guard), w);
    let [policy, variant, baseline, node] = &input.names;
    let who = Subject {
        policy,
        variant,
        baseline,
        node,
        fingerprint: input.fingerprint,
    };
    let mut now = input.start_ms;
    for s in input.steps.iter().take(64) {
        now = if s.back {
            now.saturating_sub(i64::from(s.dt_ms))
        } else {
            now.saturating_add(i64::from(s.dt_ms))
        };
        let mut pending = Pending::default();
        for (v, o) in s.requests.iter().enumerate() {
            for i in 0..o.total.min(2000) {
                let latency = o.latencies.get(usize::from(i)).map(|l| u64::from(*l));
                guard.record(&mut pending, v, i < o.failures, latency);
            }
        }
        if !guard.relative() {
            assert!(
                pending.baseline.is_empty(),
                "the baseline counted only when compared"
            );
        }
        let before = w.clone();
        // Within a hold of the end of time, a re-arming trip's `now + hold` saturates: it may
        // end at once. Every other state holds at any clock.
        let end_of_time = now > i64::MAX - 86_400_000;
        let event = w.advance(guard, now, &pending);
        let encoded = w.encode();
        assert_eq!(encoded.len(), expected_len);
        assert_eq!(Window::decode(&encoded, guard), w, "decode(encode(w)) == w");
        // An aborted guard never changes again.
        if before.aborted() {
            assert_eq!(event, None);
            assert_eq!(w, before);
        }
        match &event {
            None => assert_eq!(w.trips(), before.trips()),
            Some(Event::Tripped {
                cause,
                window,
                until_ms,
                trip,
            }) => {
                assert_eq!(*trip, w.trips());
                assert_eq!(*trip, before.trips().saturating_add(1));
                assert_eq!(**window, w.totals(guard, now));
                assert_eq!(guard.judge(&window.variant, &window.baseline), Some(*cause));
                assert!(w.tripped(now) || end_of_time);
                match until_ms {
                    Some(until) => {
                        assert!(input.rearm && *trip < max_trips);
                        assert!(*until > now || end_of_time);
                        assert!(!w.aborted());
                    }
                    None => {
                        assert!(!input.rearm || *trip >= max_trips);
                        assert!(w.aborted());
                    }
                }
                if fresh {
                    assert!(*trip <= final_trip, "trip {trip} of at most {final_trip}");
                }
                if *trip == 1 {
                    assert_eq!(w.first_trip_ms(), Some(now));
                }
            }
            Some(Event::Rearmed) => {
                assert!(!w.tripped(now) || end_of_time);
                assert!(!before.aborted() || end_of_time);
                assert_eq!(w.totals(guard, now), Pending::default());
                assert_eq!(w.trips(), before.trips());
            }
        }
        // The split a worker derives from the window.
        let view = GuardView {
            tripped: w.tripped(now),
            ramp_stopped_at: w.first_trip_ms().map(|ms| ms.div_euclid(1000)),
        };
        let secs = now.div_euclid(1000);
        let split = &config.splits_in_force(secs, &[view])[0];
        let weights = split.weights_bp();
        assert_eq!(weights.iter().map(|w| u32::from(*w)).sum::<u32>(), 10_000);
        assert_eq!(weights[guard.variant()] == 0, view.tripped);
        assert_eq!(split.divert().is_some(), view.tripped);
        // Every body of the event is valid JSON.
        if let Some(event) = &event {
            let text = describe(guard, event, &who);
            for format in FORMATS {
                let b = body(format, guard, event, &who, secs);
                let json: serde_json::Value =
                    serde_json::from_str(&b).unwrap_or_else(|e| panic!("{format:?}: {e}\n{b}"));
                assert!(json.is_object());
                if format == Format::Generic {
                    assert_eq!(json["text"].as_str(), Some(text.as_str()));
                    assert_eq!(json["policy"].as_str(), Some(policy.as_str()));
                }
                let is_final = matches!(event, Event::Tripped { until_ms: None, .. });
                assert_eq!(format.wants(event), format != Format::Github || is_final);
            }
        }
        let totals = w.totals(guard, now);
        let _ = (
            w.tripped(now),
            w.trips(),
            totals.variant.failure_ppm(),
            totals.variant.p99_ms(),
            totals.baseline.p99_ms(),
        );
    }
});
