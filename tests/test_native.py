"""The native module's contract with Envoy (README "Native module"): its C ABI bindings against
the Envoy binary we run, the version handshake, and what it refuses. Its decisions, stats and
guard are tested by the suites marked `both_modules`."""
import re
import subprocess

import pytest

from harness import (NATIVE, ROOT, EnvoyFailed, bootstrap_for, bucket, envoy_binary,
                     native_supported)

pytestmark = pytest.mark.skipif(not native_supported(),
                                reason="the native module is built for Envoy 1.40 only")

ABI_RS = ROOT / "filters" / "canary-router-native" / "src" / "abi.rs"
HOOKS_RS = ROOT / "filters" / "canary-router-native" / "src" / "hooks.rs"


def dynamic_symbols(path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def test_every_bound_callback_is_exported_by_this_envoy():
    declared = set(re.findall(r"pub fn (envoy_dynamic_module_callback_\w+)\(", ABI_RS.read_text()))
    assert len(declared) >= 15, declared
    missing = declared - dynamic_symbols(envoy_binary())
    assert not missing, f"abi.rs declares callbacks this Envoy does not export: {missing}"


def test_every_http_filter_hook_envoy_looks_up_is_exported():
    """Envoy looks the hooks up by name (the names are strings in its binary); the module must
    export each one, and nothing under a name Envoy does not know."""
    strings = subprocess.run(["strings", "-n", "20", envoy_binary()], check=True,
                             capture_output=True, text=True).stdout.split()
    wanted = {s for s in strings
              if re.fullmatch(r"envoy_dynamic_module_on_(program_init|http_filter_\w+)", s)}
    exported = {s for s in dynamic_symbols(NATIVE) if s.startswith("envoy_dynamic_module_on_")}
    assert "envoy_dynamic_module_on_http_filter_request_headers" in wanted
    assert wanted == exported, (wanted - exported, exported - wanted)
    # hooks.rs is where they are written.
    for name in exported:
        assert f"fn {name}(" in HOOKS_RS.read_text(), name


def test_the_abi_version_matches_and_each_worker_configures(envoys, backends):
    b = bootstrap_for({"policies": [{"name": "reviews", "variants": [
        {"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}]}]},
        backends.some("canary", "stable"), ["canary", "stable"])
    envoy = envoys(b, concurrency=2, module="native")
    envoy.request("/", {"x-user-id": "a"})
    envoy.request("/", {"x-user-id": "b"})
    log = envoy.log()
    version = re.search(r'ABI_VERSION: &std::ffi::CStr = c"([^"]+)"', ABI_RS.read_text()).group(1)
    assert f"Dynamic module ABI version {version} matched." in log
    # Checked once on the main thread, then compiled by each worker on its first request.
    assert log.count("configured 1 policy, variant header x-canary-variant") >= 2


@pytest.mark.parametrize("config, error", [
    ({"route_metadata": True, "policies": [{"name": "r", "variants": [
        {"name": "a", "weight": 50}, {"name": "b", "weight": 50}]}]},
     "invalid plugin configuration: route_metadata: the native module does not read route"),
    ({"policies": [{"name": "r", "variants": [{"name": "a", "weight": 60},
                                              {"name": "b", "weight": 30}]}]},
     "invalid plugin configuration: policies[0].variants"),
], ids=["route-metadata", "weights"])
def test_a_configuration_it_cannot_serve_is_refused_with_its_path(envoys, backends, config, error):
    """Refused by Envoy itself (the filter factory fails): the listener is never served with a
    configuration half applied."""
    b = bootstrap_for(config, backends.some("a", "b"), ["a", "b"])
    with pytest.raises(EnvoyFailed) as failed:
        envoys(b, module="native")
    assert error in failed.value.log, failed.value.log[-2000:]


def test_the_filter_name_is_checked(envoys, backends):
    b = bootstrap_for({"policies": []}, backends.some("a", "b"), ["a", "b"])
    from harness import hcm, to_native
    b = to_native(b)
    next(f for f in hcm(b)["http_filters"] if f["name"] == "canary-router")[
        "typed_config"]["filter_name"] = "canary"
    with pytest.raises(EnvoyFailed) as failed:
        envoys(b, module="wasm")  # already native: no second conversion
    assert 'filter_name: expected "canary-router", got "canary"' in failed.value.log


def test_native_front_proxy_example_decides_as_the_wasm_one(envoys, backends):
    """envoy-config/native-front-proxy.yaml: the front proxy's policy, the same variant for each
    user as the Wasm filter's bucket table, rules, the minted cookie and the decision in filter
    state for the access log."""
    from collections import Counter
    from harness import expected_variant, load_config, localize, plugin_config, wait_for
    b = load_config("native-front-proxy.yaml")
    assert plugin_config(b) == plugin_config(load_config("front-proxy.yaml"))
    envoy = envoys(localize(b, backends.some("stable", "canary")), module="wasm")  # as written
    cfg = plugin_config(b)["policies"][0]
    variants = [(v["name"], v["weight"]) for v in cfg["variants"]]
    users = [("/", {"x-user-id": f"fp-{i}"}) for i in range(2000)]
    counts = Counter()
    for (_, h), r in zip(users, envoy.request_many(users)):
        assert r.served_by == expected_variant(variants, bucket(cfg["salt"], h["x-user-id"]))
        counts[r.served_by] += 1
    assert 150 < counts["canary"] < 250, counts
    assert envoy.request("/", {"x-beta": "true", "x-user-id": "fp-1"}).served_by == "canary"
    assert envoy.request("/?variant=canary").served_by == "canary"
    assert envoy.request("/").header("set-cookie").startswith("canary-id=")
    # The access log is written in batches.
    assert wait_for(lambda: 'decision="reviews canary rule"' in envoy.log())


def test_validate_mode_refuses_a_bad_native_configuration(tmp_path):
    from test_examples import ENV
    text = (ROOT / "envoy-config" / "native-front-proxy.yaml").read_text().replace(
        '{"name": "stable", "weight": 90}', '{"name": "stable", "weight": 80}')
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(bad), "--base-id", "11"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode != 0
    assert "policies[0].variants: weights sum to 90, they must sum to 100" in out.stdout + out.stderr


# --- Envoy Gateway: envoy-config/envoy-gateway/native/ ------------------------------------------

EG_NATIVE = ROOT / "envoy-config" / "envoy-gateway" / "native" / "canary-router-native-policy.yaml"


def eg_native_policy() -> dict:
    from schemas import manifests
    [doc] = manifests(EG_NATIVE)
    return doc


def eg_native_filter() -> dict:
    """The HttpFilter Envoy Gateway builds from the policy's dynamicModule entry (the library
    registered as `canary-router` is libcanary_router.so)."""
    import json
    [m] = eg_native_policy()["spec"]["dynamicModule"]
    return {"name": f"envoy.filters.http.dynamic_modules/{m['name']}", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3."
                 "DynamicModuleFilter",
        "dynamic_module_config": {"name": "canary_router"},
        "filter_name": m["filterName"],
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": json.dumps(m["config"])}}}


def test_envoy_gateway_native_policy_validates_against_the_schema():
    from schemas import validate
    doc = eg_native_policy()
    validate(doc)  # with no field the schema does not declare
    # The same policy as the Wasm filter's manifest.
    from test_kuma_envoy_gateway import eg_wasm
    assert doc["spec"]["dynamicModule"][0]["config"] == eg_wasm()["config"]


@pytest.mark.parametrize("path, value", [
    (("spec", "dynamicModule", 0, "name"), "canary_router"),  # not a DNS-1123 name
    (("spec", "dynamicModule", 0, "filterName"), 7),
    (("spec", "dynamicModule", 0, "filter_name"), "canary-router"),
    (("spec", "dynamicModule"), [{"filterName": "canary-router"}]),  # no name
], ids=["name-pattern", "filterName-type", "unknown-field", "name-missing"])
def test_a_broken_native_policy_fails_validation(path, value):
    import copy
    import jsonschema
    from schemas import validate
    doc = copy.deepcopy(eg_native_policy())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_the_validator_reads_the_native_policy(tmp_path):
    from test_kuma_envoy_gateway import cli
    ok = cli("validate", EG_NATIVE)
    assert ok.returncode == 0 and "OK (1 policy)" in ok.stdout, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(EG_NATIVE.read_text().replace("{name: canary, weight: 10}",
                                                 "{name: canary, weight: 11}"))
    out = cli("validate", bad)
    assert out.returncode != 0
    assert "spec.dynamicModule[0].config" in out.stdout + out.stderr
    assert "weights sum to 101" in out.stdout + out.stderr


def test_real_envoy_runs_the_envoy_gateway_native_filter(envoys, backends):
    from test_kuma_envoy_gateway import as_envoy_gateway_does, check_decisions, routed_bootstrap
    b = as_envoy_gateway_does(routed_bootstrap("envoy-gateway", backends), eg_native_filter())
    envoy = envoys(b, module="wasm")  # the bootstrap already holds the native module
    check_decisions(envoy, eg_native_policy()["spec"]["dynamicModule"][0]["config"])


# --- live updates: ECDS, as tests/test_reload.py does for the Wasm filter -----------------------

NATIVE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"


def native_ecds_resource(variants) -> dict:
    """The ECDS resource of envoy-config/ecds/ with the native module and these weights."""
    from test_reload import ecds_resource
    res = ecds_resource(variants)
    wasm = res["resources"][0]["typed_config"]
    res["resources"][0]["typed_config"] = {
        "@type": NATIVE_TYPE,
        "dynamic_module_config": {"name": "canary_router"},
        "filter_name": "canary-router",
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": wasm["config"]["configuration"]["value"]},
    }
    return res


def test_a_new_configuration_takes_effect_without_a_failed_request(envoys, backends, tmp_path):
    """A reload (a new filter configuration by ECDS) switches the split under traffic; one the
    module refuses is rejected by Envoy, which keeps the last one; every request succeeds."""
    from test_reload import ecds_envoy, publish, reload_under_traffic
    watched = tmp_path / "ecds"
    watched.mkdir()
    publish(watched, native_ecds_resource([("canary", 10), ("stable", 90)]))

    def start(b):
        hcm_ = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"]
        hcm_["http_filters"][0]["config_discovery"]["type_urls"] = [NATIVE_TYPE]
        return envoys(b, module="wasm")  # the configuration comes by ECDS, already native

    envoy = ecds_envoy(start, backends, watched)
    reload_under_traffic(envoy, watched, native_ecds_resource)
    # The replaced configurations' timer threads ended with them (the library stays usable).
    assert envoy.request("/", {"x-user-id": "after"}).status == 200
