//! Reading a request: cookies, query parameters, hosts and addresses.

use std::borrow::Cow;

use crate::request::{address_ip, cookie, cookie_in, normalize_host, percent_decode, query_in};
use crate::{RequestView, SimpleRequest};

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cookie_header_parsing() {
    // (Cookie header, name, value)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("a=1; b=2", "b", Some("2")),
        ("a=1;b=2", "b", Some("2")),
        ("a=1", "a", Some("1")),
        ("  a = 1  ; b=2", "a", Some("1")),
        ("\ta=1\t", "a", Some("1")),
        ("a=\"quoted value\"", "a", Some("quoted value")),
        ("a=\"\"", "a", Some("")),
        ("a=\"unterminated", "a", Some("\"unterminated")),
        ("a=\"", "a", Some("\"")),
        ("a=", "a", Some("")),
        ("a=b=c", "a", Some("b=c")),
        ("a=1; a=2", "a", Some("1")),
        ("a; a=2", "a", Some("2")),
        ("a", "a", None),
        ("b=2; a", "a", None),
        ("", "a", None),
        (";;", "a", None),
        ("xa=1; ax=2", "a", None),
        ("xa=1; a=3", "a", Some("3")),
        ("A=1", "a", None),
        ("a b=1", "a", None),
        ("=1", "", Some("1")),
        ("café=crème", "café", Some("crème")),
        ("a= \"x\" ", "a", Some("x")),
        ("a=\" x \"", "a", Some(" x ")),
        ("a=\"x", "a", Some("\"x")),
        ("a=x\"", "a", Some("x\"")),
        ("a = = ", "a", Some("=")),
        (" ; a=1 ;", "a", Some("1")),
        ("b=1;", "b", Some("1")),
        ("a=1;a", "a", Some("1")),
        ("=", "", Some("")),
        (" \t=", "", Some("")),
        ("é=1; a=é", "a", Some("é")),
    ];
    for &(header, name, want) in cases {
        assert_eq!(cookie_in(header, name), want, "{header:?} {name:?}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cookie_across_headers() {
    let r = SimpleRequest::new("h", "/")
        .header("Cookie", "x=1")
        .header("cookie", "a=first")
        .header("cookie", "a=second; b=2");
    assert_eq!(cookie(&r, "a"), Some("first"));
    assert_eq!(cookie(&r, "b"), Some("2"));
    assert_eq!(cookie(&r, "x"), Some("1"));
    assert_eq!(cookie(&r, "y"), None);
    assert_eq!(cookie(&SimpleRequest::new("h", "/"), "a"), None);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn query_parameter_parsing() {
    // (path, name, value)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/p?a=1&b=2", "b", Some("2")),
        ("/p?a=1&b=2", "a", Some("1")),
        ("/p?a=1&a=2", "a", Some("1")),
        ("/p?a=hello%20world", "a", Some("hello world")),
        ("/p?a=hello+world", "a", Some("hello world")),
        ("/p?a=x%2By", "a", Some("x+y")),
        ("/p?a=%E2%82%AC", "a", Some("€")),
        ("/p?a=%e2%82%ac", "a", Some("€")),
        ("/p?a=%zz", "a", Some("%zz")),
        ("/p?a=%2", "a", Some("%2")),
        ("/p?a=100%", "a", Some("100%")),
        ("/p?a=%ff", "a", Some("\u{fffd}")),
        ("/p?%61=1", "a", Some("1")),
        ("/p?my+key=1", "my key", Some("1")),
        ("/p?a", "a", Some("")),
        ("/p?a&b=2", "a", Some("")),
        ("/p?a=", "a", Some("")),
        ("/p?a=1=2", "a", Some("1=2")),
        ("/p?a=1#frag", "a", Some("1")),
        ("/p?a=1#b=2", "b", None),
        ("/p?#a=1", "a", None),
        ("/p?b=1&&a=2", "a", Some("2")),
        ("/p?ab=1", "a", None),
        ("/p?A=1", "a", None),
        ("/p", "a", None),
        ("/p?", "a", None),
        ("/p/a=1", "a", None),
        ("", "a", None),
        ("/p?x=1?a=2", "a", None),
        ("/p?x=1&a=2?b", "a", Some("2?b")),
        ("/p?&", "", Some("")),
        ("/p?a=1&", "", Some("")),
        ("/p?=1", "", Some("1")),
        ("/p?x=1&a", "a", Some("")),
        ("/p?a#", "a", Some("")),
        ("/p#x?a=1", "a", Some("1")),
        ("/p?%zz=1&a=2", "%zz", Some("1")),
        ("/p?é=ü", "é", Some("ü")),
    ];
    for &(path, name, want) in cases {
        assert_eq!(query_in(path, name).as_deref(), want, "{path:?} {name:?}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn percent_decoding_borrows_when_it_can() {
    assert!(matches!(percent_decode("plain"), Cow::Borrowed("plain")));
    assert!(matches!(
        query_in("/p?a=plain", "a"),
        Some(Cow::Borrowed("plain"))
    ));
    assert_eq!(percent_decode("a%2fb+c%"), "a/b c%");
    assert_eq!(percent_decode("%41%42%43"), "ABC");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn host_normalisation() {
    // (:authority, host)
    let cases = [
        ("reviews", "reviews"),
        ("reviews:9080", "reviews"),
        ("Reviews:9080", "reviews"),
        ("REVIEWS.Default.SVC", "reviews.default.svc"),
        ("example.com.", "example.com"),
        ("Example.COM.:443", "example.com"),
        ("example.com:", "example.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[FE80::1]:80", "[fe80::1]"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("host:abc", "host:abc"),
        ("", ""),
    ];
    for (authority, want) in cases {
        assert_eq!(normalize_host(authority), want, "{authority:?}");
    }
    assert!(matches!(
        normalize_host("reviews:80"),
        Cow::Borrowed("reviews")
    ));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn address_to_ip() {
    // (downstream address, IP)
    let cases = [
        ("10.0.0.1:43660", "10.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("[::1]:43660", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[fe80::1%eth0]:80", "fe80::1%eth0"),
        ("", ""),
    ];
    for (address, want) in cases {
        assert_eq!(address_ip(address), want, "{address:?}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn simple_request_view() {
    let r = SimpleRequest::new("reviews", "/x?y=1")
        .header("X-Multi", "1")
        .header("x-multi", "2")
        .route("r")
        .source("10.0.0.1:1");
    assert_eq!(RequestView::header(&r, ":authority"), Some("reviews"));
    assert_eq!(RequestView::header(&r, ":path"), Some("/x?y=1"));
    assert_eq!(RequestView::header(&r, "x-multi"), Some("1"));
    assert_eq!(r.header_values("x-multi").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(
        RequestView::header(&r, "X-Multi"),
        None,
        "names are asked in lowercase"
    );
    assert_eq!(r.route_name(), Some("r"));
    assert_eq!(r.source_address(), Some("10.0.0.1:1"));
    let empty = SimpleRequest::default();
    assert_eq!(
        (
            RequestView::header(&empty, ":path"),
            empty.route_name(),
            empty.source_address()
        ),
        (None, None, None)
    );
}
