"""The YAML in envoy-config/: each file passes `envoy --mode validate` (which also loads the
filter and compiles its plugin configuration), and each example behaves as its header says."""
import subprocess
from collections import Counter

import pytest

import os

from harness import (CONFIG_DIR, NATIVE, ROOT, bucket, envoy_binary, expected_variant, load_config,
                     localize, native_supported, plugin_config)

# Envoy bootstraps (ECDS resource files, which hold `resources:`, are checked by the CLI tests).
EXAMPLES = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml")
                  if "admin:" in p.read_text()
                  and (native_supported() or "DynamicModuleFilter" not in p.read_text()))
# Where Envoy finds the native module (dist/libcanary_router.so).
ENV = {**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(NATIVE.parent)}


@pytest.mark.parametrize("name", EXAMPLES)
def test_envoy_validates(name):
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(CONFIG_DIR / name),
                          "--base-id", "7"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=ENV)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"configuration '{CONFIG_DIR / name}' OK" in out.stdout + out.stderr or "OK" in out.stdout


def test_validate_rejects_a_bad_plugin_config(tmp_path):
    """The check above is not vacuous: a wrong weight in the YAML fails validation."""
    text = (CONFIG_DIR / "front-proxy.yaml").read_text().replace(
        '{"name": "stable", "weight": 90}', '{"name": "stable", "weight": 80}')
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(bad), "--base-id", "8"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "policies[0].variants: weights sum to 90, they must sum to 100" in out.stdout + out.stderr


def test_front_proxy(envoys, backends):
    b = load_config("front-proxy.yaml")
    envoy = envoys(localize(b, backends.some("stable", "canary")))
    cfg = plugin_config(b)["policies"][0]
    variants = [(v["name"], v["weight"]) for v in cfg["variants"]]
    users = [("/", {"x-user-id": f"fp-{i}"}) for i in range(4000)]
    counts = Counter()
    for (_, h), r in zip(users, envoy.request_many(users)):
        assert r.served_by == expected_variant(variants, bucket(cfg["salt"], h["x-user-id"]))
        counts[r.served_by] += 1
    assert 300 < counts["canary"] < 500, counts
    assert envoy.request("/", {"x-beta": "true", "x-user-id": "fp-1"}).served_by == "canary"
    assert envoy.request("/?variant=canary").served_by == "canary"
    first = envoy.request("/")
    assert first.header("set-cookie").startswith("canary-id=")


def test_blue_green(envoys, backends):
    envoy = envoys(localize(load_config("blue-green.yaml"), backends.some("blue", "green")))
    assert {envoy.request("/").served_by for _ in range(50)} == {"blue"}
    assert envoy.request("/", {"x-preview": "green"}).served_by == "green"
    # Clients cannot switch themselves.
    assert envoy.request("/", {"x-canary-variant": "green"}).served_by == "blue"


def test_ab_test(envoys, backends):
    envoy = envoys(localize(load_config("ab-test.yaml"), backends.some("a", "b")))
    cases = [({}, "/", "a"), ({"x-beta": "true"}, "/", "b"), ({"cookie": "ab=b"}, "/", "b"),
             ({}, "/?ab=b", "b"), ({"x-beta": "true", "x-plan": "free"}, "/", "a")]
    for headers, path, want in cases:
        r = envoy.request(path, headers)
        assert r.served_by == want, (headers, path)
        assert r.header("x-canary-variant") == want  # expose_variant


def test_every_envoy_config_extracts_the_metric_labels():
    """The stats_tags shipped in each Envoy YAML of the Wasm filter are exactly the filter's
    labels, Istio style (the native module's metrics carry their labels: none needed)."""
    want = [{"tag_name": l, "regex": f"({l}=\\.=(.*?);\\.;)"}
            for l in ("policy", "variant", "reason", "code_class", "grpc_status", "source")]
    for name in EXAMPLES:
        b = load_config(name)
        text = (CONFIG_DIR / name).read_text()
        if "name: canary-router" not in text:
            continue  # Envoy alone (native-sticky-split.yaml): no filter, no labels to extract
        if "DynamicModuleFilter" in text:
            assert "stats_config" not in b, name
            continue
        assert b.get("stats_config", {}).get("stats_tags") == want, name


def test_overrides(envoys, backends):
    """Node metadata turns 10/90 into 50/50; the /beta routes' metadata into 70/30."""
    envoy = envoys(localize(load_config("overrides.yaml"), backends.some("stable", "canary")))
    for path, split in (("/", [("canary", 50), ("stable", 50)]),
                        ("/beta", [("canary", 70), ("stable", 30)])):
        users = [(path, {"x-user-id": f"ov-{i}"}) for i in range(1000)]
        for (_, h), r in zip(users, envoy.request_many(users)):
            assert r.served_by == expected_variant(split, bucket("reviews", h["x-user-id"])), path
