"""The `canary-router` command: `validate` and `simulate`, run as a process.

The binary is $CANARY_ROUTER_BIN, or target/debug/canary-router (scripts/test.sh builds it).
Buckets and variants are checked against harness.bucket / harness.expected_variant, computed
independently in Python.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from harness import CONFIG_DIR, ROOT, bucket, expected_variant

BIN = Path(os.environ.get("CANARY_ROUTER_BIN") or ROOT / "target" / "debug" / "canary-router")
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def run(*args: str | Path) -> subprocess.CompletedProcess:
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: cargo build --bin canary-router (or set CANARY_ROUTER_BIN)")
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def ok(*args: str | Path) -> subprocess.CompletedProcess:
    r = run(*args)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def fails(code: int, *args: str | Path) -> subprocess.CompletedProcess:
    r = run(*args)
    assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def write(path: Path, content: dict | str) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def wasm_configs(node) -> list[dict]:
    """Every plugin configuration held by an Envoy Wasm filter (or the native module's
    DynamicModuleFilter) in a loaded YAML document."""
    if isinstance(node, dict):
        if node.get("@type") == WASM_TYPE:
            return [json.loads(node["config"]["configuration"]["value"])]
        if node.get("@type", "").endswith(".DynamicModuleFilter") \
                and node.get("filter_name") == "canary-router":
            return [json.loads(node["filter_config"]["value"])]
        return [c for v in node.values() for c in wasm_configs(v)]
    if isinstance(node, list):
        return [c for v in node for c in wasm_configs(v)]
    return []


# A 10/90 canary, sticky by header, with a rule, a source_label rule and a minted cookie.
CANARY = {
    "policies": [{
        "name": "reviews",
        "hosts": ["reviews"],
        "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
        "sticky": {"keys": [{"header": "x-user-id"}],
                   "cookie": {"name": "canary-id", "max_age": 60, "path": "/"}},
        "rules": [
            {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]},
            {"variant": "canary", "match": [{"source_label": "version", "exact": "v2"}]},
        ],
    }]
}
SPLIT = [("canary", 10), ("stable", 90)]


def load_front_proxy_plugin() -> dict:
    """The plugin configuration of envoy-config/front-proxy.yaml."""
    from harness import load_config, plugin_config
    return plugin_config(load_config("front-proxy.yaml"))


def config_with(tmp_path: Path, **policy) -> Path:
    """CANARY with some fields of its policy replaced (None removes the field)."""
    c = json.loads(json.dumps(CANARY))
    for k, v in policy.items():
        if v is None:
            c["policies"][0].pop(k, None)
        else:
            c["policies"][0][k] = v
    return write(tmp_path / "config.json", c)


def wasm_plugin(name: str, plugin_config: dict) -> dict:
    return {
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "reviews"}},
            "url": "oci://registry.example/canary-router:0.1.0",
            "phase": "AUTHN",
            "pluginConfig": plugin_config,
        },
    }


# --- help, version, usage errors ---------------------------------------------------------

# Each command listed with a one-line description.
TOP_HELP = [r"^Usage: canary-router <COMMAND>$", r"^  validate +\w", r"^  simulate +\w",
            r"^  fingerprint +\w"]


@pytest.mark.parametrize("args, expected", [
    (["--help"], TOP_HELP + [r"^FILE and CONFIG are JSON or YAML files",
                             r"^Exit status: 0 success"]),
    (["-h"], TOP_HELP),
    (["help"], TOP_HELP + [r"^FILE and CONFIG are JSON or YAML files"]),
    (["validate", "--help"], [r"^Usage: canary-router validate \[OPTIONS\] <FILE>\.\.\.$",
                              r"^ +--node-metadata <JSON> *\n? +\w", r"^ +--label <KEY=VALUE>"]),
    (["simulate", "x.json", "-h"], [r"^Usage: canary-router simulate \[OPTIONS\] <CONFIG>$",
                                    r"^ +--users <N> +\w", r"^ +--node-metadata <JSON> +\w"]),
])
def test_help(args, expected):
    r = ok(*args)
    for pattern in expected:
        assert re.search(pattern, r.stdout, re.M), (pattern, r.stdout)
    assert r.stderr == ""


def test_version():
    version = re.search(r'^version = "(.*)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    assert ok("--version").stdout.strip() == f"canary-router {version}"


@pytest.mark.parametrize("args, message", [
    ([], "requires a subcommand"),
    (["frobnicate"], "unrecognized subcommand 'frobnicate'"),
    (["--frobnicate"], "unexpected argument '--frobnicate'"),
    (["validate"], "not provided:\n  <FILE>..."),
    (["validate", "--frobnicate", "envoy-config/front-proxy.yaml"],
     "unexpected argument '--frobnicate'"),
    (["validate", "does-not-exist.yaml"], "cannot read does-not-exist.yaml"),
    (["validate", "envoy-config/front-proxy.yaml", "does-not-exist.yaml"], "cannot read"),
    (["validate", "envoy-config"], "cannot read envoy-config"),
    (["validate", "--label", "novalue", "envoy-config/front-proxy.yaml"],
     "'--label <KEY=VALUE>': expected KEY=VALUE"),
    (["simulate"], "not provided:\n  <CONFIG>"),
    (["simulate", "envoy-config/front-proxy.yaml", "--users"],
     "a value is required for '--users <N>'"),
    (["simulate", "envoy-config/front-proxy.yaml", "--users", "many"],
     "invalid value 'many' for '--users <N>'"),
    (["simulate", "envoy-config/front-proxy.yaml", "--users", "0"],
     "'--users <N>': 0 is not in 1..="),
    (["simulate", "envoy-config/front-proxy.yaml", "--per-user"], "not provided:\n  --users <N>"),
    (["simulate", "envoy-config/front-proxy.yaml", "--source-ip", "10.0.0"],
     "invalid value '10.0.0' for '--source-ip <IP>'"),
    (["simulate", "envoy-config/front-proxy.yaml", "--path", "x"],
     "'--path <P>': must start with '/'"),
    (["simulate", "envoy-config/front-proxy.yaml", "--header", "x-user-id"],
     "'--header <K=V>': expected KEY=VALUE"),
    (["simulate", "envoy-config/front-proxy.yaml", "--seed", "1", "--seed", "2"],
     "'--seed <N>' cannot be used multiple times"),
    (["simulate", "a.json", "b.json"], "unexpected argument 'b.json'"),
])
def test_usage_errors_exit_2(args, message):
    r = fails(2, *args)
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: "), r.stderr
    assert message in r.stderr
    assert lines[-1] == "For more information, try '--help'."
    assert r.stdout == ""


# --- validate ----------------------------------------------------------------------------

# The Envoy examples that hold the filter (native-sticky-split.yaml is Envoy alone, for the
# comparison in tests/test_comparison.py).
EXAMPLES = [p for p in sorted(CONFIG_DIR.glob("*.yaml"))
            if wasm_configs(yaml.safe_load(p.read_text()))]


def test_an_example_without_the_filter_has_nothing_to_validate():
    without = sorted(set(CONFIG_DIR.glob("*.yaml")) - set(EXAMPLES))
    assert [p.name for p in without] == ["native-sticky-split.yaml"]
    r = fails(1, "validate", *without)
    assert "nothing to validate" in r.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_validate_examples(path):
    r = ok("validate", path)
    configs = wasm_configs(yaml.safe_load(path.read_text()))
    assert configs
    rel = str(path)
    n = len(configs[0]["policies"])
    assert f"{rel}: OK ({n} polic{'y' if n == 1 else 'ies'}" in r.stdout
    for policy in configs[0]["policies"]:
        line = next(l for l in r.stdout.splitlines() if l.startswith(f"  {policy['name']}: "))
        for v in policy["variants"]:
            assert f"{v['name']} {v['weight']:g} %" in line
        assert f"rules: {len(policy.get('rules', []))}" in line
    assert r.stderr == ""


def test_validate_all_examples_at_once():
    r = ok("validate", *EXAMPLES)
    assert r.stdout.count(": OK (") == len(EXAMPLES)


def test_validate_plain_json(tmp_path):
    c = json.loads(json.dumps(CANARY))
    c["policies"][0]["salt"] = "v1"
    c["policies"][0]["path_prefix"] = "/api"
    c["policies"][0]["sticky"]["keys"].append({"source_ip": True})
    c["policies"].append({"name": "ratings", "routes": ["ratings-route", "ratings-canary"],
                          "variants": [{"name": "a", "weight": 33.33}, {"name": "b", "weight": 66.67}]})
    c["variant_header"] = "x-variant"
    path = write(tmp_path / "plugin.json", c)
    r = ok("validate", path)
    lines = r.stdout.splitlines()
    assert lines[0] == f"{path}: OK (2 policies, variant header x-variant)"
    assert lines[1] == (
        "  reviews: canary 10 %, stable 90 %; sticky: header x-user-id, source_ip, "
        "cookie canary-id (minted); rules: 2 (1 with source_label conditions); hosts: reviews; "
        "path_prefix: /api; routes: any; salt: v1")
    assert lines[2] == (
        "  ratings: a 33.33 %, b 66.67 %; sticky: none (a random bucket per request); rules: 0; "
        "hosts: any; path_prefix: any; routes: ratings-route, ratings-canary")


def test_validate_plain_yaml(tmp_path):
    path = write(tmp_path / "plugin.yaml", yaml.safe_dump(CANARY))
    assert "OK (1 policy)" in ok("validate", path).stdout


def test_validate_wasm_plugin(tmp_path):
    path = write(tmp_path / "wasmplugin.yaml", yaml.safe_dump(wasm_plugin("reviews-canary", CANARY)))
    r = ok("validate", path)
    assert r.stdout.startswith(f"{path}: OK (1 policy)\n  reviews: canary 10 %, stable 90 %")


def test_validate_wasm_plugin_bad_weight(tmp_path):
    bad = json.loads(json.dumps(CANARY))
    bad["policies"][0]["variants"][1]["weight"] = 80
    path = write(tmp_path / "istio.yaml", yaml.safe_dump(wasm_plugin("reviews-canary", bad)))
    r = fails(1, "validate", path)
    assert r.stderr.splitlines() == [
        f"{path}: WasmPlugin reviews-canary: spec.pluginConfig: policies[0].variants: "
        "weights sum to 90, they must sum to 100"]
    assert r.stdout == ""


@pytest.mark.parametrize("path, location", [
    ("envoy-config/kuma/canary-router-patch.yaml",
     "MeshProxyPatch canary-router: spec.default.appendModifications[0].httpFilter.value: "
     "typed_config.config.configuration.value"),
    ("envoy-config/envoy-gateway/canary-router-policy.yaml",
     "EnvoyExtensionPolicy canary-router: spec.wasm[0].config"),
], ids=["kuma", "envoy-gateway"])
def test_validate_reads_kuma_and_envoy_gateway_manifests(tmp_path, path, location):
    # The shipped manifest passes; the same manifest with the canary's weight changed fails,
    # and the error names where in the manifest the configuration is.
    r = ok("validate", path)
    assert r.stdout.startswith(f"{path}: OK (1 policy)\n  reviews: canary 10 %, stable 90 %")
    assert r.stderr == ""
    text = (ROOT / path).read_text()
    weight = '{"name": "canary", "weight": 10}' if "kuma" in path else "{name: canary, weight: 10}"
    assert text.count(weight) == 1
    broken = write(tmp_path / "broken.yaml", text.replace(weight, weight.replace("10", "20")))
    r = fails(1, "validate", broken)
    assert r.stderr.splitlines() == [
        f"{broken}: {location}: policies[0].variants: weights sum to 110, they must sum to 100"]


def test_validate_reads_traffic_extension(tmp_path):
    # Istio 1.30's TrafficExtension holds the same Struct under spec.wasm.pluginConfig.
    def extension(config):
        return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "TrafficExtension",
                "metadata": {"name": "reviews-canary"},
                "spec": {"wasm": {"url": "oci://ghcr.io/your-org/canary-router:0.1.0",
                                  "pluginConfig": config}}}
    path = write(tmp_path / "te.yaml", yaml.safe_dump(extension(CANARY)))
    r = ok("validate", path)
    assert r.stdout.startswith(f"{path}: OK (1 policy)\n  reviews: canary 10 %, stable 90 %")
    bad = json.loads(json.dumps(CANARY))
    bad["policies"][0]["variants"][1]["weight"] = 80
    path = write(tmp_path / "bad.yaml", yaml.safe_dump(extension(bad)))
    r = fails(1, "validate", path)
    assert r.stderr.splitlines() == [
        f"{path}: TrafficExtension reviews-canary: spec.wasm.pluginConfig: policies[0].variants: "
        "weights sum to 90, they must sum to 100"]
    # A WasmPlugin with its kind changed and nothing else: the plugin is at spec, where Istio
    # never reads it (and Kubernetes drops it). Refused with the field, even with a valid config.
    moved = extension(CANARY)
    moved["spec"] = moved["spec"].pop("wasm")
    path = write(tmp_path / "moved.yaml", yaml.safe_dump(moved))
    r = fails(1, "validate", path)
    assert r.stderr.splitlines() == [
        f"{path}: TrafficExtension reviews-canary: spec.pluginConfig: a TrafficExtension holds "
        "its Wasm plugin under spec.wasm (spec.wasm.url, spec.wasm.pluginConfig, …); at "
        "spec.pluginConfig it is not part of the resource and Kubernetes drops it"]
    # A Lua TrafficExtension is not ours: skipped, and a file of nothing else has nothing to check.
    lua = {**extension(CANARY), "spec": {"lua": {"inlineCode": "function envoy_on_request(h) end"}}}
    path = write(tmp_path / "lua.yaml", yaml.safe_dump(lua))
    r = fails(1, "validate", path)
    assert "nothing to validate" in r.stderr


def test_validate_multi_document(tmp_path):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews"},
               "spec": {"ports": [{"port": 9080}]}}
    ratings = {"policies": [{"name": "ratings", "variants": [{"name": "b", "weight": 50},
                                                             {"name": "a", "weight": 50}]}]}
    docs = [service, wasm_plugin("reviews-canary", CANARY), wasm_plugin("ratings-ab", ratings)]
    path = write(tmp_path / "mesh.yaml", yaml.safe_dump_all(docs) + "---\n")
    r = ok("validate", path)
    assert f"{path}: WasmPlugin reviews-canary: spec.pluginConfig: OK (1 policy)" in r.stdout
    assert f"{path}: WasmPlugin ratings-ab: spec.pluginConfig: OK (1 policy)" in r.stdout
    assert "  ratings: b 50 %, a 50 %" in r.stdout
    assert r.stderr == f"note: {path}: skipped Service reviews (no plugin configuration)\n"

    # One bad manifest fails the file; the good one is still reported.
    ratings["policies"][0]["variants"][0]["name"] = "a"
    docs = [service, wasm_plugin("reviews-canary", CANARY), wasm_plugin("ratings-ab", ratings)]
    path.write_text(yaml.safe_dump_all(docs))
    r = fails(1, "validate", path)
    assert f"{path}: WasmPlugin reviews-canary: spec.pluginConfig: OK (1 policy)" in r.stdout
    assert (f"{path}: WasmPlugin ratings-ab: spec.pluginConfig: policies[0].variants[1].name: "
            'duplicate variant name "a"') in r.stderr


def test_validate_reports_every_error(tmp_path):
    c = json.loads(json.dumps(CANARY))
    c["policies"][0]["variants"][0]["weight"] = 10.001
    c["policies"][0]["rules"][0]["variant"] = "nightly"
    c["policies"][0]["rules"][0]["match"][0]["regex"] = "(unclosed"
    path = write(tmp_path / "bad.json", c)
    r = fails(1, "validate", path)
    errors = r.stderr.splitlines()
    assert len(errors) == 3, r.stderr
    for at in ["policies[0].variants[0].weight: weight 10.001 has more than two decimals",
               'policies[0].rules[0].variant: unknown variant "nightly"',
               "policies[0].rules[0].match[0]: a condition sets exactly one of"]:
        assert any(e.startswith(f"{path}: {at}") for e in errors), (at, errors)


def test_validate_envoy_bootstrap(tmp_path):
    """A bootstrap in JSON, with the configuration broken: the error names where it is."""
    b = yaml.safe_load((CONFIG_DIR / "front-proxy.yaml").read_text())
    path = write(tmp_path / "bootstrap.json", b)
    assert f"{path}: OK (1 policy)" in ok("validate", path).stdout

    hcm = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"][0]["typed_config"]["config"]["configuration"]["value"] = (
        '{"policies": [{"name": "reviews", "variants": [{"name": "canary", "weight": 100}], '
        '"sticky": {}}], "colour": "blue"}')
    write(path, b)
    r = fails(1, "validate", path)
    at = ("static_resources.listeners[0].filter_chains[0].filters[0].typed_config."
          "http_filters[0].typed_config.config.configuration.value")
    assert r.stderr.startswith(f"{path}: {at}: colour: unknown field `colour`"), r.stderr


def test_validate_malformed_files(tmp_path):
    bad_json = write(tmp_path / "bad.json", '{"policies": [\n  {"name": "a",}\n]}')
    r = fails(1, "validate", bad_json)
    assert r.stderr.startswith(f"{bad_json}: invalid JSON: trailing comma at line 2"), r.stderr

    bad_yaml = write(tmp_path / "bad.yaml", "policies:\n  - name: a\n   variants: [\n")
    r = fails(1, "validate", bad_yaml)
    assert r.stderr.startswith(f"{bad_yaml}: invalid YAML: "), r.stderr
    assert "line 3" in r.stderr

    # A configuration string that is not JSON, inside valid YAML: the core's own message.
    b = yaml.safe_load((CONFIG_DIR / "blue-green.yaml").read_text())
    wasm = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["http_filters"][0]["typed_config"]
    wasm["config"]["configuration"]["value"] = "{policies: []}"
    envoy = write(tmp_path / "envoy.yaml", yaml.safe_dump(b))
    r = fails(1, "validate", envoy)
    assert "config.configuration.value: (config): key must be a string" in r.stderr, r.stderr


def test_validate_nothing_to_validate(tmp_path):
    for name, content in [("empty.yaml", ""), ("service.yaml", "apiVersion: v1\nkind: Service\n"
                                                "metadata: {name: reviews}\n"),
                          ("other.json", '{"static_resources": {}}')]:
        path = write(tmp_path / name, content)
        r = fails(1, "validate", path)
        assert f"{path}: nothing to validate" in r.stderr


def test_validate_node_metadata(tmp_path):
    path = write(tmp_path / "config.json", CANARY)
    # A valid override changes the weights shown.
    r = ok("validate", path, "--node-metadata",
           '{"reviews": {"variants": [{"name": "canary", "weight": 50}, {"name": "stable", "weight": 50}]}}')
    assert "  reviews: canary 50 %, stable 50 % (from node metadata);" in r.stdout
    assert r.stderr == ""
    # An invalid one is a warning, not a failure; the configured weights stay.
    r = ok("validate", path, "--node-metadata",
           '{"reviews": {"variants": [{"name": "canary", "weight": 50}]}}')
    assert "  reviews: canary 10 %, stable 90 %;" in r.stdout
    assert r.stderr.splitlines() == [
        f"warning: {path}: node.CANARY_ROUTER.reviews.variants: weights sum to 50, "
        "they must sum to 100"]
    r = ok("validate", path, "--node-metadata", "not json")
    assert r.stderr.startswith(f"warning: {path}: node.CANARY_ROUTER: ")
    assert "(all node metadata overrides ignored)" in r.stderr


# --- simulate: one request ---------------------------------------------------------------

def decision(*args) -> dict:
    """`simulate ... --json` as a dict."""
    r = ok("simulate", *args, "--json")
    assert len(r.stdout.splitlines()) == 1, r.stdout
    return json.loads(r.stdout)


def test_simulate_rule():
    r = ok("simulate", CONFIG_DIR / "front-proxy.yaml", "--header", "x-beta=true",
           "--header", "x-user-id=anyone")
    assert r.stdout == "policy=reviews variant=canary reason=rule bucket=-\n"
    # A rule on a query parameter, and on a cookie.
    assert "reason=rule" in ok("simulate", "envoy-config/front-proxy.yaml",
                               "--query", "variant=canary").stdout
    assert ok("simulate", "envoy-config/front-proxy.yaml", "--cookie", "x=1",
              "--cookie", "ab=never").stdout.startswith("policy=reviews variant=stable reason=rule")


@pytest.mark.parametrize("user", ["alice", "user-7", "bob@example.com", "ü"])
def test_simulate_sticky_key(user):
    b = bucket("reviews", user)
    r = ok("simulate", "envoy-config/front-proxy.yaml", "--header", f"X-User-Id={user}")
    assert r.stdout == (f"policy=reviews variant={expected_variant(SPLIT, b)} "
                        f"reason=sticky_key bucket={b}\n")
    # The second key: a cookie.
    d = decision("envoy-config/front-proxy.yaml", "--cookie", f"session={user}")
    assert d == {"policy": "reviews", "variant": expected_variant(SPLIT, b),
                 "reason": "sticky_key", "bucket": b, "set_cookie": None}


def test_simulate_sticky_query_and_source_ip(tmp_path):
    path = config_with(tmp_path, sticky={"keys": [{"query": "uid"}, {"source_ip": True}]})
    # Encoded as needed in the path, decoded by the core.
    for uid in ["plain", "a b&c=d#e+f%", "ü"]:
        d = decision(path, "--host", "reviews", "--path", "/p?x=1", "--query", f"uid={uid}")
        assert d["reason"] == "sticky_key" and d["bucket"] == bucket("reviews", uid), uid
    for ip in ["192.0.2.7", "2001:db8::1"]:
        d = decision(path, "--host", "reviews", "--source-ip", ip)
        assert d["bucket"] == bucket("reviews", ip), ip


def test_simulate_minted_cookie():
    r = ok("simulate", "envoy-config/front-proxy.yaml")
    first, second = r.stdout.splitlines()
    m = re.fullmatch(r"policy=reviews variant=(\w+) reason=minted_cookie bucket=(\d+)", first)
    assert m, first
    c = re.fullmatch(r"set-cookie: canary-id=([0-9a-f]{32}); Max-Age=86400; Path=/; HttpOnly; "
                     r"SameSite=Lax", second)
    assert c, second
    b = bucket("reviews", c.group(1))
    assert int(m.group(2)) == b and m.group(1) == expected_variant(SPLIT, b)
    # The seed makes it reproducible; another seed mints another id.
    assert ok("simulate", "envoy-config/front-proxy.yaml").stdout == r.stdout
    assert ok("simulate", "envoy-config/front-proxy.yaml", "--seed", "2").stdout != r.stdout
    d = decision("envoy-config/front-proxy.yaml", "--seed", "2")
    assert d["reason"] == "minted_cookie" and d["set_cookie"].startswith("canary-id=")
    # The minted cookie presented back: sticky_cookie, same bucket.
    d = decision("envoy-config/front-proxy.yaml", "--cookie", f"canary-id={c.group(1)}")
    assert (d["reason"], d["bucket"], d["set_cookie"]) == ("sticky_cookie", b, None)


def test_simulate_no_policy(tmp_path):
    path = write(tmp_path / "config.json", CANARY)
    r = ok("simulate", path, "--host", "ratings")
    assert r.stdout == "no policy applies: the request passes untouched\n"
    assert decision(path, "--host", "ratings") == {"policy": None}
    assert decision(path, "--host", "Reviews:9080", "--header", "x-beta=true")["reason"] == "rule"


def test_simulate_routes(tmp_path):
    path = config_with(tmp_path, hosts=None, routes=["reviews-route"])
    assert decision(path, "--route", "other") == {"policy": None}
    assert decision(path, "--route", "reviews-route", "--header", "x-user-id=a")["bucket"] == \
        bucket("reviews", "a")


def test_simulate_node_metadata_disabled(tmp_path):
    path = write(tmp_path / "config.json", CANARY)
    r = ok("simulate", path, "--host", "reviews", "--header", "x-beta=true",
           "--node-metadata", '{"reviews": {"enabled": false}}')
    assert r.stdout == "policy=reviews variant=stable reason=disabled bucket=-\n"
    assert r.stderr == ""


def test_simulate_source_label(tmp_path):
    path = write(tmp_path / "config.json", CANARY)
    args = [path, "--host", "reviews", "--header", "x-user-id=alice"]
    assert decision(*args, "--label", "app=reviews", "--label", "version=v2")["reason"] == "rule"
    assert decision(*args, "--label", "version=v2")["variant"] == "canary"
    assert decision(*args, "--label", "version=v1")["reason"] == "sticky_key"
    assert decision(*args)["reason"] == "sticky_key"


def test_simulate_route_metadata_warnings(tmp_path):
    path = write(tmp_path / "config.json", {**CANARY, "route_metadata": True})
    args = [path, "--host", "reviews", "--header", "x-user-id=user-1"]
    plain = ok("simulate", *args).stdout
    # Without "route_metadata": true the filter never reads it; neither does simulate.
    off = write(tmp_path / "off.json", CANARY)
    r = ok("simulate", off, "--host", "reviews", "--header", "x-user-id=user-1",
           "--route-metadata", '{"enabled": false}')
    assert r.stdout == plain
    assert r.stderr.startswith('warning: route-metadata: ignored: the configuration does not set '
                               '"route_metadata": true'), r.stderr
    for meta, warning in [
        ('{"variants": [{"name": "canary", "weight": 60}]}',
         "warning: route-metadata.variants: weights sum to 60, they must sum to 100"),
        ('{"policy": "ratings"}', 'warning: route-metadata.policy: no policy is called "ratings"'),
        ('{"colour": 1}', "warning: route-metadata.colour: unknown field `colour`"),
        ("{", "warning: route-metadata: invalid JSON"),
    ]:
        r = ok("simulate", *args, "--route-metadata", meta)
        assert r.stdout == plain
        assert r.stderr.startswith(warning), (meta, r.stderr)


def test_simulate_first_of_several_configs(tmp_path):
    other = {"policies": [{"name": "ratings", "variants": [{"name": "x", "weight": 100}]}]}
    path = write(tmp_path / "mesh.yaml", yaml.safe_dump_all(
        [wasm_plugin("reviews-canary", CANARY), wasm_plugin("ratings", other)]))
    r = ok("simulate", path, "--host", "reviews", "--header", "x-beta=true")
    assert r.stdout.startswith("policy=reviews variant=canary reason=rule")
    assert "holds 2 configurations; simulating the first (WasmPlugin reviews-canary" in r.stderr


def test_simulate_invalid_config(tmp_path):
    bad = json.loads(json.dumps(CANARY))
    bad["policies"][0]["variants"][0]["weight"] = 0
    path = write(tmp_path / "bad.json", bad)
    r = fails(1, "simulate", path)
    assert r.stderr == (f"{path}: policies[0].variants: weights sum to 90, they must sum to "
                        "100\n")


# --- simulate: many users ----------------------------------------------------------------

def users(*args) -> dict:
    return json.loads(ok("simulate", *args, "--json").stdout)


def per_user(*args) -> dict[str, tuple[str, str, int | None]]:
    r = ok("simulate", *args, "--per-user")
    out = {}
    for line in r.stdout.splitlines():
        user, variant, reason, b = line.split()
        out[user] = (variant, reason, None if b == "-" else int(b))
    return out


def test_users_split_10_90():
    n = 20000
    r = ok("simulate", "envoy-config/front-proxy.yaml", "--users", str(n))
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"policy reviews: {n} users, sticky key header x-user-id")
    assert lines[-1] == f"reasons: sticky_key {n}"
    table = {l.split()[0]: l.split() for l in lines[2:-1]}
    assert set(table) == {"canary", "stable"}
    assert table["canary"][-2] == "10" and table["stable"][-2] == "90"
    got = users("envoy-config/front-proxy.yaml", "--users", str(n))
    assert got["users"] == n and got["reasons"] == {"sticky_key": n}
    shares = {v["name"]: v for v in got["variants"]}
    assert sum(v["count"] for v in got["variants"]) == n
    assert abs(shares["canary"]["percent"] - 10) < 1.5, shares
    assert shares["canary"]["weight"] == 10 and shares["stable"]["weight"] == 90
    assert int(table["canary"][1]) == shares["canary"]["count"]


@pytest.mark.parametrize("key, kind", [({"header": "X-User-Id"}, "header"),
                                       ({"cookie": "session"}, "cookie"),
                                       ({"query": "uid"}, "query"),
                                       ({"source_ip": True}, "source_ip")])
def test_per_user_matches_python(tmp_path, key, kind):
    path = config_with(tmp_path, sticky={"keys": [key, {"header": "x-other"}]})
    # The user's id replaces any value given for the key on the command line.
    got = per_user(path, "--host", "reviews", "--users", "1000", "--header", "x-user-id=fixed",
                   "--cookie", "session=fixed", "--query", "uid=fixed", "--source-ip", "192.0.2.1")
    assert len(got) == 1000
    for i in range(1000):
        key_value = f"10.0.{i >> 8}.{i & 255}" if kind == "source_ip" else f"user-{i}"
        b = bucket("reviews", key_value)
        assert got[f"user-{i}"] == (expected_variant(SPLIT, b), "sticky_key", b), i


def test_per_user_json():
    r = ok("simulate", "envoy-config/front-proxy.yaml", "--users", "3", "--per-user", "--json")
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [row["user"] for row in rows] == ["user-0", "user-1", "user-2"]
    for row in rows:
        b = bucket("reviews", row["user"])
        assert row == {"user": row["user"], "variant": expected_variant(SPLIT, b),
                       "reason": "sticky_key", "bucket": b}


def test_users_route_metadata_changes_split(tmp_path):
    meta = '{"variants":[{"name":"canary","weight":50},{"name":"stable","weight":50}]}'
    front = load_front_proxy_plugin()
    config = write(tmp_path / "config.json", {**front, "route_metadata": True})
    got = per_user(config, "--users", "1000", "--route-metadata", meta)
    half = [("canary", 50), ("stable", 50)]
    for i in range(1000):
        b = bucket("reviews", f"user-{i}")
        assert got[f"user-{i}"] == (expected_variant(half, b), "sticky_key", b), i
    assert sum(v == "canary" for v, _, _ in got.values()) > 400
    summary = users(config, "--users", "1000", "--route-metadata", meta)
    assert [v["weight"] for v in summary["variants"]] == [50, 50]
    r = ok("simulate", config, "--users", "100", "--route-metadata", meta)
    assert "weights canary 50 %, stable 50 % (from route metadata)" in r.stdout


def test_users_disabled_and_rules(tmp_path):
    path = write(tmp_path / "config.json", CANARY)
    got = users(path, "--host", "reviews", "--users", "500", "--node-metadata",
                '{"reviews": {"enabled": false}}')
    assert got["enabled"] is False and got["reasons"] == {"disabled": 500}
    assert [v["count"] for v in got["variants"]] == [0, 500]
    # A rule that holds for everyone beats the users' keys.
    got = users(path, "--host", "reviews", "--users", "500", "--header", "x-beta=true")
    assert got["reasons"] == {"rule": 500}


def test_users_without_sticky_key(tmp_path):
    path = config_with(tmp_path, sticky=None)
    r = ok("simulate", path, "--host", "reviews", "--users", "20000")
    assert "has no sticky key" in r.stderr and "seed 1" in r.stderr
    got = users(path, "--host", "reviews", "--users", "20000")
    assert got["sticky_key"] is None and got["reasons"] == {"weight": 20000}
    assert abs(got["variants"][0]["percent"] - 10) < 1.5
    # Deterministic for a seed.
    assert ok("simulate", path, "--host", "reviews", "--users", "50", "--per-user",
              "--seed", "9").stdout == ok("simulate", path, "--host", "reviews", "--users", "50",
                                          "--per-user", "--seed", "9").stdout
    # Only a sticky cookie: every user is a new visitor with a minted cookie.
    path = config_with(tmp_path, sticky={"cookie": {"name": "cid"}})
    got = users(path, "--host", "reviews", "--users", "2000")
    assert got["reasons"] == {"minted_cookie": 2000}


def test_users_no_policy(tmp_path):
    path = write(tmp_path / "config.json", CANARY)
    r = ok("simulate", path, "--host", "ratings", "--users", "10")
    assert r.stdout == "no policy applies: the 10 users pass untouched\n"


RAMP_GUARD = {"policies": [{
    "name": "reviews",
    "variants": [{"name": "canary", "weight": 0}, {"name": "stable", "weight": 100}],
    "sticky": {"keys": [{"header": "x-user-id"}]},
    "ramp": {"variant": "canary", "start": "2026-12-01T10:00:00Z", "steps": [1, 5, 25, 50, 100],
             "step_seconds": 600},
    "guard": {"variant": "canary", "max_failure_rate": 0.05, "max_p99_ms": 800,
              "notify": {"cluster": "slack", "path": "/x"}},
}]}


def test_validate_describes_ramp_and_guard(tmp_path):
    out = ok("validate", write(tmp_path / "c.json", RAMP_GUARD)).stdout
    assert ("ramp: canary 1 → 5 → 25 → 50 → 100 % every 600 s from 2026-12-01T10:00:00Z; "
            "guard: canary → stable until the configuration changes when failure rate > 0.05 "
            "or p99 > 800 ms over 10 s (≥ 20 requests), notify slack via cluster slack") in out


def test_validate_describes_relative_limits_rearm_and_receivers(tmp_path):
    config = json.loads(json.dumps(RAMP_GUARD))
    config["policies"][0]["guard"] = {
        "variant": "canary", "max_failure_rate_increase": 0.05, "max_p99_ratio": 1.5,
        "on_trip": "rearm", "hold_seconds": 60, "max_trips": 2,
        "notify": [{"format": "github", "cluster": "github", "path": "/repos/o/r/dispatches",
                    "headers": {"authorization": "Bearer ${GITHUB_TOKEN}"}},
                   {"format": "msteams", "cluster": "teams", "path": "/${TEAMS_HOOK}"}]}
    r = ok("validate", write(tmp_path / "c.json", config))
    assert ("guard: canary → stable for 60 s, at most 2 trips when failure rate > stable's + "
            "0.05 or p99 > 1.5 × stable's over 10 s (≥ 20 requests), notify github via cluster "
            "github, notify msteams via cluster teams") in r.stdout
    # `${NAME}` is checked, not filled in (the VM's environment is the proxy's): no warning.
    assert "warning" not in r.stderr


def test_validate_warns_about_a_literal_authorization(tmp_path):
    config = json.loads(json.dumps(RAMP_GUARD))
    config["policies"][0]["guard"]["notify"] = [
        {"cluster": "slack", "path": "/x"},
        {"format": "github", "cluster": "github", "path": "/repos/o/r/dispatches",
         "headers": {"Authorization": "Bearer ghp_literal"}}]
    r = ok("validate", write(tmp_path / "c.json", config))
    assert ("warning: c.json: policies[0].guard.notify[1].headers.Authorization: a literal "
            "credential ends up in Git") in r.stderr.replace(str(tmp_path) + "/", "")
    assert "${GITHUB_TOKEN}" in r.stderr


def test_validate_refuses_bad_environment_references(tmp_path):
    config = json.loads(json.dumps(RAMP_GUARD))
    config["policies"][0]["guard"]["notify"] = {
        "cluster": "slack", "path": "/x", "headers": {"authorization": "Bearer ${GITHUB-TOKEN}"}}
    r = fails(1, "validate", write(tmp_path / "c.json", config))
    assert "policies[0].guard.notify.headers.authorization" in r.stderr
    assert "use letters, digits and '_'" in r.stderr


@pytest.mark.parametrize("at, percent", [("2026-12-01T09:59:59Z", 0), ("2026-12-01T10:00:00Z", 1),
                                         ("2026-12-01T10:20:00Z", 25), ("2027-01-01T00:00:00Z", 100)])
def test_simulate_at_a_time_follows_the_ramp(tmp_path, at, percent):
    path = write(tmp_path / "c.json", RAMP_GUARD)
    lines = ok("simulate", path, "--users", "400", "--per-user", "--at", at).stdout.splitlines()
    split = [("canary", percent), ("stable", 100 - percent)]
    for line in lines:
        user, variant, reason, b = line.split()
        assert variant == expected_variant(split, bucket("reviews", user)), line
        assert reason == "sticky_key"


def test_simulate_with_guards_tripped(tmp_path):
    path = write(tmp_path / "c.json", RAMP_GUARD)
    out = ok("simulate", path, "--users", "1000", "--at", "2026-12-01T10:20:00Z",
             "--guard-tripped").stdout
    assert "weights canary 0 %, stable 100 %" in out
    assert re.search(r"reasons: sticky_key \d+, guard \d+", out)
    one = ok("simulate", path, "--header", "x-user-id=user-3", "--guard-tripped",
             "--at", "2027-01-01T00:00:00Z").stdout
    assert one.startswith("policy=reviews variant=stable reason=guard")
    r = fails(2, "simulate", path, "--at", "tomorrow")
    assert '\'--at <TIME>\': "tomorrow" is not an RFC 3339 time' in r.stderr


# --- fingerprint -------------------------------------------------------------------------

FP_LINE = re.compile(r"^([0-9a-f]{16})  (.+)$")
ISTIO_CANARY = CONFIG_DIR / "istio" / "canary.yaml"


def fingerprints(*args: str | Path) -> dict[str, str]:
    """`canary-router fingerprint ARGS` (which must succeed): {"FILE: PLACE": fingerprint}."""
    out = {}
    for line in ok("fingerprint", *args).stdout.splitlines():
        m = FP_LINE.match(line)
        assert m, line
        out[m.group(2)] = m.group(1)
    return out


def fingerprint_of(path: Path) -> str:
    """The fingerprint of a file holding one configuration."""
    (fp,) = fingerprints(path).values()
    return fp


def as_istio(v, floats: bool):
    """`v` as Istio re-serializes a pluginConfig Struct (as far as the fingerprint cares): the
    members in another order and, with `floats`, every weight a double written `10.0`."""
    if isinstance(v, dict):
        return {k: (float(x) if floats and k == "weight" else as_istio(x, floats))
                for k, x in reversed(list(v.items()))}
    if isinstance(v, list):
        return [as_istio(x, floats) for x in v]
    return v


def istio_plugins() -> list[dict]:
    docs = [d for d in yaml.safe_load_all(ISTIO_CANARY.read_text()) if d]
    return [d for d in docs if d.get("kind") == "WasmPlugin"]


def test_fingerprint_lines_name_the_place_in_the_file():
    rel = ISTIO_CANARY.relative_to(ROOT)
    r = ok("fingerprint", rel)
    names = [p["metadata"]["name"] for p in istio_plugins()]
    assert len(names) == 2
    lines = r.stdout.splitlines()
    assert [FP_LINE.match(l).group(2) for l in lines] == [
        f"{rel}: WasmPlugin {n}: spec.pluginConfig" for n in names]
    # The same places as validate's, and the same notes about skipped documents.
    assert "note: " in r.stderr and "skipped VirtualService reviews" in r.stderr
    assert re.search(r"^  fingerprint +\w", ok("--help").stdout, re.M)


@pytest.mark.parametrize("floats", [False, True], ids=["ints", "floats"])
@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "pretty"])
def test_fingerprint_survives_istio(tmp_path, floats, indent):
    """The pluginConfig as written in the WasmPlugin and as the proxy receives it (JSON with
    the keys sorted or reordered, weights as doubles, any whitespace) has one fingerprint."""
    written = fingerprints(ISTIO_CANARY)
    for plugin in istio_plugins():
        name = plugin["metadata"]["name"]
        config = plugin["spec"]["pluginConfig"]
        place = f"{ISTIO_CANARY}: WasmPlugin {name}: spec.pluginConfig"
        sep = (",", ":") if indent is None else None
        for i, doc in enumerate([json.dumps(as_istio(config, floats), sort_keys=True,
                                            separators=sep, indent=indent),
                                 json.dumps(as_istio(config, floats), indent=indent)]):
            path = write(tmp_path / f"{name}-{i}.json", doc)
            assert fingerprint_of(path) == written[place], doc
        if floats:
            assert "10.0" in doc


def test_fingerprint_changes_with_the_weights(tmp_path):
    text = ISTIO_CANARY.read_text()
    before = fingerprints(ISTIO_CANARY)
    changed = write(tmp_path / "canary.yaml", text.replace("{name: canary, weight: 10}",
                                                           "{name: canary, weight: 25}", 1)
                    .replace("{name: stable, weight: 90}", "{name: stable, weight: 75}", 1))
    assert changed.read_text() != text
    after = fingerprints(changed)
    (gateway, callers), (gateway2, callers2) = before.values(), after.values()
    assert gateway2 != gateway and callers2 == callers
    # The changed configuration as Istio sends it has the changed fingerprint.
    config = [d for d in yaml.safe_load_all(changed.read_text()) if d][0]["spec"]["pluginConfig"]
    assert config["policies"][0]["variants"][0]["weight"] == 25
    path = write(tmp_path / "sent.json", json.dumps(as_istio(config, True), sort_keys=True))
    assert fingerprint_of(path) == gateway2


def test_fingerprint_is_xxh3_of_the_canonical_json(tmp_path):
    """Computed independently: xxh3_64 of the compact JSON with sorted keys (the canonical text
    when every number is an integer or a decimal Python writes as it is written)."""
    import xxhash
    canonical = json.dumps(CANARY, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    want = xxhash.xxh3_64_hexdigest(canonical.encode())
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(yaml.safe_dump(CANARY))
    assert fingerprint_of(write(tmp_path / "c.json", CANARY)) == want
    assert fingerprint_of(yaml_file) == want
    assert fingerprint_of(write(tmp_path / "w.yaml", json.dumps(wasm_plugin("w", CANARY)))) == want


def test_fingerprint_of_envoy_configurations():
    """The Envoy Wasm filter's configuration string has the fingerprint of the same
    configuration written as YAML; ECDS and the bootstrap that embeds it agree."""
    fps = fingerprints("envoy-config/front-proxy.yaml", "envoy-config/ecds/canary-router.yaml")
    assert len(set(fps.values())) == 1, fps
    assert all(".config.configuration.value" in place for place in fps)


def test_fingerprint_of_invalid_configurations(tmp_path):
    bad = config_with(tmp_path, variants=[{"name": "canary", "weight": 10},
                                          {"name": "stable", "weight": 80}])
    good = write(tmp_path / "good.json", CANARY)
    r = fails(1, "fingerprint", good, bad)
    # The valid one is still printed; the invalid one has its errors, as validate prints them.
    assert [FP_LINE.match(l).group(2) for l in r.stdout.splitlines()] == [str(good)]
    assert r.stderr == fails(1, "validate", bad).stderr
    assert r.stderr.startswith(f"{bad}: policies[0].variants")
    nothing = write(tmp_path / "nothing.yaml", "a: 1\n")
    r = fails(1, "fingerprint", nothing)
    assert r.stdout == "" and "nothing to validate" in r.stderr
    r = fails(2, "fingerprint", good, tmp_path / "missing.json")
    assert r.stdout == "" and "cannot read" in r.stderr
    fails(2, "fingerprint")
    fails(2, "fingerprint", "--label", "a=b", good)
