//! A policy's guard and its receivers.

use super::variants::find_variant;
use crate::config::{RawGuard, RawNotify};
use crate::error::{cat, child, element, quote, quoted, Errors};
use crate::guard::{Format, Guard, OnTrip, Receiver, MAX_WINDOW_SECONDS};
use crate::model::Variant;
use crate::names::header_name;
use crate::number::{decimal, fixed_point, out_of_range, FixedError};
use crate::overrides::Environment;

/// Checks a guard: its variant and baseline exist and differ, at least one limit is set, and
/// every number is in range. Defaults: the last variant as baseline, a 10 s window, 20
/// requests, abort on trip (`rearm`: a 300 s hold, at most 3 trips).
pub(super) fn compile_guard(
    g: &RawGuard,
    variants: &[Variant],
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Guard> {
    let before = errs.len();
    let variant = find_variant(variants, &g.variant, path, "variant", errs);
    let baseline = match &g.baseline {
        Some(b) => find_variant(variants, b, path, "baseline", errs),
        None => variants.len().checked_sub(1),
    };
    if variant.is_some() && variant == baseline {
        let message = cat(&[
            "the baseline must be another variant than ",
            &quote(&g.variant),
        ]);
        errs.push_at(path, "baseline", &message);
    }
    let ranged = |v: Option<u64>, default: u64, max: u64, field: &str, errs: &mut Errors| {
        let v = v.unwrap_or(default);
        if v == 0 || v > max {
            errs.push_at(path, field, &out_of_range(v, max));
        }
        u32::try_from(v).unwrap_or_default()
    };
    let window_seconds = ranged(
        g.window_seconds,
        10,
        MAX_WINDOW_SECONDS,
        "window_seconds",
        errs,
    );
    let on_trip = match g.on_trip.as_deref() {
        None | Some("abort") => OnTrip::Abort,
        Some("rearm") => OnTrip::Rearm,
        Some(other) => {
            errs.push_at(
                path,
                "on_trip",
                &quoted(
                    other,
                    " is not a choice: \"abort\" (the variant stays off until the configuration \
                     changes) or \"rearm\" (back after hold_seconds, at most max_trips times)",
                ),
            );
            OnTrip::Abort
        }
    };
    if on_trip == OnTrip::Abort {
        let rearm_only = [
            ("hold_seconds", g.hold_seconds.is_some()),
            ("max_trips", g.max_trips.is_some()),
        ];
        for (field, set) in rearm_only {
            if set {
                errs.push_at(
                    path,
                    field,
                    "applies to \"on_trip\": \"rearm\" only; an aborting guard (the default) \
                     keeps the variant off until the configuration changes",
                );
            }
        }
    }
    let hold_seconds = ranged(g.hold_seconds, 300, 86_400, "hold_seconds", errs);
    let max_trips = ranged(g.max_trips, 3, 1_000, "max_trips", errs);
    let min_requests = ranged(g.min_requests, 20, 1_000_000, "min_requests", errs);
    let max_p99_ms = g
        .max_p99_ms
        .map(|v| ranged(Some(v), v, 3_600_000, "max_p99_ms", errs));
    let fraction =
        |text: &String, field: &str, errs: &mut Errors| match fixed_point(text, 6, 1_000_000) {
            Ok(ppm) => u32::try_from(ppm).unwrap_or_default(),
            Err(e) => {
                let problem = match e {
                    FixedError::Precision => " has more than six decimals",
                    FixedError::Range => " must be a fraction from 0 to 1 (0.05 is 5 %)",
                };
                errs.push_at(path, field, &cat(&[text, problem]));
                0
            }
        };
    let max_failure_ppm = g
        .max_failure_rate
        .as_ref()
        .map(|text| fraction(text, "max_failure_rate", errs));
    let max_increase_ppm = g
        .max_failure_rate_increase
        .as_ref()
        .map(|text| fraction(text, "max_failure_rate_increase", errs));
    let max_p99_ratio_milli =
        g.max_p99_ratio
            .as_ref()
            .map(|text| match fixed_point(text, 3, 1_000_000) {
                Ok(milli) if milli >= 1000 => u32::try_from(milli).unwrap_or_default(),
                Ok(_) | Err(FixedError::Range) => {
                    errs.push_at(
                        path,
                        "max_p99_ratio",
                        &cat(&[text, " must be a factor from 1 to 1000 (1.5: 50 % slower)"]),
                    );
                    0
                }
                Err(FixedError::Precision) => {
                    errs.push_at(
                        path,
                        "max_p99_ratio",
                        &cat(&[text, " has more than three decimals"]),
                    );
                    0
                }
            });
    if max_failure_ppm.is_none()
        && max_p99_ms.is_none()
        && max_increase_ppm.is_none()
        && max_p99_ratio_milli.is_none()
    {
        errs.push(
            path,
            "set a limit (\"max_failure_rate\", \"max_p99_ms\", \"max_failure_rate_increase\" or \
             \"max_p99_ratio\"); a guard without a limit never trips",
        );
    }
    let notify_path = child(path, "notify");
    let mut receivers = Vec::new();
    for (i, n) in g.notify.iter().flatten().enumerate() {
        let at = if g.notify_list {
            element(&notify_path, i)
        } else {
            notify_path.clone()
        };
        if let Some(r) = compile_receiver(n, &at, env, errs) {
            receivers.push(r);
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(Guard {
        variant: variant?,
        baseline: baseline?,
        window_seconds,
        min_requests,
        max_failure_ppm,
        max_p99_ms,
        max_increase_ppm,
        max_p99_ratio_milli,
        on_trip,
        hold_seconds,
        max_trips,
        receivers,
    })
}

fn compile_receiver(
    n: &RawNotify,
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Receiver> {
    let before = errs.len();
    let format = match n.format.as_deref() {
        None => Format::Slack,
        Some(name) => Format::parse(name).unwrap_or_else(|| {
            let choices = Format::NAMES.map(quote).join(", ");
            errs.push_at(
                path,
                "format",
                &quoted(name, &cat(&[" is not a format: one of ", &choices])),
            );
            Format::Slack
        }),
    };
    if n.cluster.is_empty() {
        errs.push_at(path, "cluster", "must name an Envoy cluster");
    }
    if !n.path.starts_with('/') {
        errs.push_at(path, "path", &quoted(&n.path, " must start with '/'"));
    }
    let url_path = env.expand(&n.path).unwrap_or_else(|m| {
        errs.push_at(path, "path", &m);
        String::new()
    });
    if url_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        errs.push_at(
            path,
            "path",
            "must not contain spaces or control characters (as written or from a variable)",
        );
    }
    let timeout_ms = n.timeout_ms.unwrap_or(5000);
    if timeout_ms == 0 || timeout_ms > 60_000 {
        errs.push_at(path, "timeout_ms", &out_of_range(timeout_ms, 60_000));
    }
    let retries = n.retries.unwrap_or(3);
    if retries > 10 {
        errs.push_at(
            path,
            "retries",
            &cat(&[&decimal(retries), " is out of range; expected 0 to 10"]),
        );
    }
    let mut headers = Vec::new();
    let headers_path = child(path, "headers");
    for (name, value) in n.headers.iter().flatten() {
        let value = match env.expand(value) {
            Ok(v) => v,
            Err(m) => {
                errs.push_at(&headers_path, name, &m);
                continue;
            }
        };
        match header_name(name) {
            Ok(_) if value.as_bytes().iter().any(|&b| b < b' ' && b != b'\t') => errs.push_at(
                &headers_path,
                name,
                "header value must not contain control characters",
            ),
            Ok(h) => headers.push((h, value)),
            Err(m) => errs.push_at(&headers_path, name, &m),
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(Receiver {
        format,
        cluster: n.cluster.clone(),
        authority: n.authority.clone().unwrap_or_else(|| n.cluster.clone()),
        path: url_path,
        timeout_ms: u32::try_from(timeout_ms).unwrap_or_default(),
        retries: u32::try_from(retries).unwrap_or_default(),
        headers,
    })
}
