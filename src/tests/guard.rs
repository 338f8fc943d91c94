//! The guard: what counts as a failure, the window across workers (encode/decode, slices
//! expiring), trips on failure rate and on p99 with and without enough requests, the hold and
//! re-arm, the diverted split (sticky users, rules, trusted header, route weights), the
//! message, and the configuration errors.

use crate::guard::{decimal, is_failure, message, Cause, Event, Outcomes, Subject, Window};
use crate::{Config, Reason, SimpleRequest, SplitMix64};

use super::config;

/// Unix seconds (2026-12-01T10:00:00Z); the guard's clock is in milliseconds.
const NOW: i64 = 1_796_119_200;

/// `t` seconds after `NOW`, in unix milliseconds.
fn ms(t: i64) -> i64 {
    (NOW + t) * 1000
}

fn guarded(guard: &str) -> Config {
    config(&format!(
        r#"{{"policies":[{{"name":"p",
        "variants":[{{"name":"beta","weight":10}},{{"name":"canary","weight":20}},{{"name":"stable","weight":70}}],
        "sticky":{{"keys":[{{"header":"x-user-id"}}]}},
        "rules":[{{"variant":"canary","match":[{{"header":"x-beta","exact":"true"}}]}}],
        "guard":{guard}}}]}}"#
    ))
}

const BASIC: &str = r#"{"variant":"canary","min_requests":10,"max_failure_rate":0.1,"max_p99_ms":500,"window_seconds":10,"hold_seconds":30}"#;

