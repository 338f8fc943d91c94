"""Split config from the mesh: node metadata, route metadata, precedence, workload labels."""
import json
from collections import Counter

from harness import bootstrap_for, bucket, expected_variant, hcm

PLUGIN = {"route_metadata": True, "policies": [{
    "name": "reviews",
    "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
    "sticky": {"keys": [{"header": "x-user-id"}]},
}]}
USERS = [f"m{i}" for i in range(3000)]


def weights(canary, stable):
    return [{"name": "canary", "weight": canary}, {"name": "stable", "weight": stable}]


def with_node(b, overrides=None, labels=None):
    meta = {}
    if overrides is not None:
        meta["CANARY_ROUTER"] = overrides if isinstance(overrides, str) else json.dumps(overrides)
    if labels is not None:
        meta["LABELS"] = labels
    b["node"] = {"id": "test-node", "cluster": "test", "metadata": meta}
    return b


def routes_with_metadata(per_prefix: dict) -> list:
    """For each path prefix: variant routes and a default route, all carrying the same
    `filter_metadata["canary-router"]` (or none)."""
    routes = []
    for prefix, meta in per_prefix.items():
        name = prefix.strip("/") or "root"
        extra = {"metadata": {"filter_metadata": {"canary-router": meta}}} if meta else {}
        for v in ("canary", "stable"):
            routes.append({"name": f"{name}-{v}", "match": {"prefix": prefix, "headers": [
                {"name": "x-canary-variant", "string_match": {"exact": v}}]},
                "route": {"cluster": v}, **extra})
        routes.append({"name": f"{name}-default", "match": {"prefix": prefix},
                       "route": {"cluster": "stable"}, **extra})
    return routes


def start(envoys, backends, plugin=PLUGIN, node=None, labels=None, routes=None):
    b = bootstrap_for(plugin, backends.some("canary", "stable"), ["canary", "stable"])
    with_node(b, node, labels)
    if routes is not None:
        hcm(b)["route_config"]["virtual_hosts"][0]["routes"] = routes
    return envoys(b)


def assert_split(envoy, path, split, users=USERS):
    reqs = [(path, {"x-user-id": u}) for u in users]
    for (_, h), r in zip(reqs, envoy.request_many(reqs)):
        want = expected_variant(split, bucket("reviews", h["x-user-id"]))
        assert r.served_by == want, f"{path} {h['x-user-id']}: {r.served_by}, want {want} for {split}"


def test_node_metadata_changes_the_split(envoys, backends):
    envoy = start(envoys, backends, node={"reviews": {"variants": weights(50, 50)}})
    assert_split(envoy, "/", [("canary", 50), ("stable", 50)])


def test_route_metadata_gives_two_routes_two_splits(envoys, backends):
    envoy = start(envoys, backends, routes=routes_with_metadata({
        "/a": {"variants": weights(30, 70)},
        "/b": {"policy": "reviews", "variants": weights(70, 30)},
    }))
    assert_split(envoy, "/a/x", [("canary", 30), ("stable", 70)])
    assert_split(envoy, "/b/x", [("canary", 70), ("stable", 30)])


def test_route_metadata_is_read_only_when_asked(envoys, backends):
    """Without `"route_metadata": true` the route's metadata is not read (no per-request
    property read): the plugin's split holds on a route that carries an override."""
    plugin = {k: v for k, v in PLUGIN.items() if k != "route_metadata"}
    envoy = start(envoys, backends, plugin=plugin, routes=routes_with_metadata({
        "/a": {"variants": weights(30, 70)}, "/": None}))
    assert_split(envoy, "/a/x", [("canary", 10), ("stable", 90)], USERS[:1500])


def test_precedence_route_over_node_over_plugin(envoys, backends):
    envoy = start(envoys, backends, node={"reviews": {"variants": weights(30, 70)}},
                  routes=routes_with_metadata({
                      "/route": {"variants": weights(60, 40)},
                      "/off": {"enabled": False},   # only `enabled`: weights stay the node's
                      "/": None,
                  }))
    assert_split(envoy, "/route", [("canary", 60), ("stable", 40)])
    assert_split(envoy, "/plain", [("canary", 30), ("stable", 70)])
    replies = envoy.request_many([("/off", {"x-user-id": u}) for u in USERS[:500]])
    assert {r.served_by for r in replies} == {"stable"}  # disabled: all to the last variant
    # Without node metadata the plugin configuration's 10/90 holds.
    plain = start(envoys, backends)
    assert_split(plain, "/", [("canary", 10), ("stable", 90)])


