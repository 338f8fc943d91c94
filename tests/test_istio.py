"""The Istio manifests in envoy-config/istio/: valid against Istio's CRD schemas, their
pluginConfig valid for the filter, and VirtualServices that route every variant."""
import copy
import json
import os
import subprocess

import jsonschema
import pytest
import yaml

from harness import CONFIG_DIR, ROOT
from schemas import manifests, schema_for, validate

ISTIO = sorted((CONFIG_DIR / "istio").glob("*.yaml"))
BIN = os.environ.get("CANARY_ROUTER_BIN", str(ROOT / "target" / "debug" / "canary-router"))
KNOWN = {"WasmPlugin", "VirtualService", "DestinationRule"}


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


# A field the schema constrains, set wrong, per kind: each must fail validation.
BREAKAGES = {
    "WasmPlugin": [("failStrategy", "FAIL_SOMETIMES"), ("phase", "BEFORE_ROUTER"),
                   ("priority", "high"), ("sha256", "not-a-digest"), ("type", "TCP")],
    "VirtualService": [("hosts", "reviews"), ("http", {"name": "x"})],
    "DestinationRule": [("host", 42), ("subsets", {"v1": {}})],
}


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_a_broken_field_fails_validation(kind):
    path, doc = docs(kind)[0]
    validate(doc)
    for field, value in BREAKAGES[kind]:
        broken = copy.deepcopy(doc)
        broken["spec"][field] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema_for(broken["apiVersion"], broken["kind"]))


def test_plugin_configs_pass_the_validator(tmp_path):
    with_plugins = [p for p in ISTIO if any(d["kind"] == "WasmPlugin" for d in manifests(p))]
    out = cli("validate", *with_plugins)
    assert out.returncode == 0, out.stderr
    for _, doc in docs("WasmPlugin"):
        assert f"WasmPlugin {doc['metadata']['name']}" in out.stdout or "OK" in out.stdout
    # A wrong weight in one WasmPlugin fails the check, with the place and the path.
    path, doc = docs("WasmPlugin")[0]
    broken = copy.deepcopy(doc)
    broken["spec"]["pluginConfig"]["policies"][0]["variants"][0]["weight"] += 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    out = cli("validate", bad)
    assert out.returncode == 1
    assert f"WasmPlugin {doc['metadata']['name']}: spec.pluginConfig: policies[0].variants: " \
           f"weights sum to 101, they must sum to 100" in out.stderr


def test_virtual_services_route_every_variant_and_have_a_default():
    for path in ISTIO:
        plugins = [d for d in manifests(path) if d["kind"] == "WasmPlugin"]
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
            cfg = plugin["spec"]["pluginConfig"]
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
