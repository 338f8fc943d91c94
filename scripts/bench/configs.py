"""Envoy bootstraps for the benchmark configurations.

Every configuration is one Envoy (`--concurrency 1`) with two listeners:
- `front` (the port the load generator talks to): the HTTP filter chain under test, then the
  router; routes `x-canary-variant: canary` -> cluster `canary`, anything else -> `stable`;
- `upstream`: answers every request with a `direct_response` 200 "ok".
Both clusters point at the `upstream` listener of the same Envoy, so one process holds the whole
request path and nothing else (no Python backend) is measured.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "dist" / "canary-router.wasm"
# The native Envoy module (scripts/build.sh); bench.py points ENVOY_DYNAMIC_MODULES_SEARCH_PATH
# at its directory.
NATIVE_MODULE = ROOT / "dist" / "libcanary_router.so"
EMPTY_WASM = ROOT / "target" / "wasm32-unknown-unknown" / "release" / "empty_filter.wasm"
FLOOR_WASM = ROOT / "target" / "wasm32-unknown-unknown" / "release" / "floor_filter.wasm"
PEER_LUA = Path(__file__).resolve().parent / "peer.lua"

# Every benchmark request carries this sticky key. Its bucket is xxh3_64("reviews:alice") % 10000
# = 9826 (canary-router: stable) and FNV-1a("reviews:alice") % 10000 = 4148 (lua-peer: stable).
USER = "alice"
USER_VARIANT = "stable"
# A user both canary-router (bucket 825) and lua-peer (bucket 158) send to the canary: the check
# that the route is re-selected after the filter wrote the header.
CANARY_USER = "dave"
# The Host of every request; the scaling configurations' middle policy owns it (see `scaled`).
HOST_WIDTH = 4


def host_for(index: int) -> str:
    return f"svc-{index:0{HOST_WIDTH}d}.example.com"


TYPICAL_POLICY = {
    "name": "reviews",
    "salt": "reviews",
    "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
    "sticky": {
        "keys": [{"header": "x-user-id"}, {"cookie": "session"}],
        "cookie": {"name": "canary-id", "max_age": 86400, "path": "/", "http_only": True,
                   "same_site": "Lax"},
    },
    "rules": [
        {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]},
        {"variant": "stable", "match": [{"cookie": "ab", "exact": "never"}]},
        {"variant": "canary", "match": [{"query": "variant", "exact": "canary"}]},
    ],
}

TYPICAL = {"variant_header": "x-canary-variant", "policies": [TYPICAL_POLICY]}


# The typical policy with a finished ramp and a guard on the variant the measured requests get
# (stable; the canary is its baseline), so every measured request is judged by the guard.
GUARDED = {"variant_header": "x-canary-variant", "policies": [{
    **TYPICAL_POLICY,
    "ramp": {"variant": "canary", "start": "2020-01-01T00:00:00Z", "steps": [5, 10],
             "step_seconds": 60},
    "guard": {"variant": "stable", "baseline": "canary", "window_seconds": 10,
              "min_requests": 1000000, "max_failure_rate": 0.5, "max_p99_ms": 60000},
}]}


def policies_config(n: int) -> tuple[dict, str]:
    """`n` host-matched policies (the typical policy with `hosts: [svc-i.example.com]`); returns
    the config and the Host of the middle policy, the one the requests hit."""
    policies = []
    for i in range(n):
        p = copy.deepcopy(TYPICAL_POLICY)
        p["name"] = f"svc-{i:0{HOST_WIDTH}d}"
        p["hosts"] = [host_for(i)]
        policies.append(p)
    return {"variant_header": "x-canary-variant", "policies": policies}, host_for(n // 2)


def rules_config(n: int = 50) -> dict:
    """One policy with `n` rules, none of which holds for the benchmark request (x-user-id: alice,
    no cookie, path `/?k`): a mix of exact/prefix/suffix/contains/regex/present on the header the
    request has, headers it lacks, cookies and query parameters. All are tried, then the sticky
    key decides (stable)."""
    shapes = [
        lambda i: {"header": "x-user-id", "exact": f"bob-{i}"},
        lambda i: {"header": "x-user-id", "prefix": f"bob-{i}"},
        lambda i: {"header": "x-user-id", "contains": f"zz{i}"},
        lambda i: {"header": "x-user-id", "regex": f"user-{i}-[0-9]+"},
        lambda i: {"header": f"x-flag-{i}", "exact": "on"},
        lambda i: {"cookie": f"ab{i}", "exact": "b"},
        lambda i: {"cookie": f"exp{i}", "prefix": "grp-"},
        lambda i: {"query": f"variant{i}", "exact": "canary"},
        lambda i: {"query": f"exp{i}", "contains": "beta"},
        lambda i: {"header": "x-user-id", "suffix": f"-{i}x"},
    ]
    rules = [
        {"variant": "canary" if i % 2 == 0 else "stable", "match": [shapes[i % len(shapes)](i)]}
        for i in range(n)
    ]
    policy = copy.deepcopy(TYPICAL_POLICY)
    policy["rules"] = rules
    return {"variant_header": "x-canary-variant", "policies": [policy]}


# --- bootstraps --------------------------------------------------------------------------------

def _stats_config() -> dict:
    """The label extraction of envoy-config/front-proxy.yaml, so /stats/prometheus shows
    labelled canary_router_* metrics."""
    shipped = yaml.safe_load((ROOT / "envoy-config" / "front-proxy.yaml").read_text())
    return copy.deepcopy(shipped["stats_config"])


def _address(port: int) -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _hcm(stat_prefix: str, routes: list[dict], http_filters: list[dict]) -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                     "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": {
                "name": stat_prefix,
                "virtual_hosts": [{"name": stat_prefix, "domains": ["*"], "routes": routes}],
            },
            "http_filters": http_filters + [{
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }],
        },
    }


HEADER_ROUTES = [
    {"name": "canary", "match": {"prefix": "/", "headers": [
        {"name": "x-canary-variant", "string_match": {"exact": "canary"}}]},
     "route": {"cluster": "canary"}},
    {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "stable"}},
]

WEIGHTED_ROUTES = [
    {"name": "default", "match": {"prefix": "/"}, "route": {"weighted_clusters": {"clusters": [
        {"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}]}}},
]


def wasm_filter(name: str, path: Path, configuration: str | None) -> dict:
    config = {
        "name": name,
        "root_id": name,
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(path)}},
        },
    }
    if configuration is not None:
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                   "value": configuration}
    return {"name": name, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": config}}


def native_module_filter(configuration: str, module: str = "canary_router") -> dict:
    """The native module (README "Native module"), configured with the same JSON; `module`
    `canary_router_floor`: its floor build (scripts/bench.sh)."""
    return {"name": "canary-router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3."
                 "DynamicModuleFilter",
        "dynamic_module_config": {"name": module},
        "filter_name": "canary-router",
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": configuration}}}


def lua_filter() -> dict:
    return {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": PEER_LUA.read_text()}}}


def bootstrap(front_port: int, upstream_port: int, routes: list[dict],
              http_filters: list[dict]) -> dict:
    cluster = lambda name: {  # noqa: E731
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _address(upstream_port)}}]}]},
    }
    return {
        "stats_config": _stats_config(),
        # Keep timer work (stats flushes) out of the per-request instruction counts.
        "stats_flush_interval": "60s",
        "admin": {"address": _address(0)},
        "static_resources": {
            "listeners": [
                {"name": "front", "address": _address(front_port),
                 "filter_chains": [{"filters": [_hcm("front", routes, http_filters)]}]},
                {"name": "upstream", "address": _address(upstream_port),
                 "filter_chains": [{"filters": [_hcm("upstream", [
                     {"name": "ok", "match": {"prefix": "/"},
                      "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}],
                     [])]}]},
            ],
            "clusters": [cluster("stable"), cluster("canary")],
        },
    }


@dataclass
class BenchConfig:
    name: str
    description: str
    routes: list[dict]
    filters: list[dict]
    host: str = host_for(0)
    wasm: bool = False
    # Routing check: (user, cluster that must serve it); the filter must re-select the route.
    checks: list[tuple[str, str]] = field(default_factory=list)
    group: str = "main"  # "main" (the comparison table) or "scaling"
    policies: int | None = None
    router: bool = False  # the canary-router filter (its decision counters can be checked)

    def bootstrap(self, front_port: int, upstream_port: int) -> dict:
        return bootstrap(front_port, upstream_port, self.routes, self.filters)


def canary_router(name: str, description: str, config: dict, host: str = host_for(0),
                  group: str = "main", policies: int | None = None) -> BenchConfig:
    return BenchConfig(
        name, description, HEADER_ROUTES,
        [wasm_filter("canary-router", WASM, json.dumps(config, separators=(",", ":")))],
        host=host, wasm=True, group=group, policies=policies, router=True,
        checks=[(USER, USER_VARIANT), (CANARY_USER, "canary")])


def all_configs(policy_counts: list[int]) -> list[BenchConfig]:
    configs = [
        BenchConfig("native", "router only, header-matched routes (the limit)", HEADER_ROUTES, [],
                    checks=[(USER, "stable")]),
        BenchConfig("native-weighted", "Envoy's own weighted_clusters 10/90 (random, not sticky)",
                    WEIGHTED_ROUTES, []),
        BenchConfig("empty-wasm", "an empty proxy-wasm filter (Rust, V8): the floor of any Wasm "
                    "filter", HEADER_ROUTES, [wasm_filter("empty", EMPTY_WASM, None)], wasm=True,
                    checks=[(USER, "stable")]),
        BenchConfig("floor", "the measured floor of a Wasm routing filter: reads the request "
                    "headers once and writes the header, nothing else (`filters/floor-filter`)",
                    HEADER_ROUTES, [wasm_filter("floor", FLOOR_WASM, None)], wasm=True,
                    checks=[(USER, "stable")]),
        BenchConfig("lua-peer", "Lua filter doing the typical job (scripts/bench/peer.lua)",
                    HEADER_ROUTES, [lua_filter()],
                    checks=[(USER, USER_VARIANT), (CANARY_USER, "canary")]),
        canary_router("canary-router", "the typical config: 1 policy, 10/90, sticky header + "
                      "cookie minting, 3 rules, stats on", TYPICAL),
        BenchConfig("native-module", "the typical config in the native Envoy module "
                    "(`filters/canary-router-native`), stats on",
                    HEADER_ROUTES, [native_module_filter(json.dumps(TYPICAL, separators=(",", ":")))],
                    router=True, checks=[(USER, USER_VARIANT), (CANARY_USER, "canary")]),
        BenchConfig("native-module-no-response-metrics", "the native module with "
                    "`\"response_metrics\": false`",
                    HEADER_ROUTES, [native_module_filter(json.dumps(
                        {**TYPICAL, "response_metrics": False}, separators=(",", ":")))],
                    router=True, checks=[(USER, USER_VARIANT), (CANARY_USER, "canary")]),
        BenchConfig("native-floor", "the floor of a native routing module: reads the request "
                    "headers once and writes the header, nothing else (feature `floor` of "
                    "`filters/canary-router-native`)",
                    HEADER_ROUTES, [native_module_filter(json.dumps(TYPICAL), "canary_router_floor")],
                    checks=[(USER, "stable")]),
        canary_router("no-response-metrics", "the typical config with `\"response_metrics\": "
                      "false` (request counter only; no response read)",
                      {**TYPICAL, "response_metrics": False}),
    ]
    for n in policy_counts:
        config, host = policies_config(n)
        configs.append(canary_router(f"policies-{n}", f"{n} host-matched polic{'y' if n == 1 else 'ies'}", config,
                                     host=host, group="scaling", policies=n))
    configs.append(canary_router("rules-50", "one policy with 50 rules, none of which holds",
                                 rules_config(50), group="scaling"))
    configs.append(canary_router("guarded", "the typical config with a (finished) ramp and a "
                                 "guard judging every measured request", GUARDED,
                                 group="scaling"))
    return configs
