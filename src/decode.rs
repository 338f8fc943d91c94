//! Why a macro table, not serde derive: it keeps every shape error with its path, in a smaller
//! module. Measured (benchmark's typical configuration, callgrind; `scripts/build.sh`): the table
//! decodes in 37.0 K instructions, module 204 848 bytes; serde derive + serde_path_to_error took
//! 46.4 K from a parsed serde_json tree (78.5 K converting ours), reported 1 of the 19 errors of
//! `every_shape_error_is_reported`, could not set `notify_list` from `notify`'s shape, and made
//! the module 315 494 bytes (287 911 without paths), over the 262 144 ceiling.
//!
//! The machinery behind [`decoded!`]: each `Raw*` type of [`crate::config`] is declared once, one
//! line per field (its type, JSON name, whether it is required, and its kind), and the macro
//! writes the struct and its decoder. Decoding walks a [`Value`] and reports every shape error of
//! the document, each with its JSON path, in the words serde uses (`unknown field `x``,
//! `missing field `name``, `invalid type: …`); it does not stop at the first.
//!
//! A *kind* decodes one JSON value at a path: `string`, `boolean`, `number` (kept as the exact
//! decimal written), `unsigned`, `list(kind)`, `map(kind)`, `one_or_list(kind)`, or a nested
//! struct's `Raw*::decode_at`. Each returns `None` when the value had an error (recorded).

use crate::error::{cat, child, element, Errors};
use crate::json::{self, Value};

/// Declares a `Raw*` struct and its decoder `decode_at(value, path, errors)` from one line per
/// field: `pub name: Type = mode("json_name", kind),` where `mode` is
/// - `required`: a missing member is an error (`missing field `x``);
/// - `or_default`: a missing member leaves the struct's `Default` (null is a type error);
/// - `optional`: an `Option` field, `null` is the same as leaving the member out;
/// - `custom`: `kind` is `fn(&mut Self, &Value, &str, &mut Errors)` and sets what it wants.
///
/// Members are accepted in any order; unknown and repeated members are errors. Fields that no
/// JSON member sets follow in an `also { … }` block.
macro_rules! decoded {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty = $mode:ident($json:literal, $kind:expr),
            )*
        }
        $(also {
            $( $(#[$emeta:meta])* $evis:vis $efield:ident : $ety:ty, )*
        })?
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
            $($( $(#[$emeta])* $evis $efield: $ety, )*)?
        }

        impl $name {
            /// Decodes the JSON object at `path`, recording every shape error in `errs`; `None`
            /// if there was any.
            pub fn decode_at(
                v: &$crate::json::Value,
                path: &str,
                errs: &mut $crate::error::Errors,
            ) -> Option<Self> {
                // The field's position in the table, as `object` reports it.
                #[allow(non_camel_case_types)]
                enum Field { $($field),* }
                const FIELDS: &[&str] = &[$($json),*];
                const _: () = assert!(FIELDS.len() <= 64, "`object` tracks fields in a u64");
                // Bit `i` set: `FIELDS[i]` is required.
                const REQUIRED: u64 =
                    0 $(| ($crate::decode::is_required!($mode) as u64) << Field::$field as u64)*;
                let mut out = Self::default();
                $crate::decode::object(v, path, FIELDS, REQUIRED, errs, &mut |i, v, path, errs| match i {
                    $(i if i == Field::$field as usize => {
                        $crate::decode::field!($mode, out, $field, $kind, v, path, errs)
                    })*
                    _ => {}
                })?;
                Some(out)
            }
        }
    };
}
pub(crate) use decoded;

/// Whether a mode of [`decoded!`] makes the member required.
macro_rules! is_required {
    (required) => {
        true
    };
    ($mode:ident) => {
        false
    };
}
pub(crate) use is_required;

/// Stores one member's decoded value according to its mode (see [`decoded!`]).
macro_rules! field {
    (required, $out:ident, $field:ident, $kind:expr, $v:ident, $path:ident, $errs:ident) => {
        $crate::decode::set(&mut $out.$field, ($kind)($v, $path, $errs))
    };
    (or_default, $out:ident, $field:ident, $kind:expr, $v:ident, $path:ident, $errs:ident) => {
        $crate::decode::set(&mut $out.$field, ($kind)($v, $path, $errs))
    };
    (optional, $out:ident, $field:ident, $kind:expr, $v:ident, $path:ident, $errs:ident) => {
        $out.$field = $crate::decode::opt($v, $path, $errs, $kind)
    };
    (custom, $out:ident, $field:ident, $kind:expr, $v:ident, $path:ident, $errs:ident) => {
        ($kind)(&mut $out, $v, $path, $errs)
    };
}
pub(crate) use field;

fn invalid(v: &Value, expected: &str, path: &str, errs: &mut Errors) {
    let message = cat(&["invalid type: ", &v.describe(), ", expected ", expected]);
    errs.push(path, &message);
}

pub(crate) fn string(v: &Value, path: &str, errs: &mut Errors) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            invalid(v, "a string", path, errs);
            None
        }
    }
}