/// `n` requests (`failed` of them failures) of `latency_ms` each, as a worker records them.
fn outcomes(c: &Config, n: u32, failed: u32, latency_ms: u64) -> Outcomes {
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut o = Outcomes::default();
    for i in 0..n {
        g.record(&mut o, i < failed, Some(latency_ms));
    }
    o
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
    let mut w = Window::new(g);
    // Worker 1: 5 requests, all failed: below min_requests, nothing happens.
    assert_eq!(w.advance(g, ms(0), &outcomes(&c, 5, 5, 3)), None);
    // Through shared data: the bytes round-trip.
    let mut w = Window::decode(&w.encode(), g);
    assert_eq!(w.totals(g, ms(0)).total, 5);
    // Worker 2, a second later: 4 healthy; 9 requests, still below 10.
    assert_eq!(w.advance(g, ms(1), &outcomes(&c, 4, 0, 3)), None);
    // Worker 1: one more healthy request: 10 requests, 5 failed (50 % > 10 %).
    match w.advance(g, ms(1), &outcomes(&c, 1, 0, 3)) {
        Some(Event::Tripped {
            cause,
            window,
            until_ms,
        }) => {
            assert_eq!(cause, Cause::FailureRate);
            assert_eq!((window.total, window.failures), (10, 5));
            assert_eq!(window.failure_ppm(), 500_000);
            assert_eq!(until_ms, ms(1 + 30));
        }
        other => panic!("expected a trip, got {other:?}"),
    }
    assert!(w.tripped(ms(1)));
    assert!(w.tripped(ms(30)));
    assert_eq!(w.trips(), 1);
    // While tripped, late outcomes are dropped and nothing else happens.
    assert_eq!(w.advance(g, ms(5), &outcomes(&c, 50, 50, 3)), None);
    // The hold ends: re-armed, with an empty window.
    assert_eq!(
        w.advance(g, ms(31), &Outcomes::default()),
        Some(Event::Rearmed)
    );
    assert!(!w.tripped(ms(31)));
    assert_eq!(w.totals(g, ms(31)).total, 0);
    // It can trip again.
    assert!(matches!(
        w.advance(g, ms(32), &outcomes(&c, 10, 2, 3)),
        Some(Event::Tripped { .. })
    ));
    assert_eq!(w.trips(), 2);
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
    assert_eq!(w.totals(g, ms(9)).total, 100);
    assert_eq!(w.totals(g, ms(10)).total, 0);
    let mut w2 = w.clone();
    assert!(matches!(
        w2.advance(g, ms(10), &outcomes(&c, 10, 2, 3)),
        Some(Event::Tripped { window, .. }) if window.total == 10
    ));
    // Within the window the same outcomes dilute: 12 of 110 is 10.9 %, above.
    assert!(matches!(
        w.advance(g, ms(9), &outcomes(&c, 10, 2, 3)),
        Some(Event::Tripped { window, .. }) if window.total == 110
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
    g.record(&mut o, false, Some(900));
    assert_eq!(w.advance(g, ms(0), &o), None);
    assert!(w.totals(g, ms(0)).p99_ms().unwrap() <= 500);
    // One more slow one: 2 of 101.
    match w.advance(g, ms(0), &outcomes(&c, 1, 0, 900)) {
        Some(Event::Tripped { cause, window, .. }) => {
            assert_eq!(cause, Cause::P99);
            assert_eq!((window.slow, window.timed), (2, 101));
            let p99 = window.p99_ms().unwrap();
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
        let p99 = outcomes(&c, 50, 0, latency).p99_ms().unwrap();
        assert!((low..=high).contains(&p99), "{latency}: {p99}");
    }
    // No response: a failure without a latency.
    let mut o = Outcomes::default();
    g.record(&mut o, true, None);
    assert_eq!((o.total, o.failures, o.timed), (1, 1, 0));
    assert_eq!(o.p99_ms(), None);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn long_windows_use_slices_of_several_seconds() {
    let c = guarded(
        r#"{"variant":"canary","max_failure_rate":0.5,"window_seconds":600,"min_requests":1000}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    // 60 slices of 10 s: 12 KB in shared data at most, whatever the window.
    assert_eq!(w.encode().len(), 16 + 60 * 200);
    for t in 0..60 {
        assert_eq!(w.advance(g, ms(t * 10), &outcomes(&c, 1, 0, 1)), None);
    }
    assert_eq!(w.totals(g, ms(599)).total, 60);
    // The oldest slice (NOW .. NOW + 10 s) leaves at NOW + 600 s (NOW is a multiple of 10).
    assert_eq!(w.totals(g, ms(600)).total, 59);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn foreign_or_damaged_shared_data_starts_a_fresh_window() {
    let c = guarded(BASIC);
    let g = c.policy(0).unwrap().guard().unwrap();
    let mut w = Window::new(g);
    let _ = w.advance(g, ms(0), &outcomes(&c, 3, 0, 1));
    let bytes = w.encode();
    assert_eq!(Window::decode(&bytes, g), w);
    for bad in [
        Vec::new(),
        bytes[..bytes.len() - 1].to_vec(),
        [b"XXXX".as_slice(), &bytes[4..]].concat(),
    ] {
        assert_eq!(Window::decode(&bad, g), Window::new(g));
    }
    // A window of another length (a different guard) is not read either.
    let other = guarded(r#"{"variant":"canary","max_failure_rate":0.1,"window_seconds":5}"#);
    let og = other.policy(0).unwrap().guard().unwrap();
    assert_eq!(Window::decode(&bytes, og), Window::new(og));
}

/// While tripped, every decision for the canary goes to the baseline (reason `guard`):
/// sticky users, rule matches and the trusted header alike; nobody else moves.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_tripped_guard_diverts_every_decision_for_its_variant() {
    let c = guarded(BASIC);
    let armed = c.effective_splits(NOW, &[false]);
    let tripped = c.effective_splits(NOW, &[true]);
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

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_message_is_slack_json_with_structured_fields() {
    let c = guarded(
        r#"{"variant":"canary","max_failure_rate":0.05,"window_seconds":10,"hold_seconds":300,
        "notify":{"cluster":"slack","path":"/services/T0/B0/X"}}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    let n = g.notify().unwrap();
    assert_eq!(
        (
            n.cluster.as_str(),
            n.authority.as_str(),
            n.path.as_str(),
            n.timeout_ms
        ),
        ("slack", "slack", "/services/T0/B0/X", 5000)
    );
    let mut w = Window::new(g);
    let event = w.advance(g, ms(0), &outcomes(&c, 40, 17, 12)).unwrap();
    let who = Subject {
        policy: "p",
        variant: "canary",
        baseline: "stable",
        node: "node \"1\"",
    };
    let body: serde_json::Value = serde_json::from_str(&message(g, &event, &who, NOW)).unwrap();
    let text = body["text"].as_str().unwrap();
    for part in [
        "guard tripped on policy p: canary failure rate 42.5 % > 5 %",
        "17 of 40 requests failed",
        "last 10 s",
        "goes to stable for 300 s",
        "node \"1\"",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
    assert_eq!(body["event"], "tripped");
    assert_eq!(body["cause"], "failure_rate");
    assert_eq!(body["failure_rate"], 0.425);
    assert_eq!(body["requests"], 40);
    assert_eq!(body["failures"], 17);
    assert_eq!(body["p99_ms"], 12);
    assert_eq!(body["policy"], "p");
    assert_eq!(body["variant"], "canary");
    assert_eq!(body["baseline"], "stable");
    assert_eq!(body["window_seconds"], 10);
    assert_eq!(body["node"], "node \"1\"");
    assert_eq!(body["time"], NOW);
    let body: serde_json::Value =
        serde_json::from_str(&message(g, &Event::Rearmed, &who, NOW + 300)).unwrap();
    assert_eq!(body["event"], "rearmed");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("guard re-armed on policy p: canary"));
    for (v, scale, want) in [
        (0, 6, "0"),
        (50_000, 6, "0.05"),
        (1_000_000, 6, "1"),
        (425, 2, "4.25"),
        (500, 2, "5"),
    ] {
        assert_eq!(decimal(v, scale), want);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invalid_guards_name_the_field() {
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, &str)> = vec![
        (r#"{"variant":"gamma","max_failure_rate":0.1}"#, "policies[0].guard.variant", "unknown variant \"gamma\""),
        (r#"{"variant":"canary","baseline":"nope","max_failure_rate":0.1}"#, "policies[0].guard.baseline", "unknown variant \"nope\""),
        (r#"{"variant":"stable","max_failure_rate":0.1}"#, "policies[0].guard.baseline", "another variant than \"stable\""),
        (r#"{"variant":"canary"}"#, "policies[0].guard", "set \"max_failure_rate\", \"max_p99_ms\" or both"),
        (r#"{"variant":"canary","max_failure_rate":1.5}"#, "policies[0].guard.max_failure_rate", "fraction from 0 to 1"),
        (r#"{"variant":"canary","max_failure_rate":-0.1}"#, "policies[0].guard.max_failure_rate", "fraction from 0 to 1"),
        (r#"{"variant":"canary","max_failure_rate":5}"#, "policies[0].guard.max_failure_rate", "(0.05 is 5 %)"),
        (r#"{"variant":"canary","max_failure_rate":0.0000001}"#, "policies[0].guard.max_failure_rate", "more than six decimals"),
        (r#"{"variant":"canary","max_failure_rate":"5%"}"#, "policies[0].guard.max_failure_rate", "invalid type: string \"5%\", expected a number"),
        (r#"{"variant":"canary","max_p99_ms":0}"#, "policies[0].guard.max_p99_ms", "0 is out of range; expected 1 to 3600000"),
        (r#"{"variant":"canary","max_p99_ms":800,"window_seconds":0}"#, "policies[0].guard.window_seconds", "expected 1 to 3600"),
        (r#"{"variant":"canary","max_p99_ms":800,"window_seconds":3601}"#, "policies[0].guard.window_seconds", "3601 is out of range"),
        (r#"{"variant":"canary","max_p99_ms":800,"hold_seconds":0}"#, "policies[0].guard.hold_seconds", "expected 1 to 86400"),
        (r#"{"variant":"canary","max_p99_ms":800,"min_requests":0}"#, "policies[0].guard.min_requests", "0 is out of range"),
        (r#"{"variant":"canary","max_p99_ms":800,"hold":5}"#, "policies[0].guard.hold", "unknown field `hold`, expected one of"),
        (r#"{"max_p99_ms":800}"#, "policies[0].guard", "missing field `variant`"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"path":"/x"}}"#, "policies[0].guard.notify", "missing field `cluster`"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"","path":"/x"}}"#, "policies[0].guard.notify.cluster", "must name an Envoy cluster"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"x"}}"#, "policies[0].guard.notify.path", "must start with '/'"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"/x","timeout_ms":0}}"#, "policies[0].guard.notify.timeout_ms", "expected 1 to 60000"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"/x","headers":{"bad name":"v"}}}"#, "policies[0].guard.notify.headers.bad name", "not a valid header name"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"/x","headers":{":path":"v"}}}"#, "policies[0].guard.notify.headers.:path", "pseudo-headers"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"/x","headers":{"a":"v\n"}}}"#, "policies[0].guard.notify.headers.a", "control characters"),
        (r#"{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"s","path":"/x","headers":{"a":1}}}"#, "policies[0].guard.notify.headers.a", "expected a string"),
    ];
    for (guard, path, message) in cases {
        let json = format!(
            r#"{{"policies":[{{"name":"p","variants":[{{"name":"canary","weight":10}},{{"name":"stable","weight":90}}],"guard":{guard}}}]}}"#
        );
        let errors = Config::from_json(json.as_bytes()).unwrap_err().0;
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{guard}: want {path}: {message}, got {errors:?}"
        );
    }
    // Defaults and headers that are fine.
    let c = config(
        r#"{"policies":[{"name":"p","variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
        "guard":{"variant":"canary","max_p99_ms":800,"notify":{"cluster":"hooks","path":"/x","authority":"hooks.example.com","headers":{"Authorization":"Bearer t"}}}}]}"#,
    );
    let g = c.policy(0).unwrap().guard().unwrap();
    assert_eq!(
        (g.baseline(), g.window_seconds(), g.hold_seconds()),
        (1, 10, 300)
    );
    let n = g.notify().unwrap();
    assert_eq!(n.authority, "hooks.example.com");
    assert_eq!(
        n.headers,
        [("authorization".to_string(), "Bearer t".to_string())]
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
