//! The split of a policy's traffic between its variants: the bucket space and the bucket hash,
//! weights in basis points and their checks, and the weights in force (node and route
//! overrides, a ramp at a given time, a tripped guard's diversion).

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{cat, element, quote, Errors};
use crate::guard::GuardView;
use crate::names::name;
use crate::number::{fixed_point, scaled, FixedError};
use crate::ramp::Ramp;

/// Size of the bucket space: a variant with weight `w` % owns `w * 100` buckets.
pub const BUCKETS: u16 = 10_000;

/// The bucket of a sticky key: `xxh3_64(salt ":" key) % 10000`.
pub fn bucket_for(salt: &str, key: &str) -> u16 {
    let mut prefix = Vec::with_capacity(salt.len() + 1);
    prefix.extend_from_slice(salt.as_bytes());
    prefix.push(b':');
    bucket(&prefix, key.as_bytes())
}

/// `xxh3_64(salt_prefix ++ key) % 10000`, without allocating.
pub(crate) fn bucket(salt_prefix: &[u8], key: &[u8]) -> u16 {
    const STACK: usize = 256;
    let total = salt_prefix.len() + key.len();
    let hash = if total <= STACK {
        let mut buf = [0u8; STACK];
        let (a, b) = buf.split_at_mut(salt_prefix.len());
        a.copy_from_slice(salt_prefix);
        if let Some(b) = b.get_mut(..key.len()) {
            b.copy_from_slice(key);
        }
        xxh3_64(buf.get(..total).unwrap_or_default())
    } else {
        // Rare (keys over 256 bytes): one allocation rather than the streaming hasher's code.
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(salt_prefix);
        buf.extend_from_slice(key);
        xxh3_64(&buf)
    };
    (hash % u64::from(BUCKETS)) as u16
}

/// The weights in force for a policy: variant `i` owns buckets `start(i)..ends[i]`, in the
/// listed order. A disabled split sends everything to the last variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    weights_bp: Vec<u16>,
    ends: Vec<u16>,
    enabled: bool,
    /// `(from, to)`: a tripped guard sends variant `from`'s requests to `to`.
    divert: Option<(usize, usize)>,
}

impl Split {
    /// `weights_bp` are basis points (1/100 of a percent) per variant, summing to 10 000.
    pub(crate) fn new(weights_bp: Vec<u16>, enabled: bool) -> Split {
        let mut end: u16 = 0;
        let mut ends = Vec::with_capacity(weights_bp.len());
        for w in &weights_bp {
            end = end.saturating_add(*w).min(BUCKETS);
            ends.push(end);
        }
        Split {
            weights_bp,
            ends,
            enabled,
            divert: None,
        }
    }

    /// This split with variant `from`'s requests sent to `to` (a tripped guard): the weights
    /// show `from`'s weight moved to `to`, the buckets stay where they are, so no other user
    /// moves and `from`'s users come back to it when the guard re-arms.
    pub fn diverted(&self, from: usize, to: usize) -> Split {
        let mut weights_bp = self.weights_bp.clone();
        let moved = weights_bp.get_mut(from).map(std::mem::take).unwrap_or(0);
        if let Some(w) = weights_bp.get_mut(to) {
            *w = w.saturating_add(moved);
        }
        Split {
            weights_bp,
            ends: self.ends.clone(),
            enabled: self.enabled,
            divert: Some((from, to)),
        }
    }

    /// `(from, to)` when a tripped guard diverts a variant.
    pub fn divert(&self) -> Option<(usize, usize)> {
        self.divert
    }

    /// Weight of each variant in basis points (10 % is 1000), in variant order.
    pub fn weights_bp(&self) -> &[u16] {
        &self.weights_bp
    }

