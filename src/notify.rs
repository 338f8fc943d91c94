//! What a guard tells its receivers: one line of text for logs and chat, and the request body
//! of each receiver format ([`Format`]).
//!
//! ```json
//! "notify": [
//!   {"format": "slack", "cluster": "slack", "path": "/services/${SLACK_WEBHOOK_PATH}"},
//!   {"format": "github", "cluster": "github", "authority": "api.github.com",
//!    "path": "/repos/acme/mesh-config/dispatches",
//!    "headers": {"authorization": "Bearer ${GITHUB_TOKEN}"}}
//! ]
//! ```
//!
//! Secrets stay out of Git: a receiver's `path` and header values may name environment
//! variables of the Wasm VM as `${NAME}` (Istio's `vmConfig.env` fills them from the proxy's
//! environment, itself from a Kubernetes Secret). [`expand`] replaces them when the filter
//! compiles the configuration; a variable that is not set is a configuration error.
//!
use serde_json::{json, Map, Value};

use crate::error::quote;
use crate::guard::{Cause, Event, Format, Guard, OnTrip, Outcomes, Pending};
use crate::number::scaled;

/// Names in a guard message.
pub struct Subject<'a> {
    pub policy: &'a str,
    pub variant: &'a str,
    pub baseline: &'a str,
    /// The proxy's node id.
    pub node: &'a str,
    /// [`crate::Config::document_fingerprint`] of the configuration in force, which a GitOps
    /// workflow compares with the configuration at the head of its branch.
    pub fingerprint: u64,
}

impl Subject<'_> {
    /// The node id for the text, `(no node id)` when the proxy has none.
    fn node(&self) -> &str {
        if self.node.is_empty() {
            "(no node id)"
        } else {
            self.node
        }
    }

    fn fingerprint(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }
}

/// The limit a trip broke, in words (`failure rate 30 % > 5 %`).
fn limit(guard: &Guard, cause: Cause, window: &Pending) -> String {
    let (v, b) = (&window.variant, &window.baseline);
    let percent = |ppm: u32| scaled(ppm / 100, 2);
    match cause {
        Cause::FailureRate => format!(
            "failure rate {} % > {} %",
            percent(v.failure_ppm()),
            percent(guard.max_failure_ppm.unwrap_or_default())
        ),
        Cause::P99 => format!(
            "p99 > {} ms ({} of {} responses slower)",
            guard.max_p99_ms.unwrap_or_default(),
            v.slow,
            v.timed
        ),
        Cause::FailureRateIncrease => format!(
            "failure rate {} % against the baseline's {} % (more than {} points above it, \
             significant at this window's size)",
            percent(v.failure_ppm()),
            percent(b.failure_ppm()),
            percent(guard.max_increase_ppm.unwrap_or_default())
        ),
        Cause::P99Ratio => format!(
            "p99 {} against the baseline's {} (more than {} times it)",
            ms(v.p99_ms()),
            ms(b.p99_ms()),
            scaled(guard.max_p99_ratio_milli.unwrap_or_default(), 3)
        ),
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".to_string(), |p| format!("{p} ms"))
}

/// One line describing `event`, for logs and the text of chat messages.
pub fn describe(guard: &Guard, event: &Event, who: &Subject) -> String {
    match event {
        Event::Tripped {
            cause,
            window,
            until_ms,
            trip,
        } => {
            let v = &window.variant;
            let then = match (until_ms, guard.on_trip) {
                (Some(_), _) => format!(
                    "its traffic goes to {} for {} s (trip {trip} of at most {})",
                    who.baseline, guard.hold_seconds, guard.max_trips
                ),
                (None, OnTrip::Abort) => format!(
                    "its traffic goes to {} until the configuration changes",
                    who.baseline
                ),
                (None, OnTrip::Rearm) => format!(
                    "trip {trip} of at most {}: its traffic goes to {} until the configuration \
                     changes",
                    guard.max_trips, who.baseline
                ),
            };
            format!(
                "canary-router: guard tripped on policy {}: {} {} ({} of {} requests failed, \
                 p99 {}, last {} s); {then}. Proxy: {}",
                who.policy,
                who.variant,
                limit(guard, *cause, window),
                v.failures,
                v.total,
                ms(v.p99_ms()),
                guard.window_seconds,
                who.node(),
            )
        }
        Event::Rearmed => format!(
            "canary-router: guard re-armed on policy {}: {} gets its traffic again after {} s \
             on {}. Proxy: {}",
            who.policy,
            who.variant,
            guard.hold_seconds,
            who.baseline,
            who.node()
        ),
    }
}

/// The figures of one variant's window.
fn figures(o: &Outcomes) -> Value {
    json!({
        "requests": o.total,
        "failures": o.failures,
        "failure_rate": rate(o),
        "p99_ms": o.p99_ms(),
    })
}

/// The figures of both variants' windows.
fn both_figures(window: &Pending) -> Value {
    json!({"variant": figures(&window.variant), "baseline": figures(&window.baseline)})
}

/// The failure rate as a number: parts per million over 10^6 (serialized as its shortest
/// decimal, `0.050808`).
fn rate(o: &Outcomes) -> f64 {
    f64::from(o.failure_ppm()) / 1e6
}

/// The fields of the structured body ([`Format::Generic`]).
fn structured(guard: &Guard, event: &Event, who: &Subject, time: i64) -> Map<String, Value> {
    let mut out = Map::new();
    match event {
        Event::Tripped {
            cause,
            window,
            until_ms,
            trip,
        } => {
            out.insert("event".into(), "tripped".into());
            out.insert("cause".into(), cause.as_str().into());
            out.insert("final".into(), until_ms.is_none().into());
            out.insert("trip".into(), (*trip).into());
            out.insert("figures".into(), both_figures(window));
        }
        Event::Rearmed => {
            out.insert("event".into(), "rearmed".into());
        }
    }
    for (k, v) in [
        ("policy", who.policy),
        ("variant", who.variant),
        ("baseline", who.baseline),
        ("on_trip", guard.on_trip.as_str()),
        ("node", who.node),
    ] {
        out.insert(k.into(), v.into());
    }
    out.insert("window_seconds".into(), guard.window_seconds.into());
    out.insert("hold_seconds".into(), guard.hold_seconds.into());
    out.insert("config_fingerprint".into(), who.fingerprint().into());
    out.insert("time".into(), time.into());
    out
}

/// The request body for a receiver of `format`. `time` is in unix seconds.
pub fn body(format: Format, guard: &Guard, event: &Event, who: &Subject, time: i64) -> String {
    let text = describe(guard, event, who);
    let body = match format {
        // The original body: the text Slack shows, then flat fields for anything else.
        Format::Slack => {
            let mut out = json!({
                "text": text,
                "policy": who.policy,
                "variant": who.variant,
                "baseline": who.baseline,
                "window_seconds": guard.window_seconds,
                "hold_seconds": guard.hold_seconds,
                "node": who.node,
                "time": time,
            });
            let fields = match event {
                Event::Tripped { cause, window, .. } => json!({
                    "event": "tripped",
                    "cause": cause.as_str(),
                    "failure_rate": rate(&window.variant),
                    "requests": window.variant.total,
                    "failures": window.variant.failures,
                    "p99_ms": window.variant.p99_ms(),
                }),
                Event::Rearmed => json!({"event": "rearmed"}),
            };
            if let (Some(out), Value::Object(fields)) = (out.as_object_mut(), fields) {
                out.extend(fields);
            }
            out
        }
        Format::Generic => {
            let mut out = structured(guard, event, who, time);
            out.insert("text".into(), text.into());
            Value::Object(out)
        }
        Format::Discord => json!({"username": "canary-router", "content": truncate(&text, 2000)}),
        Format::MsTeams => json!({
            "type": "message",
            "summary": truncate(&text, 200),
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": text, "wrap": true}],
                },
            }],
        }),
        Format::Github => {
            // GitHub accepts at most 10 top-level properties in client_payload.
            let mut payload = json!({
                "policy": who.policy,
                "variant": who.variant,
                "baseline": who.baseline,
                "node": who.node,
                "config_fingerprint": who.fingerprint(),
                "time": time,
                "text": truncate(&text, 1000),
            });
            if let (Some(p), Event::Tripped { cause, window, .. }) =
                (payload.as_object_mut(), event)
            {
                p.insert("cause".into(), cause.as_str().into());
                p.insert("figures".into(), both_figures(window));
            }
            json!({"event_type": GITHUB_EVENT_TYPE, "client_payload": payload})
        }
    };
    body.to_string()
}

