"""What users see, for each of Envoy's Wasm `failure_policy` values (Istio's failStrategy maps
onto them), when the module does not load, when its configuration is refused, and when a VM
fails at run time (a trap).

With a static bootstrap, a missing module and a refused configuration are configuration errors:
Envoy refuses to start, whatever the policy. Updates through xDS are covered elsewhere: an
invalid ECDS update is rejected and the last good configuration keeps serving (test_reload.py);
a remote module with fail-open is skipped (test_kuma_envoy_gateway.py).

The policy governs VMs that fail while serving. The filter is built never to trap (fuzzed,
hostile-input tests, no panics in its code), so these tests use a test build of the same filter
(`scripts/build.sh --fault-injection`) that traps on a request carrying
`x-canary-router-fault: trap`. Envoy runs one worker, so "the VM" is that worker's VM: a trap
takes down only the VM of the worker that served the request."""
import time

import pytest

from harness import ROOT, EnvoyFailed, bootstrap_for, wait_for, wasm_filter
import test_reload

FAULT_WASM = ROOT / "target" / "fault-injection" / "canary-router-fault.wasm"
TRAP = {"x-canary-router-fault": "trap"}
# Everyone to the canary while the filter runs; the default route (no header) is stable.
ALL_CANARY = {"policies": [{"name": "reviews", "variants": [{"name": "canary", "weight": 100},
                                                           {"name": "stable", "weight": 0}]}]}
TRAP_LOG = "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"

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
    wasm.pop("failure_policy", None)  # the shipped examples set FAIL_OPEN
    if policy is not None:
        wasm["failure_policy"] = policy
    with pytest.raises(EnvoyFailed) as e:
        envoys(b)
    assert message in e.value.log


def fault_module() -> str:
    assert FAULT_WASM.exists(), f"{FAULT_WASM} is missing: run scripts/build.sh --fault-injection"
    return str(FAULT_WASM)


def wasm_stat(envoy, name: str) -> int:
    _, text = envoy.admin_get(f"/stats?filter=^wasm\\.canary-router\\.{name}$")
    return int(text.split(":")[1]) if ":" in text else 0


def trapping_envoy(envoys, backends, policy):
    b = bootstrap_for(ALL_CANARY, backends.some("canary", "stable"), ["canary", "stable"])
    wasm = wasm_filter(b)["typed_config"]["config"]
    wasm["vm_config"]["code"]["local"]["filename"] = fault_module()
    wasm.pop("failure_policy", None)  # the shipped examples set FAIL_OPEN
    if policy is not None:
        wasm["failure_policy"] = policy
    envoy = envoys(b, concurrency=1)
    before = envoy.request("/")
    assert (before.status, before.served_by) == (200, "canary")
    # The request that traps the VM fails with a 503 under every policy.
    assert envoy.request("/", TRAP).status == 503
    assert TRAP_LOG in envoy.log()
    return envoy


@pytest.mark.parametrize("policy", [None, "FAIL_CLOSED"])
def test_fail_closed_vm_failure_fails_every_request_until_a_new_configuration(
        envoys, backends, policy):
    """Envoy's default: the failed VM stays failed, every request of its worker is answered 503
    (forged variant headers too), and nothing changes by waiting. A restart or a new filter
    configuration (xDS) creates a fresh VM: see the ECDS test below."""
    envoy = trapping_envoy(envoys, backends, policy)
    for _ in range(3):
        assert envoy.request("/").status == 503
        assert envoy.request("/", {"x-canary-variant": "stable"}).status == 503
        time.sleep(0.7)
    assert wasm_stat(envoy, "vm_reload_success") == 0


def test_fail_open_vm_failure_skips_the_filter(envoys, backends):
    """The failed VM is bypassed: requests reach the router without a variant header, so the
    default route sends everyone to stable (the rollout pauses on the safe side), and a header a
    client sends itself is no longer overwritten. Nothing is counted any more."""
    envoy = trapping_envoy(envoys, backends, "FAIL_OPEN")
    for _ in range(3):
        r = envoy.request("/")
        assert (r.status, r.served_by) == (200, "stable")
        assert r.json["variant_header"] is None
        time.sleep(0.7)
    forged = envoy.request("/", {"x-canary-variant": "canary"})
    assert (forged.status, forged.served_by) == (200, "canary")
    assert wasm_stat(envoy, "vm_reload_success") == 0


