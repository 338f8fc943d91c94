//! The root context: the counter flush on the timer and when a configuration is replaced, and
//! configurations refused at configure.

use canary_router::stats::{tagged_name, CODE_CLASS, CONFIG_ERRORS_TOTAL, GRPC_STATUS, POLICY};
use canary_router::stats::{RESPONSES_TOTAL, RESPONSE_TIME_MS, SOURCE, VARIANT};

use super::fake::{values, Fake};
use super::{requests_total, TYPICAL};
use crate::host::{LogLevel, MetricType};

fn alice() -> [(&'static str, &'static str); 2] {
    [(":path", "/"), ("x-user-id", "alice")]
}

#[test]
fn counts_reach_the_counters_on_the_timer_once_each() {
    let host = Fake::new(TYPICAL);
    let mut root = host.root().unwrap();
    for _ in 0..3 {
        host.request(&root, &alice(), 200);
    }
    host.request(&root, &[("x-user-id", "dave")], 503);
    let stable = requests_total("stable", "sticky_key");
    let canary = requests_total("canary", "sticky_key");
    // Nothing reaches Envoy on the request path...
    assert_eq!(host.metric(&stable), None);
    // ...but the latency histogram, one value per response.
    let latency = tagged_name(
        RESPONSE_TIME_MS,
        &[(POLICY, "reviews"), (VARIANT, "stable")],
    );
    let recorded = host
        .metrics
        .borrow()
        .iter()
        .find(|m| m.name == latency)
        .cloned();
    assert_eq!(
        recorded.map(|m| (m.kind, m.recorded.len())),
        Some((MetricType::Histogram, 3))
    );

    root.on_tick();
    assert_eq!(host.metric(&stable), Some(3));
    assert_eq!(host.metric(&canary), Some(1));
    let responses = |variant, class| {
        let labels = [
            (POLICY, "reviews"),
            (VARIANT, variant),
            (CODE_CLASS, class),
            (GRPC_STATUS, "none"),
        ];
        host.metric(&tagged_name(RESPONSES_TOTAL, &labels))
    };
    assert_eq!(responses("stable", "2xx"), Some(3));
    assert_eq!(responses("canary", "5xx"), Some(1));

    // A tick without traffic adds nothing; new traffic is added once.
    root.on_tick();
    assert_eq!(host.metric(&stable), Some(3));
    host.request(&root, &alice(), 200);
    host.request(&root, &alice(), 200);
    root.on_tick();
    root.on_tick();
    assert_eq!(host.metric(&stable), Some(5));
    assert_eq!(responses("stable", "2xx"), Some(5));
    assert_eq!(host.metric(&canary), Some(1));
}

#[test]
fn a_replaced_configuration_flushes_its_counts_when_its_last_request_ends() {
    let host = Fake::new(TYPICAL);
    let mut root = host.root().unwrap();
    host.request(&root, &alice(), 200);
    let mut late = root.create_stream();
    host.start(&mut late, &alice());

    // A new configuration (same policy, another cookie) replaces the first before any tick.
    *host.config.borrow_mut() = TYPICAL.replace("86400", "3600").into_bytes();
    assert!(root.on_configure(host.config.borrow().len()));
    let stable = requests_total("stable", "sticky_key");
    assert_eq!(host.metric(&stable), None, "still in use by a request");
    host.request(&root, &alice(), 200);
    host.respond(&mut late, 200);
    late.finish();
    drop(late);
    // The first configuration's two requests, flushed as it went away.
    assert_eq!(host.metric(&stable), Some(2));
    root.on_tick();
    assert_eq!(host.metric(&stable), Some(3));
}

#[test]
fn an_invalid_configuration_is_refused_logged_and_counted() {
    let host = Fake::new(r#"{"policies": [{"name": "p", "variants": []}]}"#);
    assert!(host.root().is_none());
    assert!(host.logged(LogLevel::Error, "invalid plugin configuration: policies[0]"));
    let errors = |source| host.metric(&tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, source)]));
    assert_eq!(errors("plugin"), Some(1));
    // Every source's series exists from the first configure, at 0.
    assert_eq!(errors("node"), Some(0));
    assert_eq!(errors("route"), Some(0));

    let host = Fake::new("{not json");
    assert!(host.root().is_none());
    assert!(host.logged(LogLevel::Error, "invalid plugin configuration: "));
}

#[test]
fn an_invalid_update_keeps_the_last_valid_configuration() {
    let host = Fake::new(TYPICAL);
    let mut root = host.root().unwrap();
    assert_eq!(host.tick_ms.get(), 1000);
    *host.config.borrow_mut() = b"{\"policies\": 3}".to_vec();
    assert!(!root.on_configure(host.config.borrow().len()));
    assert!(host.logged(LogLevel::Error, "keeping the last valid configuration"));
    let headers = host.request(&root, &alice(), 200);
    assert_eq!(values(&headers, "x-canary-variant"), ["stable"]);
}

#[test]
fn without_response_metrics_no_response_is_read_unless_a_guard_judges_it() {
    let config = TYPICAL.replace(
        "{\"variant_header\"",
        "{\"response_metrics\": false, \"variant_header\"",
    );
    let host = Fake::new(&config);
    let mut root = host.root().unwrap();
    let mut stream = root.create_stream();
    host.start(&mut stream, &[("x-user-id", "dave")]);
    let response = host.respond(&mut stream, 503);
    stream.finish();
    root.on_tick();
    // The request is counted; the response is not read at all.
    assert_eq!(
        host.metric(&requests_total("canary", "sticky_key")),
        Some(1)
    );
    assert!(values(&response, "set-cookie").is_empty());
    assert_eq!(host.response_reads.get(), 0);
    // Nothing is left for the response: the context table does not keep the stream.
    assert!(!stream.needs_response());
    // A new visitor still gets the minted cookie (the stream is kept for it), and the trailers
    // are not read either.
    let mut stream = root.create_stream();
    host.start(&mut stream, &[(":path", "/")]);
    assert!(stream.needs_response());
    let response = host.respond(&mut stream, 200);
    assert_eq!(values(&response, "set-cookie").len(), 1);
    *host.response_trailers.borrow_mut() = vec![("grpc-status".into(), "0".into())];
    stream.on_response_trailers();
    assert_eq!(host.response_reads.get(), 0);
    assert!(host
        .metrics
        .borrow()
        .iter()
        .all(|m| !m.name.starts_with(RESPONSES_TOTAL) && !m.name.starts_with(RESPONSE_TIME_MS)));

    // With a guard the response is read for the guard, still without response metrics.
    let guarded = config.replace(
        "\"rules\"",
        "\"guard\": {\"variant\": \"canary\", \"max_failure_rate\": 0.5, \"min_requests\": 1}, \"rules\"",
    );
    let host = Fake::new(&guarded);
    let root = host.root().unwrap();
    host.request(&root, &[("x-user-id", "dave")], 503);
    assert_eq!(host.response_reads.get(), 1);
    let mut stream = root.create_stream();
    host.start(&mut stream, &[("x-user-id", "alice")]);
    assert!(stream.needs_response());
    assert!(host
        .metrics
        .borrow()
        .iter()
        .all(|m| !m.name.starts_with(RESPONSES_TOTAL) && !m.name.starts_with(RESPONSE_TIME_MS)));
}
