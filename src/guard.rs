//! The guard: rolls a failing variant back by itself, in the data plane.
//!
//! ```json
//! "guard": {"variant": "canary", "baseline": "stable", "window_seconds": 10, "min_requests": 20,
//!           "max_failure_rate": 0.05, "max_p99_ms": 800, "hold_seconds": 300,
//!           "notify": {"cluster": "slack", "path": "/services/T000/B000/XXXX"}}
//! ```
//!
//! Every worker counts the outcomes of the guarded variant's requests ([`Outcomes`]) and, on
//! its timer, adds them to the proxy's shared [`Window`] (the filter stores it in proxy-wasm
//! shared data and updates it with compare-and-swap). [`Window::advance`] also judges the
//! window: with at least `min_requests` requests in the last `window_seconds`, a failure rate
//! above `max_failure_rate` or a p99 latency above `max_p99_ms` trips the guard. While it is
//! tripped, every decision for the guarded variant goes to the baseline (sticky users and rule
//! matches included); after `hold_seconds` it re-arms with an empty window.
//!
//! Everything here is pure: the clock and the outcomes come in, the window's bytes and the
//! events (trip, re-arm) come out.

use crate::json::quote;

/// Most slices a window is kept in; longer windows use slices of several seconds.
pub const MAX_SLICES: u32 = 60;
/// Longest window accepted, in seconds.
pub const MAX_WINDOW_SECONDS: u64 = 3600;
/// Latency histogram: upper bounds of its buckets in milliseconds; the last bucket is
/// unbounded. Used to report the p99 (interpolated within its bucket); the trip on
/// `max_p99_ms` itself counts exactly the requests slower than the limit.
pub const LATENCY_BOUNDS_MS: [u32; 43] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300, 400,
    500, 600, 800, 1_000, 1_200, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000,
    12_000, 15_000, 20_000, 30_000, 60_000,
];
const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

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
    pub(crate) hold_seconds: u32,
    pub(crate) notify: Option<Notify>,
}

/// Where trip and re-arm messages go: an HTTP POST through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u32,
    /// Extra request headers (lowercase names), e.g. an authorization token.
    pub headers: Vec<(String, String)>,
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

    pub fn max_p99_ms(&self) -> Option<u32> {
        self.max_p99_ms
    }

    pub fn notify(&self) -> Option<&Notify> {
        self.notify.as_ref()
    }

    /// Milliseconds per slice of the window and the number of slices.
    fn slices(&self) -> (i64, usize) {
        let w = self.window_seconds.max(1);
        let width = w.div_ceil(MAX_SLICES);
        (i64::from(width) * 1000, w.div_ceil(width) as usize)
    }

    /// Records one finished request of the guarded variant in a worker's pending outcomes.
    pub fn record(&self, pending: &mut Outcomes, failed: bool, latency_ms: Option<u64>) {
        pending.total = pending.total.saturating_add(1);
        if failed {
            pending.failures = pending.failures.saturating_add(1);
        }
        if let Some(ms) = latency_ms {
            pending.timed = pending.timed.saturating_add(1);
            if self.max_p99_ms.is_some_and(|max| ms > u64::from(max)) {
                pending.slow = pending.slow.saturating_add(1);
            }
            let i = LATENCY_BOUNDS_MS
                .iter()
                .position(|b| ms <= u64::from(*b))
                .unwrap_or(LATENCY_BOUNDS_MS.len());
            if let Some(c) = pending.latency.get_mut(i) {
                *c = c.saturating_add(1);
            }
        }
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

    fn add(&mut self, o: &Outcomes) {
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

/// What made a guard trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    FailureRate,
    P99,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::FailureRate => "failure_rate",
            Cause::P99 => "p99",
        }
    }
}

/// A change of a guard's state, reported by the worker that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The window broke a limit: the variant's traffic goes to the baseline until `until_ms`.
    Tripped {
        cause: Cause,
        /// The window's outcomes when it tripped.
        window: Box<Outcomes>,
        /// Unix milliseconds when the hold ends.
        until_ms: i64,
    },
    /// The hold ended: the variant gets its traffic again.
    Rearmed,
}

