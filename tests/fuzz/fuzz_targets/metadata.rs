//! Node-metadata overrides (arbitrary JSON text and workload labels) and route metadata
//! (arbitrary protobuf bytes, and arbitrary JSON) compiled against representative configs.
#![no_main]

use arbitrary::Arbitrary;
use canary_router::json;
use canary_router::overrides::ROUTE_METADATA_NAMESPACE;
use canary_router::pb::filter_metadata;
use canary_router::{Config, Environment, SplitMix64};
use canary_router_fuzz::{check_config, check_decision, Request, CONFIGS};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    config: u8,
    node_overrides: Option<String>,
    labels: Vec<(String, String)>,
    route_pb: Vec<u8>,
    route_json: String,
    request: Request,
}

fuzz_target!(|input: Input| {
    let text = CONFIGS[usize::from(input.config) % CONFIGS.len()];
    let env = Environment {
        node_overrides: input.node_overrides.clone(),
        labels: input.labels.clone(),
        vars: None,
    };
    let Ok(config) = Config::from_json_in(text.as_bytes(), &env) else {
        return;
    };
    check_config(&config, 0, &[true; 4]);
    let req = input.request.view();
    let mut values = Vec::new();
    if let Ok(Some(v)) = filter_metadata(&input.route_pb, ROUTE_METADATA_NAMESPACE) {
        values.push(v);
    }
    if let Ok(v) = json::parse(input.route_json.as_bytes()) {
        values.push(v);
    }
    for v in &values {
        let _ = v.to_json();
        if let Ok(Some(route)) = config.route_override(v, "route[fuzz].canary-router") {
            if let Some(p) = route.policy() {
                assert!(p < config.policies().len());
            }
            for (i, p) in config.policies().iter().enumerate() {
                if let Some(s) = route.split_for(i) {
                    canary_router_fuzz::check_split(s, p.variants().len(), "route");
                }
            }
            if let Some(d) = config.decide_on_route(&req, Some(&route), &mut SplitMix64::new(7)) {
                check_decision(&config, &d);
            }
        }
    }
});
