//! Native cost of one decision of the core (`Config::decide`), without Envoy or Wasm.
//!
//! `cargo bench --bench decide` (add `-- --quick` for a short run). No benchmark framework: each
//! case is timed in batches with `std::time::Instant`, inputs and outputs go through
//! `std::hint::black_box`, and the median batch gives ns per decision. Each case prints one
//! human-readable line and one machine-readable line starting with `BENCH ` (JSON), which
//! `scripts/bench/bench.py` reads.
//!
//! The configurations are those of `scripts/bench/configs.py`: the typical policy (10/90, sticky
//! by header then cookie, a minted cookie, three rules), the same policy 1 and 1000 times selected
//! by host, and one policy with 50 rules none of which holds. Every request carries
//! `x-user-id: alice` (bucket 9826: stable) except the one that mints a cookie.

#![allow(clippy::indexing_slicing)] // A benchmark: a bad index is a bug to see at once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use canary_router::{Config, SimpleRequest, SplitMix64};

const VARIANTS: &str = r#"[{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}]"#;
const STICKY: &str = r#"{"keys": [{"header": "x-user-id"}, {"cookie": "session"}],
    "cookie": {"name": "canary-id", "max_age": 86400, "path": "/", "http_only": true,
               "same_site": "Lax"}}"#;
const RULES: &str = r#"[
    {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]},
    {"variant": "stable", "match": [{"cookie": "ab", "exact": "never"}]},
    {"variant": "canary", "match": [{"query": "variant", "exact": "canary"}]}]"#;

fn host(i: usize) -> String {
    format!("svc-{i:04}.example.com")
}

fn policy(name: &str, hosts: Option<&str>, rules: &str) -> String {
    let hosts = hosts
        .map(|h| format!(r#""hosts": ["{h}"], "#))
        .unwrap_or_default();
    format!(
        r#"{{"name": "{name}", {hosts}"salt": "reviews", "variants": {VARIANTS},
            "sticky": {STICKY}, "rules": {rules}}}"#
    )
}

fn config(policies: &[String]) -> Config {
    let json = format!(
        r#"{{"variant_header": "x-canary-variant", "policies": [{}]}}"#,
        policies.join(",")
    );
    match Config::from_json(json.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("benchmark configuration refused: {e:?}");
            std::process::exit(1);
        }
    }
}

fn typical() -> Config {
    config(&[policy("reviews", None, RULES)])
}

fn host_policies(n: usize) -> Config {
    let policies: Vec<String> = (0..n)
        .map(|i| policy(&format!("svc-{i:04}"), Some(&host(i)), RULES))
        .collect();
    config(&policies)
}