/// A guard's state shared by every worker of a proxy: trip state and the outcomes of the
/// window, in slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Unix milliseconds until which the guard holds the variant off; 0 when armed.
    tripped_until: i64,
    /// Times the guard tripped since the configuration was applied.
    trips: u32,
    /// `(slice number, outcomes)`; slice `n` covers `n × width .. (n + 1) × width` (unix
    /// milliseconds).
    /// The slot of slice `n` is `n % slices`; a slot holding an older slice counts nothing.
    slices: Vec<(i64, Outcomes)>,
}

/// Marks the encoding (and its version) of a [`Window`] in shared data.
const MAGIC: u32 = 0x4752_4331; // "GRC1"
const HEADER: usize = 4 + 8 + 4;
const SLICE: usize = 8 + 4 * (4 + LATENCY_BUCKETS);

impl Window {
    /// An armed guard with an empty window.
    pub fn new(guard: &Guard) -> Window {
        Window {
            tripped_until: 0,
            trips: 0,
            slices: vec![(i64::MIN, Outcomes::default()); guard.slices().1],
        }
    }

    /// Reads a window from its shared-data bytes; anything else (absent, another version,
    /// another window length) gives a fresh window.
    pub fn decode(bytes: &[u8], guard: &Guard) -> Window {
        Window::read(bytes, guard).unwrap_or_else(|| Window::new(guard))
    }

