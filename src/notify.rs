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
//! The bodies are written here with [`quote`] rather than a serializer: the filter does not
//! link serde_json (issue 14 revisits this).

use crate::guard::{Cause, Event, Format, Guard, OnTrip, Outcomes, Pending};
use crate::json::quote;

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
    let percent = |ppm: u32| decimal(ppm / 100, 2);
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
            decimal(guard.max_p99_ratio_milli.unwrap_or_default(), 3)
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

/// A JSON object under construction: `,"name":value` pairs after an opening brace.
struct Object(String);

impl Object {
    fn new() -> Object {
        Object(String::from("{"))
    }

    fn raw(&mut self, name: &str, value: &str) -> &mut Object {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&quote(name));
        self.0.push(':');
        self.0.push_str(value);
        self
    }

    fn str(&mut self, name: &str, value: &str) -> &mut Object {
        self.raw(name, &quote(value))
    }

    fn num(&mut self, name: &str, value: impl ToString) -> &mut Object {
        self.raw(name, &value.to_string())
    }

    fn end(&mut self) -> String {
        let mut s = std::mem::take(&mut self.0);
        s.push('}');
        s
    }
}

/// The figures of one variant's window as a JSON object.
fn figures(o: &Outcomes) -> String {
    Object::new()
        .num("requests", o.total)
        .num("failures", o.failures)
        .raw("failure_rate", &decimal(o.failure_ppm(), 6))
        .raw(
            "p99_ms",
            &o.p99_ms().map_or_else(|| "null".into(), |p| p.to_string()),
        )
        .end()
}

/// The fields every structured body carries.
fn structured(out: &mut Object, guard: &Guard, event: &Event, who: &Subject, time: i64) {
    match event {
        Event::Tripped {
            cause,
            window,
            until_ms,
            trip,
        } => {
            out.str("event", "tripped")
                .str("cause", cause.as_str())
                .raw("final", if until_ms.is_none() { "true" } else { "false" })
                .num("trip", trip)
                .raw(
                    "figures",
                    &Object::new()
                        .raw("variant", &figures(&window.variant))
                        .raw("baseline", &figures(&window.baseline))
                        .end(),
                );
        }
        Event::Rearmed => {
            out.str("event", "rearmed");
        }
    }
    out.str("policy", who.policy)
        .str("variant", who.variant)
        .str("baseline", who.baseline)
        .str("on_trip", guard.on_trip.as_str())
        .num("window_seconds", guard.window_seconds)
        .num("hold_seconds", guard.hold_seconds)
        .str("node", who.node)
        .str("config_fingerprint", &who.fingerprint())
        .num("time", time);
}

/// The request body for a receiver of `format`. `time` is in unix seconds.
pub fn body(format: Format, guard: &Guard, event: &Event, who: &Subject, time: i64) -> String {
    let text = describe(guard, event, who);
    match format {
        Format::Slack => {
            // Today's body: the text Slack shows, then the fields for anything else.
            let mut out = Object::new();
            out.str("text", &text);
            match event {
                Event::Tripped { cause, window, .. } => {
                    let v = &window.variant;
                    out.str("event", "tripped")
                        .str("cause", cause.as_str())
                        .raw("failure_rate", &decimal(v.failure_ppm(), 6))
                        .num("requests", v.total)
                        .num("failures", v.failures)
                        .raw(
                            "p99_ms",
                            &v.p99_ms().map_or_else(|| "null".into(), |p| p.to_string()),
                        );
                }
                Event::Rearmed => {
                    out.str("event", "rearmed");
                }
            }
            out.str("policy", who.policy)
                .str("variant", who.variant)
                .str("baseline", who.baseline)
                .num("window_seconds", guard.window_seconds)
                .num("hold_seconds", guard.hold_seconds)
                .str("node", who.node)
                .num("time", time)
                .end()
        }
        Format::Generic => {
            let mut out = Object::new();
            structured(&mut out, guard, event, who, time);
            out.str("text", &text).end()
        }
        Format::Discord => Object::new()
            .str("username", "canary-router")
            .str("content", &truncate(&text, 2000))
            .end(),
        Format::MsTeams => {
            let block = Object::new()
                .str("type", "TextBlock")
                .str("text", &text)
                .raw("wrap", "true")
                .end();
            let card = Object::new()
                .str("type", "AdaptiveCard")
                .str(
                    "$schema",
                    "http://adaptivecards.io/schemas/adaptive-card.json",
                )
                .str("version", "1.4")
                .raw("body", &format!("[{block}]"))
                .end();
            let attachment = Object::new()
                .str("contentType", "application/vnd.microsoft.card.adaptive")
                .raw("content", &card)
                .end();
            Object::new()
                .str("type", "message")
                .str("summary", &truncate(&text, 200))
                .raw("attachments", &format!("[{attachment}]"))
                .end()
        }
        Format::Github => {
            // GitHub accepts at most 10 top-level properties in client_payload.
            let mut payload = Object::new();
            match event {
                Event::Tripped { cause, window, .. } => {
                    payload.str("cause", cause.as_str()).raw(
                        "figures",
                        &Object::new()
                            .raw("variant", &figures(&window.variant))
                            .raw("baseline", &figures(&window.baseline))
                            .end(),
                    );
                }
                Event::Rearmed => {}
            }
            payload
                .str("policy", who.policy)
                .str("variant", who.variant)
                .str("baseline", who.baseline)
                .str("node", who.node)
                .str("config_fingerprint", &who.fingerprint())
                .num("time", time)
                .str("text", &truncate(&text, 1000));
            Object::new()
                .str("event_type", GITHUB_EVENT_TYPE)
                .raw("client_payload", &payload.end())
                .end()
        }
    }
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

/// `value × 10^-scale` as a decimal without trailing zeros (`decimal(42000, 6)` = `0.042`).
pub fn decimal(value: u32, scale: u32) -> String {
    let unit = 10u32.pow(scale);
    let mut s = (value / unit).to_string();
    let frac = value % unit;
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = scale as usize);
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}