/// 50 rules that do not hold for the benchmark request (the mix of `scripts/bench/configs.py`).
fn fifty_rules() -> Config {
    let rules: Vec<String> = (0..50)
        .map(|i| {
            let cond = match i % 10 {
                0 => format!(r#"{{"header": "x-user-id", "exact": "bob-{i}"}}"#),
                1 => format!(r#"{{"header": "x-user-id", "prefix": "bob-{i}"}}"#),
                2 => format!(r#"{{"header": "x-user-id", "contains": "zz{i}"}}"#),
                3 => format!(r#"{{"header": "x-user-id", "regex": "user-{i}-[0-9]+"}}"#),
                4 => format!(r#"{{"header": "x-flag-{i}", "exact": "on"}}"#),
                5 => format!(r#"{{"cookie": "ab{i}", "exact": "b"}}"#),
                6 => format!(r#"{{"cookie": "exp{i}", "prefix": "grp-"}}"#),
                7 => format!(r#"{{"query": "variant{i}", "exact": "canary"}}"#),
                8 => format!(r#"{{"query": "exp{i}", "contains": "beta"}}"#),
                _ => format!(r#"{{"header": "x-user-id", "suffix": "-{i}x"}}"#),
            };
            let variant = if i % 2 == 0 { "canary" } else { "stable" };
            format!(r#"{{"variant": "{variant}", "match": [{cond}]}}"#)
        })
        .collect();
    config(&[policy("reviews", None, &format!("[{}]", rules.join(",")))])
}

struct Case {
    name: &'static str,
    what: &'static str,
    config: Config,
    request: SimpleRequest,
    /// Expected (variant, reason): a benchmark of the wrong path is worse than none.
    expect: (&'static str, &'static str),
}

/// Decides once and returns (variant, reason) names.
fn decide_names(case: &Case, rng: &mut SplitMix64) -> Option<(String, String)> {
    let d = case.config.decide(&case.request, rng)?;
    let policy = case.config.policies().get(d.policy)?;
    let variant = policy.variants().get(d.variant)?;
    Some((variant.name().to_string(), d.reason.as_str().to_string()))
}

/// Median and minimum ns per decision over `batches` batches of `per_batch` decisions.
fn measure(case: &Case, batches: usize, per_batch: u64) -> (f64, f64) {
    let mut rng = SplitMix64::new(42);
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..per_batch {
            let d = black_box(&case.config).decide(black_box(&case.request), &mut rng);
            black_box(d);
        }
        samples.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[0])
}

fn main() {
    // `cargo bench` passes `--bench`; `-- --quick` (or DECIDE_BENCH_QUICK=1) shortens the run.
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("DECIDE_BENCH_QUICK").is_some_and(|v| v != "0");
    let (batch_time, batches) = if quick {
        (Duration::from_millis(5), 15)
    } else {
        (Duration::from_millis(20), 50)
    };

    let alice = |h: &str| SimpleRequest::new(h, "/").header("x-user-id", "alice");
    let cases = [
        Case {
            name: "typical",
            what: "typical config, x-user-id: alice (sticky key)",
            config: typical(),
            request: alice(&host(0)),
            expect: ("stable", "sticky_key"),
        },
        Case {
            name: "mint-cookie",
            what: "typical config, no key: mints a sticky cookie",
            config: typical(),
            request: SimpleRequest::new(&host(0), "/"),
            expect: ("", "minted_cookie"),
        },
        Case {
            name: "policies-1",
            what: "1 host-matched policy",
            config: host_policies(1),
            request: alice(&host(0)),
            expect: ("stable", "sticky_key"),
        },
        Case {
            name: "policies-1000",
            what: "1000 host-matched policies, the middle one applies",
            config: host_policies(1000),
            request: alice(&host(500)),
            expect: ("stable", "sticky_key"),
        },
        Case {
            name: "rules-50",
            what: "one policy with 50 rules, none holds",
            config: fifty_rules(),
            request: alice(&host(0)),
            expect: ("stable", "sticky_key"),
        },
    ];

    for case in &cases {
        let mut rng = SplitMix64::new(7);
        let Some((variant, reason)) = decide_names(case, &mut rng) else {
            eprintln!("{}: no decision", case.name);
            std::process::exit(1);
        };
        if reason != case.expect.1 || (!case.expect.0.is_empty() && variant != case.expect.0) {
            eprintln!(
                "{}: decided {variant}/{reason}, expected {}/{}",
                case.name, case.expect.0, case.expect.1
            );
            std::process::exit(1);
        }
        // Calibrate: decisions per batch so that one batch takes about `batch_time`.
        let mut per_batch = 1u64;
        loop {
            let start = Instant::now();
            let mut r = SplitMix64::new(1);
            for _ in 0..per_batch {
                black_box(black_box(&case.config).decide(black_box(&case.request), &mut r));
            }
            if start.elapsed() >= batch_time / 4 || per_batch >= 1 << 30 {
                let ns = start.elapsed().as_nanos().max(1) as f64 / per_batch as f64;
                per_batch = ((batch_time.as_nanos() as f64 / ns) as u64).max(1);
                break;
            }
            per_batch *= 2;
        }
        let (median, min) = measure(case, batches, per_batch);
        println!(
            "{:<14} {:>9.1} ns/decision (min {:>8.1})  {variant}/{reason}  {}",
            case.name, median, min, case.what
        );
        println!(
            "BENCH {{\"name\":\"{}\",\"what\":\"{}\",\"ns_per_decision\":{:.2},\"min_ns\":{:.2},\
             \"batches\":{},\"per_batch\":{},\"variant\":\"{}\",\"reason\":\"{}\"}}",
            case.name, case.what, median, min, batches, per_batch, variant, reason
        );
    }
}
