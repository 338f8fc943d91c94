"""Envoy's own sticky split (weighted_clusters + use_hash_policy, Envoy 1.36+) beside Canary
Router, on the same users: the figures README "When you do not need Canary Router" quotes.

Both sides run in real Envoys with real backends: envoy-config/native-sticky-split.yaml (no
filter) and envoy-config/front-proxy.yaml (the Wasm filter), canary 10 %, sticky on x-user-id,
`x-beta: true` forcing canary. The test measures the share of users on canary, whether a user
keeps their variant (repeated requests, a second Envoy process), what widening the canary to
25 % does to users already placed, the header rule, and the per-variant request counters. It
writes the figures to target/comparison/results.json and checks that the README's table quotes
exactly them. Every figure comes from hashing fixed user ids, so it is the same on every run.
"""
import copy
import json
import math
import re
from collections import Counter

import pytest
import xxhash

from harness import (ROOT, Envoy, EnvoyFailed, bucket, expected_variant, hcm, load_config,
                     localize, plugin_config, wait_for, with_plugin_config)

USERS = [f"user-{i}" for i in range(4000)]
RESULTS = ROOT / "target" / "comparison" / "results.json"
SECTION = "## When you do not need Canary Router"


# --- the two set-ups, with the canary's weight as a parameter ----------------------------------

def native(backends, canary: int, stable: int) -> dict:
    """envoy-config/native-sticky-split.yaml with these cluster weights."""
    b = load_config("native-sticky-split.yaml")
    route = next(r for r in hcm(b)["route_config"]["virtual_hosts"][0]["routes"]
                 if r["name"] == "reviews-route")
    weights = {"canary": canary, "stable": stable}
    for c in route["route"]["weighted_clusters"]["clusters"]:
        c["weight"] = weights[c["name"]]
    return localize(b, backends.some("canary", "stable"))


def ours(backends, canary: int, stable: int) -> dict:
    """envoy-config/front-proxy.yaml with these variant weights."""
    b = load_config("front-proxy.yaml")
    config = copy.deepcopy(plugin_config(b))
    weights = {"canary": canary, "stable": stable}
    for v in config["policies"][0]["variants"]:
        v["weight"] = weights[v["name"]]
    return localize(with_plugin_config(b, config), backends.some("canary", "stable"))


def served(envoy, users, extra=None) -> list[str]:
    replies = envoy.request_many([("/", {"x-user-id": u, **(extra or {})}) for u in users])
    assert all(r.status == 200 for r in replies), Counter(r.status for r in replies)
    return [r.served_by for r in replies]


def requests_by_variant(envoy, side: str) -> Counter:
    """What each side's own metrics say each variant served: Envoy's cluster stats for the
    native split, canary_router_requests_total (summed over reasons) for the filter."""
    text = envoy.prometheus()
    out = Counter()
    if side == "native":
        pattern = r'^envoy_cluster_upstream_rq_total\{envoy_cluster_name="(\w+)"\} (\S+)$'
        for name, value in re.findall(pattern, text, re.M):
            out[name] += int(float(value))
    else:
        pattern = r"^canary_router_requests_total\{(.*)\} (\S+)$"
        for labels, value in re.findall(pattern, text, re.M):
            out[dict(re.findall(r'(\w+)="([^"]*)"', labels))["variant"]] += int(float(value))
    return out


def rule_requests(envoy) -> int:
    """canary_router_requests_total{reason="rule"}: the filter says why it chose."""
    text = envoy.prometheus()
    return sum(int(float(v)) for labels, v in
               re.findall(r"^canary_router_requests_total\{(.*)\} (\S+)$", text, re.M)
               if 'reason="rule"' in labels)


# --- formatting: the README quotes these strings ------------------------------------------------

def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %"


def within_binomial(count: int, n: int, p: float, sigmas: float = 4) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def table(figures: dict) -> str:
    """The README's measured table, from the figures."""
    n, o = figures["native"], figures["canary_router"]
    rows = [
        ("on canary at 10 %", "canary_10"),
        ("same variant, 3 requests on 2 Envoys", "sticky"),
        ("on canary at 25 %", "canary_25"),
        ("moved by 10 → 25 %", "moved_10_25"),
        ("canary users sent back by 10 → 25 %", "back_10_25"),
        ("10 → 25 % as weights 1 : 3", "weights_1_3"),
        ("stable users with `x-beta: true` on canary", "rule"),
        ("request counts per variant", "metrics"),
    ]
    lines = [f"| {figures['users']:,} users | Envoy `use_hash_policy` | Canary Router |"
             .replace(",", " "), "| --- | --- | --- |"]
    lines += [f"| {label} | {n[key]} | {o[key]} |" for label, key in rows]
    return "\n".join(lines) + "\n"


# --- the measurement -----------------------------------------------------------------------------

