//! The whole decision on arbitrary request views against fixed representative configurations,
//! with and without ramps and tripped guards: no panic, results in range, deterministic.
#![no_main]

use arbitrary::Arbitrary;
use canary_router::{Config, SplitMix64};
use canary_router_fuzz::{check_decision, Request, CONFIGS};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    config: u8,
    request: Request,
    seed: u64,
    now: i64,
    tripped: Vec<bool>,
}

thread_local! {
    // Compiled once (`Config` is not `Sync`: its regexes cache their thread lists).
    static COMPILED: Vec<Config> = CONFIGS
        .iter()
        .map(|c| Config::from_json(c.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{c}")))
        .collect();
}

fuzz_target!(|input: Input| COMPILED.with(|configs| run(configs, &input)));

fn run(configs: &[Config], input: &Input) {
    let config = &configs[usize::from(input.config) % configs.len()];
    let req = input.request.view();
    let live = config.effective_splits(input.now, &input.tripped);
    for splits in [&[][..], &live[..]] {
        let a = config.decide_live(&req, None, splits, &mut SplitMix64::new(input.seed));
        let b = config.decide_live(&req, None, splits, &mut SplitMix64::new(input.seed));
        assert_eq!(a, b, "deterministic for equal inputs and seeds");
        assert_eq!(a.map(|d| d.policy), config.find_policy(&req));
        if let Some(d) = a {
            check_decision(config, &d);
        }
    }
}