pub(crate) fn boolean(v: &Value, path: &str, errs: &mut Errors) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => {
            invalid(v, "a boolean", path, errs);
            None
        }
    }
}

/// A JSON number kept as written: weights and rates are exact decimals, never floats.
pub(crate) fn number(v: &Value, path: &str, errs: &mut Errors) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.clone()),
        _ => {
            invalid(v, "a number", path, errs);
            None
        }
    }
}

pub(crate) fn unsigned(v: &Value, path: &str, errs: &mut Errors) -> Option<u64> {
    match v {
        Value::Number(n) if json::is_integer(n) => match crate::number::parse_decimal(n.as_bytes())
        {
            Some(n) => Some(n),
            None => {
                let message = cat(&["invalid value: ", &v.describe(), ", expected u64"]);
                errs.push(path, &message);
                None
            }
        },
        _ => {
            invalid(v, "u64", path, errs);
            None
        }
    }
}

/// A JSON array decoded item by item with `item` (errors name `path[i]`); `None` if the value is
/// not an array or any item had an error.
pub(crate) fn list<T>(
    item: impl Fn(&Value, &str, &mut Errors) -> Option<T>,
) -> impl Fn(&Value, &str, &mut Errors) -> Option<Vec<T>> {
    move |v: &Value, path: &str, errs: &mut Errors| {
        let Value::Array(items) = v else {
            invalid(v, "a sequence", path, errs);
            return None;
        };
        let before = errs.len();
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            if let Some(x) = item(v, &element(path, i), errs) {
                out.push(x);
            }
        }
        (errs.len() == before).then_some(out)
    }
}

/// A JSON object of `value`s under any keys, in document order (errors name `path.key`).
pub(crate) fn map<T>(
    value: impl Fn(&Value, &str, &mut Errors) -> Option<T>,
) -> impl Fn(&Value, &str, &mut Errors) -> Option<Vec<(String, T)>> {
    move |v: &Value, path: &str, errs: &mut Errors| {
        let Value::Object(members) = v else {
            invalid(v, "a map", path, errs);
            return None;
        };
        let before = errs.len();
        let mut out = Vec::with_capacity(members.len());
        for (k, v) in members {
            if let Some(v) = value(v, &child(path, k), errs) {
                out.push((k.clone(), v));
            }
        }
        (errs.len() == before).then_some(out)
    }
}

/// A list of `item`s, or one written without the brackets (its errors name `path`).
pub(crate) fn one_or_list<T>(
    item: impl Fn(&Value, &str, &mut Errors) -> Option<T> + Copy,
) -> impl Fn(&Value, &str, &mut Errors) -> Option<Vec<T>> {
    move |v: &Value, path: &str, errs: &mut Errors| match v {
        Value::Array(_) => list(item)(v, path, errs),
        _ => item(v, path, errs).map(|x| vec![x]),
    }
}

/// Walks the members of an object whose known members are `fields`: calls `field(index, value,
/// path)` for each known member; reports unknown and repeated members, and the required ones
/// (bit `i` of `required` for `fields[i]`) that are missing. `None` if `v` is not an object or had any error. `field` is a
/// `dyn` callback so that the Wasm module holds one walker, not one per struct.
pub(crate) fn object(
    v: &Value,
    path: &str,
    fields: &[&str],
    required: u64,
    errs: &mut Errors,
    field: &mut dyn FnMut(usize, &Value, &str, &mut Errors),
) -> Option<()> {
    let Value::Object(members) = v else {
        invalid(v, "a map", path, errs);
        return None;
    };
    let before = errs.len();
    let mut seen = 0u64;
    for (key, value) in members {
        let fpath = child(path, key);
        match fields.iter().position(|f| f == key) {
            Some(i) if seen & (1 << i) != 0 => {
                errs.push_owned(fpath, cat(&["duplicate field `", key, "`"]));
            }
            Some(i) => {
                seen |= 1 << i;
                field(i, value, &fpath, errs);
            }
            None => {
                let mut message = cat(&["unknown field `", key, "`, expected one of "]);
                for (j, f) in fields.iter().enumerate() {
                    if j > 0 {
                        message.push_str(", ");
                    }
                    message.push('`');
                    message.push_str(f);
                    message.push('`');
                }
                errs.push_owned(fpath, message);
            }
        }
    }
    let mut missing = required & !seen;
    while missing != 0 {
        let name = fields.get(missing.trailing_zeros() as usize).copied();
        errs.push(
            path,
            &cat(&["missing field `", name.unwrap_or_default(), "`"]),
        );
        missing &= missing - 1;
    }
    (errs.len() == before).then_some(())
}

/// An optional member: `null` is the same as leaving it out.
pub(crate) fn opt<T>(
    v: &Value,
    path: &str,
    errs: &mut Errors,
    decode: impl Fn(&Value, &str, &mut Errors) -> Option<T>,
) -> Option<T> {
    match v {
        Value::Null => None,
        v => decode(v, path, errs),
    }
}

/// Sets `slot` from a decoded value (left unchanged when decoding failed; the error is
/// recorded).
pub(crate) fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
