//! A policy's variants and their weights, and finding a variant by name.

use crate::config::RawPolicy;
use crate::error::{cat, child, quote, quote_list, Errors};
use crate::model::Variant;
use crate::split::check_weights;

pub(super) fn compile_variants(
    p: &RawPolicy,
    path: &str,
    errs: &mut Errors,
) -> (Vec<Variant>, Vec<u16>) {
    let vpath = child(path, "variants");
    if p.variants.is_empty() {
        errs.push(&vpath, "must list at least one variant");
        return (Vec::new(), Vec::new());
    }
    let checked = check_weights(
        &mut p
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.weight.as_str())),
        &vpath,
        errs,
    );
    let mut variants = Vec::with_capacity(checked.len());
    let mut weights = Vec::with_capacity(checked.len());
    for &(name, w) in &checked {
        variants.push(Variant {
            name: name.to_string(),
        });
        weights.push(w);
    }
    (variants, weights)
}

/// The index of the variant called `name`; when there is none, reports "unknown variant X;
/// the policy has [...]" at `path.field` (unless the policy has no variants at all, an error
/// of its own).
pub(super) fn find_variant(
    variants: &[Variant],
    name: &str,
    path: &str,
    field: &str,
    errs: &mut Errors,
) -> Option<usize> {
    let i = variants.iter().position(|v| v.name == name);
    if i.is_none() && !variants.is_empty() {
        let message = cat(&[
            "unknown variant ",
            &quote(name),
            "; the policy has ",
            &quote_list(variants.iter().map(|v| v.name.as_str())),
        ]);
        errs.push_at(path, field, &message);
    }
    i
}
