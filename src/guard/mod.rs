//! The guard: rolls a failing variant back by itself, in the data plane.
//!
//! ```json
//! "guard": {"variant": "canary", "baseline": "stable", "window_seconds": 10, "min_requests": 20,
//!           "max_failure_rate": 0.05, "max_p99_ms": 800,
//!           "max_failure_rate_increase": 0.05, "max_p99_ratio": 1.5,
//!           "on_trip": "abort",
//!           "notify": [{"format": "slack", "cluster": "slack", "path": "/services/${SLACK_PATH}"}]}
//! ```
//!
//! Every worker counts the outcomes of the guarded variant's requests (and the baseline's, when
//! a limit compares with it) in [`Pending`] and, on its timer, adds them to the proxy's shared
//! [`Window`] (the filter stores it in proxy-wasm shared data and updates it with
//! compare-and-swap). [`Window::advance`] also judges the window ([`Guard::judge`]): with at
//! least `min_requests` requests in the last `window_seconds`, any broken limit trips the guard.
//! Absolute limits need `min_requests` of the variant; relative ones of both variants, and the
//! failure-rate increase is a significance test ([`crate::significance`]), not an observed
//! difference, so that small windows do not trip on noise.
//!
//! After a trip every decision for the guarded variant goes to the baseline (sticky users and
//! rule matches included) and a ramp of the policy stops where it was. With `on_trip: abort`
//! (the default) that lasts until the configuration changes (a new configuration starts a new
//! window); with `rearm` the guard re-arms with an empty window after `hold_seconds`, and its
//! `max_trips`-th trip aborts.
//!
//! Everything here is pure: the clock and the outcomes come in, the window's bytes and the
//! events (trip, re-arm) come out. The messages sent on events are [`crate::notify`]'s.
//!
//! Its parts: the compiled guard and the judgement of a window ([`limits`]), the outcomes
//! counted ([`outcomes`]), the receivers of its messages ([`receivers`]), the shared window
//! and its events ([`window`]) and the window's bytes in shared data (`encoding`).

mod encoding;
pub mod limits;
pub mod outcomes;
pub mod receivers;
pub mod window;

pub use limits::{Cause, Guard, GuardView, OnTrip, MAX_SLICES, MAX_WINDOW_SECONDS};
pub use outcomes::{is_failure, Outcomes, Pending, GRPC_NOT_FAILURES, LATENCY_BOUNDS_MS};
pub use receivers::{Format, Receiver};
pub use window::{Event, Window};
