"""Custom stats in a real Envoy: exact counts and labels in /stats/prometheus, HTTP and gRPC
outcomes, latency histograms, live weights, config errors, the access-log decision, and every
metric the Grafana dashboard and the Flagger templates query."""
import json
import re
import time
from collections import Counter

import pytest
import yaml

from harness import (CONFIG_DIR, ROOT, Backend, bootstrap_for, bucket, expected_variant, hcm,
                     wait_for)

pytestmark = pytest.mark.both_modules

CANARY_10 = [("canary", 10), ("stable", 90)]
PLUGIN = {"filter_state": True, "policies": [{
    "name": "reviews",
    "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
    "sticky": {"keys": [{"header": "x-user-id"}], "cookie": {"name": "canary-id"}},
    "rules": [{"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]}],
}]}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def prometheus(envoy) -> dict:
    """`/stats/prometheus` as {(name, frozenset(labels)): value}."""
    text = envoy.prometheus()
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def series(samples, name, **labels):
    """Value of the one series of `name` with exactly these labels (0 if absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def start(envoys, backends, plugin=PLUGIN, canary=None, node=None, routes=None):
    pool = {"canary": canary or backends["canary"], "stable": backends["stable"]}
    b = bootstrap_for(plugin, pool, ["canary", "stable"])
    b["stats_flush_interval"] = "0.2s"  # histograms reach /stats/prometheus at each flush
    if node is not None:
        b["node"] = {"id": "t", "cluster": "t", "metadata": {"CANARY_ROUTER": json.dumps(node)}}
    if routes is not None:
        hcm(b)["route_config"]["virtual_hosts"][0]["routes"] = routes
    return envoys(b)


def test_counts_and_labels_match_known_decisions(envoys, backends):
    envoy = start(envoys, backends)
    want = Counter()
    for _ in range(30):
        assert envoy.request("/", {"x-beta": "true"}).served_by == "canary"
    want[("canary", "rule")] += 30
    users = [f"s{i}" for i in range(400)]
    for r, u in zip(envoy.request_many([("/", {"x-user-id": u}) for u in users]), users):
        v = expected_variant(CANARY_10, bucket("reviews", u))
        assert r.served_by == v
        want[(v, "sticky_key")] += 1
    for _ in range(20):
        first = envoy.request("/")
        cid = first.header("set-cookie").split(";")[0].split("=", 1)[1]
        want[(first.served_by, "minted_cookie")] += 1
        again = envoy.request("/", {"cookie": f"canary-id={cid}"})
        want[(again.served_by, "sticky_cookie")] += 1
    total = sum(want.values())

    # Counters are flushed from the VM every second, histograms at each stats flush: wait
    # until every family has seen `total` (exact equality is asserted below).
    def totals(s):
        return [sum(v for (n, _), v in s.items() if n == name)
                for name in ("canary_router_requests_total", "canary_router_responses_total",
                             "canary_router_response_time_ms_count")]
    assert wait_for(lambda: totals(prometheus(envoy)) == [total] * 3)
    s = prometheus(envoy)
    got = Counter({(dict(l)["variant"], dict(l)["reason"]): int(v) for (n, l), v in s.items()
                   if n == "canary_router_requests_total" and v})
    assert got == want
    for v in ("canary", "stable"):
        n = sum(c for (var, _), c in want.items() if var == v)
        assert series(s, "canary_router_responses_total", policy="reviews", variant=v,
                      code_class="2xx", grpc_status="none") == n
        assert series(s, "canary_router_response_time_ms_count", policy="reviews", variant=v) == n
    assert series(s, "canary_router_weight", policy="reviews", variant="canary") == 1000
    assert series(s, "canary_router_weight", policy="reviews", variant="stable") == 9000
    for source in ("plugin", "node", "route"):
        assert series(s, "canary_router_config_errors_total", source=source) == 0
    # The decision is in the access log (filter state wasm.canary_router).
    assert wait_for(lambda: 'decision="reviews canary rule"' in envoy.log())
    assert wait_for(lambda: re.search(r'decision="reviews (canary|stable) minted_cookie"',
                                      envoy.log()))


def test_response_metrics_off_counts_requests_only(envoys, backends):
    """`"response_metrics": false`: requests are counted, responses neither counted nor timed,
    and routing and cookie minting are unchanged."""
    envoy = start(envoys, backends, plugin={**PLUGIN, "response_metrics": False})
    for _ in range(10):
        assert envoy.request("/", {"x-beta": "true"}).served_by == "canary"
    first = envoy.request("/")
    assert first.header("set-cookie").startswith("canary-id=")
    assert wait_for(lambda: series(prometheus(envoy), "canary_router_requests_total",
                                   policy="reviews", variant="canary", reason="rule") == 10)
    time.sleep(1.5)  # a further counter flush and stats flush: still no response series
    names = {n for (n, _), v in prometheus(envoy).items()}
    assert "canary_router_requests_total" in names
    assert not any(n.startswith(("canary_router_responses_total",
                                 "canary_router_response_time_ms")) for n in names)


def test_http_503_of_the_canary_is_counted(envoys, backends):
    failing = Backend("canary", status=503)
    try:
        envoy = start(envoys, backends, canary=failing)
        for _ in range(25):
            assert envoy.request("/", {"x-beta": "true"}).status == 503
        assert wait_for(lambda: series(prometheus(envoy), "canary_router_responses_total",
                                       policy="reviews", variant="canary", code_class="5xx",
                                       grpc_status="none") == 25)
        s = prometheus(envoy)
        assert series(s, "canary_router_responses_total", policy="reviews", variant="canary",
                      code_class="2xx", grpc_status="none") == 0
    finally:
        failing.stop()


def test_request_reset_before_response_headers_is_code_class_none(envoys, backends):
    """The client gives up before the (slow) canary answers: counted as `code_class="none"`."""
    import socket

    slow = Backend("canary", delay_ms=3000)
    try:
        envoy = start(envoys, backends, canary=slow)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", envoy.port)) as s:
                s.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\nx-beta: true\r\n\r\n")
                time.sleep(0.3)  # decided and forwarded; then the client closes
        assert wait_for(lambda: series(prometheus(envoy), "canary_router_responses_total",
                                       policy="reviews", variant="canary", code_class="none",
                                       grpc_status="none") == 3)
        s = prometheus(envoy)
        assert series(s, "canary_router_requests_total", policy="reviews", variant="canary",
                      reason="rule") == 3
    finally:
        slow.stop()


@pytest.mark.parametrize("code, name", [(14, "UNAVAILABLE"), (0, "OK"), (5, "NOT_FOUND")])
def test_grpc_status_in_trailers_is_counted(envoys, backends, code, name):
    """A gRPC backend answering HTTP 200 with `grpc-status` in trailers: the failure is visible."""
    grpc = Backend("canary", grpc_status=code)
    try:
        pool = {"canary": grpc, "stable": backends["stable"]}
        b = bootstrap_for(PLUGIN, pool, ["canary", "stable"])
        for c in b["static_resources"]["clusters"]:
            if c["name"] == "canary":
                c["typed_extension_protocol_options"] = {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}}}
        envoy = envoys(b)
        for _ in range(12):
            r = envoy.request("/pkg.Service/Method", {"x-beta": "true",
                                                      "content-type": "application/grpc"})
            assert r.status == 200 and r.served_by == "canary"
        assert wait_for(lambda: series(prometheus(envoy), "canary_router_responses_total",
                                       policy="reviews", variant="canary", code_class="2xx",
                                       grpc_status=name) == 12)
    finally:
        grpc.stop()


@pytest.mark.wasm_only
def test_weight_gauge_follows_node_override_and_errors_are_counted(envoys, backends):
    node = {"reviews": {"variants": [{"name": "canary", "weight": 35},
                                     {"name": "stable", "weight": 65}]},
            "ghost": {"enabled": False}}
    routes = [{"name": "bad", "match": {"prefix": "/bad"}, "route": {"cluster": "stable"},
               "metadata": {"filter_metadata": {"canary-router": {"policy": "nope"}}}},
              {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "stable"}}]
    envoy = start(envoys, backends, plugin={**PLUGIN, "route_metadata": True}, node=node,
                  routes=routes)
    envoy.request("/bad", {"x-user-id": "u"})
    s = prometheus(envoy)
    assert series(s, "canary_router_weight", policy="reviews", variant="canary") == 3500
    assert series(s, "canary_router_weight", policy="reviews", variant="stable") == 6500
    # One ignored node override, counted by each Wasm VM that configured (one per worker thread
    # plus the main thread's): at least once, and always a whole number of VMs.
    assert series(s, "canary_router_config_errors_total", source="node") >= 1
    assert series(s, "canary_router_config_errors_total", source="route") == 1


def promql_metric_names(text: str) -> set:
    return set(re.findall(r"\b(canary_router_[a-z_]+)\b", text))


def test_every_metric_queried_by_dashboard_and_flagger_exists(envoys, backends):
    dashboard = json.loads((CONFIG_DIR / "grafana" / "canary-router-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    templates = list(yaml.safe_load_all((CONFIG_DIR / "flagger" / "metric-templates.yaml").read_text()))
    queries += [t["spec"]["query"] for t in templates]
    used = set().union(*(promql_metric_names(q) for q in queries))
    assert len(used) >= 5, used

    envoy = start(envoys, backends)
    envoy.request("/", {"x-user-id": "x"})
    # Counters are flushed from the VM every second, histograms at each stats flush.
    wait_for(lambda: not used - {n for n, _ in prometheus(envoy)})
    exported = {n for n, _ in prometheus(envoy)}
    missing = used - exported
    assert not missing, f"queried but not exported: {missing}"
    # Labels the queries filter on exist on the exported series.
    labels = {k for (n, l) in prometheus(envoy) if n.startswith("canary_router") for k, _ in l}
    for label in ("policy", "variant", "reason", "code_class", "grpc_status", "source", "le"):
        assert label in labels


def test_flagger_templates_match_the_crd_schema():
    import jsonschema

    schema_file = ROOT.parent / "shared" / "schemas" / "flagger.app_metrictemplate_v1beta1.json"
    assert schema_file.exists(), f"{schema_file}: shared/ must sit beside the repository"
    schema = json.loads(schema_file.read_text())
    schema = schema.get("openAPIV3Schema", schema)
    docs = list(yaml.safe_load_all((CONFIG_DIR / "flagger" / "metric-templates.yaml").read_text()))
    assert len(docs) == 2
    for doc in docs:
        jsonschema.validate(doc, schema)
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["provider"]["type"] = 42
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
