//! A policy's scheduled ramp.

use super::variants::find_variant;
use crate::config::RawRamp;
use crate::error::{cat, child, element, quote, Errors};
use crate::model::Variant;
use crate::ramp::{parse_rfc3339, Ramp, RampForm};
use crate::split::{fixed_weight, format_percent, weight_bp, BUCKETS};

/// Checks a ramp: its variant exists and is not the last (which takes the remainder), exactly
/// one form is given, every weight is a percentage with at most two decimals that leaves the
/// other variants their weights.
pub(super) fn compile_ramp(
    r: &RawRamp,
    variants: &[Variant],
    weights: &[u16],
    path: &str,
    errs: &mut Errors,
) -> Option<Ramp> {
    let before = errs.len();
    let variant = find_variant(variants, &r.variant, path, "variant", errs);
    let last = variants.len().saturating_sub(1);
    match variant {
        None => {}
        Some(i) if i == last => errs.push_at(
            path,
            "variant",
            "the last variant takes the remainder; ramp another one",
        ),
        // Buckets are laid out in variant order: a variant between the ramped one and the
        // last would shift as the ramp moves, and its users with it.
        Some(i) if i + 1 != last => {
            let message = cat(&[
                "list the ramped variant just before the last one (",
                &quote(variants.get(last).map_or("", |v| v.name.as_str())),
                "), so that the variants between do not shift as the ramp moves",
            ]);
            errs.push_at(path, "variant", &message);
        }
        _ => {}
    }
    // What the other variants (but the last) keep.
    let fixed = fixed_weight(weights, variant.unwrap_or(usize::MAX));
    let room = u32::from(BUCKETS).saturating_sub(fixed);
    let weight = |text: &str, at: String, errs: &mut Errors| -> u16 {
        match weight_bp(text) {
            Ok(bp) if u32::from(bp) <= room => bp,
            Ok(_) => {
                let message = cat(&[
                    "weight ",
                    text,
                    " leaves no room for the other variants' ",
                    &format_percent(fixed),
                ]);
                errs.push_owned(at, message);
                0
            }
            Err(m) => {
                errs.push_owned(at, m);
                0
            }
        }
    };
    let start = parse_rfc3339(&r.start).unwrap_or_else(|m| {
        errs.push_at(path, "start", &m);
        0
    });
    let form = match (&r.steps, r.step_seconds, &r.from, &r.to, r.duration_seconds) {
        (Some(steps), Some(step_seconds), None, None, None) => {
            let steps_path = child(path, "steps");
            if steps.is_empty() {
                errs.push(&steps_path, "must list at least one weight");
            }
            let mut bp = Vec::with_capacity(steps.len());
            for (j, w) in steps.iter().enumerate() {
                bp.push(weight(w, element(&steps_path, j), errs));
            }
            RampForm::Steps {
                steps: bp,
                step_seconds,
            }
        }
        (None, None, Some(from), Some(to), Some(duration)) => RampForm::Linear {
            from: weight(from, child(path, "from"), errs),
            to: weight(to, child(path, "to"), errs),
            duration,
        },
        _ => {
            errs.push(
                path,
                "set either \"steps\" and \"step_seconds\", or \"from\", \"to\" and \"duration_seconds\"",
            );
            return None;
        }
    };
    if r.step_seconds == Some(0) || r.duration_seconds == Some(0) {
        errs.push(path, "a ramp's seconds must be at least 1");
    }
    if errs.len() != before {
        return None;
    }
    Some(Ramp {
        variant: variant?,
        start,
        form,
    })
}
