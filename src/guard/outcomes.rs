//! What a guard counts: the outcome of each request (failure, latency bucket), per worker
//! until merged and per slice of the window.

/// Latency histogram: upper bounds of its buckets in milliseconds; the last bucket is
/// unbounded. Used to report the p99 (interpolated within its bucket); the trip on
/// `max_p99_ms` itself counts exactly the requests slower than the limit.
pub const LATENCY_BOUNDS_MS: [u32; 43] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400,
    500, 600, 800, 1_000, 1_200, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000,
    12_000, 15_000, 20_000, 30_000, 60_000,
];
pub(crate) const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// gRPC statuses that are the caller's business, not a failure of the server (by name, as in
/// [`crate::stats::GRPC_STATUS_NAMES`]).
pub const GRPC_NOT_FAILURES: [&str; 8] = [
    "OK",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
];

/// Whether a request's outcome is a failure: no response at all (reset, timeout before the
/// headers), an HTTP 5xx, or a gRPC status outside [`GRPC_NOT_FAILURES`]. `grpc_status` is
/// `None` for a response that is not gRPC.
pub fn is_failure(status: Option<u16>, grpc_status: Option<&str>) -> bool {
    match status {
        None => true,
        Some(s) if (500..600).contains(&s) => true,
        Some(_) => grpc_status.is_some_and(|g| !GRPC_NOT_FAILURES.contains(&g)),
    }
}

/// A worker's outcomes not yet merged into the shared window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub variant: Outcomes,
    /// The baseline's, counted only when a limit compares with it.
    pub baseline: Outcomes,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.variant.is_empty() && self.baseline.is_empty()
    }
}

/// Outcomes of the guarded variant's requests: a worker's pending counts, or one slice of a
/// window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcomes {
    /// Requests that ended.
    pub total: u32,
    pub failures: u32,
    /// Requests with a response (their latency is known).
    pub timed: u32,
    /// Responses slower than `max_p99_ms`.
    pub slow: u32,
    /// Responses by latency bucket ([`LATENCY_BOUNDS_MS`]).
    pub latency: [u32; LATENCY_BUCKETS],
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes {
            total: 0,
            failures: 0,
            timed: 0,
            slow: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl Outcomes {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub(super) fn add(&mut self, o: &Outcomes) {
        self.total = self.total.saturating_add(o.total);
        self.failures = self.failures.saturating_add(o.failures);
        self.timed = self.timed.saturating_add(o.timed);
        self.slow = self.slow.saturating_add(o.slow);
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            *a = a.saturating_add(*b);
        }
    }

    /// Failure rate in parts per million (0 without requests).
    pub fn failure_ppm(&self) -> u32 {
        ratio_ppm(self.failures, self.total)
    }

    /// The 99th percentile latency in milliseconds, interpolated in its histogram bucket;
    /// `None` without responses.
    pub fn p99_ms(&self) -> Option<u64> {
        let n: u64 = self.latency.iter().map(|c| u64::from(*c)).sum();
        if n == 0 {
            return None;
        }
        // Nearest rank: the ceil(0.99 n)-th smallest value.
        let rank = (n * 99).div_ceil(100);
        let mut below = 0u64;
        for (i, c) in self.latency.iter().enumerate() {
            let c = u64::from(*c);
            if below + c >= rank && c > 0 {
                let lower = i.checked_sub(1).map_or(0, bound);
                let Some(upper) = LATENCY_BOUNDS_MS.get(i).map(|b| u64::from(*b)) else {
                    return Some(lower);
                };
                return Some(lower + (upper - lower) * (rank - below) / c);
            }
            below += c;
        }
        None
    }
}

fn bound(i: usize) -> u64 {
    LATENCY_BOUNDS_MS.get(i).map_or(0, |b| u64::from(*b))
}

fn ratio_ppm(part: u32, whole: u32) -> u32 {
    if whole == 0 {
        return 0;
    }
    u32::try_from(u64::from(part) * 1_000_000 / u64::from(whole)).unwrap_or(u32::MAX)
}
