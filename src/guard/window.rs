//! The guard's window shared by every worker of a proxy: adding outcomes, judging, tripping
//! and re-arming, and the events that come of it.

use super::limits::{Cause, Guard, OnTrip};
use super::outcomes::Pending;
use super::receivers::Format;

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
    pub(super) state: State,
    /// Times the guard tripped since the configuration was applied.
    pub(super) trips: u32,
    /// Unix milliseconds of the first trip (0 before it): the ramp of the policy stays where
    /// it was then.
    pub(super) first_trip_ms: i64,
    /// `(slice number, variant's outcomes, baseline's outcomes)`; slice `n` covers
    /// `n × width .. (n + 1) × width` (unix milliseconds). The slot of slice `n` is
    /// `n % slices`; a slot holding an older slice counts nothing.
    pub(super) slices: Vec<(i64, Pending)>,
}

/// Where a guard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Armed,
    /// Tripped, re-arming at this unix millisecond.
    Held(i64),
    /// Tripped for good: until the configuration changes, which starts a new window.
    Aborted,
}

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

impl Format {
    /// Whether this receiver is told of `event`.
    pub fn wants(self, event: &Event) -> bool {
        match (self, event) {
            (Format::Github, Event::Tripped { until_ms, .. }) => until_ms.is_none(),
            (Format::Github, Event::Rearmed) => false,
            _ => true,
        }
    }
}
