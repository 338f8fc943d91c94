//! A policy's sticky keys and minted cookie, and where a key or a condition reads its value.

use crate::config::{RawCookie, RawKey};
use crate::error::{cat, quote, quoted, Errors};
use crate::model::{Key, Source, StickyCookie};
use crate::names::{attribute_value, cookie_name, header_name};
use crate::number::push_decimal;

pub(super) fn compile_key(k: &RawKey, path: &str, errs: &mut Errors) -> Option<Key> {
    let fields = [
        ("header", k.header.is_some()),
        ("cookie", k.cookie.is_some()),
        ("query", k.query.is_some()),
        ("source_ip", k.source_ip.is_some()),
    ];
    if !exactly_one("a sticky key", &fields, path, errs) {
        return None;
    }
    if let Some(ip) = k.source_ip {
        if !ip {
            errs.push_at(
                path,
                "source_ip",
                "must be true; remove the key to disable it",
            );
            return None;
        }
        return Some(Key::SourceIp);
    }
    compile_source(&k.header, &k.cookie, &k.query, path, errs).map(Key::Value)
}

/// Whether exactly one of a set of mutually exclusive fields `(name, given)` is given; if not,
/// reports "`what` sets exactly one of "a", "b", …" at `path`.
pub(super) fn exactly_one(
    what: &str,
    fields: &[(&str, bool)],
    path: &str,
    errs: &mut Errors,
) -> bool {
    if fields.iter().filter(|(_, given)| *given).count() == 1 {
        return true;
    }
    let mut message = cat(&[what, " sets exactly one of "]);
    for (i, (name, _)) in fields.iter().enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        message.push_str(&quote(name));
    }
    errs.push_owned(path.to_string(), message);
    false
}

pub(super) fn compile_source(
    header: &Option<String>,
    cookie: &Option<String>,
    query: &Option<String>,
    path: &str,
    errs: &mut Errors,
) -> Option<Source> {
    if let Some(h) = header {
        match header_name(h) {
            Ok(h) => Some(Source::Header(h)),
            Err(m) => {
                errs.push_at(path, "header", &m);
                None
            }
        }
    } else if let Some(c) = cookie {
        match cookie_name(c) {
            Ok(()) => Some(Source::Cookie(c.clone())),
            Err(m) => {
                errs.push_at(path, "cookie", &m);
                None
            }
        }
    } else if let Some(q) = query {
        if q.is_empty() {
            errs.push_at(path, "query", "query parameter name must not be empty");
            None
        } else {
            Some(Source::Query(q.clone()))
        }
    } else {
        None
    }
}

pub(super) fn compile_cookie(c: &RawCookie, path: &str, errs: &mut Errors) -> Option<StickyCookie> {
    let before = errs.len();
    if let Err(m) = cookie_name(&c.name) {
        errs.push_at(path, "name", &m);
    }
    let mut attributes = String::new();
    if let Some(max_age) = c.max_age {
        attributes.push_str("; Max-Age=");
        push_decimal(&mut attributes, max_age);
    }
    // Path defaults to "/": without it a browser scopes the cookie to the directory of the
    // page that got it, so a first visit on a deep link (or /favicon.ico) mints another id and
    // the same browser can land on both variants.
    {
        let p = c.path.as_deref().unwrap_or("/");
        if !p.starts_with('/') || !attribute_value(p) {
            let message = quoted(
                p,
                " must start with '/' and hold no ';', control characters or spaces",
            );
            errs.push_at(path, "path", &message);
        }
        attributes.push_str("; Path=");
        attributes.push_str(p);
    }
    if let Some(d) = &c.domain {
        if d.is_empty() || !attribute_value(d) {
            errs.push_at(path, "domain", &quoted(d, " is not a valid cookie domain"));
        }
        attributes.push_str("; Domain=");
        attributes.push_str(d);
    }
    if c.secure {
        attributes.push_str("; Secure");
    }
    if c.http_only {
        attributes.push_str("; HttpOnly");
    }
    if let Some(s) = &c.same_site {
        let v = ["Strict", "Lax", "None"]
            .into_iter()
            .find(|v| v.eq_ignore_ascii_case(s));
        match v {
            Some(v) => {
                if v == "None" && !c.secure {
                    errs.push_at(
                        path,
                        "same_site",
                        "\"None\" requires \"secure\": true (browsers drop the cookie otherwise)",
                    );
                }
                attributes.push_str("; SameSite=");
                attributes.push_str(v);
            }
            None => errs.push_at(
                path,
                "same_site",
                &quoted(s, " must be \"Strict\", \"Lax\" or \"None\""),
            ),
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(StickyCookie {
        name: c.name.clone(),
        attributes,
    })
}
