//! Scheduled ramps: the weight of one variant as a pure function of the clock, so every proxy
//! computes the same weight at the same time without talking to the others.
//!
//! ```json
//! "ramp": {"variant": "canary", "start": "2026-12-01T10:00:00Z", "steps": [1, 5, 25, 50, 100], "step_seconds": 600}
//! "ramp": {"variant": "canary", "start": "2026-12-01T10:00:00Z", "from": 0, "to": 50, "duration_seconds": 3600}
//! ```
//!
//! Before `start` the configured weights hold; from `start` the ramp's variant has the weight of
//! the current step (or the linear interpolation, to the basis point), and after the last step
//! the final weight holds. The other variants keep their weights and the last variant takes the
//! remainder. The ramped variant is listed just before the last one (checked at configure
//! time) and buckets are assigned in variant order, so the other variants keep their buckets and,
//! while the ramp rises, a user moves only from the last variant to the ramped one, never back.

use crate::error::quote;

/// A compiled ramp of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ramp {
    /// Index of the ramped variant (never the last one).
    pub(crate) variant: usize,
    /// Unix time of the start, in seconds.
    pub(crate) start: i64,
    pub(crate) form: RampForm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RampForm {
    /// Weight `steps[i]` (basis points) during the `i`-th period of `step_seconds`.
    Steps { steps: Vec<u16>, step_seconds: u64 },
    /// From `from` to `to` (basis points) over `duration` seconds.
    Linear { from: u16, to: u16, duration: u64 },
}

impl Ramp {
    /// The ramped variant's weight in basis points at unix time `now` (seconds); `None` before
    /// the start.
    pub fn weight_bp(&self, now: i64) -> Option<u16> {
        let elapsed = u64::try_from(now.checked_sub(self.start)?).ok()?;
        Some(match &self.form {
            RampForm::Steps {
                steps,
                step_seconds,
            } => {
                let i = elapsed / (*step_seconds).max(1);
                let i = usize::try_from(i).unwrap_or(usize::MAX);
                steps.get(i).or(steps.last()).copied().unwrap_or_default()
            }
            RampForm::Linear { from, to, duration } => {
                let duration = (*duration).max(1);
                let t = elapsed.min(duration);
                let (from, to) = (i64::from(*from), i64::from(*to));
                // Between `from` and `to` (both checked to be at most 100 %), as `t <= duration`.
                let w = from + (to - from) * t as i64 / duration as i64;
                u16::try_from(w).unwrap_or_default()
            }
        })
    }

    /// Unix time (seconds) after which the weight no longer changes.
    pub fn end(&self) -> i64 {
        let length = match &self.form {
            RampForm::Steps {
                steps,
                step_seconds,
            } => (steps.len().saturating_sub(1) as u64).saturating_mul(*step_seconds),
            RampForm::Linear { duration, .. } => *duration,
        };
        self.start
            .saturating_add(i64::try_from(length).unwrap_or(i64::MAX))
    }
}

/// Parses an RFC 3339 timestamp (`2026-12-01T10:00:00Z`, `2026-12-01T11:00:00+01:00`,
/// fractional seconds ignored) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    parse_time(s.as_bytes()).ok_or_else(|| {
        let mut message = quote(s);
        message.push_str(" is not an RFC 3339 time such as \"2026-12-01T10:00:00Z\"");
        message
    })
}

/// `n` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0;
    for i in at..at + n {
        let d = b.get(i)?.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(v)
}

fn parse_time(b: &[u8]) -> Option<i64> {
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        let n = b
            .iter()
            .skip(at + 1)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        at += 1 + n;
    }
    let offset = match b.get(at)? {
        b'Z' | b'z' if b.len() == at + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == at + 6 && b.get(at + 3) == Some(&b':') => {
            let (h, m) = (digits(b, at + 1, 2)?, digits(b, at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 3600 + m * 60
            } else {
                -(h * 3600 + m * 60)
            }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}