def test_fail_reload_vm_failure_recovers_after_the_backoff(envoys, backends):
    """A new VM replaces the failed one on the first request after the reload backoff (1 s by
    default); until then the worker answers 503. The new VM reads its configuration again and
    routes as before."""
    envoy = trapping_envoy(envoys, backends, "FAIL_RELOAD")
    assert envoy.request("/").status == 503  # within the backoff
    configured = envoy.log().count("configured 1 policy")
    statuses = []

    def routed_again():
        r = envoy.request("/")
        statuses.append(r.status)
        return (r.status, r.served_by) == (200, "canary")

    assert wait_for(routed_again, timeout=15)
    assert set(statuses[:-1]) <= {503}, statuses
    assert wasm_stat(envoy, "vm_reload_success") == 1
    assert wasm_stat(envoy, "vm_reload_backoff") >= 1
    assert envoy.log().count("configured 1 policy") > configured
    # A request that traps again takes the new VM down again (a "query of death" costs every
    # request of that worker a 503 for one backoff each time).
    assert envoy.request("/", TRAP).status == 503
    assert envoy.request("/").status == 503
    assert wait_for(routed_again, timeout=15)
    assert wasm_stat(envoy, "vm_reload_success") == 2


@pytest.mark.parametrize("policy", ["FAIL_CLOSED", "FAIL_OPEN"])
def test_a_new_configuration_replaces_a_failed_vm(envoys, backends, tmp_path, policy):
    """Under FAIL_CLOSED and FAIL_OPEN a failed VM stays failed until the filter configuration
    changes: an ECDS update (in Istio: a WasmPlugin change) brings the filter back."""
    watched = tmp_path / "ecds"
    watched.mkdir()

    def resource(canary_weight):
        r = test_reload.ecds_resource([("canary", canary_weight), ("stable", 100 - canary_weight)])
        config = r["resources"][0]["typed_config"]["config"]
        config["vm_config"]["code"]["local"]["filename"] = fault_module()
        config["failure_policy"] = policy
        return r

    test_reload.publish(watched, resource(100))
    envoy = test_reload.ecds_envoy(lambda b: envoys(b, concurrency=1), backends, watched)
    assert envoy.request("/").served_by == "canary"
    assert envoy.request("/", TRAP).status == 503
    failed = envoy.request("/")
    assert (failed.status, failed.served_by) == ((503, None) if policy == "FAIL_CLOSED"
                                                 else (200, "stable"))
    reloads = test_reload.stat(envoy, f"{test_reload.PREFIX}.config_reload")
    test_reload.publish(watched, resource(99))
    assert wait_for(lambda: test_reload.stat(envoy, f"{test_reload.PREFIX}.config_reload") > reloads)

    def routed_again():
        r = envoy.request("/", {"x-user-id": "u-1"})  # bucket 1 135 of 10 000: canary at 99 %
        return (r.status, r.served_by) == (200, "canary")

    assert wait_for(routed_again, timeout=10)


def test_fail_reload_keeps_an_aborted_guard(envoys, backends):
    """A guard's state lives in the proxy's shared data, not in the VM: after a guard aborted a
    failing canary, a VM that replaces a failed one (FAIL_RELOAD) reads it and keeps the canary
    off; it does not start a fresh window that would send users to the canary again."""
    from harness import Backend, prometheus_value
    canary = Backend("canary", status=503)
    try:
        config = {"policies": [{**ALL_CANARY["policies"][0], "guard": {
            "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5}}]}
        b = bootstrap_for(config, {"canary": canary, "stable": backends["stable"]},
                          ["canary", "stable"])
        wasm = wasm_filter(b)["typed_config"]["config"]
        wasm["vm_config"]["code"]["local"]["filename"] = fault_module()
        wasm["failure_policy"] = "FAIL_RELOAD"
        envoy = envoys(b, concurrency=1)
        labels = {"policy": "reviews", "variant": "canary"}
        assert {envoy.request("/").status for _ in range(10)} == {503}
        assert wait_for(lambda: envoy.request("/").served_by == "stable", timeout=10)
        assert envoy.request("/", TRAP).status == 503
        assert TRAP_LOG in envoy.log()
        served = []
        assert wait_for(lambda: served.append(envoy.request("/")) or
                        served[-1].status == 200, timeout=15)
        assert wasm_stat(envoy, "vm_reload_success") == 1
        after = [envoy.request("/", {"x-user-id": f"u{i}"}) for i in range(50)]
        assert {(r.status, r.served_by) for r in after} == {(200, "stable")}
        assert prometheus_value(envoy, "canary_router_guard_tripped", **labels) == 1
        # Counters are flushed every second.
        assert wait_for(lambda: prometheus_value(envoy, "canary_router_requests_total",
                                                 policy="reviews", variant="stable",
                                                 reason="guard") >= 50, timeout=5)
    finally:
        canary.stop()