def measure(side: str, build, envoys, backends) -> dict:
    first = envoys(build(backends, 10, 90), name=f"{side}-10")
    second = envoys(build(backends, 10, 90), concurrency=1, name=f"{side}-10-second")
    at_10 = served(first, USERS)
    again = served(first, USERS)
    other = served(second, USERS)
    wider = envoys(build(backends, 25, 75), name=f"{side}-25")
    at_25 = served(wider, USERS)

    canary_10 = at_10.count("canary")
    assert within_binomial(canary_10, len(USERS), 0.10), (side, canary_10)
    assert within_binomial(at_25.count("canary"), len(USERS), 0.25), (side, at_25.count("canary"))
    sticky = sum(a == b == c for a, b, c in zip(at_10, again, other))
    assert sticky == len(USERS), f"{side}: {len(USERS) - sticky} users changed variant"
    moved = sum(a != b for a, b in zip(at_10, at_25))
    back = sum(a == "canary" and b == "stable" for a, b in zip(at_10, at_25))
    # Both widen monotonically: the canary's range grows, nobody leaves it.
    assert back == 0, f"{side}: {back} canary users sent back to stable"
    assert within_binomial(moved, len(USERS), 0.15), (side, moved)

    # Rules before weights: users the weights put on stable, with x-beta: true.
    stable_users = [u for u, v in zip(USERS, at_10) if v == "stable"][:500]
    beta = served(first, stable_users, {"x-beta": "true"})
    assert beta.count("canary") == len(stable_users), (side, Counter(beta))

    # The side's own per-variant counters equal what the backends saw.
    want = Counter(at_10) + Counter(again) + Counter(beta)
    assert wait_for(lambda: requests_by_variant(first, side) == want), \
        (side, requests_by_variant(first, side), want)
    # A client without the key: Envoy draws a cluster per request; the filter mints a cookie.
    keyless = first.request_many([("/", {})] * 200)
    if side == "native":
        assert {r.served_by for r in keyless} == {"canary", "stable"}
        assert not any(r.header("set-cookie") for r in keyless)
    else:
        assert all((r.header("set-cookie") or "").startswith("canary-id=") for r in keyless)
    if side == "canary_router":
        assert wait_for(lambda: rule_requests(first) == len(stable_users))
        metrics = "per policy, variant, reason"
    else:
        metrics = "per cluster"

    return {
        "at_10": at_10, "at_25": at_25,
        "canary_10": pct(canary_10, len(USERS)),
        "sticky": pct(sticky, len(USERS)),
        "canary_25": pct(at_25.count("canary"), len(USERS)),
        "moved_10_25": pct(moved, len(USERS)),
        "back_10_25": f"{back} of {canary_10}",
        "rule": pct(beta.count("canary"), len(stable_users)),
        "metrics": metrics,
    }


@pytest.fixture(scope="module")
def figures(tmp_path_factory, backends):
    running = []
    workdir = tmp_path_factory.mktemp("comparison")

    def envoys(bootstrap, concurrency=2, name="envoy"):
        e = Envoy(bootstrap, workdir, concurrency, name)
        running.append(e)
        return e

    try:
        native_side = measure("native", native, envoys, backends)
        ours_side = measure("canary_router", ours, envoys, backends)

        # Envoy's pick is hash % total weight: the same 25 % as weights 1 : 3 (total 4) deals
        # users again instead of widening the canary's range.
        ratio = served(envoys(native(backends, 1, 3), name="native-1-3"), USERS)
        assert within_binomial(ratio.count("canary"), len(USERS), 0.25)
        at_10 = native_side["at_10"]
        moved = sum(a != b for a, b in zip(at_10, ratio))
        back = sum(a == "canary" and b == "stable" for a, b in zip(at_10, ratio))
        assert back > 0, "expected weights 1 : 3 to send some canary users back"
        native_side["weights_1_3"] = \
            f"{pct(moved, len(USERS))} moved, {back} of {at_10.count('canary')} sent back"
        # The filter's weights are percentages summing to 100: 1 : 3 is refused at start.
        with pytest.raises(EnvoyFailed) as refused:
            envoys(ours(backends, 1, 3), name="canary_router-1-3")
        assert "weights sum to 4, they must sum to 100" in refused.value.log
        ours_side["weights_1_3"] = "refused: weights sum to 100"
    finally:
        for e in running:
            e.stop()

    # Each side's choice, computed independently of Envoy: the filter's bucket (xxh3 of salt
    # ":" key), and Envoy's header hash (xxh64 of the value) modulo the total weight.
    salt = plugin_config(load_config("front-proxy.yaml"))["policies"][0]["salt"]
    assert ours_side["at_10"] == [expected_variant([("canary", 10), ("stable", 90)],
                                                   bucket(salt, u)) for u in USERS]
    assert native_side["at_10"] == ["canary" if xxhash.xxh64_intdigest(u) % 100 < 10 else "stable"
                                    for u in USERS]

    for side in (native_side, ours_side):
        del side["at_10"], side["at_25"]
    result = {"users": len(USERS), "native": native_side, "canary_router": ours_side}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


def test_the_readme_quotes_the_measured_figures(figures):
    readme = (ROOT / "README.md").read_text()
    assert SECTION in readme
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    want = table(figures)
    assert want in section, f"README {SECTION!r} must hold this table:\n{want}"


def test_the_native_example_is_what_was_measured():
    """The measured native set-up is the shipped example: 10/90, canary first, sticky on
    x-user-id through use_hash_policy, x-beta routed before the split."""
    bootstrap = load_config("native-sticky-split.yaml")
    routes = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["name"] for r in routes] == ["reviews-beta", "reviews-route"]
    action = routes[1]["route"]
    assert action["weighted_clusters"]["use_hash_policy"] is True
    assert action["weighted_clusters"]["clusters"] == [{"name": "canary", "weight": 10},
                                                      {"name": "stable", "weight": 90}]
    assert action["hash_policy"][0] == {"header": {"header_name": "x-user-id"}, "terminal": True}
