//! What a name may be: policy and variant names, header and cookie names, cookie attribute
//! values and host patterns. Each check returns the message of its configuration error.

use crate::error::{cat, quote, quoted};
use crate::number::decimal;

/// Longest name (policy, variant) accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Policy and variant names: they end up in headers, route matches and stat names.
pub(crate) fn name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("name must not be empty".into());
    }
    if n.len() > MAX_NAME_LEN {
        return Err(cat(&[
            "name ",
            &quote(n),
            " is longer than ",
            &decimal(MAX_NAME_LEN as u64),
            " characters",
        ]));
    }
    if !n
        .as_bytes()
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(cat(&[
            "name ",
            &quote(n),
            " may only hold letters, digits, '-' and '_'",
        ]));
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token), returned lowercase.
pub(crate) fn header_name(h: &str) -> Result<String, String> {
    if h.is_empty() {
        return Err("header name must not be empty".into());
    }
    if h.starts_with(':') {
        return Err(quoted(h, ": pseudo-headers cannot be used here"));
    }
    if !h.as_bytes().iter().all(is_tchar) {
        return Err(quoted(h, " is not a valid header name"));
    }
    Ok(h.to_ascii_lowercase())
}

pub(crate) fn cookie_name(c: &str) -> Result<(), String> {
    if c.is_empty() || !c.as_bytes().iter().all(is_tchar) {
        return Err(quoted(c, " is not a valid cookie name"));
    }
    Ok(())
}

fn is_tchar(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)
}

pub(crate) fn attribute_value(v: &str) -> bool {
    v.as_bytes()
        .iter()
        .all(|&b| b > 0x20 && b < 0x7f && b != b';')
}

/// A host selector: `reviews`, `*.example.com` or `*`, returned lowercase without a trailing
/// dot (requests are normalized the same way).
pub(crate) fn host_pattern(h: &str) -> Result<String, String> {
    let lower = h.to_ascii_lowercase();
    let lower = match lower.strip_suffix('.') {
        Some(stripped) if !stripped.ends_with('*') => stripped.to_string(),
        _ => lower,
    };
    if lower.is_empty() {
        return Err("host must not be empty".into());
    }
    if lower == "*" {
        return Ok(lower);
    }
    let rest = lower.strip_prefix("*.").unwrap_or(&lower);
    if rest.is_empty() || rest.contains('*') {
        return Err(quoted(
            h,
            ": a wildcard is only allowed as a leading \"*.\" (e.g. \"*.example.com\")",
        ));
    }
    let has_port = match rest.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .is_none_or(|(_, after)| !after.is_empty()),
        None => rest.contains(':'),
    };
    if has_port {
        return Err(quoted(
            h,
            ": hosts are matched without port; remove the \":port\"",
        ));
    }
    if !rest
        .as_bytes()
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
    {
        return Err(quoted(h, " is not a valid host name"));
    }
    Ok(lower)
}
