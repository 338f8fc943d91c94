//! Whether the guarded variant fails more often than its baseline by more than a margin, judged
//! on the counts of one window (the guard's `max_failure_rate_increase`).
//!
//! Why this method: comparing the observed rates directly trips on noise (both variants at
//! 20 %, 200 requests each: the observed difference exceeds 5 points in 10.3 % of windows; at
//! 20 requests each, 32 %), so the guard trips only when a one-sided test rejects
//! H0: p_variant - p_baseline <= margin. The test is the Agresti–Caffo adjusted Wald interval
//! (A. Agresti and B. Caffo, "Simple and effective confidence intervals for proportions and
//! differences of proportions result from adding two successes and two failures", The American
//! Statistician 54(4), 2000, pp. 280–288): add one failure and one success to each variant, and
//! trip when the lower bound of the two-sided 95 % interval (z = 1.96, one-sided level 2.5 %,
//! the usual non-inferiority convention) is above the margin. It stays sensible at the small
//! counts of a short window (no zero variance with 0 or all failures; the paper shows coverage
//! near nominal even for small samples) and costs one square root. Exact binomial sums (both variants at
//! the same true rate, margin 0.05, the same number of requests each) give a false-trip
//! probability per window of 0.60 % at 20 % and 20 requests (the worst cell), 0.061 % at 20 % and
//! 200, 1.6e-9 at 20 % and 2000, 0.012 % at 5 % and 20, 3.8e-6 at 5 % and 200, 2.8e-8 at 1 % and
//! 20, and below 1e-13 in the other cells; a canary at 25 % against a baseline at 5 %, 200
//! requests each, trips in 99.33 % of windows. The alternatives compared at the same z do worse
//! at the worst cell: the Farrington–Manning score test and the plain Wald test 1.13 %,
//! Newcombe's hybrid score interval 0.61 % (detection 99.40 %). The full tables are in
//! `docs/guard-statistics.md`.

/// The critical value of the one-sided test: the 97.5 % standard normal quantile (the lower
/// bound of a two-sided 95 % interval, one-sided level 2.5 % at the margin itself). Measured
/// with exact binomial sums, margin 0.05: at most 0.60 % of windows trip when both variants fail
/// at the same rate (1 %, 5 % or 20 %; 20, 200 or 2000 requests each), and 99.33 % trip for a
/// canary at 25 % against a baseline at 5 % with 200 requests each.
pub const CRITICAL_Z: f64 = 1.96;

/// Whether one window's counts give significant evidence that the variant's failure rate
/// exceeds the baseline's by more than `margin_ppm` parts per million (0.05 = 5 points is
/// `50_000`): a one-sided Agresti–Caffo test of H0: p_variant - p_baseline <= margin at the
/// critical value [`CRITICAL_Z`].
///
/// With `p~ = (failures + 1) / (total + 2)` for each variant, it trips when
/// `p~_variant - p~_baseline - margin > CRITICAL_Z * sqrt(p~_v (1 - p~_v) / (n_v + 2) +
/// p~_b (1 - p~_b) / (n_b + 2))`. Measured false-trip rate (exact, margin 0.05, equal true rates
/// of 1 %, 5 % or 20 % with 20, 200 or 2000 requests each): at most 0.60 % of windows, at 20 %
/// with 20 requests; detection of 25 % against 5 % with 200 requests each: 99.33 %.
///
/// Never trips when either total is 0 or when the margin is 100 % or more (`1_000_000`).
/// Failures above the total count as the total. Pure and deterministic (IEEE `f64`, the same
/// answer natively and on wasm32), with no overflow up to `u32::MAX` requests.
pub fn failure_rate_increase_exceeds(
    variant_failures: u32,
    variant_total: u32,
    baseline_failures: u32,
    baseline_total: u32,
    margin_ppm: u32,
) -> bool {
    if variant_total == 0 || baseline_total == 0 {
        return false;
    }
    let margin = f64::from(margin_ppm.min(1_000_000)) / 1_000_000.0;
    let (p_variant, n_variant) = adjusted(variant_failures, variant_total);
    let (p_baseline, n_baseline) = adjusted(baseline_failures, baseline_total);
    let excess = p_variant - p_baseline - margin;
    if excess <= 0.0 {
        return false;
    }
    let variance =
        p_variant * (1.0 - p_variant) / n_variant + p_baseline * (1.0 - p_baseline) / n_baseline;
    excess > CRITICAL_Z * variance.sqrt()
}

/// The Agresti–Caffo adjusted rate and count: one failure and one success added.
fn adjusted(failures: u32, total: u32) -> (f64, f64) {
    let n = f64::from(total) + 2.0;
    ((f64::from(failures.min(total)) + 1.0) / n, n)
}
