"""The Kuma and Envoy Gateway manifests: envoy-config/kuma/ and envoy-config/envoy-gateway/.

Each manifest is checked against the real API schema of the system that reads it
(../shared/schemas), its plugin configuration with `canary-router validate`, and the Envoy Wasm
filter it describes with Envoy itself: `envoy --mode validate`, then a real Envoy serving requests
through routes built from the manifest's route (MeshHTTPRoute / HTTPRoute).

The filters Envoy runs here are built the way Kuma and Envoy Gateway build them:
- Kuma: the MeshProxyPatch's `value` is the HttpFilter, inserted before the router as is (only the
  .wasm path on the proxy is replaced by dist/canary-router.wasm).
- Envoy Gateway (internal/xds/translator/wasm.go): an envoy.filters.http.wasm filter named
  `envoy.filters.http.wasm/<name>`, the `config` object as a StringValue JSON, runtime V8, vm_id
  and name from `name`, root_id from `rootID`, fail_open from `failOpen`; in the real Envoy the
  code is fetched over HTTP with its sha256 and the filter is disabled on the listener and
  enabled per route, as Envoy Gateway does (`envoy --mode validate` loads it from dist/).
The routes are our own translation of the manifest's rules (header match → backend), not Kuma's
or Envoy Gateway's: they check that the routes and the filter agree on header and variant names.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import threading
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import yaml

import harness
from harness import (CONFIG_DIR, ROOT, WASM, bucket, envoy_binary, expected_variant, hcm,
                     load_config, localize, wait_for, wasm_filter)
from schemas import manifests, schema_for, unknown_fields, validate

KUMA = CONFIG_DIR / "kuma"
EG = CONFIG_DIR / "envoy-gateway"
FILES = sorted(KUMA.glob("*.yaml")) + sorted(EG.glob("*.yaml"))
BIN = Path(os.environ.get("CANARY_ROUTER_BIN") or ROOT / "target" / "debug" / "canary-router")
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
MESH_WASM = "/var/lib/canary-router/canary-router.wasm"  # where the Kuma patch loads it from
SYSTEMS = ["kuma", "envoy-gateway"]


def the(directory: Path, kind: str) -> dict:
    """The one manifest of `kind` in `directory`."""
    [doc] = [d for p in sorted(directory.glob("*.yaml")) for d in manifests(p) if d["kind"] == kind]
    return doc


def dig(node, path: tuple):
    for key in path:
        node = node[key]
    return node


# --- the Envoy filter each manifest describes ---------------------------------------------------

def kuma_modification() -> dict:
    [modification] = the(KUMA, "MeshProxyPatch")["spec"]["default"]["appendModifications"]
    return modification["httpFilter"]


def kuma_filter() -> dict:
    """The HttpFilter the MeshProxyPatch inserts (its `value`, a YAML string), as Kuma sends it."""
    return yaml.safe_load(kuma_modification()["value"])


def kuma_filter_here() -> dict:
    """The same, loading the .wasm from dist/ (the mesh path does not exist here)."""
    f = kuma_filter()
    code = f["typed_config"]["config"]["vm_config"]["code"]
    assert code == {"local": {"filename": MESH_WASM}}
    code["local"]["filename"] = str(WASM)
    return f


def eg_wasm() -> dict:
    [wasm] = the(EG, "EnvoyExtensionPolicy")["spec"]["wasm"]
    return wasm


def eg_filter(code: dict | None = None) -> dict:
    """The HttpFilter Envoy Gateway builds from the policy's wasm entry; `code` defaults to the
    local dist/canary-router.wasm (Envoy Gateway serves the module to Envoy as `remote`)."""
    w = eg_wasm()
    config = {
        "name": w["name"],
        "root_id": w["rootID"],
        "vm_config": {"vm_id": w["name"], "runtime": "envoy.wasm.runtime.v8",
                      "code": code or {"local": {"filename": str(WASM)}}},
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": json.dumps(w["config"])},
    }
    if w.get("failOpen"):
        config["fail_open"] = True
    return {"name": f"envoy.filters.http.wasm/{w['name']}",
            "typed_config": {"@type": WASM_TYPE, "config": config}}


FILTERS = {"kuma": kuma_filter_here, "envoy-gateway": eg_filter}


def plugin_config(http_filter: dict) -> dict:
    return json.loads(http_filter["typed_config"]["config"]["configuration"]["value"])


def with_plugin_config(http_filter: dict, config: dict) -> dict:
    f = copy.deepcopy(http_filter)
    f["typed_config"]["config"]["configuration"]["value"] = json.dumps(config)
    return f


def broken(config: dict) -> dict:
    """The configuration with canary at 11 %: the weights sum to 101."""
    bad = copy.deepcopy(config)
    bad["policies"][0]["variants"][0]["weight"] = 11
    return bad


# --- the routes each manifest describes ---------------------------------------------------------

def kuma_rules() -> list[tuple[dict, str]]:
    """(headers to match, backend) per rule of the MeshHTTPRoute."""
    [to] = the(KUMA, "MeshHTTPRoute")["spec"]["to"]
    rules = []
    for rule in to["rules"]:
        [match] = rule["matches"]
        [backend] = rule["default"]["backendRefs"]
        assert match["path"] == {"type": "PathPrefix", "value": "/"}
        headers = {h["name"]: h["value"] for h in match.get("headers", []) if h["type"] == "Exact"}
        rules.append((headers, backend["labels"]["kuma.io/display-name"]))
    return rules


def eg_rules() -> list[tuple[dict, str]]:
    """(headers to match, backend) per rule of the HTTPRoute."""
    rules = []
    for rule in the(EG, "HTTPRoute")["spec"]["rules"]:
        [match] = rule["matches"]
        [backend] = rule["backendRefs"]
        assert match["path"] == {"type": "PathPrefix", "value": "/"}
        headers = {h["name"]: h["value"] for h in match.get("headers", []) if h["type"] == "Exact"}
        rules.append((headers, backend["name"]))
    return rules


RULES = {"kuma": kuma_rules, "envoy-gateway": eg_rules}


def envoy_routes(rules: list[tuple[dict, str]]) -> list[dict]:
    """Envoy routes for the rules, header matches first (Kuma and the Gateway API both rank a
    rule with header matches above one without)."""
    return [{"name": backend,
             "match": {"prefix": "/", "headers": [{"name": k, "string_match": {"exact": v}}
                                                  for k, v in headers.items()]},
             "route": {"cluster": backend}}
            for headers, backend in sorted(rules, key=lambda r: not r[0])]


# --- Envoy bootstraps ---------------------------------------------------------------------------

def bootstrap_with(http_filter: dict, bootstrap: dict | None = None) -> dict:
    """front-proxy.yaml (or `bootstrap`) with its canary-router filter replaced by `http_filter`."""
    b = copy.deepcopy(bootstrap or load_config("front-proxy.yaml"))
    filters = hcm(b)["http_filters"]
    filters[filters.index(wasm_filter(b))] = http_filter
    return b


def routed_bootstrap(system: str, backends) -> dict:
    """front-proxy.yaml with one cluster per backend of the manifest's route and its rules as
    routes, on free ports and the given backends (its filter still the front proxy's)."""
    rules = RULES[system]()
    b = load_config("front-proxy.yaml")
    template = b["static_resources"]["clusters"][0]
    b["static_resources"]["clusters"] = []
    for _, name in rules:
        cluster = copy.deepcopy(template)
        cluster["name"] = cluster["load_assignment"]["cluster_name"] = name
        b["static_resources"]["clusters"].append(cluster)
    hcm(b)["route_config"]["virtual_hosts"][0]["routes"] = envoy_routes(rules)
    return localize(b, backends.some(*[name for _, name in rules]))


def as_envoy_gateway_does(bootstrap: dict, http_filter: dict) -> dict:
    """The filter disabled on the listener, enabled on every route (as for a targeted HTTPRoute)."""
    b = bootstrap_with(dict(http_filter, disabled=True), bootstrap)
    for route in hcm(b)["route_config"]["virtual_hosts"][0]["routes"]:
        route["typed_per_filter_config"] = {http_filter["name"]: {
            "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}}
    return b


def envoy_validate(bootstrap: dict, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    base_id = next(harness._base_ids)  # the harness's per-process range: no clash with others
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path),
                           "--base-id", str(base_id)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def cli(*args) -> subprocess.CompletedProcess:
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: cargo build --bin canary-router (or set CANARY_ROUTER_BIN)")
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


# --- the files ----------------------------------------------------------------------------------

def test_the_manifests_are_there():
    kinds = {p.parent.name: set() for p in FILES}
    for p in FILES:
        kinds[p.parent.name] |= {d["kind"] for d in manifests(p)}
    assert kinds == {"kuma": {"MeshProxyPatch", "MeshHTTPRoute"},
                     "envoy-gateway": {"EnvoyExtensionPolicy", "HTTPRoute"}}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_file_starts_with_its_runbook(path):
    text = path.read_text()
    header = text[:text.index("\napiVersion:")]
    assert all(line.startswith("#") for line in header.splitlines()), "a comment block first"
    for needed in ("Apply:", "kubectl apply", "Verify:", "canary_router_requests_total",
                   "Roll forward:", "Roll back:", "git revert", "Watch:"):
        assert needed in header, needed
    # test_examples.py runs every envoy-config YAML holding "admin:" as an Envoy bootstrap.
    assert "admin:" not in text


# --- schemas ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_manifests_validate_against_their_schema(path):
    for doc in manifests(path):
        validate(doc)  # with no field the schema does not declare (schemas.py)


# A field the schema constrains, set wrong: (kind, path in the manifest, wrong value).
BREAKAGES = [
    # The operation enum is case-sensitive: AddBefore, not addBefore.
    ("MeshProxyPatch", ("spec", "default", "appendModifications", 0, "httpFilter", "operation"),
     "addBefore"),
    ("MeshProxyPatch", ("spec", "targetRef", "kind"), "MeshService"),
    ("MeshProxyPatch", ("spec", "default", "appendModifications", 0, "httpFilter", "value"),
     {"name": "canary-router"}),
    # This Kuma has no MeshServiceSubset: versions are separate MeshServices.
    ("MeshHTTPRoute", ("spec", "to", 0, "rules", 0, "default", "backendRefs", 0, "kind"),
     "MeshServiceSubset"),
    ("MeshHTTPRoute", ("spec", "to", 0, "rules", 0, "default", "backendRefs", 0, "port"), "9080"),
    ("MeshHTTPRoute", ("spec", "to", 0, "rules", 0, "matches", 0, "headers", 0, "name"),
     "X-Canary-Variant"),
    ("MeshHTTPRoute", ("spec", "to", 0, "rules", 0, "matches", 0, "headers", 0, "type"), "exact"),
    ("MeshHTTPRoute", ("spec", "to", 0, "rules", 0, "matches"), []),
    ("EnvoyExtensionPolicy", ("spec", "wasm", 0, "code", "type"), "OCI"),
    ("EnvoyExtensionPolicy", ("spec", "wasm", 0, "failOpen"), "true"),
    ("EnvoyExtensionPolicy", ("spec", "wasm", 0, "fail_open"), True),
    ("EnvoyExtensionPolicy", ("spec", "targetRefs", 0), {"kind": "HTTPRoute", "name": "reviews"}),
    ("HTTPRoute", ("spec", "rules", 0, "matches", 0, "headers", 0, "type"), "Prefix"),
    ("HTTPRoute", ("spec", "rules", 0, "backendRefs", 0, "port"), 0),
    ("HTTPRoute", ("spec", "hostnames"), ["Reviews.Example.com"]),
    ("HTTPRoute", ("spec", "rules", 1, "name"), "default rule"),
]
DIRS = {"MeshProxyPatch": KUMA, "MeshHTTPRoute": KUMA, "EnvoyExtensionPolicy": EG, "HTTPRoute": EG}


@pytest.mark.parametrize("kind,path,value", BREAKAGES,
                         ids=[f"{k}-{'.'.join(map(str, p[-2:]))}" for k, p, _ in BREAKAGES])
def test_a_broken_field_fails_validation(kind, path, value):
    doc = the(DIRS[kind], kind)
    validate(doc)
    bad = copy.deepcopy(doc)
    dig(bad, path[:-1])[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def test_a_field_the_api_server_would_prune_is_reported():
    """`tags` on a Kuma backendRef (the old MeshServiceSubset style) passes jsonschema, but the
    CRD does not declare it: Kubernetes would drop it and route to every version."""
    bad = copy.deepcopy(the(KUMA, "MeshHTTPRoute"))
    bad["spec"]["to"][0]["rules"][0]["default"]["backendRefs"][0]["tags"] = {"version": "v2"}
    jsonschema.validate(bad, schema_for(bad["apiVersion"], bad["kind"]))
    assert unknown_fields(bad, schema_for(bad["apiVersion"], bad["kind"])) == \
        ["spec.to[0].rules[0].default.backendRefs[0].tags"]
    with pytest.raises(jsonschema.ValidationError, match=r"backendRefs\[0\]\.tags"):
        validate(bad)


# The EnvoyExtensionPolicy schema's x-kubernetes-validations (CEL, which jsonschema does not
# run) that this policy depends on, as Python.
EG_RULES = {
    "If type is Image, image field needs to be set.":
        lambda s: all((w["code"]["type"] == "Image") == ("image" in w["code"]) for w in s["wasm"]),
    "If type is HTTP, http field needs to be set.":
        lambda s: all((w["code"]["type"] == "HTTP") == ("http" in w["code"]) for w in s["wasm"]),
    "either targetRef or targetRefs must be used":
        lambda s: ("targetRef" in s) != ("targetRefs" in s),
    "this policy can only have a targetRefs[*].kind of Gateway/HTTPRoute/...":
        lambda s: all(r["group"] == "gateway.networking.k8s.io"
                      and r["kind"] in ("Gateway", "HTTPRoute", "GRPCRoute") for r in s["targetRefs"]),
}


def test_envoy_extension_policy_passes_the_cel_rules():
    spec = the(EG, "EnvoyExtensionPolicy")["spec"]
    assert [m for m, holds in EG_RULES.items() if not holds(spec)] == []
    bad = copy.deepcopy(spec)
    bad["wasm"][0]["code"]["type"] = "HTTP"  # with `image` still set
    assert [m for m, holds in EG_RULES.items() if not holds(bad)] == [
        "If type is Image, image field needs to be set.", "If type is HTTP, http field needs to be set."]


# --- what the manifests say ---------------------------------------------------------------------

def test_kuma_patch_inserts_the_wasm_filter_before_the_outbound_router():
    modification = kuma_modification()
    assert modification["operation"] == "AddBefore"
    assert modification["match"] == {"name": "envoy.filters.http.router", "origin": "outbound"}
    f = kuma_filter()
    assert f["typed_config"]["@type"] == WASM_TYPE
    vm = f["typed_config"]["config"]["vm_config"]
    assert vm["runtime"] == "envoy.wasm.runtime.v8"
    assert vm["code"] == {"local": {"filename": MESH_WASM}}


@pytest.mark.parametrize("system", SYSTEMS)
def test_routes_send_each_decision_to_its_version(system):
    config = plugin_config(FILTERS[system]())
    header = config.get("variant_header", "x-canary-variant")
    [policy] = config["policies"]
    assert [v["name"] for v in policy["variants"]] == ["canary", "stable"]
    routes = {tuple(sorted(h.items())): backend for h, backend in RULES[system]()}
    assert routes == {((header, "canary"),): "reviews-v2", (): "reviews-v1"}


# --- the plugin configuration -------------------------------------------------------------------

@pytest.mark.parametrize("system", SYSTEMS)
def test_plugin_config_passes_the_validator(system, tmp_path):
    config = plugin_config(FILTERS[system]())
    good = tmp_path / "plugin.json"
    good.write_text(json.dumps(config))
    out = cli("validate", good)
    assert out.returncode == 0, out.stderr
    assert f"{good}: OK (1 policy)" in out.stdout
    assert "reviews: canary 10 %, stable 90 %" in out.stdout
    assert "cookie canary-id (minted)" in out.stdout

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken(config)))
    out = cli("validate", bad)
    assert out.returncode == 1
    assert "policies[0].variants: weights sum to 101, they must sum to 100" in out.stderr


# --- Envoy --------------------------------------------------------------------------------------

@pytest.mark.parametrize("system", SYSTEMS)
def test_envoy_validates_the_filter(system, tmp_path):
    http_filter = FILTERS[system]()
    out = envoy_validate(bootstrap_with(http_filter), tmp_path, "good")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    bad = with_plugin_config(http_filter, broken(plugin_config(http_filter)))
    out = envoy_validate(bootstrap_with(bad), tmp_path, "bad")
    assert out.returncode != 0
    assert "weights sum to 101, they must sum to 100" in out.stdout + out.stderr


def prometheus_value(envoy, name: str, **labels) -> float | None:
    """The value of the `name` series with exactly these labels in /stats/prometheus."""
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in envoy.prometheus().splitlines():
        m = re.fullmatch(r"(\w+)\{(.*)\} (\S+)", line)
        if m and m.group(1) == name and sorted(m.group(2).split(",")) == want:
            return float(m.group(3))
    return None


def check_decisions(envoy, config: dict) -> None:
    """The filter's decisions reach the version the route manifest names."""
    [policy] = config["policies"]
    weights = [(v["name"], v["weight"]) for v in policy["variants"]]
    version = {"canary": "reviews-v2", "stable": "reviews-v1"}

    assert envoy.request("/", {"x-beta": "true"}).served_by == "reviews-v2"

    # Sticky: a user keeps one version, the one the bucket names; the split follows the weights.
    assert {envoy.request("/", {"x-user-id": "alice"}).served_by for _ in range(10)} == {
        version[expected_variant(weights, bucket(policy["salt"], "alice"))]}
    users = [("/", {"x-user-id": f"user-{i}"}) for i in range(1000)]
    served = Counter()
    for (_, h), r in zip(users, envoy.request_many(users)):
        assert r.served_by == version[expected_variant(weights, bucket(policy["salt"], h["x-user-id"]))]
        served[r.served_by] += 1
    assert 60 < served["reviews-v2"] < 140, served

    # A client-sent x-canary-variant is overwritten, whichever route it matched on arrival.
    stable_user = next(f"user-{i}" for i in range(1000)
                       if expected_variant(weights, bucket(policy["salt"], f"user-{i}")) == "stable")
    assert envoy.request("/", {"x-user-id": stable_user, "x-canary-variant": "canary"}
                         ).served_by == "reviews-v1"

    # No key: a minted cookie, then the same version for the browser that sends it back.
    first = envoy.request("/")
    cookie = first.header("set-cookie").split(";")[0]
    assert cookie.startswith("canary-id=")
    assert {envoy.request("/", {"cookie": cookie}).served_by for _ in range(5)} == {first.served_by}

    assert prometheus_value(envoy, "canary_router_weight", policy="reviews", variant="canary") == 1000
    # Counters reach Envoy when the VM flushes them (every second).
    assert wait_for(lambda: prometheus_value(envoy, "canary_router_requests_total", policy="reviews",
                                             variant="canary", reason="rule") == 1)


def test_real_envoy_runs_the_kuma_filter(envoys, backends):
    envoy = envoys(bootstrap_with(kuma_filter_here(), routed_bootstrap("kuma", backends)))
    check_decisions(envoy, plugin_config(kuma_filter()))
    # The patch reaches every outbound listener of the proxy; the policy's hosts keep the filter
    # to calls to reviews: another service's call passes untouched (no decision, no cookie).
    other = envoy.request("/", host="ratings:9080")
    assert other.header("set-cookie") is None
    assert other.json["variant_header"] is None
    assert envoy.request("/", host="reviews:9080").json["variant_header"] in ("canary", "stable")


@pytest.fixture(scope="module")
def wasm_server():
    """dist/ over HTTP, as Envoy Gateway serves the module it pulled to its Envoys."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(WASM.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{WASM.name}"
    server.shutdown()


def envoy_gateway_envoy(envoys, backends, wasm_server, config=None, fail_open=None):
    """A real Envoy with the filter the policy describes (or with `config` / `fail_open`
    instead), its code fetched over HTTP with its sha256, on the HTTPRoute's routes."""
    code = {"remote": {"http_uri": {"uri": wasm_server, "cluster": "wasm_cluster", "timeout": "10s"},
                       "sha256": hashlib.sha256(WASM.read_bytes()).hexdigest()}}
    http_filter = eg_filter(code)
    if config is not None:
        http_filter = with_plugin_config(http_filter, config)
    if fail_open is False:
        del http_filter["typed_config"]["config"]["fail_open"]  # false is proto3's default
    b = as_envoy_gateway_does(routed_bootstrap("envoy-gateway", backends), http_filter)
    port = int(wasm_server.split(":")[2].split("/")[0])
    b["static_resources"]["clusters"].append({
        "name": "wasm_cluster", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "wasm_cluster", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                         "port_value": port}}}}]}]}})
    return envoys(b)


def test_real_envoy_runs_the_envoy_gateway_filter(envoys, backends, wasm_server):
    envoy = envoy_gateway_envoy(envoys, backends, wasm_server)
    check_decisions(envoy, eg_wasm()["config"])


def test_envoy_gateway_fail_open_as_the_policy_says(envoys, backends, wasm_server):
    """The policy's failOpen: true: a configuration the filter refuses is skipped, everyone gets
    reviews-v1 (x-beta ignored). With failOpen: false the routes answer 503 instead."""
    assert eg_wasm()["failOpen"] is True
    bad = broken(eg_wasm()["config"])
    skipped = envoy_gateway_envoy(envoys, backends, wasm_server, config=bad)
    r = skipped.request("/", {"x-beta": "true"})
    assert (r.status, r.served_by, r.json["variant_header"]) == (200, "reviews-v1", None)
    assert "weights sum to 101, they must sum to 100" in skipped.log()

    closed = envoy_gateway_envoy(envoys, backends, wasm_server, config=bad, fail_open=False)
    assert closed.request("/", {"x-beta": "true"}).status == 503
