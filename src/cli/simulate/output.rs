//! What `simulate --json` prints: one serde type per shape of line.

use serde::{Serialize, Serializer};

/// `--json`: the decision for one request.
#[derive(Serialize)]
pub(super) struct RequestJson<'a> {
    pub(super) policy: &'a str,
    pub(super) variant: &'a str,
    pub(super) reason: &'a str,
    pub(super) bucket: Option<u16>,
    pub(super) set_cookie: Option<String>,
}

/// `--json --per-user`: one user's line.
#[derive(Serialize)]
pub(super) struct UserJson<'a> {
    pub(super) user: &'a str,
    pub(super) variant: &'a str,
    pub(super) reason: &'a str,
    pub(super) bucket: Option<u16>,
}

/// `--json` when no policy applies: `{"policy": null}`, after the user (`--per-user`) or
/// before the number of users (`--users`).
#[derive(Serialize)]
pub(super) struct UntouchedJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<&'a str>,
    pub(super) policy: (),
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) users: Option<u32>,
}

/// `--json --users`: the split the users got.
#[derive(Serialize)]
pub(super) struct UsersJson<'a> {
    pub(super) policy: &'a str,
    pub(super) users: u32,
    pub(super) sticky_key: Option<String>,
    pub(super) enabled: bool,
    pub(super) variants: Vec<VariantJson<'a>>,
    pub(super) reasons: Counts<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) untouched: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct VariantJson<'a> {
    pub(super) name: &'a str,
    pub(super) count: u64,
    /// The share of the users, rounded to 3 decimals.
    pub(super) percent: f64,
    pub(super) weight: Weight,
}

/// Counts by name as a JSON object, in the order given (that of [`Reason::ALL`]).
pub(super) struct Counts<'a>(pub(super) Vec<(&'a str, u64)>);

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// A weight in basis points as a JSON number: 10, or 10.5. Exact: `bp / 100` as a double is
/// the double nearest to the decimal with at most two decimals, and serde_json writes the
/// shortest text that reads back as that double, which is the decimal itself.
pub(super) struct Weight(pub(super) u16);

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            s.serialize_u16(self.0 / 100)
        } else {
            s.serialize_f64(f64::from(self.0) / 100.0)
        }
    }
}
