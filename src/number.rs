//! Numbers as written in configurations and messages: decimal text to integers (exact, no
//! floating point), fixed-point decimals (weights, fractions), and integers back to text.
//!
//! Hand-written: decimal text is read exactly, without floats (weights, fractions and
//! durations must not round); `push_decimal` rather than `write!` because that is measured
//! cheaper (with `write!` the benchmark configuration's `Config::from_json` costs 196 791
//! instructions instead of 193 755, callgrind, native release build).

/// ASCII decimal digits (at least one, nothing else) as a number; `None` on overflow. One
/// parser for every integer the module reads keeps a single copy of the code.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut String, mut n: u64) {
    // Least significant digit first; `u64::MAX` has 20 digits.
    let mut digits = [0u8; 20];
    let mut len = 0;
    for d in digits.iter_mut() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    for d in digits.iter().take(len).rev() {
        out.push(char::from(*d));
    }
}

/// `n` in decimal.
pub(crate) fn decimal(n: u64) -> String {
    let mut out = String::new();
    push_decimal(&mut out, n);
    out
}

/// "N is out of range; expected 1 to MAX".
pub(crate) fn out_of_range(v: u64, max: u64) -> String {
    let mut out = decimal(v);
    out.push_str(" is out of range; expected 1 to ");
    push_decimal(&mut out, max);
    out
}

/// A number as written in JSON, exactly, in units of 10^-`max_scale`: `Precision` if it needs
/// more decimals, `Range` if it is negative (but zero), exceeds `limit` or cannot be read.
/// Exponents are applied exactly.
pub(crate) fn fixed_point(text: &str, max_scale: u32, limit: u64) -> Result<u64, FixedError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (num, exp) = match body.as_bytes().iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (
            body.get(..i).unwrap_or_default(),
            body.get(i + 1..)
                .and_then(|e| match e.strip_prefix('-') {
                    Some(neg) => parse_decimal(neg.as_bytes())
                        .and_then(|v| i64::try_from(v).ok())
                        .map(|v| -v),
                    None => parse_decimal(e.strip_prefix('+').unwrap_or(e).as_bytes())
                        .and_then(|v| i64::try_from(v).ok()),
                })
                .ok_or(FixedError::Range)?,
        ),
        None => (body, 0),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    // value = digits × 10^(exp - frac.len()); we want value × 10^max_scale.
    let shift = exp
        .saturating_sub(frac.len() as i64)
        .saturating_add(i64::from(max_scale));
    let digits = int.bytes().chain(frac.bytes());
    let mut value: u64 = 0;
    let mut dropped_nonzero = false;
    let total = int.len() + frac.len();
    // Digits beyond the units position (shift < 0) must be zero.
    let keep = (total as i64).saturating_add(shift.min(0)).max(0) as usize;
    for (i, d) in digits.enumerate() {
        let d = u64::from(d.wrapping_sub(b'0'));
        if d > 9 {
            return Err(FixedError::Range);
        }
        if i < keep {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .ok_or(FixedError::Range)?;
        } else if d != 0 {
            dropped_nonzero = true;
        }
    }
    if shift > 0 && value != 0 {
        for _ in 0..shift {
            value = value.checked_mul(10).ok_or(FixedError::Range)?;
        }
    }
    let above = value > limit || (value == limit && dropped_nonzero);
    if (negative && (value != 0 || dropped_nonzero)) || above {
        return Err(FixedError::Range);
    }
    if dropped_nonzero {
        return Err(FixedError::Precision);
    }
    Ok(value)
}

/// Why [`fixed_point`] refused a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FixedError {
    /// Negative, too large, or an unreadable exponent.
    Range,
    /// More decimals than allowed.
    Precision,
}

/// `value × 10^-scale` as a decimal without trailing zeros (`scaled(42000, 6)` = `0.042`).
pub fn scaled(value: u32, scale: u32) -> String {
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
