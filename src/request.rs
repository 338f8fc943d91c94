//! What the decision engine reads of a request, and the parsing of cookies and query strings.
//!
//! The filter implements [`RequestView`] over the header map it read from the host once; tests
//! and the command line use [`SimpleRequest`]. Parsing borrows from the request: no allocation
//! unless a query value is percent-encoded.

use std::borrow::Cow;

/// Read access to one request. Header names are asked in lowercase; the pseudo-headers
/// `:authority` and `:path` are headers like any other.
pub trait RequestView {
    /// Every value of the header `name`, in order.
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str>;

    /// The first value of the header `name`.
    fn header<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    /// The name of the Envoy route the request matched, if the host knows it.
    fn route_name(&self) -> Option<&str>;

    /// The downstream address (`10.0.0.1:43660` or `[::1]:43660`).
    fn source_address(&self) -> Option<&str>;
}

/// The value of cookie `name` in any `cookie` header of the request. Values in double quotes
/// are returned without them. Malformed pairs are skipped.
pub fn cookie<'a, R: RequestView + ?Sized>(req: &'a R, name: &str) -> Option<&'a str> {
    req.header_values("cookie")
        .find_map(|header| cookie_in(header, name))
}

/// The value of cookie `name` in one `Cookie` header value.
pub fn cookie_in<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    // Byte offsets: every delimiter is ASCII, so each slice taken lies on character boundaries.
    fields(header.as_bytes(), 0, header.len(), b';')
        .find_map(|(start, end)| cookie_pair(header, start, end, name))
}

/// The `(start, end)` byte ranges of the `sep`-separated fields of `bytes[start..stop]`, empty
/// fields included (as `str::split` gives them).
fn fields(
    bytes: &[u8],
    start: usize,
    stop: usize,
    sep: u8,
) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut next = Some(start);
    std::iter::from_fn(move || {
        let start = next?;
        let end = bytes
            .get(start..stop)?
            .iter()
            .position(|&b| b == sep)
            .map_or(stop, |i| start + i);
        next = (end < stop).then_some(end + 1);
        Some((start, end))
    })
}

/// The value of the pair `header[start..end]` (`name=value`, optional whitespace around both,
/// the value possibly in double quotes) if its name is `name`.
fn cookie_pair<'a>(header: &'a str, start: usize, end: usize, name: &str) -> Option<&'a str> {
    let bytes = header.as_bytes();
    let eq = start + bytes.get(start..end)?.iter().position(|&b| b == b'=')?;
    let (k0, k1) = trim_ows(bytes, start, eq);
    if bytes.get(k0..k1)? != name.as_bytes() {
        return None;
    }
    let (mut v0, mut v1) = trim_ows(bytes, eq + 1, end);
    if v1 - v0 >= 2 && bytes.get(v0) == Some(&b'"') && bytes.get(v1 - 1) == Some(&b'"') {
        v0 += 1;
        v1 -= 1;
    }
    header.get(v0..v1)
}

/// `start..end` without the spaces and tabs at either end.
fn trim_ows(bytes: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    let ows = |i: usize| matches!(bytes.get(i), Some(b' ' | b'\t'));
    while start < end && ows(start) {
        start += 1;
    }
    while end > start && ows(end - 1) {
        end -= 1;
    }
    (start, end)
}

/// The value of query parameter `name` in a request path, percent-decoded (`+` is a space).
/// A parameter given without `=` has the empty value.
pub fn query_in<'a>(path: &'a str, name: &str) -> Option<Cow<'a, str>> {
    let bytes = path.as_bytes();
    let start = bytes.iter().position(|&b| b == b'?')? + 1;
    let stop = bytes
        .get(start..)?
        .iter()
        .position(|&b| b == b'#')
        .map_or(bytes.len(), |i| start + i);
    fields(bytes, start, stop, b'&').find_map(|(start, end)| {
        let (k1, v0) = match bytes.get(start..end)?.iter().position(|&b| b == b'=') {
            Some(i) => (start + i, start + i + 1),
            None => (end, end),
        };
        let k = path.get(start..k1)?;
        if k != name && !(k.bytes().any(|b| b == b'%' || b == b'+') && percent_decode(k) == name) {
            return None;
        }
        path.get(v0..end).map(percent_decode)
    })
}

/// Decodes `%XX` escapes and `+`; invalid escapes stay as they are, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(|h| hex(*h)),
                bytes.get(i + 2).and_then(|l| hex(*l)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `host[:port]` → `host`, lowercased; `[v6]:port` → `[v6]`; a trailing dot is dropped.
pub fn normalize_host(authority: &str) -> Cow<'_, str> {
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority)
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `10.0.0.1:43660` → `10.0.0.1`, `[::1]:43660` → `::1`.
pub fn address_ip(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match address.split_once(':') {
        // Exactly one colon: IPv4 with port. More colons: a bare IPv6 address.
        Some((ip, port)) if !port.contains(':') => ip,
        _ => address,
    }
}

/// An owned request for tests, examples and the command line.
#[derive(Debug, Clone, Default)]
pub struct SimpleRequest {
    pub headers: Vec<(String, String)>,
    pub route_name: Option<String>,
    pub source_address: Option<String>,
}

impl SimpleRequest {
    /// A request for `authority` and `path`.
    pub fn new(authority: &str, path: &str) -> Self {
        SimpleRequest {
            headers: vec![
                (":authority".into(), authority.into()),
                (":path".into(), path.into()),
            ],
            ..Default::default()
        }
    }

    /// Adds a header (the name is lowercased).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn route(mut self, name: &str) -> Self {
        self.route_name = Some(name.into());
        self
    }

    pub fn source(mut self, address: &str) -> Self {
        self.source_address = Some(address.into());
        self
    }
}

impl RequestView for SimpleRequest {
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn route_name(&self) -> Option<&str> {
        self.route_name.as_deref()
    }

    fn source_address(&self) -> Option<&str> {
        self.source_address.as_deref()
    }
}
