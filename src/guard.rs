//! The guard: rolls a failing variant back by itself, in the data plane.
//!
//! ```json
//! "guard": {"variant": "canary", "baseline": "stable", "window_seconds": 10, "min_requests": 20,
//!           "max_failure_rate": 0.05, "max_p99_ms": 800,
//!           "max_failure_rate_increase": 0.05, "max_p99_ratio": 1.5,
//!           "on_trip": "abort",
//!           "notify": [{"format": "slack", "cluster": "slack", "path": "/services/${SLACK_PATH}"}]}
//! ```
//!
//! Every worker counts the outcomes of the guarded variant's requests (and the baseline's, when
//! a limit compares with it) in [`Pending`] and, on its timer, adds them to the proxy's shared
//! [`Window`] (the filter stores it in proxy-wasm shared data and updates it with
//! compare-and-swap). [`Window::advance`] also judges the window ([`Guard::judge`]): with at
//! least `min_requests` requests in the last `window_seconds`, any broken limit trips the guard.
//! Absolute limits need `min_requests` of the variant; relative ones of both variants, and the
//! failure-rate increase is a significance test ([`crate::significance`]), not an observed
//! difference, so that small windows do not trip on noise.
//!
//! After a trip every decision for the guarded variant goes to the baseline (sticky users and
//! rule matches included) and a ramp of the policy stops where it was. With `on_trip: abort`
//! (the default) that lasts until the configuration changes (a new configuration starts a new
//! window); with `rearm` the guard re-arms with an empty window after `hold_seconds`, and its
//! `max_trips`-th trip aborts.
//!
//! Everything here is pure: the clock and the outcomes come in, the window's bytes and the
//! events (trip, re-arm) come out. The messages sent on events are [`crate::notify`]'s.

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

/// What a receiver is sent, and which events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"text": …}` plus the structured fields (what Slack's incoming webhooks read).
    Slack,
    /// An Adaptive Card message, as Teams' workflow webhooks read it.
    MsTeams,
    /// `{"content": …}`, as Discord's webhooks read it.
    Discord,
    /// The structured JSON alone, with the figures of both variants.
    Generic,
    /// A GitHub `repository_dispatch` body (`event_type: canary-router-tripped`), sent only when
    /// a trip is final (the guard aborted): the event a GitOps workflow reverts on.
    Github,
}

impl Format {
    pub const NAMES: [&'static str; 5] = ["slack", "msteams", "discord", "generic", "github"];

    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "slack" => Format::Slack,
            "msteams" => Format::MsTeams,
            "discord" => Format::Discord,
            "generic" => Format::Generic,
            "github" => Format::Github,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::MsTeams => "msteams",
            Format::Discord => "discord",
            Format::Generic => "generic",
            Format::Github => "github",
        }
    }

    /// Whether this receiver is told of `event`.
    pub fn wants(self, event: &Event) -> bool {
        match (self, event) {
            (Format::Github, Event::Tripped { until_ms, .. }) => until_ms.is_none(),
            (Format::Github, Event::Rearmed) => false,
            _ => true,
        }
    }
}

/// A receiver of a guard's messages: an HTTP POST through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub format: Format,
    pub cluster: String,
    pub authority: String,
    /// The path, with `${VAR}` references replaced when the VM's environment was given.
    pub path: String,
    pub timeout_ms: u32,
    /// Sends after a failed one (a non-2xx answer or none), 1 s, 2 s, 4 s … apart.
    pub retries: u32,
    /// Extra request headers (lowercase names), e.g. an authorization token; values with
    /// `${VAR}` references replaced as for `path`.
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
    fn slices(&self) -> (i64, usize) {
        let w = self.window_seconds.max(1);
        let width = w.div_ceil(MAX_SLICES);
        (i64::from(width) * 1000, w.div_ceil(width) as usize)
    }

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

/// A guard's state as a worker last read it, for [`crate::Config::splits_in_force`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardView {
    /// The variant's traffic goes to the baseline.
    pub tripped: bool,
    /// Unix seconds of the first trip under this configuration: the policy's ramp stays where
    /// it stood then.
    pub ramp_stopped_at: Option<i64>,
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

/// A change of a guard's state, reported by the worker that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The window broke a limit: the variant's traffic goes to the baseline.
    Tripped {
        cause: Cause,
        /// The window's outcomes when it tripped: the guarded variant's and the baseline's
        /// (the baseline's are counted only with a relative limit).
        window: Box<Pending>,
        /// Unix milliseconds when the hold ends and the guard re-arms; `None` when the trip is
        /// final (the guard aborted: the variant stays off until the configuration changes).
        until_ms: Option<i64>,
        /// This trip's number under the configuration (1 for the first).
        trip: u32,
    },
    /// The hold ended: the variant gets its traffic again.
    Rearmed,
}

/// A guard's state shared by every worker of a proxy: trip state and the outcomes of the
/// window, in slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Armed, holding the variant off until a time, or aborted.
    state: State,
    /// Times the guard tripped since the configuration was applied.
    trips: u32,
    /// Unix milliseconds of the first trip (0 before it): the ramp of the policy stays where
    /// it was then.
    first_trip_ms: i64,
    /// `(slice number, variant's outcomes, baseline's outcomes)`; slice `n` covers
    /// `n × width .. (n + 1) × width` (unix milliseconds). The slot of slice `n` is
    /// `n % slices`; a slot holding an older slice counts nothing.
    slices: Vec<(i64, Pending)>,
}

