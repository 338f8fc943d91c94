//! What a guard tells its receivers: the text for abort, re-arm and the last trip of a
//! re-arming guard, each format's body (valid JSON of the shape the receiving service reads),
//! which formats hear of which events, names that need quoting, the default headers, and the
//! `${NAME}` references of receivers.

use crate::guard::{Event, Format, Guard, Pending, Window};
use crate::notify::{
    body, default_headers, describe, expand, references, Subject, GITHUB_EVENT_TYPE,
};
use crate::number::scaled;
use crate::Config;

use super::config;

/// Unix seconds (2026-12-01T10:00:00Z).
const NOW: i64 = 1_796_119_200;
const FINGERPRINT: u64 = 0x0123_4567_89ab_cdef;

fn guarded(guard: &str) -> Config {
    config(&format!(
        r#"{{"policies":[{{"name":"p",
        "variants":[{{"name":"canary","weight":20}},{{"name":"stable","weight":80}}],
        "guard":{guard}}}]}}"#
    ))
}

fn guard(c: &Config) -> &Guard {
    c.policy(0).unwrap().guard().unwrap()
}

fn who(node: &str) -> Subject<'_> {
    Subject {
        policy: "p",
        variant: "canary",
        baseline: "stable",
        node,
        fingerprint: FINGERPRINT,
    }
}

/// The event of a window that receives `n` requests of each variant (`failed` and
/// `baseline_failed` of them failures) of `latency_ms` and `baseline_ms`, at `NOW`.
fn trip(
    c: &Config,
    (n, failed, latency_ms): (u32, u32, u64),
    (bn, baseline_failed, baseline_ms): (u32, u32, u64),
) -> Event {
    let g = guard(c);
    let mut p = Pending::default();
    for i in 0..n {
        g.record(&mut p, g.variant(), i < failed, Some(latency_ms));
    }
    for i in 0..bn {
        g.record(&mut p, g.baseline(), i < baseline_failed, Some(baseline_ms));
    }
    Window::new(g)
        .advance(g, NOW * 1000, &p)
        .expect("the window trips")
}

fn json(format: Format, c: &Config, event: &Event, who: &Subject, time: i64) -> serde_json::Value {
    let text = body(format, guard(c), event, who, time);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"))
}

const SLACK: &str = r#"{"variant":"canary","max_failure_rate":0.05,"window_seconds":10,"on_trip":"rearm","hold_seconds":300,
    "notify":{"cluster":"slack","path":"/services/T0/B0/X"}}"#;
