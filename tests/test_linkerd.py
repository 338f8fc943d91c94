"""Canary Router with Linkerd: envoy-config/linkerd/.

Linkerd's proxy has no Wasm host, so the filter decides at an Envoy edge in front of the mesh and
writes `x-canary-variant`; a service forwards the header on its own calls, and Linkerd's proxy in
the calling pod routes on it with an HTTPRoute attached to the called Service.

What runs here, and what stands in for what cannot:
- The edge: envoy-config/linkerd/edge-envoy.yaml in a real Envoy with dist/canary-router.wasm
  (only its ports, the productpage address and the .wasm path changed). The Envoy Gateway edge
  (edge-envoy-gateway.yaml) is checked against its schema and the validator, and must carry the
  same plugin configuration, so the decisions tested here are its decisions too.
- productpage: `Productpage` below, a small HTTP service that calls reviews and copies the
  incoming x-canary-variant onto that call: what an application in the mesh must do.
- Linkerd's outbound proxy in the productpage pod: a STAND-IN. Linkerd's proxy cannot run here
  (it needs its control plane, its identity and a cluster). A second Envoy, without the filter,
  whose routes are generated below from reviews-route.yaml: each rule's matches (PathPrefix,
  Exact headers) become an Envoy route to a cluster per backendRef, rules with header matches
  first, as the Gateway API ranks them. Only the HTTPRoute's match semantics are reproduced; not
  Linkerd's balancing, mTLS, retries, metrics, nor its policy controller accepting the route.
  The generator refuses any field of the route it does not translate, so the stand-in cannot
  silently ignore part of the manifest.
- reviews-canary and reviews-stable: scripts/backend.py, which reports who served.
"""
from __future__ import annotations

import copy
import http.client
import http.server
import json
import os
import subprocess
import threading
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from harness import (CONFIG_DIR, ROOT, WASM, bucket, expected_variant, hcm, load_config,
                     localize, plugin_config, prometheus_value, wait_for, with_plugin_config)
from schemas import manifests, validate

LINKERD = CONFIG_DIR / "linkerd"
EDGE = LINKERD / "edge-envoy.yaml"
EDGE_EG = LINKERD / "edge-envoy-gateway.yaml"
ROUTE = LINKERD / "reviews-route.yaml"
MANIFEST_FILES = [EDGE_EG, ROUTE]
BIN = Path(os.environ.get("CANARY_ROUTER_BIN") or ROOT / "target" / "debug" / "canary-router")
HOST = "bookinfo.example.com"  # the edge policy's host


def the(kind: str, name: str | None = None) -> dict:
    [doc] = [d for p in MANIFEST_FILES for d in manifests(p)
             if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return doc


def in_mesh_route() -> dict:
    [doc] = manifests(ROUTE)
    return doc


def edge_config() -> dict:
    return plugin_config(load_config("linkerd/edge-envoy.yaml"))


def dig(node, path: tuple):
    for key in path:
        node = node[key]
    return node


def cli(*args) -> subprocess.CompletedProcess:
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: cargo build --bin canary-router (or set CANARY_ROUTER_BIN)")
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


# --- the stand-in for Linkerd's outbound proxy: Envoy routes from the HTTPRoute ----------------

def route_rules(route: dict) -> list[tuple[str, dict, str]]:
    """(path prefix, exact header matches, backend Service) per match of the HTTPRoute, for a
    route attached to one Service. Anything this translation does not reproduce is refused."""
    spec = route["spec"]
    assert set(spec) <= {"parentRefs", "rules"}, f"not translated: {set(spec)}"
    [parent] = spec["parentRefs"]
    assert parent.get("kind") == "Service" and parent.get("group") in ("core", ""), parent
    out = []
    for rule in spec["rules"]:
        assert set(rule) <= {"name", "matches", "backendRefs"}, f"not translated: {set(rule)}"
        [backend] = rule["backendRefs"]  # one backend per rule: no weights to reproduce
        assert set(backend) <= {"name", "port"}, backend
        for match in rule["matches"]:
            assert set(match) <= {"path", "headers"}, f"not translated: {set(match)}"
            assert match["path"]["type"] == "PathPrefix", match["path"]
            headers = {}
            for h in match.get("headers", []):
                assert h.get("type", "Exact") == "Exact", h
                headers[h["name"].lower()] = h["value"]  # header names match case-insensitively
            out.append((match["path"]["value"], headers, backend["name"]))
    return out


def envoy_routes(rules: list[tuple[str, dict, str]]) -> list[dict]:
    """Envoy routes in the Gateway API's order of precedence: the longest path prefix first,
    then the most header matches; otherwise in the order written (a stable sort)."""
    ranked = sorted(rules, key=lambda r: (-len(r[0]), -len(r[1])))
    return [{"name": f"{backend}-{i}",
             "match": {"prefix": prefix,
                       "headers": [{"name": k, "string_match": {"exact": v}}
                                   for k, v in headers.items()]},
             "route": {"cluster": backend}}
            for i, (prefix, headers, backend) in enumerate(ranked)]


def static_cluster(name: str, port: int) -> dict:
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                             "port_value": port}}}}]}]}}


