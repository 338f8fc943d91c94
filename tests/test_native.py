"""The native module's contract with Envoy (README "Native module"): its C ABI bindings against
the Envoy binary we run, the version handshake, and what it refuses. Its decisions, stats and
guard are tested by the suites marked `both_modules`."""
import re
import subprocess

import pytest

from harness import NATIVE, ROOT, EnvoyFailed, bootstrap_for, envoy_binary, native_supported

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
