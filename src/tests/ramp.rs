//! Scheduled ramps: RFC 3339 start times, the weight over time (steps and linear), the split
//! with the remainder on the last variant, users never moving back while the ramp rises, and
//! the configuration errors.

use crate::ramp::parse_rfc3339;
use crate::{bucket_for, Config, SimpleRequest, SplitMix64};

use super::config;

/// 2026-12-01T10:00:00Z.
const START: i64 = 1_796_119_200;

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rfc3339_times() {
    // Expected values computed with Python's datetime.
    for (text, want) in [
        ("2026-12-01T10:00:00Z", START),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59Z", -1),
        ("2028-02-29T23:59:59Z", 1_835_481_599),
        ("2026-12-01T11:30:00+01:30", START),
        ("2000-03-01T00:00:00-05:00", 951_886_800),
        ("2026-12-01t10:00:00.250z", START),
        ("2026-12-01 10:00:00Z", START),
    ] {
        assert_eq!(parse_rfc3339(text), Ok(want), "{text}");
    }
    for bad in [
        "",
        "2026-12-01",
        "2026-12-01T10:00:00",
        "2026-13-01T10:00:00Z",
        "2026-02-29T10:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T10:60:00Z",
        "2026-12-01T10:00:00+25:00",
        "2026-12-01T10:00:00.Z",
        "2026/12/01T10:00:00Z",
        "2026-12-01T10:00:00Zjunk",
        "é026-12-01T10:00:00Z",
    ] {
        let e = parse_rfc3339(bad).unwrap_err();
        assert!(e.contains("is not an RFC 3339 time"), "{bad}: {e}");
    }
}

fn ramped(ramp: &str, variants: &str) -> Config {
    config(&format!(
        r#"{{"policies":[{{"name":"p","variants":[{variants}],
        "sticky":{{"keys":[{{"header":"x-user-id"}}]}},"ramp":{ramp}}}]}}"#
    ))
}