    fn read(bytes: &[u8], guard: &Guard) -> Option<Window> {
        let n = guard.slices().1;
        if bytes.len() != HEADER + n * SLICE {
            return None;
        }
        let mut r = Reader(bytes);
        if r.u32()? != MAGIC {
            return None;
        }
        let tripped_until = r.i64()?;
        let trips = r.u32()?;
        let mut slices = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.i64()?;
            let mut o = Outcomes {
                total: r.u32()?,
                failures: r.u32()?,
                timed: r.u32()?,
                slow: r.u32()?,
                ..Outcomes::default()
            };
            for c in &mut o.latency {
                *c = r.u32()?;
            }
            slices.push((at, o));
        }
        Some(Window {
            tripped_until,
            trips,
            slices,
        })
    }

    /// The bytes to store in shared data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.slices.len() * SLICE);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&self.tripped_until.to_le_bytes());
        out.extend_from_slice(&self.trips.to_le_bytes());
        for (at, o) in &self.slices {
            out.extend_from_slice(&at.to_le_bytes());
            for c in [o.total, o.failures, o.timed, o.slow]
                .iter()
                .chain(&o.latency)
            {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out
    }

    /// Whether the guard holds its variant off at `now_ms` (unix milliseconds).
    pub fn tripped(&self, now_ms: i64) -> bool {
        now_ms < self.tripped_until
    }

    /// Times the guard tripped under this configuration.
    pub fn trips(&self) -> u32 {
        self.trips
    }

    /// The outcomes of the window ending at `now_ms` (unix milliseconds).
    pub fn totals(&self, guard: &Guard, now_ms: i64) -> Outcomes {
        let (width, n) = guard.slices();
        let current = now_ms.div_euclid(width);
        let oldest = current.saturating_sub(n as i64 - 1);
        let mut sum = Outcomes::default();
        for (at, o) in &self.slices {
            if (oldest..=current).contains(at) {
                sum.add(o);
            }
        }
        sum
    }

    /// Adds a worker's pending outcomes at `now_ms` (unix milliseconds) and judges the window. Returns the
    /// change it made, if any: the caller that stores the result is the one that reports it.
    ///
    /// While tripped, pending outcomes (of requests decided before the trip) are dropped; at
    /// the end of the hold the window starts empty.
    pub fn advance(&mut self, guard: &Guard, now_ms: i64, pending: &Outcomes) -> Option<Event> {
        if self.tripped_until != 0 {
            if self.tripped(now_ms) {
                return None;
            }
            self.tripped_until = 0;
            for s in &mut self.slices {
                *s = (i64::MIN, Outcomes::default());
            }
            return Some(Event::Rearmed);
        }
        if pending.is_empty() {
            // Nothing new: the window only loses old slices, it cannot newly break a limit.
            return None;
        }
        let (width, n) = guard.slices();
        let current = now_ms.div_euclid(width);
        let slot = current.rem_euclid(n as i64) as usize;
        if let Some((at, o)) = self.slices.get_mut(slot) {
            if *at != current {
                *at = current;
                *o = Outcomes::default();
            }
            o.add(pending);
        }
        let window = self.totals(guard, now_ms);
        if window.total < guard.min_requests {
            return None;
        }
        let cause = if guard
            .max_failure_ppm
            .is_some_and(|max| window.failure_ppm() > max)
        {
            Cause::FailureRate
        } else if guard.max_p99_ms.is_some()
            && u64::from(window.slow) * 100 > u64::from(window.timed)
        {
            // More than 1 % of the responses slower than the limit: the p99 is above it.
            Cause::P99
        } else {
            return None;
        };
        self.tripped_until = now_ms.saturating_add(i64::from(guard.hold_seconds.max(1)) * 1000);
        self.trips = self.trips.saturating_add(1);
        Some(Event::Tripped {
            cause,
            window: Box::new(window),
            until_ms: self.tripped_until,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
}

/// Names in a guard message.
pub struct Subject<'a> {
    pub policy: &'a str,
    pub variant: &'a str,
    pub baseline: &'a str,
    /// The proxy's node id.
    pub node: &'a str,
}

impl Subject<'_> {
    /// The node id for the text, `(no node id)` when the proxy has none.
    fn node(&self) -> &str {
        if self.node.is_empty() {
            "(no node id)"
        } else {
            self.node
        }
    }
}

/// One line describing `event`, for logs and the `text` of the message.
pub fn describe(guard: &Guard, event: &Event, who: &Subject) -> String {
    match event {
        Event::Tripped { cause, window, .. } => {
            let limit = match cause {
                Cause::FailureRate => format!(
                    "failure rate {} % > {} %",
                    decimal(window.failure_ppm() / 100, 2),
                    decimal(guard.max_failure_ppm.unwrap_or_default() / 100, 2)
                ),
                Cause::P99 => format!(
                    "p99 > {} ms ({} of {} responses slower)",
                    guard.max_p99_ms.unwrap_or_default(),
                    window.slow,
                    window.timed
                ),
            };
            let p99 = window
                .p99_ms()
                .map_or_else(|| "unknown".to_string(), |p| format!("{p} ms"));
            format!(
                "canary-router: guard tripped on policy {}: {} {limit} ({} of {} requests \
                 failed, p99 {p99}, last {} s); its traffic goes to {} for {} s. Proxy: {}",
                who.policy,
                who.variant,
                window.failures,
                window.total,
                guard.window_seconds,
                who.baseline,
                guard.hold_seconds,
                who.node(),
            )
        }
        Event::Rearmed => format!(
            "canary-router: guard re-armed on policy {}: {} gets its traffic again after {} s \
             on {}. Proxy: {}",
            who.policy,
            who.variant,
            guard.hold_seconds,
            who.baseline,
            who.node()
        ),
    }
}

/// The notification body for `event`: JSON that Slack incoming webhooks accept (`text`) with
/// structured fields for other receivers. `time` is in unix seconds.
pub fn message(guard: &Guard, event: &Event, who: &Subject, time: i64) -> String {
    let mut out = String::from("{\"text\":");
    out.push_str(&quote(&describe(guard, event, who)));
    let mut field = |name: &str, value: &str| {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        out.push_str(value);
    };
    match event {
        Event::Tripped { cause, window, .. } => {
            field("event", "\"tripped\"");
            field("cause", &quote(cause.as_str()));
            field("failure_rate", &decimal(window.failure_ppm(), 6));
            field("requests", &window.total.to_string());
            field("failures", &window.failures.to_string());
            let p99 = window.p99_ms();
            field(
                "p99_ms",
                &p99.map_or_else(|| "null".into(), |p| p.to_string()),
            );
        }
        Event::Rearmed => field("event", "\"rearmed\""),
    }
    field("policy", &quote(who.policy));
    field("variant", &quote(who.variant));
    field("baseline", &quote(who.baseline));
    field("window_seconds", &guard.window_seconds.to_string());
    field("hold_seconds", &guard.hold_seconds.to_string());
    field("node", &quote(who.node));
    field("time", &time.to_string());
    out.push('}');
    out
}

/// `value × 10^-scale` as a decimal without trailing zeros (`decimal(42000, 6)` = `0.042`).
pub fn decimal(value: u32, scale: u32) -> String {
    let unit = 10u32.pow(scale);
    let mut s = (value / unit).to_string();
    let frac = value % unit;
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = scale as usize);
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}
