//! Stat names and label values: the contract with Envoy's tag extraction and with dashboards.

use crate::stats::*;

/// (metric, labels, the name Envoy is given)
type NameCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn tagged_names_put_labels_first() {
    let cases: [NameCase; 3] = [
        (
            REQUESTS_TOTAL,
            &[
                ("policy", "reviews"),
                ("variant", "canary"),
                ("reason", "weight"),
            ],
            "policy=.=reviews;.;variant=.=canary;.;reason=.=weight;.;canary_router_requests_total",
        ),
        (
            CONFIG_ERRORS_TOTAL,
            &[("source", "node")],
            "source=.=node;.;canary_router_config_errors_total",
        ),
        (WEIGHT, &[], "canary_router_weight"),
    ];
    for (metric, labels, want) in cases {
        assert_eq!(tagged_name(metric, labels), want);
    }
    assert_eq!(tag_regex("policy"), r"(policy=\.=(.*?);\.;)");
    assert_eq!(
        LABELS,
        [
            "policy",
            "variant",
            "reason",
            "code_class",
            "grpc_status",
            "source"
        ]
    );
    assert!(METRICS.iter().all(|m| m.starts_with("canary_router_")));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn code_classes_and_grpc_statuses() {
    let classes = [
        (None, "none"),
        (Some(99), "none"),
        (Some(100), "1xx"),
        (Some(204), "2xx"),
        (Some(302), "3xx"),
        (Some(404), "4xx"),
        (Some(503), "5xx"),
        (Some(599), "5xx"),
        (Some(600), "none"),
    ];
    for (status, want) in classes {
        assert_eq!(code_class(status), want, "{status:?}");
    }
    let grpc: [(&[u8], &str); 8] = [
        (b"0", "OK"),
        (b"14", "UNAVAILABLE"),
        (b"16", "UNAUTHENTICATED"),
        (b" 5 ", "NOT_FOUND"),
        (b"17", "UNKNOWN"),
        (b"-1", "UNKNOWN"),
        (b"x", "UNKNOWN"),
        (b"\xff", "UNKNOWN"),
    ];
    for (value, want) in grpc {
        assert_eq!(grpc_status_name(value), want, "{value:?}");
    }
    assert_eq!(parse_status(b"200"), Some(200));
    assert_eq!(parse_status(b"2x0"), None);
    assert_eq!(
        ErrorSource::ALL.map(ErrorSource::as_str),
        ["plugin", "node", "route"]
    );
}
