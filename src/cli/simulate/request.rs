//! The request `simulate` decides, as described by its options, and the requests of synthetic
//! users.

use std::fmt::Write as _;
use std::net::SocketAddr;

use canary_router::config::RawKey;
use canary_router::SimpleRequest;

use super::{Request, SOURCE_PORT};

/// The request described by the options, before it becomes a [`SimpleRequest`].
#[derive(Debug, Clone)]
pub(super) struct RequestSpec {
    pub(super) host: String,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) cookies: Vec<(String, String)>,
    pub(super) query: Vec<(String, String)>,
    /// A query parameter placed first in the query string (a synthetic user's id).
    pub(super) lead_query: Option<(String, String)>,
    pub(super) route: Option<String>,
    pub(super) source: Option<String>,
}

impl RequestSpec {
    pub(super) fn from_args(args: &Request) -> RequestSpec {
        RequestSpec {
            host: args.host.clone(),
            path: args.path.clone(),
            headers: args
                .header
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            cookies: args.cookie.clone(),
            query: args.query.clone(),
            lead_query: None,
            route: args.route.clone(),
            source: args
                .source_ip
                .map(|ip| SocketAddr::new(ip, SOURCE_PORT).to_string()),
        }
    }

    /// The request of synthetic user number `n`, whose `id` is placed in `key`.
    pub(super) fn with_user(&self, key: &RawKey, id: &str, n: u32) -> RequestSpec {
        let mut s = self.clone();
        if let Some(h) = &key.header {
            let h = h.to_ascii_lowercase();
            s.headers.retain(|(k, _)| *k != h);
            s.headers.push((h, id.to_string()));
        } else if let Some(c) = &key.cookie {
            s.cookies.retain(|(k, _)| k != c);
            s.cookies.insert(0, (c.clone(), id.to_string()));
        } else if let Some(q) = &key.query {
            s.query.retain(|(k, _)| k != q);
            s.lead_query = Some((q.clone(), id.to_string()));
        } else {
            let [_, a, b, c] = n.to_be_bytes();
            s.source = Some(format!("10.{a}.{b}.{c}:{SOURCE_PORT}"));
        }
        s
    }

    /// The path with the query parameters: the user's first, then the path's own, then
    /// `--query` in order.
    pub(super) fn full_path(&self) -> String {
        if self.lead_query.is_none() && self.query.is_empty() {
            return self.path.clone();
        }
        let (base, own) = match self.path.split_once('?') {
            Some((base, own)) => (base, Some(own).filter(|q| !q.is_empty())),
            None => (self.path.as_str(), None),
        };
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.lead_query.iter().map(|(k, v)| query_pair(k, v)));
        parts.extend(own.map(str::to_string));
        parts.extend(self.query.iter().map(|(k, v)| query_pair(k, v)));
        format!("{base}?{}", parts.join("&"))
    }

    pub(super) fn build(&self) -> SimpleRequest {
        let mut req = SimpleRequest::new(&self.host, &self.full_path());
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", &cookie);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.route_name = self.route.clone();
        req.source_address = self.source.clone();
        req
    }
}

/// `k=v` with what must be percent-encoded in a query string encoded (`&`, `#`, `+`, `%`,
/// spaces, non-ASCII, …; `=` too in the name).
pub(super) fn query_pair(k: &str, v: &str) -> String {
    let mut s = String::with_capacity(k.len() + v.len() + 1);
    encode(k, false, &mut s);
    s.push('=');
    encode(v, true, &mut s);
    s
}

fn encode(text: &str, equals_ok: bool, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b) || (equals_ok && b == b'=')
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}