    /// The buckets variant `index` owns.
    pub fn buckets(&self, index: usize) -> std::ops::Range<u16> {
        let start = match index.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(BUCKETS),
            None => 0,
        };
        start..self.ends.get(index).copied().unwrap_or(start)
    }

    /// False when the policy is turned off (`"enabled": false`): all traffic to the last variant.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The variant that owns `bucket` (`0 <= bucket < BUCKETS`).
    pub fn variant_for_bucket(&self, bucket: u16) -> usize {
        self.ends
            .iter()
            .position(|end| bucket < *end)
            .unwrap_or(self.ends.len().saturating_sub(1))
    }

    /// The same split with the fields an override sets replaced.
    pub(crate) fn with(&self, weights_bp: Option<Vec<u16>>, enabled: Option<bool>) -> Split {
        Split::new(
            weights_bp.unwrap_or_else(|| self.weights_bp.clone()),
            enabled.unwrap_or(self.enabled),
        )
    }

    /// This split with `ramp` applied at unix time `now` (seconds): the ramped variant gets the
    /// ramp's weight (capped so that the variants between keep theirs), the last variant the
    /// remainder. Unchanged without a ramp or before its start.
    pub fn ramped(&self, ramp: Option<&Ramp>, now: i64) -> Split {
        ramp.and_then(|r| self.try_ramped(r, now))
            .unwrap_or_else(|| self.clone())
    }

    fn try_ramped(&self, ramp: &Ramp, now: i64) -> Option<Split> {
        let w = ramp.weight_bp(now)?;
        let mut weights = self.weights_bp.clone();
        let last = weights.len().checked_sub(1)?;
        let room = u32::from(BUCKETS).saturating_sub(fixed_weight(&weights, ramp.variant));
        let w = u32::from(w).min(room);
        *weights.get_mut(ramp.variant)? = u16::try_from(w).ok()?;
        *weights.get_mut(last)? = u16::try_from(room - w).ok()?;
        Some(self.with(Some(weights), None))
    }

    /// The split in force at `now` as a guard leaves it (`view`): the ramp applied at `now`, or
    /// where it stood when the guard first tripped, and, once tripped, the guarded variant
    /// diverted to its baseline (`divert`: `(variant, baseline)`).
    pub(crate) fn in_force(
        &self,
        ramp: Option<&Ramp>,
        divert: Option<(usize, usize)>,
        view: GuardView,
        now: i64,
    ) -> Split {
        let at = view.ramp_stopped_at.map_or(now, |t| t.min(now));
        let split = self.ramped(ramp, at);
        match divert {
            Some((from, to)) if view.tripped => split.diverted(from, to),
            _ => split,
        }
    }
}

/// The weight of every variant but `ramped` and the last (what a ramp leaves alone).
pub(crate) fn fixed_weight(weights: &[u16], ramped: usize) -> u32 {
    let mut sum = 0;
    for (i, w) in weights.iter().enumerate() {
        if i != ramped && i + 1 != weights.len() {
            sum += u32::from(*w);
        }
    }
    sum
}

/// Checks a `variants` list (names valid and unique, weights percentages with at most two
/// decimals summing to 100) and returns `(name, basis points)` in order.
pub(crate) fn check_weights<'a>(
    // `dyn`: one copy of the code for both callers (compile and overrides).
    list: &mut dyn ExactSizeIterator<Item = (&'a str, &'a str)>,
    path: &str,
    errs: &mut Errors,
) -> Vec<(&'a str, u16)> {
    let mut out: Vec<(&str, u16)> = Vec::with_capacity(list.len());
    let mut total: u32 = 0;
    let mut weights_ok = true;
    for (j, (variant, weight)) in list.enumerate() {
        let vpath = element(path, j);
        if let Err(m) = name(variant) {
            errs.push_at(&vpath, "name", &m);
        }
        if let Some(first) = out.iter().position(|(n, _)| *n == variant) {
            let message = cat(&[
                "duplicate variant name ",
                &quote(variant),
                " (also ",
                &element(path, first),
                ")",
            ]);
            errs.push_at(&vpath, "name", &message);
        }
        let bp = match weight_bp(weight) {
            Ok(bp) => bp,
            Err(m) => {
                errs.push_at(&vpath, "weight", &m);
                weights_ok = false;
                0
            }
        };
        total += u32::from(bp);
        out.push((variant, bp));
    }
    if weights_ok && total != u32::from(BUCKETS) {
        let message = cat(&[
            "weights sum to ",
            &format_percent(total),
            ", they must sum to 100",
        ]);
        errs.push(path, &message);
    }
    out
}

/// Formats basis points as a percentage: 1000 → "10", 1050 → "10.5", 1005 → "10.05".
pub fn format_percent(bp: u32) -> String {
    scaled(bp, 2)
}

/// A percentage with at most two decimals (a JSON number as written), as basis points.
pub(crate) fn weight_bp(w: &str) -> Result<u16, String> {
    match fixed_point(w, 2, u64::from(BUCKETS)) {
        Ok(bp) => u16::try_from(bp).map_err(|_| String::new()),
        Err(FixedError::Precision) => Err(cat(&["weight ", w, " has more than two decimals"])),
        Err(FixedError::Range) => Err(cat(&[
            "weight ",
            w,
            " must be between 0 and 100 (a percentage)",
        ])),
    }
}
