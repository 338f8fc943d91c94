//! Who is told of a guard's events: the receivers' formats and endpoints.

/// What a receiver is sent, and which events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"text": …}` plus the structured fields (what Slack's incoming webhooks read).
    Slack,
    /// An Adaptive Card message, as Teams' workflow webhooks read it.
    MsTeams,
    /// `{"content": …}`, as Discord's webhooks read it.
    Discord,
    /// The structured JSON alone, with the figures of both variants.
    Generic,
    /// A GitHub `repository_dispatch` body (`event_type: canary-router-tripped`), sent only when
    /// a trip is final (the guard aborted): the event a GitOps workflow reverts on.
    Github,
}

impl Format {
    pub const NAMES: [&'static str; 5] = ["slack", "msteams", "discord", "generic", "github"];

    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "slack" => Format::Slack,
            "msteams" => Format::MsTeams,
            "discord" => Format::Discord,
            "generic" => Format::Generic,
            "github" => Format::Github,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::MsTeams => "msteams",
            Format::Discord => "discord",
            Format::Generic => "generic",
            Format::Github => "github",
        }
    }
}

/// A receiver of a guard's messages: an HTTP POST through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    pub format: Format,
    pub cluster: String,
    pub authority: String,
    /// The path, with `${VAR}` references replaced when the VM's environment was given.
    pub path: String,
    pub timeout_ms: u32,
    /// Sends after a failed one (a non-2xx answer or none), 1 s, 2 s, 4 s … apart.
    pub retries: u32,
    /// Extra request headers (lowercase names), e.g. an authorization token; values with
    /// `${VAR}` references replaced as for `path`.
    pub headers: Vec<(String, String)>,
}