def test_node_metadata_can_turn_a_policy_off(envoys, backends):
    envoy = start(envoys, backends, node={"reviews": {"enabled": False}})
    plugin_rules = {"policies": [{**PLUGIN["policies"][0], "rules": [
        {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]}]}]}
    envoy2 = start(envoys, backends, plugin=plugin_rules, node={"reviews": {"enabled": False}})
    for e in (envoy, envoy2):
        replies = e.request_many([("/", {"x-user-id": u, "x-beta": "true"}) for u in USERS[:300]])
        assert {r.served_by for r in replies} == {"stable"}


def count(log, needle):
    return sum(needle in line for line in log.splitlines())


def test_invalid_node_override_is_dropped_and_logged_once(envoys, backends):
    envoy = start(envoys, backends, node={"reviews": {"variants": weights(50, 40)},
                                          "ghost": {"enabled": False}})
    before_weights = count(envoy.log(), "node.CANARY_ROUTER.reviews.variants: weights sum to 90")
    before_ghost = count(envoy.log(), 'node.CANARY_ROUTER.ghost: no policy is called "ghost"')
    assert before_weights >= 1 and before_ghost >= 1, envoy.log()[-3000:]
    assert_split(envoy, "/", [("canary", 10), ("stable", 90)], USERS[:1000])
    # Logged at configure time only (once per VM), never per request.
    assert count(envoy.log(), "node.CANARY_ROUTER.reviews.variants") == before_weights
    # Broken JSON: all node overrides ignored, plugin config serves.
    broken = start(envoys, backends, node='{"reviews": ')
    assert count(broken.log(), "all node metadata overrides ignored") >= 1
    assert_split(broken, "/", [("canary", 10), ("stable", 90)], USERS[:500])


def test_invalid_route_override_is_dropped_and_logged_once_per_worker(envoys, backends):
    envoy = start(envoys, backends, routes=routes_with_metadata({
        "/bad": {"variants": [{"name": "canary", "weight": 50}, {"name": "beta", "weight": 50}]},
        "/": None,
    }))
    assert_split(envoy, "/bad", [("canary", 10), ("stable", 90)], USERS[:1000])
    needle = "route[bad-default].filter_metadata.canary-router.variants[1].name: unknown variant"
    n = count(envoy.log(), needle)
    assert 1 <= n <= 2, envoy.log()[-3000:]  # once per worker VM (concurrency 2) that saw it


def test_source_label_keeps_a_canary_caller_on_canary(envoys, backends):
    plugin = {"policies": [{**PLUGIN["policies"][0], "rules": [
        {"variant": "canary", "match": [{"source_label": "version", "exact": "v2"}]}]}]}
    v2 = start(envoys, backends, plugin=plugin, labels={"app": "productpage", "version": "v2"})
    replies = v2.request_many([("/", {"x-user-id": u}) for u in USERS[:300]])
    assert {r.served_by for r in replies} == {"canary"}
    v1 = start(envoys, backends, plugin=plugin, labels={"app": "productpage", "version": "v1"})
    assert_split(v1, "/", [("canary", 10), ("stable", 90)], USERS[:1000])


def test_cli_simulate_agrees_with_the_filter(envoys, backends, tmp_path):
    """`canary-router simulate --per-user` and the filter in Envoy decide the same for 1000
    users, on a route with metadata and on one without, under a node metadata override."""
    import os
    import subprocess

    from harness import ROOT

    binary = os.environ.get("CANARY_ROUTER_BIN", str(ROOT / "target" / "debug" / "canary-router"))
    plugin = {"route_metadata": True, "policies": [{**PLUGIN["policies"][0], "rules": [
        {"variant": "canary", "match": [{"header": "x-user-id", "suffix": "7"}]}]}]}
    node = {"reviews": {"variants": weights(30, 70)}}
    route_meta = {"variants": weights(65, 35)}
    envoy = start(envoys, backends, plugin=plugin, node=node,
                  routes=routes_with_metadata({"/r": route_meta, "/": None}))
    config_file = tmp_path / "plugin.json"
    config_file.write_text(json.dumps(plugin))
    for path, extra in (("/", []), ("/r", ["--route-metadata", json.dumps(route_meta)])):
        out = subprocess.run([binary, "simulate", str(config_file), "--path", path, "--users", "1000",
                              "--per-user", "--node-metadata", json.dumps(node), *extra],
                             capture_output=True, text=True, check=True).stdout.split("\n")
        simulated = dict(line.split()[:2] for line in out if line.strip())
        assert len(simulated) == 1000
        reqs = [(path, {"x-user-id": u}) for u in simulated]
        served = {h["x-user-id"]: r.served_by for (_, h), r in zip(reqs, envoy.request_many(reqs))}
        assert served == simulated
        shares = Counter(simulated.values())
        print(f"{path}: {dict(shares)}")