const RELATIVE: &str = r#"{"variant":"canary","max_failure_rate_increase":0.05,"max_p99_ratio":1.5,"window_seconds":30}"#;

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_slack_body_is_the_text_with_structured_fields() {
    let c = guarded(SLACK);
    let g = guard(&c);
    let n = &g.receivers()[0];
    assert_eq!(
        (
            n.format,
            n.cluster.as_str(),
            n.authority.as_str(),
            n.path.as_str(),
            n.timeout_ms
        ),
        (Format::Slack, "slack", "slack", "/services/T0/B0/X", 5000)
    );
    let event = trip(&c, (40, 17, 12), (0, 0, 0));
    let body = json(Format::Slack, &c, &event, &who("node \"1\""), NOW);
    let text = body["text"].as_str().unwrap();
    for part in [
        "guard tripped on policy p: canary failure rate 42.5 % > 5 %",
        "17 of 40 requests failed",
        "last 10 s",
        "goes to stable for 300 s (trip 1 of at most 3)",
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
    assert_eq!(body["hold_seconds"], 300);
    assert_eq!(body["node"], "node \"1\"");
    assert_eq!(body["time"], NOW);
    let body = json(Format::Slack, &c, &Event::Rearmed, &who("n"), NOW + 300);
    assert_eq!(body["event"], "rearmed");
    assert_eq!(body["time"], NOW + 300);
    assert!(body["text"].as_str().unwrap().contains(
        "guard re-armed on policy p: canary gets its traffic again after 300 s on stable"
    ));
    for (v, scale, want) in [
        (0, 6, "0"),
        (50_000, 6, "0.05"),
        (1_000_000, 6, "1"),
        (425, 2, "4.25"),
        (500, 2, "5"),
        (1_500, 3, "1.5"),
        (1_234, 3, "1.234"),
        (7, 0, "7"),
        (u32::MAX, 6, "4294.967295"),
    ] {
        assert_eq!(scaled(v, scale), want);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_generic_body_has_both_variants_figures() {
    let c = guarded(RELATIVE);
    // 60 of 200 failed against 10 of 200, p99 ~120 against ~100 ms.
    let event = trip(&c, (200, 60, 120), (200, 10, 100));
    let body = json(Format::Generic, &c, &event, &who("node-1"), NOW);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "event",
        "cause",
        "final",
        "trip",
        "figures",
        "policy",
        "variant",
        "baseline",
        "on_trip",
        "window_seconds",
        "hold_seconds",
        "node",
        "config_fingerprint",
        "time",
        "text",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(body["event"], "tripped");
    assert_eq!(body["cause"], "failure_rate_increase");
    assert_eq!(body["final"], true);
    assert_eq!(body["trip"], 1);
    assert_eq!(body["on_trip"], "abort");
    assert_eq!(body["window_seconds"], 30);
    assert_eq!(body["policy"], "p");
    assert_eq!(body["variant"], "canary");
    assert_eq!(body["baseline"], "stable");
    assert_eq!(body["node"], "node-1");
    assert_eq!(body["config_fingerprint"], "0123456789abcdef");
    assert_eq!(body["time"], NOW);
    let v = &body["figures"]["variant"];
    assert_eq!(
        (&v["requests"], &v["failures"], &v["failure_rate"]),
        (&200.into(), &60.into(), &0.3.into())
    );
    let b = &body["figures"]["baseline"];
    assert_eq!(
        (&b["requests"], &b["failures"], &b["failure_rate"]),
        (&200.into(), &10.into(), &0.05.into())
    );
    let (vp, bp) = (v["p99_ms"].as_u64().unwrap(), b["p99_ms"].as_u64().unwrap());
    assert!(
        (100..=120).contains(&vp) && (80..=100).contains(&bp),
        "{vp} {bp}"
    );
    let text = body["text"].as_str().unwrap();
    for part in [
        "canary failure rate 30 % against the baseline's 5 % (more than 5 points above it",
        "60 of 200 requests failed",
        "last 30 s",
        "its traffic goes to stable until the configuration changes",
        "Proxy: node-1",
    ] {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
    // The fingerprint is 16 hex digits, leading zeros included; a guard without a relative
    // limit reports an empty baseline.
    let c = guarded(r#"{"variant":"canary","max_failure_rate":0.05}"#);
    let event = trip(&c, (20, 20, 5), (20, 0, 5));
    let who = Subject {
        fingerprint: 0xab,
        ..who("")
    };
    let body = json(Format::Generic, &c, &event, &who, NOW);
    assert_eq!(body["config_fingerprint"], "00000000000000ab");
    assert_eq!(body["node"], "");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .ends_with("Proxy: (no node id)"));
    let b = &body["figures"]["baseline"];
    assert_eq!(
        (
            &b["requests"],
            &b["failures"],
            &b["failure_rate"],
            &b["p99_ms"]
        ),
        (&0.into(), &0.into(), &0.0.into(), &serde_json::Value::Null)
    );
    // The re-arm: no figures.
    let body = json(Format::Generic, &c, &Event::Rearmed, &who, NOW);
    assert_eq!(body["event"], "rearmed");
    for absent in ["cause", "final", "trip", "figures"] {
        assert!(body.get(absent).is_none(), "{absent}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_p99_ratio_in_words() {
    let c = guarded(RELATIVE);
    let event = trip(&c, (100, 0, 400), (100, 0, 100));
    assert!(matches!(
        event,
        Event::Tripped {
            cause: crate::guard::Cause::P99Ratio,
            ..
        }
    ));
    let text = describe(guard(&c), &event, &who("n"));
    assert!(
        text.contains("canary p99 399 ms against the baseline's 99 ms (more than 1.5 times it)"),
        "{text}"
    );
    let c = guarded(r#"{"variant":"canary","max_p99_ms":250}"#);
    let event = trip(&c, (100, 0, 400), (0, 0, 0));
    let text = describe(guard(&c), &event, &who("n"));
    assert!(
        text.contains("canary p99 > 250 ms (100 of 100 responses slower)"),
        "{text}"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_discord_body_is_short_content() {
    let c = guarded(SLACK);
    let event = trip(&c, (40, 17, 12), (0, 0, 0));
    let body = json(Format::Discord, &c, &event, &who("n"), NOW);
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(body["username"], "canary-router");
    assert_eq!(
        body["content"].as_str().unwrap(),
        describe(guard(&c), &event, &who("n"))
    );
    // A very long name: the content stays within Discord's 2000 characters (characters, not
    // bytes), and the body stays valid JSON.
    let long = "é\"".repeat(1500);
    let mut who = who("n");
    who.policy = &long;
    let body = json(Format::Discord, &c, &event, &who, NOW);
    let content = body["content"].as_str().unwrap();
    assert_eq!(content.chars().count(), 2000);
    assert!(content.starts_with("canary-router: guard tripped on policy é\"é\""));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_msteams_body_is_an_adaptive_card() {
    let c = guarded(SLACK);
    for event in [trip(&c, (40, 17, 12), (0, 0, 0)), Event::Rearmed] {
        let text = describe(guard(&c), &event, &who("n"));
        let body = json(Format::MsTeams, &c, &event, &who("n"), NOW);
        assert_eq!(body["type"], "message");
        // The summary (notifications) is the text's first 200 characters.
        let summary: String = text.chars().take(200).collect();
        assert_eq!(body["summary"].as_str().unwrap(), summary);
        let attachments = body["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1);
        let a = &attachments[0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["version"], "1.4");
        assert_eq!(
            a["content"]["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        let block = &a["content"]["body"][0];
        assert_eq!(block["type"], "TextBlock");
        assert_eq!(block["text"].as_str().unwrap(), text);
        assert_eq!(block["wrap"], true);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_github_body_is_a_repository_dispatch() {
    let c = guarded(RELATIVE);
    let event = trip(&c, (200, 60, 120), (200, 10, 100));
    let body = json(Format::Github, &c, &event, &who("node-1"), NOW);
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(body["event_type"], GITHUB_EVENT_TYPE);
    assert_eq!(GITHUB_EVENT_TYPE, "canary-router-tripped");
    let payload = body["client_payload"].as_object().unwrap();
    // GitHub refuses more than 10 top-level properties in client_payload.
    assert!(payload.len() <= 10, "{payload:?}");
    for key in [
        "policy",
        "variant",
        "baseline",
        "cause",
        "figures",
        "node",
        "config_fingerprint",
        "time",
    ] {
        assert!(payload.contains_key(key), "{key} in {payload:?}");
    }
    assert_eq!(payload["policy"], "p");
    assert_eq!(payload["variant"], "canary");
    assert_eq!(payload["baseline"], "stable");
    assert_eq!(payload["cause"], "failure_rate_increase");
    assert_eq!(payload["node"], "node-1");
    assert_eq!(payload["config_fingerprint"], "0123456789abcdef");
    assert_eq!(payload["time"], NOW);
    assert_eq!(payload["figures"]["variant"]["failures"], 60);
    assert_eq!(payload["figures"]["baseline"]["failures"], 10);
    // A long text is cut, the payload stays valid.
    let long = "\\".repeat(3000);
    let mut who = who("n");
    who.variant = &long;
    let body = json(Format::Github, &c, &event, &who, NOW);
    let payload = body["client_payload"].as_object().unwrap();
    assert!(payload.len() <= 10);
    assert_eq!(payload["variant"].as_str().unwrap(), long);
    if let Some(text) = payload.get("text") {
        assert!(text.as_str().unwrap().chars().count() <= 1000);
    }
    // The headers GitHub's API needs.
    let headers = default_headers(Format::Github);
    for name in ["accept", "user-agent", "x-github-api-version"] {
        assert!(
            headers.iter().any(|(n, v)| *n == name && !v.is_empty()),
            "{name}"
        );
    }
    for format in [
        Format::Slack,
        Format::MsTeams,
        Format::Discord,
        Format::Generic,
    ] {
        assert!(default_headers(format).is_empty(), "{format:?}");
    }
}

/// GitHub hears of final trips only (the event a GitOps workflow reverts on); the others of
/// every event.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn which_formats_hear_of_which_events() {
    let rearming = guarded(SLACK);
    let rearmable = trip(&rearming, (40, 17, 12), (0, 0, 0));
    assert!(matches!(
        rearmable,
        Event::Tripped {
            until_ms: Some(_),
            ..
        }
    ));
    let aborting = guarded(r#"{"variant":"canary","max_failure_rate":0.05}"#);
    let aborted = trip(&aborting, (40, 17, 12), (0, 0, 0));
    assert!(matches!(aborted, Event::Tripped { until_ms: None, .. }));
    let last =
        guarded(r#"{"variant":"canary","max_failure_rate":0.05,"on_trip":"rearm","max_trips":1}"#);
    let last_trip = trip(&last, (40, 17, 12), (0, 0, 0));
    assert!(matches!(last_trip, Event::Tripped { until_ms: None, .. }));
    // (event, slack, msteams, discord, generic, github)
    for (what, event, github) in [
        ("rearmable trip", &rearmable, false),
        ("abort", &aborted, true),
        ("last trip of a rearming guard", &last_trip, true),
        ("rearm", &Event::Rearmed, false),
    ] {
        for format in [
            Format::Slack,
            Format::MsTeams,
            Format::Discord,
            Format::Generic,
        ] {
            assert!(format.wants(event), "{format:?} {what}");
        }
        assert_eq!(Format::Github.wants(event), github, "{what}");
    }
    for (i, name) in Format::NAMES.iter().enumerate() {
        let f = Format::parse(name).unwrap();
        assert_eq!(f.as_str(), *name);
        assert_eq!(Format::NAMES.iter().position(|n| n == name), Some(i));
    }
    for bad in ["", "Slack", "teams", "webhook", "github "] {
        assert_eq!(Format::parse(bad), None, "{bad:?}");
    }
}

/// The text says how long the variant stays off: for the hold, or until the configuration
/// changes (an abort, or the last trip of a re-arming guard).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn texts_for_abort_and_rearm() {
    #[rustfmt::skip]
    let cases = [
        (r#"{"variant":"canary","max_failure_rate":0.05}"#,
         "its traffic goes to stable until the configuration changes.", "for "),
        (r#"{"variant":"canary","max_failure_rate":0.05,"on_trip":"rearm","hold_seconds":45,"max_trips":4}"#,
         "its traffic goes to stable for 45 s (trip 1 of at most 4).", "until the configuration changes"),
        (r#"{"variant":"canary","max_failure_rate":0.05,"on_trip":"rearm"}"#,
         "its traffic goes to stable for 300 s (trip 1 of at most 3).", "until the configuration changes"),
        (r#"{"variant":"canary","max_failure_rate":0.05,"on_trip":"rearm","max_trips":1}"#,
         "trip 1 of at most 1: its traffic goes to stable until the configuration changes.", " s (trip"),
    ];
    for (g, want, not) in cases {
        let c = guarded(g);
        let event = trip(&c, (40, 17, 12), (0, 0, 0));
        let text = describe(guard(&c), &event, &who("n"));
        assert!(
            text.starts_with("canary-router: guard tripped on policy p: canary "),
            "{text}"
        );
        assert!(text.contains(want), "{g}: {want:?} not in {text:?}");
        assert!(!text.contains(not), "{g}: {not:?} in {text:?}");
        assert!(text.ends_with(". Proxy: n"), "{text}");
        // Every format carries it.
        for format in [Format::Slack, Format::Generic, Format::Discord] {
            let b = json(format, &c, &event, &who("n"), NOW);
            let t = if format == Format::Discord {
                &b["content"]
            } else {
                &b["text"]
            };
            assert_eq!(t.as_str().unwrap(), text, "{format:?}");
        }
    }
    let c = guarded(SLACK);
    let text = describe(guard(&c), &Event::Rearmed, &who(""));
    assert_eq!(
        text,
        "canary-router: guard re-armed on policy p: canary gets its traffic again after 300 s on \
         stable. Proxy: (no node id)"
    );
}

/// Names with quotes, backslashes, control characters and non-ASCII stay valid JSON and come
/// back as they were in every format.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn names_are_quoted() {
    let c = guarded(RELATIVE);
    let event = trip(&c, (200, 60, 120), (200, 10, 100));
    let names = [
        "p\"1\"",
        "back\\slash",
        "line\nbreak\ttab\r",
        "nul\u{0}bell\u{7}del\u{7f}",
        "ünïcødé ✓ 🚀",
        "</script>",
        "",
    ];
    for name in names {
        let who = Subject {
            policy: name,
            variant: name,
            baseline: name,
            node: name,
            fingerprint: u64::MAX,
        };
        for event in [&event, &Event::Rearmed] {
            for format in [
                Format::Slack,
                Format::MsTeams,
                Format::Discord,
                Format::Generic,
                Format::Github,
            ] {
                let b = json(format, &c, event, &who, -1);
                let text = describe(guard(&c), event, &who);
                match format {
                    Format::Slack | Format::Generic => {
                        for key in ["policy", "variant", "baseline", "node"] {
                            assert_eq!(b[key], name, "{format:?} {key}");
                        }
                        assert_eq!(b["text"], text.as_str());
                        assert_eq!(b["time"], -1);
                    }
                    Format::Github => {
                        let p = &b["client_payload"];
                        for key in ["policy", "variant", "baseline", "node"] {
                            assert_eq!(p[key], name, "{format:?} {key}");
                        }
                        assert_eq!(p["config_fingerprint"], "ffffffffffffffff");
                    }
                    Format::Discord => assert_eq!(b["content"], text.as_str()),
                    Format::MsTeams => assert_eq!(
                        b["attachments"][0]["content"]["body"][0]["text"],
                        text.as_str()
                    ),
                }
            }
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn references_and_expansion() {
    let vars = [
        ("A", "1"),
        ("TOKEN", "t0k"),
        ("_x9", "x"),
        ("EMPTY", ""),
        ("D", "$"),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    // (text, references, expanded)
    #[rustfmt::skip]
    let cases: Vec<(&str, &[&str], &str)> = vec![
        ("", &[], ""),
        ("/plain/path", &[], "/plain/path"),
        ("$A {A} $ { } }$", &[], ""),
        ("${A}", &["A"], "1"),
        ("Bearer ${TOKEN}", &["TOKEN"], "Bearer t0k"),
        ("${A}${A}", &["A", "A"], "11"),
        ("x${A}y${TOKEN}z", &["A", "TOKEN"], "x1yt0kz"),
        ("${_x9}", &["_x9"], "x"),
        ("[${EMPTY}]", &["EMPTY"], "[]"),
        ("$${A}", &["A"], "$1"),
        ("${A}}", &["A"], "1}"),
        ("$ {A}", &[], "$ {A}"),
        // A value is not expanded again.
        ("${D}{A}", &["D"], "${A}"),
        ("é${A}ü", &["A"], "é1ü"),
    ];
    for (text, names, expanded) in cases {
        if text.contains("${") {
            assert_eq!(references(text).unwrap(), names, "{text:?}");
            assert_eq!(expand(text, lookup).unwrap(), expanded, "{text:?}");
        } else {
            assert_eq!(references(text).unwrap(), Vec::<&str>::new(), "{text:?}");
            assert_eq!(expand(text, lookup).unwrap(), text, "{text:?}");
        }
    }
    // (text, part of the problem), for both functions.
    #[rustfmt::skip]
    let bad = [
        ("${}", "names the environment variable \"\""),
        ("${1X}", "names the environment variable \"1X\""),
        ("${A B}", "names the environment variable \"A B\""),
        ("${A-B}", "\"A-B\": use letters, digits and '_'"),
        ("${é}", "\"é\""),
        ("${A${B}}", "\"A${B\""),
        ("${\"}", "\"\\\"\""),
        ("${", "has \"${\" without a closing \"}\""),
        ("Bearer ${TOKEN", "without a closing"),
        ("${A}${", "without a closing"),
        ("${A} ${}", "names the environment variable \"\""),
    ];
    for (text, problem) in bad {
        let e = references(text).unwrap_err();
        assert!(e.contains(problem), "{text:?}: {e}");
        let e = expand(text, lookup).unwrap_err();
        assert!(e.contains(problem), "{text:?}: {e}");
    }
    // Unset variables: an error from expand only (references lists them).
    assert_eq!(references("${NOPE}").unwrap(), ["NOPE"]);
    let e = expand("a ${A} ${NOPE}", lookup).unwrap_err();
    assert!(
        e.starts_with("names the environment variable NOPE, which the Wasm VM does not have"),
        "{e}"
    );
    assert!(expand("${a}", lookup).is_err(), "names are case-sensitive");
}
