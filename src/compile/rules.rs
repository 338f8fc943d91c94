//! A policy's rules and their conditions.

use super::sticky::{compile_source, exactly_one};
use super::variants::find_variant;
use crate::config::{RawMatch, RawRule};
use crate::error::{cat, child, element, quote, Errors};
use crate::model::{Condition, Op, Rule, Variant};
use crate::overrides::Environment;

/// A compiled condition: read per request, or already decided at configure time
/// (`source_label`: the proxy's own labels do not change while it runs).
enum Compiled {
    PerRequest(Condition),
    Constant(bool),
}

/// A rule, or `None` if it has errors or can never hold on this proxy (a `source_label`
/// condition that is false here).
pub(super) fn compile_rule(
    r: &RawRule,
    variants: &[Variant],
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Rule> {
    let before = errs.len();
    let variant = find_variant(variants, &r.variant, path, "variant", errs);
    let match_path = child(path, "match");
    if r.matches.is_empty() {
        errs.push(&match_path, "must list at least one condition");
    }
    // Every condition is compiled (and its errors reported) even after one that never holds.
    let mut conditions = Vec::with_capacity(r.matches.len());
    let mut never = false;
    for (k, m) in r.matches.iter().enumerate() {
        match compile_condition(m, &element(&match_path, k), env, errs) {
            Some(Compiled::PerRequest(c)) => conditions.push(c),
            Some(Compiled::Constant(false)) => never = true,
            Some(Compiled::Constant(true)) | None => {}
        }
    }
    if errs.len() != before || never {
        return None;
    }
    variant.map(|variant| Rule {
        variant,
        conditions,
    })
}

fn compile_condition(
    m: &RawMatch,
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Compiled> {
    let sources = [
        ("header", m.header.is_some()),
        ("cookie", m.cookie.is_some()),
        ("query", m.query.is_some()),
        ("source_label", m.source_label.is_some()),
    ];
    let ops = [
        ("exact", m.exact.is_some()),
        ("prefix", m.prefix.is_some()),
        ("suffix", m.suffix.is_some()),
        ("contains", m.contains.is_some()),
        ("present", m.present.is_some()),
        ("regex", m.regex.is_some()),
    ];
    // Both checks report, even when the first fails.
    let one_source = exactly_one("a condition", &sources, path, errs);
    if !exactly_one("a condition", &ops, path, errs) || !one_source {
        return None;
    }
    let op = if let Some(v) = &m.exact {
        Op::Exact(v.clone())
    } else if let Some(v) = &m.prefix {
        Op::Prefix(v.clone())
    } else if let Some(v) = &m.suffix {
        Op::Suffix(v.clone())
    } else if let Some(v) = &m.contains {
        Op::Contains(v.clone())
    } else if let Some(v) = m.present {
        Op::Present(v)
    } else if let Some(re) = &m.regex {
        // Whole-value match, as Envoy's and Istio's `regex` string matchers do.
        match crate::regex::Regex::new(re) {
            Ok(r) => Op::Regex(r),
            Err(e) => {
                errs.push_at(
                    path,
                    "regex",
                    &cat(&["invalid regex ", &quote(re), ": ", &e]),
                );
                return None;
            }
        }
    } else {
        return None;
    };
    if let Some(label) = &m.source_label {
        if label.is_empty() {
            errs.push_at(path, "source_label", "label name must not be empty");
            return None;
        }
        return Some(Compiled::Constant(op.test(env.label(label))));
    }
    let source = compile_source(&m.header, &m.cookie, &m.query, path, errs)?;
    Some(Compiled::PerRequest(Condition { source, op }))
}
