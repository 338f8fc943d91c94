//! A small, strict JSON reader for configuration documents.
//!
//! Hand-written, not serde_json (linked by the command, not by the filter): serde_json's `Value`
//! keeps the last of duplicate members silently and reorders them, turns numbers into floats
//! (weights must stay exact) and names no JSON path in a syntax error; with `arbitrary_precision`
//! and `preserve_order` it would still drop duplicates. Measured on the benchmark configuration
//! (callgrind, native release): this reader 63.5 K instructions, `serde_json::from_str` 40.4 K;
//! configure time only, so the errors are worth the difference.
//!
//! The filter reads JSON only at configure time (plugin configuration, node metadata). Each
//! error carries the JSON path of the value being read and its line and column. Numbers are kept
//! as their text, so that weights and durations are converted exactly (no binary floating point
//! anywhere in the core). Nesting is bounded by [`MAX_DEPTH`]; the reader never recurses deeper
//! and never panics.

use crate::error::{cat, child, quote, ConfigErrors};
use crate::number::{decimal, parse_decimal, push_decimal};

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 64;

/// A JSON value. Object members keep their order (and duplicates, which the decoders report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number as written (validated JSON number syntax).
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// How serde names the kind of a value in "invalid type" errors, with the value for
    /// scalars: `string "x"`, `integer `3``, `floating point `1.5``, `boolean `true``.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(true) => "boolean `true`".into(),
            Value::Bool(false) => "boolean `false`".into(),
            Value::Number(n) if is_integer(n) => cat(&["integer `", n, "`"]),
            Value::Number(n) => cat(&["floating point `", n, "`"]),
            Value::String(s) => cat(&["string ", &quote(s)]),
            Value::Array(_) => "sequence".into(),
            Value::Object(_) => "map".into(),
        }
    }

    /// The value written as compact JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(n),
            Value::String(s) => out.push_str(&quote(s)),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quote(k));
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// True for a number written without fraction or exponent.
pub(crate) fn is_integer(n: &str) -> bool {
    !n.as_bytes().iter().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// A syntax error: what, where (JSON path of the value being read, `""` for the root) and the
/// 1-based line and column (in bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub path: String,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl SyntaxError {
    /// This error as a configuration error under `base` (the path of the document).
    pub(crate) fn at(&self, base: &str) -> ConfigErrors {
        let e = self;
        let path = match (base.is_empty(), e.path.starts_with('[')) {
            (true, _) if e.path.is_empty() => "(config)".to_string(),
            (true, _) => e.path.clone(),
            (false, _) if e.path.is_empty() => base.to_string(),
            (false, true) => cat(&[base, &e.path]),
            (false, false) => child(base, &e.path),
        };
        let message = cat(&[
            &e.message,
            " at line ",
            &decimal(e.line as u64),
            " column ",
            &decimal(e.column as u64),
        ]);
        ConfigErrors::single(path, message)
    }
}

/// Parses one JSON document (surrounding whitespace allowed).
pub fn parse(bytes: &[u8]) -> Result<Value, SyntaxError> {
    let mut p = Parser {
        bytes,
        pos: 0,
        path: Vec::new(),
    };
    let result = p.document();
    result.map_err(|message| p.error(message))
}

enum Seg {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the value being read sits, for errors.
    path: Vec<Seg>,
}

type Step<T> = Result<T, &'static str>;

impl Parser<'_> {
    fn error(&self, message: &str) -> SyntaxError {
        let before = self.bytes.get(..self.pos).unwrap_or(self.bytes);
        let mut line = 1;
        let mut column = 1;
        for &b in before {
            if b == b'\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        let mut path = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
                Seg::Index(i) => {
                    path.push('[');
                    push_decimal(&mut path, *i as u64);
                    path.push(']');
                }
            }
        }
        SyntaxError {
            path,
            message: message.to_string(),
            line,
            column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn document(&mut self) -> Step<Value> {
        let v = self.value(0)?;
        self.skip_ws();
        if self.pos < self.bytes.len() {
            return Err("trailing characters after the JSON value");
        }
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Step<Value> {
        self.skip_ws();
        match self.peek() {
            None => Err("EOF while parsing a value"),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(_) => {
                let rest = self.bytes.get(self.pos..).unwrap_or_default();
                let (len, v) = if rest.starts_with(b"true") {
                    (4, Value::Bool(true))
                } else if rest.starts_with(b"false") {
                    (5, Value::Bool(false))
                } else if rest.starts_with(b"null") {
                    (4, Value::Null)
                } else {
                    return Err("expected value");
                };
                self.pos += len;
                Ok(v)
            }
        }
    }

    fn array(&mut self, depth: usize) -> Step<Value> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply (more than 64 levels)");
        }
        self.pos += 1; // [
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.path.push(Seg::Index(items.len()));
            items.push(self.value(depth)?);
            self.path.pop();
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        return Err("trailing comma");
                    }
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err("EOF while parsing a list"),
                Some(_) => return Err("expected `,` or `]`"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Step<Value> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply (more than 64 levels)");
        }
        self.pos += 1; // {
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'"') => {}
                None => return Err("EOF while parsing an object"),
                Some(_) => return Err("key must be a string"),
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err("expected `:`");
            }
            self.pos += 1;
            self.path.push(Seg::Key(key));
            let v = self.value(depth)?;
            let Some(Seg::Key(key)) = self.path.pop() else {
                return Err("internal error");
            };
            members.push((key, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        return Err("trailing comma");
                    }
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                None => return Err("EOF while parsing an object"),
                Some(_) => return Err("expected `,` or `}`"),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Step<String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err("invalid number");
            }
        }
        // ASCII by construction.
        Ok(self
            .bytes
            .get(start..self.pos)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
            .to_string())
    }

    fn hex4(&mut self) -> Step<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err("invalid \\u escape"),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Step<String> {
        self.pos += 1; // "
        let mut out = Vec::new();
        loop {
            // Copy the run of plain bytes at once.
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            let run = rest
                .iter()
                .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)
                .unwrap_or(rest.len());
            out.extend_from_slice(rest.get(..run).unwrap_or_default());
            self.pos += run;
            match self.peek() {
                None => return Err("EOF while parsing a string"),
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(out).map_err(|_| "string is not valid UTF-8");
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err("EOF while parsing a string");
                    };
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err("invalid escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(_) => return Err("control character in string (escape it)"),
            }
        }
    }

    /// The character of a `\uXXXX` escape (after `\u`), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Step<char> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err("unpaired surrogate in \\u escape");
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err("unpaired surrogate in \\u escape");
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or("unpaired surrogate in \\u escape")
    }
}

