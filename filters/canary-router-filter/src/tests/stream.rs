//! The stream context: the decision written on the request and the response, and the route
//! metadata cache.

use canary_router::overrides::ROUTE_METADATA_NAMESPACE;
use canary_router::stats::{tagged_name, CONFIG_ERRORS_TOTAL, SOURCE};

use super::fake::{values, Fake};
use super::{requests_total, TYPICAL};
use crate::host::LogLevel;
use crate::root::ROUTE_CACHE_MS;

#[test]
fn the_decision_is_written_and_a_forged_header_replaced() {
    let host = Fake::new(TYPICAL);
    let root = host.root().unwrap();
    let headers = host.request(&root, &[("x-user-id", "dave")], 200);
    assert_eq!(values(&headers, "x-canary-variant"), ["canary"]);
    // A client cannot pick its variant: the header it sent is replaced, not added to.
    let forged = [("x-user-id", "alice"), ("x-canary-variant", "canary")];
    let headers = host.request(&root, &forged, 200);
    assert_eq!(values(&headers, "x-canary-variant"), ["stable"]);
    // No variant on the response unless configured.
    assert!(values(&host.response_headers.borrow(), "x-canary-variant").is_empty());
}

#[test]
fn a_trusted_incoming_header_is_kept_and_the_variant_exposed() {
    let config = TYPICAL
        .replace("\"salt\"", "\"trust_incoming\": true, \"salt\"")
        .replace(
            "{\"variant_header\"",
            "{\"expose_variant\": true, \"filter_state\": true, \"variant_header\"",
        );
    let host = Fake::new(&config);
    let mut root = host.root().unwrap();
    let mut stream = root.create_stream();
    let headers = host.start(
        &mut stream,
        &[("x-user-id", "alice"), ("x-canary-variant", "canary")],
    );
    assert_eq!(values(&headers, "x-canary-variant"), ["canary"]);
    let response = host.respond(&mut stream, 200);
    assert_eq!(values(&response, "x-canary-variant"), ["canary"]);
    assert_eq!(
        host.set_properties.borrow().as_slice(),
        [(
            b"canary_router".to_vec(),
            b"reviews canary trusted".to_vec()
        )]
    );
    stream.finish();
    root.on_tick();
    assert_eq!(host.metric(&requests_total("canary", "trusted")), Some(1));
}

#[test]
fn a_minted_id_is_set_on_the_response_for_the_whole_site() {
    let host = Fake::new(TYPICAL);
    let root = host.root().unwrap();
    let mut stream = root.create_stream();
    host.start(&mut stream, &[(":path", "/deep/link")]);
    let response = host.respond(&mut stream, 200);
    let cookies = values(&response, "set-cookie");
    let [cookie] = cookies.as_slice() else {
        panic!("one set-cookie expected: {cookies:?}");
    };
    let (id, attributes) = cookie
        .strip_prefix("canary-id=")
        .and_then(|c| c.split_once(';'))
        .unwrap();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(attributes, " Max-Age=86400; Path=/; HttpOnly; SameSite=Lax");

    // An id that came with the request is not minted again.
    let mut stream = root.create_stream();
    host.start(&mut stream, &[("cookie", &format!("canary-id={id}"))]);
    assert!(values(&host.respond(&mut stream, 200), "set-cookie").is_empty());
}

/// A serialized `envoy.config.core.v3.Metadata` with `filter_metadata[canary-router]` =
/// `{"policy": policy, "enabled": enabled}`.
fn route_metadata(policy: &str, enabled: bool) -> Vec<u8> {
    fn bytes(field: u8, data: &[u8], out: &mut Vec<u8>) {
        out.push(field << 3 | 2);
        out.push(u8::try_from(data.len()).unwrap());
        out.extend_from_slice(data);
    }
    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes(1, key.as_bytes(), &mut e);
        bytes(2, value, &mut e);
        e
    }
    let mut name = Vec::new();
    bytes(3, policy.as_bytes(), &mut name); // Value.string_value
    let on = vec![4 << 3, u8::from(enabled)]; // Value.bool_value
    let mut fields = Vec::new(); // Struct.fields
    bytes(1, &entry("policy", &name), &mut fields);
    bytes(1, &entry("enabled", &on), &mut fields);
    let mut metadata = Vec::new(); // Metadata.filter_metadata
    bytes(1, &entry(ROUTE_METADATA_NAMESPACE, &fields), &mut metadata);
    metadata
}

