//! A guard's window as bytes in shared data (little endian, versioned by [`MAGIC`]): what the
//! filter stores and updates with compare-and-swap.

use super::limits::Guard;
use super::outcomes::{Outcomes, Pending, LATENCY_BUCKETS};
use super::window::{State, Window};

/// Marks the encoding (and its version) of a [`Window`] in shared data.
const MAGIC: u32 = 0x4752_4332; // "GRC2"
const HEADER: usize = 4 + 4 + 8 + 4 + 8;
const OUTCOMES: usize = 4 * (4 + LATENCY_BUCKETS);
const SLICE: usize = 8 + 2 * OUTCOMES;

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

impl Window {
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