const TWO: &str = r#"{"name":"canary","weight":0},{"name":"stable","weight":100}"#;
const THREE: &str =
    r#"{"name":"beta","weight":20},{"name":"canary","weight":0},{"name":"stable","weight":80}"#;

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn stepped_ramp_over_time() {
    let c = ramped(
        r#"{"variant":"canary","start":"2026-12-01T10:00:00Z","steps":[1,5,25,50,100],"step_seconds":600}"#,
        TWO,
    );
    let p = c.policy(0).unwrap();
    let ramp = p.ramp().unwrap();
    assert_eq!(ramp.end(), START + 4 * 600);
    // (seconds from the start, canary basis points, stable basis points)
    for (t, canary, stable) in [
        (-3600, 0, 10_000), // before the start: the configured weights
        (-1, 0, 10_000),
        (0, 100, 9_900),
        (599, 100, 9_900),
        (600, 500, 9_500),
        (1_200, 2_500, 7_500),
        (1_800, 5_000, 5_000),
        (2_400, 10_000, 0),
        (86_400 * 365, 10_000, 0), // after the last step the final weight holds
    ] {
        assert_eq!(
            p.split_at(START + t).weights_bp(),
            [canary, stable],
            "t={t}"
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn linear_ramp_and_the_variants_between_keep_their_weights() {
    let c = ramped(
        r#"{"variant":"canary","start":"2026-12-01T10:00:00Z","from":10,"to":70,"duration_seconds":600}"#,
        THREE,
    );
    let p = c.policy(0).unwrap();
    for (t, canary) in [
        (-1, 0),
        (0, 1_000),
        (60, 1_600),
        (300, 4_000),
        (599, 6_990),
        (600, 7_000),
        (10_000, 7_000),
    ] {
        assert_eq!(
            p.split_at(START + t).weights_bp(),
            [2_000, canary, 8_000 - canary],
            "t={t}"
        );
    }
}

/// While the weight rises, a user in the canary stays there; users only move from the last
/// variant to the ramped one.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn users_never_move_back_while_the_ramp_rises() {
    let c = ramped(
        r#"{"variant":"canary","start":"2026-12-01T10:00:00Z","from":0,"to":80,"duration_seconds":100}"#,
        THREE,
    );
    let users: Vec<String> = (0..2_000).map(|i| format!("u{i}")).collect();
    let mut previous: Vec<&str> = Vec::new();
    let mut rng = SplitMix64::new(1);
    for t in (-5..=110).step_by(5) {
        let live = c.live_splits(START + t);
        let now: Vec<&str> = users
            .iter()
            .map(|u| {
                let req = SimpleRequest::new("h", "/").header("x-user-id", u);
                let d = c.decide_live(&req, None, &live, &mut rng).unwrap();
                c.policy(0).unwrap().variant(d.variant).unwrap().name()
            })
            .collect();
        for (i, (before, after)) in previous.iter().zip(&now).enumerate() {
            assert!(
                before == after || (*before == "stable" && *after == "canary"),
                "t={t}: user {} moved from {before} to {after} (bucket {})",
                users[i],
                bucket_for("p", &users[i])
            );
        }
        previous = now;
    }
    // At the end the canary has its 80 % (beta keeps 20 %).
    let canary = previous.iter().filter(|v| **v == "canary").count();
    assert!((1_500..1_700).contains(&canary), "{canary}");
    assert!(!previous.contains(&"stable"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invalid_ramps_name_the_field() {
    let start = r#""start":"2026-12-01T10:00:00Z""#;
    #[rustfmt::skip]
    let cases: Vec<(String, &str, &str)> = vec![
        (format!(r#"{{"variant":"stable",{start},"steps":[5],"step_seconds":60}}"#),
            "policies[0].ramp.variant", "the last variant takes the remainder"),
        (format!(r#"{{"variant":"beta",{start},"steps":[5],"step_seconds":60}}"#),
            "policies[0].ramp.variant", "just before the last one (\"stable\")"),
        (format!(r#"{{"variant":"gamma",{start},"steps":[5],"step_seconds":60}}"#),
            "policies[0].ramp.variant", "unknown variant \"gamma\""),
        (format!(r#"{{"variant":"canary",{start}}}"#),
            "policies[0].ramp", "set either \"steps\""),
        (format!(r#"{{"variant":"canary",{start},"steps":[5],"step_seconds":60,"from":1,"to":2,"duration_seconds":9}}"#),
            "policies[0].ramp", "set either \"steps\""),
        (format!(r#"{{"variant":"canary",{start},"steps":[5]}}"#),
            "policies[0].ramp", "set either \"steps\" and \"step_seconds\""),
        (format!(r#"{{"variant":"canary",{start},"from":1,"to":5}}"#),
            "policies[0].ramp", "set either \"steps\" and \"step_seconds\""),
        (format!(r#"{{"variant":"canary",{start},"steps":[],"step_seconds":60}}"#),
            "policies[0].ramp.steps", "at least one weight"),
        (format!(r#"{{"variant":"canary",{start},"steps":[5],"step_seconds":0}}"#),
            "policies[0].ramp", "seconds must be at least 1"),
        (format!(r#"{{"variant":"canary",{start},"steps":[5,85],"step_seconds":60}}"#),
            "policies[0].ramp.steps[1]", "leaves no room for the other variants' 20"),
        (format!(r#"{{"variant":"canary",{start},"steps":[5,1.005],"step_seconds":60}}"#),
            "policies[0].ramp.steps[1]", "more than two decimals"),
        (format!(r#"{{"variant":"canary",{start},"from":-1,"to":5,"duration_seconds":60}}"#),
            "policies[0].ramp.from", "between 0 and 100"),
        (r#"{"variant":"canary","start":"tomorrow","steps":[5],"step_seconds":60}"#.to_string(),
            "policies[0].ramp.start", "is not an RFC 3339 time"),
        (format!(r#"{{"variant":"canary",{start},"steps":[5],"step_seconds":60,"steps_seconds":1}}"#),
            "policies[0].ramp.steps_seconds", "unknown field `steps_seconds`"),
        (r#"{"variant":"canary","steps":[5],"step_seconds":60}"#.to_string(),
            "policies[0].ramp", "missing field `start`"),
    ];
    for (ramp, path, message) in cases {
        let json = format!(r#"{{"policies":[{{"name":"p","variants":[{THREE}],"ramp":{ramp}}}]}}"#);
        let errors = Config::from_json(json.as_bytes()).unwrap_err().0;
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{ramp}: want {path}: {message}, got {errors:?}"
        );
    }
}