const ROUTE_METADATA: &[u8] = b"xds\0route_metadata";

/// A host with route metadata on, and a setter of the route the next requests match.
fn with_routes() -> (Fake, impl Fn(&Fake, &str, Vec<u8>)) {
    let config = TYPICAL.replace(
        "{\"variant_header\"",
        "{\"route_metadata\": true, \"variant_header\"",
    );
    let set_route = |host: &Fake, name: &str, metadata: Vec<u8>| {
        let mut properties = host.properties.borrow_mut();
        properties.insert(b"xds\0route_name".to_vec(), name.as_bytes().to_vec());
        properties.insert(ROUTE_METADATA.to_vec(), metadata);
    };
    (Fake::new(&config), set_route)
}

#[test]
fn route_metadata_is_read_once_per_route_until_the_cache_expires() {
    let (host, route) = with_routes();
    let mut root = host.root().unwrap();
    let set_route = |name: &str, metadata: Vec<u8>| route(&host, name, metadata);
    let reads = || {
        host.property_reads
            .borrow()
            .get(ROUTE_METADATA)
            .copied()
            .unwrap_or(0)
    };
    let dave = [("x-user-id", "dave")];
    let variant = |headers: Vec<(String, String)>| values(&headers, "x-canary-variant").join(",");

    // Route r1 disables the policy: everyone gets the last variant.
    set_route("r1", route_metadata("reviews", false));
    assert_eq!(variant(host.request(&root, &dave, 200)), "stable");
    assert_eq!(variant(host.request(&root, &dave, 200)), "stable");
    assert_eq!(reads(), 1, "read on the route's first request only");

    // Another route has no override; its absence is cached too.
    set_route("r2", Vec::new());
    assert_eq!(variant(host.request(&root, &dave, 200)), "canary");
    assert_eq!(variant(host.request(&root, &dave, 200)), "canary");
    assert_eq!(reads(), 2);

    // RDS enables r1 again: seen once the cache period has passed, not before.
    set_route("r1", route_metadata("reviews", true));
    for _ in 0..ROUTE_CACHE_MS / 1000 - 1 {
        root.on_tick();
    }
    assert_eq!(variant(host.request(&root, &dave, 200)), "stable");
    root.on_tick();
    assert_eq!(variant(host.request(&root, &dave, 200)), "canary");
    assert_eq!(reads(), 3);
}

#[test]
fn an_invalid_route_override_is_ignored_and_reported_once() {
    let (host, set_route) = with_routes();
    let mut root = host.root().unwrap();
    set_route(&host, "r1", route_metadata("nope", false));
    for _ in 0..2 {
        let headers = host.request(&root, &[("x-user-id", "dave")], 200);
        assert_eq!(values(&headers, "x-canary-variant"), ["canary"]);
        for _ in 0..ROUTE_CACHE_MS / 1000 {
            root.on_tick();
        }
    }
    let errors = tagged_name(CONFIG_ERRORS_TOTAL, &[(SOURCE, "route")]);
    assert_eq!(host.metric(&errors), Some(1));
    let logged = host.logs.borrow();
    let problems: Vec<_> = logged
        .iter()
        .filter(|(l, m)| *l == LogLevel::Error && m.contains("no policy is called"))
        .collect();
    assert_eq!(problems.len(), 1, "{logged:?}");
}

#[test]
fn only_a_stream_with_work_left_for_the_response_is_kept() {
    // With the response metrics on, every decided stream reads its response.
    let host = Fake::new(TYPICAL);
    let root = host.root().unwrap();
    let mut stream = root.create_stream();
    host.start(&mut stream, &[("x-user-id", "alice")]);
    assert!(stream.needs_response());
    // No policy applies (its host is another): nothing to do after the request headers.
    let other = TYPICAL.replace("\"salt\"", "\"hosts\": [\"other.example.com\"], \"salt\"");
    let host = Fake::new(&other);
    let root = host.root().unwrap();
    let mut stream = root.create_stream();
    let headers = host.start(
        &mut stream,
        &[(":authority", "svc.example.com"), ("x-user-id", "alice")],
    );
    assert!(values(&headers, "x-canary-variant").is_empty());
    assert!(!stream.needs_response());
}