def mesh_bootstrap(route: dict, ports: dict[str, int], http_filters: list | None = None) -> dict:
    """An Envoy routing calls to the route's parent Service as the route says (the stand-in for
    Linkerd's outbound proxy); `http_filters` before the router for an Envoy that also runs the
    filter."""
    rules = route_rules(route)
    return {
        # The edge's metric labels, for an Envoy that runs the filter.
        "stats_config": load_config("linkerd/edge-envoy.yaml")["stats_config"],
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "outbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                 "http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "outbound",
                        "route_config": {"name": "reviews", "virtual_hosts": [{
                            "name": "reviews", "domains": ["*"],
                            "routes": envoy_routes(rules)}]},
                        "http_filters": [*(http_filters or []), {
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions."
                                                      "filters.http.router.v3.Router"}}],
                    }}]}],
            }],
            "clusters": [static_cluster(b, ports[b]) for b in dict.fromkeys(r[2] for r in rules)],
        },
    }


# --- productpage: a service that forwards the header ----------------------------------------

class Productpage:
    """Answers every request by calling reviews through its outbound proxy, copying the incoming
    x-canary-variant onto the call (as a service copies trace headers). Under /no-forward/ it
    makes the same call without the header: a service that does not forward it."""

    def __init__(self, outbound_port: int):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                variant = self.headers.get("x-canary-variant")
                forward = not self.path.startswith("/no-forward/")
                conn = http.client.HTTPConnection("127.0.0.1", outbound_port, timeout=10)
                try:
                    headers = {"host": "reviews:9080"}
                    if forward and variant is not None:
                        headers["x-canary-variant"] = variant
                    conn.request("GET", "/reviews/0", headers=headers)
                    reply = conn.getresponse()
                    reviews = json.loads(reply.read())
                finally:
                    conn.close()
                body = json.dumps({"served_by": "productpage", "variant_header": variant,
                                   "reviews": reviews}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("x-served-by", "productpage")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def productpage():
    started = []

    def start(outbound_port: int) -> Productpage:
        started.append(Productpage(outbound_port))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def edge_bootstrap(productpage_port: int, config: dict | None = None) -> dict:
    """edge-envoy.yaml on free ports, its productpage cluster on the local productpage."""
    b = load_config("linkerd/edge-envoy.yaml")
    if config is not None:
        b = with_plugin_config(b, config)
    b["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] = "127.0.0.1"

    class Port:
        port = productpage_port

    b = localize(b, {"productpage": Port})
    [cluster] = b["static_resources"]["clusters"]
    cluster["type"] = "STATIC"  # the Service's DNS name does not resolve here
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["address"] = "127.0.0.1"
    return b


def the_mesh(envoys, backends, productpage, mesh_filters: list | None = None):
    """reviews-canary/-stable backends, the stand-in proxy (or an Envoy running `mesh_filters`),
    productpage behind it, the edge in front: returns (edge, mesh proxy)."""
    names = [r[2] for r in route_rules(in_mesh_route())]
    ports = {n: backends[n].port for n in names}
    mesh = envoys(mesh_bootstrap(in_mesh_route(), ports, mesh_filters), name="mesh")
    page = productpage(mesh.port)
    edge = envoys(edge_bootstrap(page.port), name="edge")
    return edge, mesh


VERSION = {"canary": "reviews-canary", "stable": "reviews-stable"}


def decided(config: dict, user: str) -> str:
    [policy] = config["policies"]
    weights = [(v["name"], v["weight"]) for v in policy["variants"]]
    return expected_variant(weights, bucket(policy["salt"], user))


def reviews_of(reply) -> str:
    assert reply.status == 200, reply.body
    return reply.json["reviews"]["served_by"]


# --- the files ----------------------------------------------------------------------------------

def test_the_manifests_are_there():
    kinds = {(p.name, d["kind"], d["metadata"]["name"]) for p in MANIFEST_FILES
             for d in manifests(p)}
    assert kinds == {("edge-envoy-gateway.yaml", "EnvoyExtensionPolicy", "canary-router-edge"),
                     ("edge-envoy-gateway.yaml", "HTTPRoute", "bookinfo"),
                     ("reviews-route.yaml", "HTTPRoute", "reviews")}
    # tests/test_examples.py runs `envoy --mode validate` on every envoy-config YAML holding
    # "admin:": the edge bootstrap, and none of the manifests.
    assert "admin:" in EDGE.read_text()
    assert all("admin:" not in p.read_text() for p in MANIFEST_FILES)


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.name)
def test_manifests_validate_against_their_schema(path):
    for doc in manifests(path):
        validate(doc)


# A field set wrong: (kind, name, path in the manifest, wrong value). The HTTPRoute and
# EnvoyExtensionPolicy schemas forbid unknown fields, so a misspelt one fails too.
BREAKAGES = [
    ("HTTPRoute", "reviews", ("spec", "parentRefs", 0, "port"), "9080"),                # type
    ("HTTPRoute", "reviews", ("spec", "parentRefs", 0, "group"), "Core"),               # pattern
    ("HTTPRoute", "reviews", ("spec", "parentRefs", 0, "service"), "reviews"),          # unknown
    ("HTTPRoute", "reviews", ("spec", "rules", 0, "backendRef"), {"name": "reviews-canary"}),
    ("HTTPRoute", "reviews", ("spec", "rules", 0, "matches", 0, "headers", 0, "type"), "exact"),
    ("HTTPRoute", "reviews", ("spec", "rules", 0, "matches", 0, "headers", 0, "name"),
     "x canary variant"),
    ("HTTPRoute", "reviews", ("spec", "rules", 0, "matches", 0, "headers", 0, "equals"), "canary"),
    ("HTTPRoute", "reviews", ("spec", "rules", 0, "backendRefs", 0, "port"), 0),
    ("HTTPRoute", "bookinfo", ("spec", "hostnames"), ["Bookinfo.Example.com"]),
    ("EnvoyExtensionPolicy", None, ("spec", "wasm", 0, "failOpen"), "true"),
    ("EnvoyExtensionPolicy", None, ("spec", "wasm", 0, "fail_open"), True),
    ("EnvoyExtensionPolicy", None, ("spec", "wasm", 0, "code", "type"), "OCI"),
]


@pytest.mark.parametrize("kind,name,path,value", BREAKAGES,
                         ids=[f"{n or k}-{'.'.join(map(str, p[-2:]))}" for k, n, p, _ in BREAKAGES])
def test_a_broken_field_fails_validation(kind, name, path, value):
    doc = the(kind, name)
    validate(doc)
    bad = copy.deepcopy(doc)
    dig(bad, path[:-1])[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(bad)


def test_in_mesh_route_is_attached_to_the_service_as_linkerd_reads_it():
    """A Service parent (Linkerd's outbound routing), and rules that send the edge's decision to
    the canary Service: the header the edge writes, the value of one of its variants."""
    route = in_mesh_route()
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [
        {"name": "reviews", "group": "core", "kind": "Service", "port": 9080}]
    config = edge_config()
    header = config.get("variant_header", "x-canary-variant")
    [policy] = config["policies"]
    assert {v["name"] for v in policy["variants"]} == set(VERSION)
    assert {tuple(sorted(h.items())): b for _, h, b in route_rules(route)} == {
        ((header, "canary"),): "reviews-canary", (): "reviews-stable"}


def test_the_stand_in_refuses_what_it_does_not_reproduce():
    """The generator is not lenient: a match it does not translate fails instead of being
    dropped, and the rule order in the file does not change the precedence."""
    route = in_mesh_route()
    reversed_route = copy.deepcopy(route)
    reversed_route["spec"]["rules"].reverse()
    assert [r["route"] for r in envoy_routes(route_rules(reversed_route))] == \
        [r["route"] for r in envoy_routes(route_rules(route))] == \
        [{"cluster": "reviews-canary"}, {"cluster": "reviews-stable"}]
    for path, value in ((("spec", "rules", 0, "matches", 0, "headers", 0, "type"),
                         "RegularExpression"),
                        (("spec", "rules", 0, "matches", 0, "queryParams"),
                         [{"name": "v", "value": "2"}]),
                        (("spec", "rules", 0, "filters"), []),
                        (("spec", "parentRefs", 0, "kind"), "Gateway")):
        bad = copy.deepcopy(route)
        dig(bad, path[:-1])[path[-1]] = value
        with pytest.raises(AssertionError):
            route_rules(bad)


def test_both_edges_carry_the_same_plugin_configuration():
    """The Envoy Gateway edge decides as the plain Envoy edge tested below does."""
    [wasm] = the("EnvoyExtensionPolicy")["spec"]["wasm"]
    assert wasm["config"] == edge_config()
    assert the("EnvoyExtensionPolicy")["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "bookinfo"}]
    # The edge never trusts an incoming variant.
    assert [p.get("trust_incoming", False) for p in edge_config()["policies"]] == [False]


@pytest.mark.parametrize("path", [EDGE, EDGE_EG], ids=lambda p: p.name)
def test_plugin_configs_pass_the_validator(path, tmp_path):
    out = cli("validate", path)
    assert out.returncode == 0, out.stderr
    assert f"{path}: OK (1 policy)" in out.stdout
    assert "reviews: canary 10 %, stable 90 %" in out.stdout
    assert "hosts: bookinfo.example.com" in out.stdout

    # A broken copy: canary at 11 %, the weights sum to 101.
    text = path.read_text()
    broken = text.replace('{"name": "canary", "weight": 10}', '{"name": "canary", "weight": 11}')
    broken = broken.replace("{name: canary, weight: 10}", "{name: canary, weight: 11}")
    assert broken != text
    bad = tmp_path / path.name
    bad.write_text(broken)
    out = cli("validate", bad)
    assert out.returncode == 1
    assert "policies[0].variants: weights sum to 101, they must sum to 100" in out.stderr


# --- real Envoys --------------------------------------------------------------------------------

def test_edge_decides_and_the_mesh_routes_on_the_forwarded_header(envoys, backends, productpage):
    edge, mesh = the_mesh(envoys, backends, productpage)
    config = edge_config()

    # Each user's call to reviews lands on the variant the edge decided, the one its bucket names.
    users = [("/", {"x-user-id": f"user-{i}"}) for i in range(1000)]
    served = Counter()
    for (_, h), r in zip(users, edge.request_many(users, host=HOST)):
        want = decided(config, h["x-user-id"])
        assert r.json["variant_header"] == want  # what the edge wrote, received by productpage
        assert reviews_of(r) == VERSION[want], h
        served[want] += 1
    assert 60 < served["canary"] < 140, served

    # The same user, always the same variant.
    canary_user = next(h["x-user-id"] for _, h in users if decided(config, h["x-user-id"]) == "canary")
    stable_user = next(h["x-user-id"] for _, h in users if decided(config, h["x-user-id"]) == "stable")
    for user, want in ((canary_user, "reviews-canary"), (stable_user, "reviews-stable")):
        assert {reviews_of(edge.request("/", {"x-user-id": user}, host=HOST))
                for _ in range(10)} == {want}

    # A rule: testers reach the canary.
    assert reviews_of(edge.request("/", {"x-beta": "true"}, host=HOST)) == "reviews-canary"

    # No key: a minted cookie, then the same variant for the browser that sends it back.
    first = edge.request("/", host=HOST)
    cookie = first.header("set-cookie").split(";")[0]
    assert cookie.startswith("canary-id=")
    assert {reviews_of(edge.request("/", {"cookie": cookie}, host=HOST))
            for _ in range(5)} == {reviews_of(first)}

    # A header forged outside is overwritten at the edge (by the filter) ...
    forged = edge.request("/", {"x-user-id": stable_user, "x-canary-variant": "canary"}, host=HOST)
    assert (forged.json["variant_header"], reviews_of(forged)) == ("stable", "reviews-stable")
    # ... and removed before the filter for a host its policy does not cover (early mutation).
    other = edge.request("/", {"x-canary-variant": "canary"}, host="other.example.com")
    assert (other.json["variant_header"], reviews_of(other)) == (None, "reviews-stable")

    # A service that does not forward the header loses the user's variant on its call.
    assert reviews_of(edge.request("/no-forward/", {"x-user-id": canary_user}, host=HOST)) == \
        "reviews-stable"

    # Inside the mesh the route honours whatever header a caller sends: the edge is the only guard.
    assert mesh.request("/", {"x-canary-variant": "canary"}, host="reviews:9080").served_by == \
        "reviews-canary"
    assert mesh.request("/", {}, host="reviews:9080").served_by == "reviews-stable"

    # The edge counts its decisions (Linkerd's proxy has no such metrics).
    assert prometheus_value(edge, "canary_router_weight", policy="reviews", variant="canary") == 1000
    assert wait_for(lambda: prometheus_value(edge, "canary_router_requests_total",
                                             policy="reviews", variant="canary",
                                             reason="rule") == 1)


def test_call_chain_keeps_the_edge_decision_at_a_trusting_envoy(envoys, backends, productpage):
    """Where the next hop is an Envoy that runs the filter too (an internal gateway, a service
    in an Envoy-based mesh), `trust_incoming: true` there keeps the decision that productpage
    forwarded: productpage does not forward the user's key, so without trust that Envoy would
    decide again (by a random bucket) and most canary users would land on stable."""
    trusting = copy.deepcopy(edge_config())
    [policy] = trusting["policies"]
    policy["trust_incoming"] = True
    policy["hosts"] = ["reviews", "reviews.default.svc.cluster.local"]
    del policy["sticky"]["cookie"]  # productpage drops cookies: mint none on its calls
    http_filter = copy.deepcopy(
        next(f for f in hcm(load_config("linkerd/edge-envoy.yaml"))["http_filters"]
             if f["name"] == "canary-router"))
    http_filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    http_filter["typed_config"]["config"]["configuration"]["value"] = json.dumps(trusting)
    edge, mesh = the_mesh(envoys, backends, productpage, [http_filter])

    config = edge_config()
    users = [("/", {"x-user-id": f"chain-{i}"}) for i in range(300)]
    served = Counter()
    for (_, h), r in zip(users, edge.request_many(users, host=HOST)):
        want = decided(config, h["x-user-id"])
        assert reviews_of(r) == VERSION[want], h
        served[want] += 1
    assert served["canary"] > 10, served
    # Every call the trusting Envoy saw was decided upstream (counters reach Envoy when the VM
    # flushes them, every second).
    def trusted(variant):
        return prometheus_value(mesh, "canary_router_requests_total", policy="reviews",
                                variant=variant, reason="trusted")

    assert wait_for(lambda: (trusted("canary"), trusted("stable")) ==
                    (served["canary"], served["stable"])), (trusted("canary"), trusted("stable"))
