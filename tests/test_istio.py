"""The Istio manifests in envoy-config/istio/: valid against Istio's CRD schemas (with no field
the schema does not declare), their pluginConfig valid for the filter, VirtualServices that route
every variant, and the TrafficExtension set (Istio 1.30+) the same as its WasmPlugin set."""
import copy
import json
import os
import subprocess

import jsonschema
import pytest
import yaml

from harness import CONFIG_DIR, ROOT
from schemas import manifests, schema_for, unknown_fields, validate

ISTIO = sorted((CONFIG_DIR / "istio").glob("*.yaml"))
BIN = os.environ.get("CANARY_ROUTER_BIN", str(ROOT / "target" / "debug" / "canary-router"))
KNOWN = {"WasmPlugin", "TrafficExtension", "VirtualService", "DestinationRule"}
# A Wasm plugin's manifest, by kind, and where its configuration is.
PLUGINS = {"WasmPlugin": ("pluginConfig",), "TrafficExtension": ("wasm", "pluginConfig")}


def cli(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=60)


def docs(kind=None):
    return [(p, d) for p in ISTIO for d in manifests(p) if kind is None or d["kind"] == kind]


def test_there_are_istio_manifests():
    kinds = {d["kind"] for _, d in docs()}
    assert KNOWN <= kinds, kinds


@pytest.mark.parametrize("path", ISTIO, ids=lambda p: p.name)
def test_manifests_validate_against_istio_crds(path):
    for doc in manifests(path):
        if doc["kind"] in KNOWN:
            validate(doc)


def test_a_field_the_schema_does_not_declare_is_found():
    # A WasmPlugin turned into a TrafficExtension by its kind alone: the plugin's fields at spec.
    _, plugin = docs("WasmPlugin")[0]
    moved = copy.deepcopy(plugin)
    moved["kind"] = "TrafficExtension"
    # The JSON Schema alone lets it through …
    jsonschema.validate(moved, schema_for(moved["apiVersion"], "TrafficExtension"))
    with pytest.raises(jsonschema.ValidationError, match="spec.url"):
        validate(moved)
    found = unknown_fields(moved, schema_for(moved["apiVersion"], "TrafficExtension"))
    assert {"spec.url", "spec.pluginConfig", "spec.failStrategy"} <= set(found), found
    _, extension = docs("TrafficExtension")[0]
    typo = copy.deepcopy(extension)
    typo["spec"]["wasm"]["pluginconfig"] = typo["spec"]["wasm"].pop("pluginConfig")
    assert unknown_fields(typo, schema_for(typo["apiVersion"], typo["kind"])) == \
        ["spec.wasm.pluginconfig"]


# A field the schema constrains, set wrong, per kind: each must fail validation.
BREAKAGES = {
    "WasmPlugin": [("failStrategy", "FAIL_SOMETIMES"), ("phase", "BEFORE_ROUTER"),
                   ("priority", "high"), ("sha256", "not-a-digest"), ("type", "TCP")],
    "TrafficExtension": [("phase", "BEFORE_ROUTER"), ("priority", "high"),
                         ("match", {"mode": "CLIENT"}), ("wasm", "oci://example/plugin:1"),
                         ("wasm.failStrategy", "FAIL_SOMETIMES"), ("wasm.sha256", "not-a-digest"),
                         ("wasm.type", "TCP"), ("wasm.url", ""),
                         ("wasm.vmConfig", {"env": [{"value": "no name"}]})],
    "VirtualService": [("hosts", "reviews"), ("http", {"name": "x"})],
    "DestinationRule": [("host", 42), ("subsets", {"v1": {}})],
}


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_a_broken_field_fails_validation(kind):
    path, doc = docs(kind)[0]
    validate(doc)
    for field, value in BREAKAGES[kind]:
        broken = copy.deepcopy(doc)
        *parents, last = field.split(".")
        at = broken["spec"]
        for p in parents:
            at = at[p]
        at[last] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema_for(broken["apiVersion"], broken["kind"]))


def plugin_config(doc):
    at = doc["spec"]
    for key in PLUGINS[doc["kind"]]:
        at = at[key]
    return at


