//! The failure-rate-increase judge: edge cases (empty windows, all failures, margins 0 and 100 %,
//! counts near `u32::MAX`), the trip thresholds, monotonicity, the exact false-trip and detection
//! probabilities of the documented grid cells (golden, computed with exact binomial sums), and
//! seeded simulated windows drawn request by request.

use crate::significance::{failure_rate_increase_exceeds, CRITICAL_Z};
use crate::{Random, SplitMix64};

/// 5 percentage points, the margin of the documented figures.
const MARGIN: u32 = 50_000;

/// (variant failures, variant total, baseline failures, baseline total, margin ppm, trips)
type Case = (u32, u32, u32, u32, u32, bool);

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn edge_cases() {
    const MAX: u32 = u32::MAX;
    // A quarter, 5 points and 0.1 point of u32::MAX.
    const Q: u32 = MAX / 4;
    const D: u32 = MAX / 20;
    const E: u32 = MAX / 1000;
    let cases: [Case; 26] = [
        // An empty window on either side never trips.
        (0, 0, 0, 0, 0, false),
        (0, 0, 0, 200, 0, false),
        (200, 200, 0, 0, 0, false),
        (MAX, 0, 0, MAX, 0, false),
        // All failures against none.
        (200, 200, 0, 200, MARGIN, true),
        (20, 20, 0, 20, MARGIN, true),
        (5, 5, 0, 5, MARGIN, true),
        // One failed request alone is not evidence.
        (1, 1, 0, 1, MARGIN, false),
        (1, 1, 0, 1, 0, false),
        // Both failing everything, or nothing: no increase.
        (200, 200, 200, 200, 0, false),
        (0, 200, 0, 200, 0, false),
        (MAX, MAX, MAX, MAX, 0, false),
        // Margin 0: any significant increase.
        (21, 200, 10, 200, 0, true),
        (20, 200, 10, 200, 0, false),
        // A margin of 100 % (or more) never trips, even with every request failing.
        (200, 200, 0, 200, 1_000_000, false),
        (MAX, MAX, 0, MAX, 1_000_000, false),
        (MAX, MAX, 0, MAX, MAX, false),
        // Failures above the total count as the total.
        (300, 200, 0, 200, MARGIN, true),
        (MAX, 1, 0, 1, MARGIN, false),
        // Counts near u32::MAX: the rates are known precisely, so the margin decides.
        (MAX / 2, MAX, Q, MAX, MARGIN, true),
        (Q + D + E, MAX, Q, MAX, MARGIN, true),
        (Q + D - E, MAX, Q, MAX, MARGIN, false),
        (Q + D, MAX, Q, MAX, MARGIN, false),
        (MAX, MAX, 0, MAX, 999_999, true),
        // The naive judge would trip here: 25 % against 19.5 % is 5.5 points observed.
        (50, 200, 39, 200, MARGIN, false),
        // Unequal windows: a canary with a tenth of the baseline's traffic.
        (12, 100, 10, 1000, MARGIN, true),
    ];
    for (vf, vt, bf, bt, margin, trips) in cases {
        assert_eq!(
            failure_rate_increase_exceeds(vf, vt, bf, bt, margin),
            trips,
            "{vf}/{vt} against {bf}/{bt}, margin {margin} ppm"
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn first_failure_count_that_trips() {
    // (variant total, baseline failures, baseline total, margin ppm, the fewest variant
    // failures that trip)
    let cases: [(u32, u32, u32, u32, u32); 9] = [
        (5, 0, 5, MARGIN, 4),
        (20, 1, 20, MARGIN, 8),
        (20, 4, 20, MARGIN, 12),
        (200, 10, 200, 0, 21),
        (200, 20, 200, MARGIN, 45),
        (200, 40, 200, MARGIN, 68),
        (2000, 400, 2000, MARGIN, 553),
        (100, 10, 1000, MARGIN, 12),
        (1000, 100, 9000, MARGIN, 78),
    ];
    for (vt, bf, bt, margin, first) in cases {
        let found = (0..=vt).find(|&vf| failure_rate_increase_exceeds(vf, vt, bf, bt, margin));
        assert_eq!(
            found,
            Some(first),
            "{vt} against {bf}/{bt}, margin {margin}"
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn more_variant_failures_or_fewer_baseline_failures_never_untrip() {
    for margin in [0, MARGIN, 200_000] {
        for vt in 1..=24 {
            for bt in 1..=24 {
                for vf in 0..=vt {
                    for bf in 0..=bt {
                        if !failure_rate_increase_exceeds(vf, vt, bf, bt, margin) {
                            continue;
                        }
                        // vt + 1 failures count as vt.
                        let worse = failure_rate_increase_exceeds(vf + 1, vt, bf, bt, margin);
                        let better_baseline =
                            bf == 0 || failure_rate_increase_exceeds(vf, vt, bf - 1, bt, margin);
                        assert!(worse && better_baseline, "{vf}/{vt} {bf}/{bt} {margin}");
                    }
                }
            }
        }
    }
}

/// The binomial distribution's terms `(k, P(X = k))` above 1e-300, by the ratio recurrence in
/// log space (no factorials).
fn binomial(n: u32, p: f64) -> Vec<(u32, f64)> {
    if p <= 0.0 {
        return vec![(0, 1.0)];
    }
    let odds = (p / (1.0 - p)).ln();
    let mut log = f64::from(n) * (1.0 - p).ln();
    let mut terms = Vec::new();
    for k in 0..=n {
        let pk = log.exp();
        if pk > 1e-300 {
            terms.push((k, pk));
        }
        log += (f64::from(n - k) / f64::from(k + 1)).ln() + odds;
    }
    terms
}

/// The exact probability that a window trips: `n` requests each, the variant failing with
/// probability `p_variant`, the baseline with `p_baseline`.
fn exact_trip_rate(p_variant: f64, p_baseline: f64, n: u32, margin: u32) -> f64 {
    let variant = binomial(n, p_variant);
    let baseline = binomial(n, p_baseline);
    let mut total = 0.0;
    for &(bf, pb) in &baseline {
        // The variant counts that trip are those from the first one up (monotone).
        let tail: f64 = variant
            .iter()
            .skip_while(|&&(vf, _)| !failure_rate_increase_exceeds(vf, n, bf, n, margin))
            .map(|&(_, pv)| pv)
            .sum();
        total += pb * tail;
    }
    total
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn exact_false_trip_and_detection_rates() {
    assert_eq!(CRITICAL_Z, 1.96);
    // Golden: (variant rate, baseline rate, requests each, exact trip probability), the same
    // figures as an independent exact computation (Python, exact binomial sums).
    let cells: [(f64, f64, u32, f64); 10] = [
        (0.01, 0.01, 20, 2.810_855_726e-8),
        (0.01, 0.01, 200, 4.334_767_961e-14),
        (0.01, 0.01, 2000, 3.146_476_343e-62),
        (0.05, 0.05, 20, 1.191_634_572e-4),
        (0.05, 0.05, 200, 3.842_243_227e-6),
        (0.05, 0.05, 2000, 1.223_521_606e-20),
        (0.20, 0.20, 20, 6.034_769_498e-3),
        (0.20, 0.20, 200, 6.069_448_048e-4),
        (0.20, 0.20, 2000, 1.638_026_365e-9),
        (0.25, 0.05, 200, 9.933_379_406e-1),
    ];
    for (pv, pb, n, expected) in cells {
        let rate = exact_trip_rate(pv, pb, n, MARGIN);
        assert!(
            (rate - expected).abs() <= expected * 1e-6,
            "{pv} against {pb}, {n} each: {rate:e}, expected {expected:e}"
        );
        if pv == pb {
            assert!(rate <= 0.0061, "false trips {pv}, {n}: {rate}");
        } else {
            assert!(rate >= 0.993, "detection {pv} against {pb}, {n}: {rate}");
        }
    }
}

/// Failures among `n` requests that each fail with probability `p`: `n` Bernoulli draws.
fn failures(rng: &mut SplitMix64, n: u32, p: f64) -> u32 {
    // P(next_u64() < threshold) = threshold / 2^64 = p.
    let threshold = (p * 18_446_744_073_709_551_616.0) as u64;
    (0..n).filter(|_| rng.next_u64() < threshold).count() as u32
}

/// How many of `windows` simulated windows trip, `n` requests each side.
fn simulated_trips(seed: u64, p_variant: f64, p_baseline: f64, n: u32, windows: u32) -> u32 {
    let mut rng = SplitMix64::new(seed);
    (0..windows)
        .filter(|_| {
            let vf = failures(&mut rng, n, p_variant);
            let bf = failures(&mut rng, n, p_baseline);
            failure_rate_increase_exceeds(vf, n, bf, n, MARGIN)
        })
        .count() as u32
}

/// Windows per simulated cell: many where a window is cheap, so that the 1 % limits are several
/// standard deviations from the exact rates (0.60 % false trips and 0.67 % missed detections at
/// worst: with 10 000 windows, 60 and 67 expected against a limit of 100); 2000 windows of 2000
/// requests, where the exact false-trip rates are below 2e-9.
fn windows_for(n: u32) -> u32 {
    if n <= 200 {
        10_000
    } else {
        2_000
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn simulated_windows_rarely_trip_at_equal_rates() {
    for (i, p) in [0.01, 0.05, 0.20].into_iter().enumerate() {
        for (j, n) in [20, 200, 2000].into_iter().enumerate() {
            let windows = windows_for(n);
            let trips = simulated_trips(1 + (i * 3 + j) as u64, p, p, n, windows);
            assert!(
                trips * 100 <= windows,
                "{p} each, {n} requests: {trips} of {windows} windows tripped"
            );
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn simulated_windows_detect_25_percent_against_5() {
    let windows = windows_for(200);
    let trips = simulated_trips(42, 0.25, 0.05, 200, windows);
    assert!(
        (windows - trips) * 100 <= windows,
        "25 % against 5 %, 200 requests: {trips} of {windows} windows tripped"
    );
}

/// Prints the tables of `docs/guard-statistics.md`: exact trip rates for margin 0.05:
/// `cargo test -p canary-router --release significance -- --ignored --nocapture`.
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore]
fn print_detection_grid() {
    const BASES: [f64; 4] = [0.01, 0.05, 0.10, 0.20];
    const SIZES: [u32; 5] = [20, 50, 200, 1000, 2000];
    fn percent(rate: f64) -> String {
        let pct = rate * 100.0;
        if pct < 0.01 {
            "< 0.01 %".to_string()
        } else if pct >= 99.995 {
            "> 99.99 %".to_string()
        } else {
            format!("{pct:.2} %")
        }
    }
    let header = |first: &[&str]| {
        let sizes: Vec<String> = SIZES.iter().map(|n| format!("n = {n}")).collect();
        println!("| {} | {} |", first.join(" | "), sizes.join(" | "));
        println!(
            "|{}{}",
            "---|".repeat(first.len()),
            "---:|".repeat(SIZES.len())
        );
    };
    println!("False trips, both variants at the same rate (margin 0.05, n requests each):\n");
    header(&["failure rate"]);
    for base in BASES {
        let cells: Vec<String> = SIZES
            .iter()
            .map(|&n| percent(exact_trip_rate(base, base, n, MARGIN)))
            .collect();
        println!("| {:.0} % | {} |", base * 100.0, cells.join(" | "));
    }
    println!("\nDetection, the canary worse by an increase (margin 0.05, n requests each):\n");
    header(&["baseline", "canary"]);
    for base in BASES {
        for increase in [0.05, 0.10, 0.20] {
            let cells: Vec<String> = SIZES
                .iter()
                .map(|&n| percent(exact_trip_rate(base + increase, base, n, MARGIN)))
                .collect();
            println!(
                "| {:.0} % | {:.0} % (+{:.0}) | {} |",
                base * 100.0,
                (base + increase) * 100.0,
                increase * 100.0,
                cells.join(" | ")
            );
        }
    }
}
