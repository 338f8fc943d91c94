//! Arbitrary header values through the cookie, query, host and address parsers; the cookie and
//! query parsers answer as their first, `str`-based versions (`canary_router_fuzz::reference`).
#![no_main]

use arbitrary::Arbitrary;
use canary_router::request::{
    address_ip, cookie, cookie_in, normalize_host, percent_decode, query_in,
};
use canary_router::SimpleRequest;
use canary_router_fuzz::reference;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<String>,
    name: String,
    path: String,
    host: String,
    address: String,
}

/// Whether `part` is a slice of `whole` (the parsers borrow from their input).
fn within(part: &str, whole: &str) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

fuzz_target!(|input: Input| {
    let mut req = SimpleRequest::default();
    let mut first = None;
    for h in &input.headers {
        let found = cookie_in(h, &input.name);
        assert_eq!(found, reference::cookie_in(h, &input.name), "{h:?} {:?}", input.name);
        if let Some(v) = found {
            assert!(within(v, h), "cookie value is a slice of its header");
            first = first.or(Some(v));
        }
        req.headers.push(("cookie".into(), h.clone()));
    }
    assert_eq!(
        cookie(&req, &input.name),
        first,
        "first cookie header that has it"
    );

    let value = query_in(&input.path, &input.name);
    assert_eq!(
        value,
        reference::query_in(&input.path, &input.name),
        "{:?} {:?}",
        input.path,
        input.name
    );
    for h in &input.headers {
        // Header values as paths too: more `?`, `&`, `=` and `#` than arbitrary paths have.
        assert_eq!(query_in(h, &input.name), reference::query_in(h, &input.name));
    }
    if let Some(v) = &value {
        assert!(input.path.contains('?'));
        let _ = v.len();
    }
    let decoded = percent_decode(&input.path);
    if !input.path.contains(['%', '+']) {
        assert_eq!(decoded, input.path.as_str());
    }
    assert!(decoded.len() <= input.path.len() * 3);

    let host = normalize_host(&input.host);
    assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
    assert!(host.len() <= input.host.len());
    assert!(within(address_ip(&input.address), &input.address));
});
