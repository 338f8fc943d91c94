//! A compiled guard (its limits, hold, trips and receivers) and the judgement of a window
//! against its limits.

use super::outcomes::{Outcomes, Pending, LATENCY_BOUNDS_MS};
use super::receivers::Receiver;

/// Most slices a window is kept in; longer windows use slices of several seconds.
pub const MAX_SLICES: u32 = 60;
/// Longest window accepted, in seconds.
pub const MAX_WINDOW_SECONDS: u64 = 3600;

/// What a guard does after a trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTrip {
    /// The variant stays off (and a ramp of its policy stops) until the configuration changes.
    Abort,
    /// The variant gets its traffic again after `hold_seconds`, up to `max_trips` trips; the
    /// last one aborts.
    Rearm,
}

impl OnTrip {
    pub fn as_str(self) -> &'static str {
        match self {
            OnTrip::Abort => "abort",
            OnTrip::Rearm => "rearm",
        }
    }
}

/// A compiled guard of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The guarded variant and where its traffic goes while tripped.
    pub(crate) variant: usize,
    pub(crate) baseline: usize,
    pub(crate) window_seconds: u32,
    pub(crate) min_requests: u32,
    /// Failure rate limit in parts per million.
    pub(crate) max_failure_ppm: Option<u32>,
    pub(crate) max_p99_ms: Option<u32>,
    /// Largest tolerated excess of the variant's failure rate over the baseline's, in parts
    /// per million (judged with [`crate::significance`]).
    pub(crate) max_increase_ppm: Option<u32>,
    /// Largest tolerated ratio of the variant's p99 to the baseline's, in thousandths.
    pub(crate) max_p99_ratio_milli: Option<u32>,
    pub(crate) on_trip: OnTrip,
    pub(crate) hold_seconds: u32,
    /// Trips (counted per configuration) after which a re-arming guard aborts.
    pub(crate) max_trips: u32,
    pub(crate) receivers: Vec<Receiver>,
}

impl Guard {
    pub fn variant(&self) -> usize {
        self.variant
    }

    pub fn baseline(&self) -> usize {
        self.baseline
    }

    pub fn min_requests(&self) -> u32 {
        self.min_requests
    }

    pub fn window_seconds(&self) -> u32 {
        self.window_seconds
    }

    pub fn hold_seconds(&self) -> u32 {
        self.hold_seconds
    }

    pub fn on_trip(&self) -> OnTrip {
        self.on_trip
    }

    pub fn max_trips(&self) -> u32 {
        self.max_trips
    }

    pub fn max_p99_ms(&self) -> Option<u32> {
        self.max_p99_ms
    }

    pub fn receivers(&self) -> &[Receiver] {
        &self.receivers
    }

    /// Whether a limit compares with the baseline (its outcomes are then counted too).
    pub fn relative(&self) -> bool {
        self.max_increase_ppm.is_some() || self.max_p99_ratio_milli.is_some()
    }

    /// Whether the outcomes of `variant`'s requests are counted: the guarded variant's, and
    /// the baseline's when a limit compares with it.
    pub fn counts(&self, variant: usize) -> bool {
        variant == self.variant || (variant == self.baseline && self.relative())
    }

    /// Milliseconds per slice of the window and the number of slices.
    pub(super) fn slices(&self) -> (i64, usize) {
        let w = self.window_seconds.max(1);
        let width = w.div_ceil(MAX_SLICES);
        (i64::from(width) * 1000, w.div_ceil(width) as usize)
    }
}

impl Guard {
    /// Records one finished request of `variant` in a worker's pending outcomes (nothing when
    /// the guard does not count that variant).
    pub fn record(
        &self,
        pending: &mut Pending,
        variant: usize,
        failed: bool,
        latency_ms: Option<u64>,
    ) {
        let o = if variant == self.variant {
            &mut pending.variant
        } else if variant == self.baseline && self.relative() {
            &mut pending.baseline
        } else {
            return;
        };
        o.total = o.total.saturating_add(1);
        if failed {
            o.failures = o.failures.saturating_add(1);
        }
        if let Some(ms) = latency_ms {
            o.timed = o.timed.saturating_add(1);
            if self.max_p99_ms.is_some_and(|max| ms > u64::from(max)) {
                o.slow = o.slow.saturating_add(1);
            }
            let i = LATENCY_BOUNDS_MS
                .iter()
                .position(|b| ms <= u64::from(*b))
                .unwrap_or(LATENCY_BOUNDS_MS.len());
            if let Some(c) = o.latency.get_mut(i) {
                *c = c.saturating_add(1);
            }
        }
    }

    /// The limit the window breaks, if any: `variant` and `baseline` are the two variants'
    /// outcomes over the window.
    pub fn judge(&self, variant: &Outcomes, baseline: &Outcomes) -> Option<Cause> {
        let min = self.min_requests;
        if variant.total < min {
            return None;
        }
        if self
            .max_failure_ppm
            .is_some_and(|max| variant.failure_ppm() > max)
        {
            return Some(Cause::FailureRate);
        }
        if self.max_p99_ms.is_some() && u64::from(variant.slow) * 100 > u64::from(variant.timed) {
            // More than 1 % of the responses slower than the limit: the p99 is above it.
            return Some(Cause::P99);
        }
        if baseline.total < min {
            return None;
        }
        if let Some(margin) = self.max_increase_ppm {
            if crate::significance::failure_rate_increase_exceeds(
                variant.failures,
                variant.total,
                baseline.failures,
                baseline.total,
                margin,
            ) {
                return Some(Cause::FailureRateIncrease);
            }
        }
        if let Some(ratio) = self.max_p99_ratio_milli {
            if variant.timed >= min && baseline.timed >= min {
                if let (Some(v), Some(b)) = (variant.p99_ms(), baseline.p99_ms()) {
                    // The histogram's first bucket is 0 to 1 ms: a baseline estimated below
                    // 1 ms is compared as 1 ms, not as 0 (which every variant would exceed).
                    if v * 1000 > b.max(1) * u64::from(ratio) {
                        return Some(Cause::P99Ratio);
                    }
                }
            }
        }
        None
    }
}

/// What made a guard trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    FailureRate,
    P99,
    FailureRateIncrease,
    P99Ratio,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::FailureRate => "failure_rate",
            Cause::P99 => "p99",
            Cause::FailureRateIncrease => "failure_rate_increase",
            Cause::P99Ratio => "p99_ratio",
        }
    }
}

/// A guard's state as a worker last read it, for [`crate::Config::splits_in_force`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardView {
    /// The variant's traffic goes to the baseline.
    pub tripped: bool,
    /// Unix seconds of the first trip under this configuration: the policy's ramp stays where
    /// it stood then.
    pub ramp_stopped_at: Option<i64>,
}