/// The canonical text of a document, for fingerprints that do not change when the document is
/// re-serialized (Istio turns a WasmPlugin's `pluginConfig` into a protobuf `Struct` and back
/// into JSON): object members sorted by key (bytewise; duplicate keys, which the decoders
/// refuse, in no set order), numbers as exact canonical decimals ([`push_canonical_number`]),
/// strings re-quoted as by [`quote`], arrays in order, no whitespace. Two documents that differ
/// only in member order, whitespace, string escapes or the spelling of their numbers (`10`,
/// `10.0`, `1e1`) have the same text.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => push_canonical_number(n, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<&(String, Value)> = members.iter().collect();
            // Stable: members with the same key (which the decoders refuse) keep their order.
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(k));
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        scalar => scalar.write_json(out),
    }
}

/// Zeros written out by [`push_canonical_number`] before it switches to `DIGITSeEXP`; every
/// finite double (what Istio's `Struct` holds) is written out in full.
const MAX_CANONICAL_ZEROS: i64 = 1024;

/// Appends the canonical form of the number `text`: an exact decimal without exponent, sign
/// only when negative, no leading zeros (`0.5`), no trailing fractional zeros and no point for
/// whole numbers; `-0`, `0.0` and `0e5` are `0`. So `10`, `10.0`, `1e1` and `+1.0E+1` are all
/// `10`; `0.05` and `5e-2` are `0.05`. A number that would need more than 1024 zeros is written
/// `DIGITSeEXP` (significant digits without leading or trailing zeros, then the exponent, e.g.
/// `15e999`): still one text per value. Text that is not a number, or whose exponent does not
/// fit in 18 digits, is kept as written. Never fails.
pub fn push_canonical_number(text: &str, out: &mut String) {
    let canonical = canonical_number(text.as_bytes());
    let canonical = canonical
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok());
    out.push_str(canonical.unwrap_or(text));
}

/// [`push_canonical_number`]'s text (ASCII), or `None` to keep the number as written.
fn canonical_number(text: &[u8]) -> Option<Vec<u8>> {
    let text = text.strip_prefix(b"+").unwrap_or(text);
    let (negative, text) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (text.get(..i)?, parse_exponent(text.get(i + 1..)?)?),
        None => (text, 0),
    };
    // The digits without the point, `int` of them before it.
    let mut digits = Vec::with_capacity(mantissa.len());
    let mut int = None;
    for &b in mantissa {
        match b {
            b'0'..=b'9' => digits.push(b),
            b'.' if int.is_none() => int = Some(digits.len()),
            _ => return None,
        }
    }
    if digits.is_empty() {
        return None;
    }
    let Some(start) = digits.iter().position(|&d| d != b'0') else {
        return Some(b"0".to_vec());
    };
    let end = digits.iter().rposition(|&d| d != b'0')? + 1;
    let significant = digits.get(start..end)?;
    // The value is 0.SIGNIFICANT × 10^point.
    let int = i64::try_from(int.unwrap_or(digits.len())).ok()?;
    let point = int
        .checked_sub(i64::try_from(start).ok()?)?
        .checked_add(exponent)?;
    let len = i64::try_from(significant.len()).ok()?;
    let zeros = if point <= 0 {
        -point
    } else {
        (point - len).max(0)
    };
    let mut out = Vec::with_capacity(significant.len() + 4);
    if negative {
        out.push(b'-');
    }
    if zeros > MAX_CANONICAL_ZEROS {
        out.extend_from_slice(significant);
        out.push(b'e');
        let e = point.checked_sub(len)?;
        if e < 0 {
            out.push(b'-');
        }
        let mut exp = String::new();
        push_decimal(&mut exp, e.unsigned_abs());
        out.extend_from_slice(exp.as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + usize::try_from(zeros).ok()?, b'0');
        out.extend_from_slice(significant);
    } else {
        let (whole, fraction) =
            significant.split_at_checked(usize::try_from(point.min(len)).ok()?)?;
        out.extend_from_slice(whole);
        out.resize(out.len() + usize::try_from(zeros).ok()?, b'0');
        if !fraction.is_empty() {
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
    }
    Some(out)
}

/// An exponent `[+-]DIGITS` (at most 18 significant digits) as a number.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix(b"+").unwrap_or(text)),
    };
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let significant = digits.get(first..)?;
    if digits.is_empty() || significant.len() > 18 {
        return None;
    }
    let v = if significant.is_empty() {
        0
    } else {
        i64::try_from(parse_decimal(significant)?).ok()?
    };
    Some(if negative { -v } else { v })
}
