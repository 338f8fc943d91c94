//! Configuration errors that name the JSON path of the offending field, and the helpers their
//! messages are written with (paths, quoting).
//!
//! Hand-written: `child` and `element` build a path without `format!` because that is measured
//! cheaper: with `format!` the benchmark configuration's `Config::from_json` costs 233 433
//! instructions instead of 193 755 (callgrind, native release build), every policy and list
//! element building its path.

use std::fmt;

use crate::number::push_decimal;

/// One problem in a configuration, located by its JSON path (`policies[0].variants[1].weight`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        f.write_str(": ")?;
        f.write_str(&self.message)
    }
}

/// Every problem found in one configuration. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::single_owned(path.into(), message.into())
    }

    /// [`ConfigErrors::single`] without the conversions: one copy of the code for every
    /// argument type.
    fn single_owned(path: String, message: String) -> Self {
        ConfigErrors(vec![ConfigError { path, message }])
    }

    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            fmt::Display::fmt(e, f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors while walking a configuration, tracking the current JSON path.
///
/// Paths are built by `child` and `element` (cheaper than `format!`, see the top of this
/// file); messages by `cat` and the quoting helpers.
#[derive(Default)]
pub struct Errors {
    list: Vec<ConfigError>,
}

impl Errors {
    /// Records `message` at `path` (`""`, the root, is shown as `(config)`).
    pub fn push(&mut self, path: &str, message: &str) {
        self.push_owned(path.to_string(), message.to_string());
    }

    /// Records `message` at `path.field`.
    pub fn push_at(&mut self, path: &str, field: &str, message: &str) {
        self.push_owned(cat(&[path, ".", field]), message.to_string());
    }

    /// [`Errors::push`] for a path and message already built.
    pub fn push_owned(&mut self, mut path: String, message: String) {
        if path.is_empty() {
            path.push_str("(config)");
        }
        self.list.push(ConfigError { path, message });
    }

    pub(crate) fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The collected errors as an `Err`; only call when some were pushed.
    pub(crate) fn finish_err<T>(self) -> Result<T, ConfigErrors> {
        Err(ConfigErrors(self.list))
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.list))
        }
    }
}

/// `path.key`, or `key` at the root (`path` empty).
pub(crate) fn child(path: &str, key: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1 + key.len());
    if !path.is_empty() {
        out.push_str(path);
        out.push('.');
    }
    out.push_str(key);
    out
}

/// `path[i]`.
pub(crate) fn element(path: &str, i: usize) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    out.push_str(path);
    out.push('[');
    push_decimal(&mut out, i as u64);
    out.push(']');
    out
}

/// The parts joined (`concat`): the shape of most messages, short at their many call sites.
pub(crate) fn cat(parts: &[&str]) -> String {
    parts.concat()
}

/// `s` as a JSON string literal: `"a \"b\""`. Used in error messages instead of `{:?}`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                // `\u00XX`, lowercase hex.
                out.push_str("\\u00");
                for nibble in [c as u32 >> 4, c as u32 & 0xf] {
                    out.push(char::from_digit(nibble, 16).unwrap_or('0'));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` quoted, followed by `rest`: the shape of most messages about one value.
pub(crate) fn quoted(value: &str, rest: &str) -> String {
    let mut message = quote(value);
    message.push_str(rest);
    message
}

/// `["a", "b"]`: names for an error message.
pub(crate) fn quote_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(name));
    }
    out.push(']');
    out
}
