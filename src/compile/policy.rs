//! A policy: its selectors (hosts, path prefix, routes), salt, and its parts compiled by the
//! sibling modules.

use super::guard::compile_guard;
use super::ramp::compile_ramp;
use super::rules::compile_rule;
use super::sticky::{compile_cookie, compile_key};
use super::variants::compile_variants;
use crate::config::RawPolicy;
use crate::error::{child, element, quoted, Errors};
use crate::model::Policy;
use crate::names::{host_pattern, name};
use crate::overrides::Environment;
use crate::split::Split;

pub(crate) fn compile_policy(
    p: &RawPolicy,
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Policy> {
    let before = errs.len();
    if let Err(m) = name(&p.name) {
        errs.push_at(path, "name", &m);
    }

    let hosts = p.hosts.as_ref().map(|hosts| {
        if hosts.is_empty() {
            errs.push_at(
                path,
                "hosts",
                "must not be empty; omit it to match any host",
            );
        }
        let mut patterns = Vec::with_capacity(hosts.len());
        for (j, h) in hosts.iter().enumerate() {
            match host_pattern(h) {
                Ok(h) => patterns.push(h),
                Err(m) => errs.push_owned(element(&child(path, "hosts"), j), m),
            }
        }
        patterns
    });

    if let Some(prefix) = &p.path_prefix {
        if !prefix.starts_with('/') {
            errs.push_at(path, "path_prefix", &quoted(prefix, " must start with '/'"));
        }
    }

    if let Some(routes) = &p.routes {
        if routes.is_empty() {
            errs.push_at(
                path,
                "routes",
                "must not be empty; omit it to match any route",
            );
        }
        for (j, r) in routes.iter().enumerate() {
            if r.is_empty() {
                let at = element(&child(path, "routes"), j);
                errs.push(&at, "route name must not be empty");
            }
        }
    }

    let salt = p.salt.as_deref().unwrap_or(&p.name);
    if p.salt.as_deref() == Some("") {
        errs.push_at(
            path,
            "salt",
            "must not be empty; omit it to use the policy name",
        );
    }
    let mut salt_prefix = Vec::with_capacity(salt.len() + 1);
    salt_prefix.extend_from_slice(salt.as_bytes());
    salt_prefix.push(b':');

    let (variants, weights) = compile_variants(p, path, errs);

    let (keys, cookie) = match &p.sticky {
        None => (Vec::new(), None),
        Some(s) => {
            let sticky = child(path, "sticky");
            if s.keys.is_empty() && s.cookie.is_none() {
                errs.push(
                    &sticky,
                    "set \"keys\", \"cookie\" or both; omit \"sticky\" for a random split",
                );
            }
            let keys_path = child(&sticky, "keys");
            let mut keys = Vec::with_capacity(s.keys.len());
            for (j, k) in s.keys.iter().enumerate() {
                if let Some(key) = compile_key(k, &element(&keys_path, j), errs) {
                    keys.push(key);
                }
            }
            let cookie = s
                .cookie
                .as_ref()
                .and_then(|c| compile_cookie(c, &child(&sticky, "cookie"), errs));
            (keys, cookie)
        }
    };

    let rules_path = child(path, "rules");
    let mut rules = Vec::with_capacity(p.rules.len());
    for (j, r) in p.rules.iter().enumerate() {
        if let Some(rule) = compile_rule(r, &variants, &element(&rules_path, j), env, errs) {
            rules.push(rule);
        }
    }

    let ramp = p
        .ramp
        .as_ref()
        .and_then(|r| compile_ramp(r, &variants, &weights, &child(path, "ramp"), errs));

    let guard = p
        .guard
        .as_ref()
        .and_then(|g| compile_guard(g, &variants, &child(path, "guard"), env, errs));

    if errs.len() != before {
        return None;
    }
    Some(Policy {
        name: p.name.clone(),
        hosts,
        path_prefix: p.path_prefix.clone(),
        routes: p.routes.clone(),
        salt_prefix,
        trust_incoming: p.trust_incoming,
        variants,
        split: Split::new(weights, true),
        keys,
        cookie,
        rules,
        ramp,
        guard,
    })
}