@pytest.mark.parametrize("kind", sorted(PLUGINS))
def test_plugin_configs_pass_the_validator(tmp_path, kind):
    with_plugins = [p for p in ISTIO if any(d["kind"] == kind for d in manifests(p))]
    assert with_plugins
    out = cli("validate", *with_plugins)
    assert out.returncode == 0, out.stderr
    where = ".".join(("spec",) + PLUGINS[kind])
    for path in with_plugins:
        found = [d for d in manifests(path) if d["kind"] in PLUGINS]
        # One configuration in a file is the file's; several are named by resource and path.
        expected = [f"{path}: OK"] if len(found) == 1 else [
            f"{path}: {d['kind']} {d['metadata']['name']}: {where}: OK" for d in found]
        for line in expected:
            assert line in out.stdout, out.stdout
    # A wrong weight in one plugin fails the check, with the place and the path.
    path, doc = docs(kind)[0]
    broken = copy.deepcopy(doc)
    plugin_config(broken)["policies"][0]["variants"][0]["weight"] += 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    out = cli("validate", bad)
    assert out.returncode == 1
    assert f"{kind} {doc['metadata']['name']}: {where}: policies[0].variants: " \
           f"weights sum to 101, they must sum to 100" in out.stderr


def test_traffic_extensions_are_the_wasm_plugins_of_canary_yaml():
    # The same canary in both APIs: each TrafficExtension is its WasmPlugin with the plugin's
    # fields moved under spec.wasm, and the routing objects are the same.
    old, new = (manifests(CONFIG_DIR / "istio" / f) for f in
                ("canary.yaml", "canary-traffic-extension.yaml"))
    plugins = {d["metadata"]["name"]: d for d in old if d["kind"] == "WasmPlugin"}
    extensions = {d["metadata"]["name"]: d for d in new if d["kind"] == "TrafficExtension"}
    assert plugins.keys() == extensions.keys()
    at_spec = {"selector", "targetRefs", "phase", "priority", "match"}
    for name, plugin in plugins.items():
        ext = extensions[name]
        assert ext["metadata"] == plugin["metadata"]
        as_extension = {k: v for k, v in plugin["spec"].items() if k in at_spec}
        as_extension["wasm"] = {k: v for k, v in plugin["spec"].items() if k not in at_spec}
        assert ext["spec"] == as_extension, name
    rest = lambda docs: [d for d in docs if d["kind"] not in PLUGINS]  # noqa: E731
    assert rest(new) == rest(old)


def test_virtual_services_route_every_variant_and_have_a_default():
    for path in ISTIO:
        plugins = [d for d in manifests(path) if d["kind"] in PLUGINS]
        services = [d for d in manifests(path) if d["kind"] == "VirtualService"]
        if not services:
            continue
        routed, defaults = set(), 0
        for vs in services:
            for route in vs["spec"]["http"]:
                matches = route.get("match") or []
                if not matches:
                    defaults += 1
                for m in matches:
                    header = m.get("headers", {}).get("x-canary-variant")
                    if header:
                        routed.add(header["exact"])
        assert defaults, f"{path.name}: a route without match must catch the rest"
        for plugin in plugins:
            cfg = plugin_config(plugin)
            assert cfg.get("variant_header", "x-canary-variant") == "x-canary-variant"
            for policy in cfg["policies"]:
                names = [v["name"] for v in policy["variants"]]
                # Every variant but the last (the default route's) has a header route.
                assert set(names[:-1]) <= routed, (path.name, names, routed)


def test_workload_override_annotation_is_a_valid_node_override():
    path = CONFIG_DIR / "istio" / "workload-overrides.yaml"
    [deployment] = manifests(path)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    proxy_config = yaml.safe_load(annotations["proxy.istio.io/config"])
    overrides = proxy_config["proxyMetadata"]["ISTIO_META_CANARY_ROUTER"]
    json.loads(overrides)
    out = cli("validate", CONFIG_DIR / "istio" / "canary.yaml", "--node-metadata", overrides)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr, out.stderr
    assert "canary 50 %" in out.stdout  # the override is applied
    tags = annotations["sidecar.istio.io/extraStatTags"].split(",")
    assert tags == ["policy", "variant", "reason", "code_class", "grpc_status", "source"]