/// Where a guard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Armed,
    /// Tripped, re-arming at this unix millisecond.
    Held(i64),
    /// Tripped for good: until the configuration changes, which starts a new window.
    Aborted,
}

impl State {
    /// The state's tag and time in shared data.
    fn encode(self) -> (u32, i64) {
        match self {
            State::Armed => (0, 0),
            State::Held(until) => (1, until),
            State::Aborted => (2, 0),
        }
    }

    /// The inverse of [`State::encode`]: anything else is not a state.
    fn decode(tag: u32, until: i64) -> Option<State> {
        match (tag, until) {
            (0, 0) => Some(State::Armed),
            (1, until) => Some(State::Held(until)),
            (2, 0) => Some(State::Aborted),
            _ => None,
        }
    }
}

/// Marks the encoding (and its version) of a [`Window`] in shared data.
const MAGIC: u32 = 0x4752_4332; // "GRC2"
const HEADER: usize = 4 + 4 + 8 + 4 + 8;
const OUTCOMES: usize = 4 * (4 + LATENCY_BUCKETS);
const SLICE: usize = 8 + 2 * OUTCOMES;

impl Window {
    /// An armed guard with an empty window.
    pub fn new(guard: &Guard) -> Window {
        Window {
            state: State::Armed,
            trips: 0,
            first_trip_ms: 0,
            slices: vec![(i64::MIN, Pending::default()); guard.slices().1],
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
        let state = State::decode(r.u32()?, r.i64()?)?;
        let trips = r.u32()?;
        let first_trip_ms = r.i64()?;
        let mut slices = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.i64()?;
            let variant = r.outcomes()?;
            let baseline = r.outcomes()?;
            slices.push((at, Pending { variant, baseline }));
        }
        Some(Window {
            state,
            trips,
            first_trip_ms,
            slices,
        })
    }

    /// The bytes to store in shared data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.slices.len() * SLICE);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        let (tag, until) = self.state.encode();
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&until.to_le_bytes());
        out.extend_from_slice(&self.trips.to_le_bytes());
        out.extend_from_slice(&self.first_trip_ms.to_le_bytes());
        for (at, p) in &self.slices {
            out.extend_from_slice(&at.to_le_bytes());
            for o in [&p.variant, &p.baseline] {
                for c in [o.total, o.failures, o.timed, o.slow]
                    .iter()
                    .chain(&o.latency)
                {
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
        }
        out
    }

    /// Whether the guard holds its variant off at `now_ms` (unix milliseconds).
    pub fn tripped(&self, now_ms: i64) -> bool {
        match self.state {
            State::Armed => false,
            State::Held(until) => now_ms < until,
            State::Aborted => true,
        }
    }

    /// Whether the guard aborted: its variant stays off until the configuration changes.
    pub fn aborted(&self) -> bool {
        self.state == State::Aborted
    }

    /// Times the guard tripped under this configuration.
    pub fn trips(&self) -> u32 {
        self.trips
    }

    /// Unix milliseconds of the first trip under this configuration, if any: a ramp of the
    /// policy stays where it was then.
    pub fn first_trip_ms(&self) -> Option<i64> {
        (self.trips > 0).then_some(self.first_trip_ms)
    }

    /// The outcomes of the window ending at `now_ms` (unix milliseconds).
    pub fn totals(&self, guard: &Guard, now_ms: i64) -> Pending {
        let (width, n) = guard.slices();
        let current = now_ms.div_euclid(width);
        let oldest = current.saturating_sub(n as i64 - 1);
        let mut sum = Pending::default();
        for (at, p) in &self.slices {
            if (oldest..=current).contains(at) {
                sum.variant.add(&p.variant);
                sum.baseline.add(&p.baseline);
            }
        }
        sum
    }

    /// Adds a worker's pending outcomes at `now_ms` (unix milliseconds) and judges the window.
    /// Returns the change it made, if any: the caller that stores the result is the one that
    /// reports it.
    ///
    /// While tripped, pending outcomes (of requests decided before the trip) are dropped; at
    /// the end of a hold the window starts empty. An aborted guard never changes again.
    pub fn advance(&mut self, guard: &Guard, now_ms: i64, pending: &Pending) -> Option<Event> {
        if self.state != State::Armed {
            if self.tripped(now_ms) {
                return None;
            }
            self.state = State::Armed;
            for s in &mut self.slices {
                *s = (i64::MIN, Pending::default());
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
        if let Some((at, p)) = self.slices.get_mut(slot) {
            if *at != current {
                *at = current;
                *p = Pending::default();
            }
            p.variant.add(&pending.variant);
            p.baseline.add(&pending.baseline);
        }
        let window = self.totals(guard, now_ms);
        let cause = guard.judge(&window.variant, &window.baseline)?;
        self.trips = self.trips.saturating_add(1);
        if self.trips == 1 {
            self.first_trip_ms = now_ms;
        }
        let until_ms = match guard.on_trip {
            OnTrip::Rearm if self.trips < guard.max_trips => {
                Some(now_ms.saturating_add(i64::from(guard.hold_seconds.max(1)) * 1000))
            }
            _ => None,
        };
        self.state = until_ms.map_or(State::Aborted, State::Held);
        Some(Event::Tripped {
            cause,
            window: Box::new(window),
            until_ms,
            trip: self.trips,
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

    fn outcomes(&mut self) -> Option<Outcomes> {
        let mut o = Outcomes {
            total: self.u32()?,
            failures: self.u32()?,
            timed: self.u32()?,
            slow: self.u32()?,
            ..Outcomes::default()
        };
        for c in &mut o.latency {
            *c = self.u32()?;
        }
        Some(o)
    }
}
