//! A guard's shared window: decoding arbitrary bytes, then advancing and re-encoding it;
//! decode(encode(w)) == w at every step, and valid bytes round-trip unchanged.
#![no_main]

use arbitrary::Arbitrary;
use canary_router::guard::{Outcomes, Window};
use canary_router::Config;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    window_seconds: u16,
    min_requests: u16,
    hold_seconds: u16,
    max_p99_ms: Option<u16>,
    bytes: Vec<u8>,
    /// Whether to patch in the magic and the right length, to reach the decoder's body.
    shape: bool,
    start_ms: i64,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    dt_ms: u32,
    back: bool,
    total: u16,
    failures: u16,
    latencies: Vec<u16>,
}

fuzz_target!(|input: Input| {
    let p99 = input
        .max_p99_ms
        .map_or(String::new(), |ms| format!(r#", "max_p99_ms": {ms}"#));
    let text = format!(
        r#"{{"policies": [{{"name": "p", "variants": [{{"name": "canary", "weight": 10}},
        {{"name": "stable", "weight": 90}}], "guard": {{"variant": "canary", "window_seconds": {},
        "min_requests": {}, "hold_seconds": {}, "max_failure_rate": "0.05"{p99}}}}}]}}"#,
        input.window_seconds, input.min_requests, input.hold_seconds
    );
    let Ok(config) = Config::from_json(text.as_bytes()) else {
        return;
    };
    let Some(guard) = config.policies()[0].guard() else {
        return;
    };
    let expected_len = Window::new(guard).encode().len();
    let mut bytes = input.bytes.clone();
    if input.shape {
        bytes.resize(expected_len, 0);
        bytes[..4].copy_from_slice(&0x4752_4331u32.to_le_bytes());
    }
    let mut w = Window::decode(&bytes, guard);
    if bytes.len() == expected_len && bytes.starts_with(&0x4752_4331u32.to_le_bytes()) {
        assert_eq!(w.encode(), bytes, "valid bytes round-trip unchanged");
    }
    assert_eq!(Window::decode(&w.encode(), guard), w);
    let mut now = input.start_ms;
    for s in input.steps.iter().take(64) {
        now = if s.back {
            now.saturating_sub(i64::from(s.dt_ms))
        } else {
            now.saturating_add(i64::from(s.dt_ms))
        };
        let mut pending = Outcomes::default();
        for i in 0..s.total.min(2000) {
            let latency = s.latencies.get(usize::from(i)).map(|l| u64::from(*l));
            guard.record(&mut pending, i < s.failures, latency);
        }
        let _ = w.advance(guard, now, &pending);
        let encoded = w.encode();
        assert_eq!(encoded.len(), expected_len);
        assert_eq!(Window::decode(&encoded, guard), w, "decode(encode(w)) == w");
        let totals = w.totals(guard, now);
        let _ = (
            w.tripped(now),
            w.trips(),
            totals.failure_ppm(),
            totals.p99_ms(),
        );
    }
});