/// The `event_type` of the GitHub `repository_dispatch` a final trip sends.
pub const GITHUB_EVENT_TYPE: &str = "canary-router-tripped";

/// Headers a format needs besides `content-type` (a receiver's own headers come after and may
/// replace them): GitHub's API refuses requests without a user agent.
pub fn default_headers(format: Format) -> &'static [(&'static str, &'static str)] {
    match format {
        Format::Github => &[
            ("accept", "application/vnd.github+json"),
            ("user-agent", "canary-router"),
            ("x-github-api-version", "2022-11-28"),
        ],
        _ => &[],
    }
}

/// At most `max` characters of `s`.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Where a `${NAME}` reference in `text` is: `(start, name, end)` byte offsets of the first one
/// at or after `from`, or the problem with it.
fn next_reference(text: &str, from: usize) -> Option<Result<(usize, &str, usize), String>> {
    let rest = text.get(from..)?;
    let start = from + rest.find("${")?;
    let after = text.get(start + 2..).unwrap_or_default();
    let Some(len) = after.find('}') else {
        return Some(Err("has \"${\" without a closing \"}\"".into()));
    };
    let name = after.get(..len).unwrap_or_default();
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Some(Err(format!(
            "names the environment variable {}: use letters, digits and '_' (as in \
             \"Bearer ${{GITHUB_TOKEN}}\")",
            quote(name)
        )));
    }
    Some(Ok((start, name, start + 2 + len + 1)))
}

/// The environment variables `text` names as `${NAME}`, or the problem with a reference.
pub fn references(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(r) = next_reference(text, at) {
        let (_, name, end) = r?;
        names.push(name);
        at = end;
    }
    Ok(names)
}

/// `text` with each `${NAME}` replaced by `lookup(NAME)`; an unset variable is an error.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(r) = next_reference(text, at) {
        let (start, name, end) = r?;
        out.push_str(text.get(at..start).unwrap_or_default());
        match lookup(name) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "names the environment variable {name}, which the Wasm VM does not have \
                     (set it in the VM's environment: Istio's vmConfig.env, Envoy's \
                     vm_config.environment_variables)"
                ))
            }
        }
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    Ok(out)
}
