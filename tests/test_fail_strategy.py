"""What users see when the module does not load or its configuration is refused, for each of
Envoy's Wasm `failure_policy` values (Istio's failStrategy maps onto them). With a static
bootstrap, both are configuration errors: Envoy refuses to start, whatever the policy (the
policy governs VMs that fail at run time). Updates through xDS are covered elsewhere: an
invalid ECDS update is rejected and the last good configuration keeps serving
(test_reload.py); a remote module with fail-open is skipped (test_kuma_envoy_gateway.py)."""
import pytest

from harness import EnvoyFailed, bootstrap_for, wasm_filter

GOOD = {"policies": [{"name": "reviews", "variants": [{"name": "canary", "weight": 10},
                                                      {"name": "stable", "weight": 90}]}]}
REFUSED = {"policies": [{"name": "reviews", "variants": [{"name": "canary", "weight": 10},
                                                         {"name": "stable", "weight": 80}]}]}


@pytest.mark.parametrize("policy", [None, "FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD"])
@pytest.mark.parametrize("case, config, message", [
    ("missing module", GOOD, "Invalid path: /nonexistent/canary-router.wasm"),
    ("refused configuration", REFUSED,
     "invalid plugin configuration: policies[0].variants: weights sum to 90"),
])
def test_static_bootstrap_does_not_start(envoys, backends, policy, case, config, message):
    b = bootstrap_for(config, backends.some("canary", "stable"), ["canary", "stable"])
    wasm = wasm_filter(b)["typed_config"]["config"]
    if case == "missing module":
        wasm["vm_config"]["code"]["local"]["filename"] = "/nonexistent/canary-router.wasm"
    if policy is not None:
        wasm["failure_policy"] = policy
    with pytest.raises(EnvoyFailed) as e:
        envoys(b)
    assert message in e.value.log
