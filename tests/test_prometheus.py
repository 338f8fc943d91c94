"""The shipped queries evaluated by a real Prometheus: the Flagger MetricTemplates
(envoy-config/flagger/metric-templates.yaml) and every Grafana panel expression that divides
(envoy-config/grafana/canary-router-dashboard.json), with the exact query text of those files.

A real Prometheus (Debian's `prometheus` package, installed by `scripts/setup.sh --test`) scrapes
the admin `/stats/prometheus` of two real Envoys every second while traffic runs through them
(with the Wasm filter, then with the native module and the rename of docs/metrics.md):

  policy "failing"  canary always answers 503, stable 200 (weights 50/50)   Envoy 1
  policy "healthy"  canary and stable always answer 200 (weights 50/50)     Envoy 2
  policy "idle"     canary weight 0 (no request ever reaches it), stable 100 Envoy 2

The canary of "failing" has no successful response, so its success series do not exist at all
(the filter defines a counter on its first increment): a ratio over the successes alone is
empty ("no data", which Flagger reports as an error instead of a failed check). The queries
fall back to the total times 0, so the canary reads 0 % there and 100 % on "healthy";
test_old_query_shape_gives_no_data keeps the old shape as a counter-example.
"""
import json
import math
import re
import threading
import urllib.parse
import urllib.request

import pytest
import yaml

from harness import (CONFIG_DIR, Backend, Envoy, LoggedProcess, free_port, required_tool, bootstrap_for, native_supported,
                     wait_for)

RANGE = "30s"  # Flagger's {{ interval }} and Grafana's $__rate_interval in the queries
# Grafana's template variables in panel expressions, as a test substitutes them.
GRAFANA_VARS = {"$__rate_interval": RANGE, "$__interval": "15s", "$__range": RANGE}

TEMPLATES = {d["metadata"]["name"]: d["spec"]["query"] for d in
             yaml.safe_load_all((CONFIG_DIR / "flagger" / "metric-templates.yaml").read_text())}
DASHBOARD = json.loads((CONFIG_DIR / "grafana" / "canary-router-dashboard.json").read_text())

# The old shape of the success rates (before the `or ... * 0` fallback), kept here only as the
# counter-example: the ratio over the successes alone, empty when the canary has none.
FAILURE_FREE = ('code_class!~"5xx|none", grpc_status=~"none|OK|NOT_FOUND|ALREADY_EXISTS|'
                'INVALID_ARGUMENT|FAILED_PRECONDITION|OUT_OF_RANGE|UNAUTHENTICATED|'
                'PERMISSION_DENIED"')
OLD_FLAGGER_SUCCESS_RATE = (
    '100 * sum(rate(canary_router_responses_total{policy="{{ target }}", variant="canary", '
    + FAILURE_FREE + '}[{{ interval }}])) / '
    'sum(rate(canary_router_responses_total{policy="{{ target }}", variant="canary"}'
    '[{{ interval }}]))')
OLD_GRAFANA_SUCCESS_RATE = (
    '100 * sum by (variant) (rate(canary_router_responses_total{policy="$policy", '
    + FAILURE_FREE + '}[$__rate_interval])) / '
    'sum by (variant) (rate(canary_router_responses_total{policy="$policy"}[$__rate_interval]))')
OLD_GRAFANA_SPLIT = (
    '100 * sum by (variant) (rate(canary_router_requests_total{policy="$policy"}'
    '[$__rate_interval])) / ignoring(variant) group_left '
    'sum(rate(canary_router_requests_total{policy="$policy"}[$__rate_interval]))')


def flagger(query: str, target: str) -> str:
    """A MetricTemplate query as Flagger sends it for a Canary named `target`."""
    q = re.sub(r"\{\{\s*target\s*\}\}", target, query)
    q = re.sub(r"\{\{\s*interval\s*\}\}", RANGE, q)
    assert "{{" not in q, q
    return q


def grafana(expr: str, policy: str) -> str:
    """A panel expression as Grafana sends it with $policy = `policy`."""
    q = expr.replace("${policy}", policy).replace("$policy", policy)
    for name in sorted(GRAFANA_VARS, key=len, reverse=True):
        q = q.replace(name, GRAFANA_VARS[name])
    assert "$" not in q, f"unsubstituted template variable in {q}"
    return q


def divides(expr: str) -> bool:
    """Whether a PromQL expression has a division (outside label matcher strings)."""
    return "/" in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def panel_exprs(title_prefix: str) -> list[str]:
    panels = [p for p in DASHBOARD["panels"] if p["title"].startswith(title_prefix)]
    assert len(panels) == 1, f"one panel titled {title_prefix!r}"
    return [t["expr"] for t in panels[0]["targets"]]


DIVIDING_PANEL_EXPRS = [(p["title"], t["expr"]) for p in DASHBOARD["panels"]
                        for t in p["targets"] if divides(t["expr"])]


# --- a real Prometheus --------------------------------------------------------------------------

class Prometheus(LoggedProcess):
    """`prometheus` on 127.0.0.1 (a free port), scraping `targets` every second."""

    def __init__(self, targets: list[str], workdir, relabel: list[dict] | None = None):
        exe = required_tool("prometheus")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "envoy", "metrics_path": "/stats/prometheus",
                                "static_configs": [{"targets": targets}]}],
        }
        if relabel:
            config["scrape_configs"][0]["metric_relabel_configs"] = relabel
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.start_until_ready([exe, f"--config.file={workdir / 'prometheus.yml'}",
                                f"--storage.tsdb.path={workdir / 'data'}",
                                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                               workdir / "prometheus.log",
                               f"http://127.0.0.1:{self.port}/-/ready", timeout=60)

    def query(self, promql: str) -> list[dict]:
        """An instant query through /api/v1/query; the result vector."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": promql}))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        return body["data"]["result"]


def values(result: list[dict], by: str | None = None) -> dict:
    """A result vector as {label value (or None): float}."""
    return {(s["metric"].get(by) if by else None): float(s["value"][1]) for s in result}


# --- the running stack --------------------------------------------------------------------------

def policy(name: str, canary_weight: float, hosts: list[str] | None = None) -> dict:
    p = {"name": name, "variants": [{"name": "canary", "weight": canary_weight},
                                    {"name": "stable", "weight": 100 - canary_weight}]}
    if hosts:
        p["hosts"] = hosts
    return p


def native_relabel() -> list[dict]:
    """The Prometheus rename of docs/metrics.md ("Native module"), read from the page itself."""
    text = (CONFIG_DIR.parent / "docs" / "metrics.md").read_text()
    section = text[text.index("## Native module"):]
    block = re.search(r"^```\n(metric_relabel_configs:.*?)^```", section, re.M | re.S).group(1)
    return yaml.safe_load(block)["metric_relabel_configs"]


@pytest.fixture(scope="module", params=["wasm", "native"] if native_supported() else ["wasm"])
def prom(backends, tmp_path_factory, request):
    """Two Envoys with traffic running through them, scraped by a real Prometheus; stopped at
    the end of the module. Once with the Wasm filter, once with the native module and the
    rename its documentation gives Prometheus."""
    module = request.param
    failing = Backend("canary", status=503)
    envoys: list[Envoy] = []
    stop_traffic = threading.Event()
    traffic = None
    prometheus = None
    try:
        for name, plugin, canary in (
            ("failing", {"policies": [policy("failing", 50)]}, failing),
            ("healthy", {"policies": [policy("healthy", 50, ["healthy"]),
                                      policy("idle", 0, ["idle"])]}, backends["canary"]),
        ):
            b = bootstrap_for(plugin, {"canary": canary, "stable": backends["stable"]},
                              ["canary", "stable"])
            b["stats_flush_interval"] = "0.2s"  # histograms reach /stats/prometheus at each flush
            envoys.append(Envoy(b, tmp_path_factory.mktemp(f"envoy-{name}"), 2, name, module))
        by_policy = {"failing": envoys[0], "healthy": envoys[1], "idle": envoys[1]}

        def send():
            # Responses keep coming while Prometheus scrapes, so that every rate is above 0.
            while not stop_traffic.is_set():
                for host, envoy in by_policy.items():
                    try:
                        envoy.request("/", host=host)
                    except OSError:
                        pass
                stop_traffic.wait(0.02)

        traffic = threading.Thread(target=send, daemon=True)
        traffic.start()
        prometheus = Prometheus([e.admin for e in envoys], tmp_path_factory.mktemp("prometheus"),
                                native_relabel() if module == "native" else None)

        want = {("failing", "canary"), ("failing", "stable"), ("healthy", "canary"),
                ("healthy", "stable"), ("idle", "stable")}

        def scraped() -> bool:
            live = prometheus.query(
                f"sum by (policy, variant) (rate(canary_router_responses_total[{RANGE}])) > 0")
            have = {(s["metric"]["policy"], s["metric"]["variant"]) for s in live}
            weights = prometheus.query('canary_router_weight{policy="idle"}')
            return want <= have and len(weights) == 2

        if not wait_for(scraped, timeout=60):
            pytest.fail("no samples of every policy and variant in Prometheus after 60 s: "
                        f"{prometheus.query('up')}\n{prometheus.log()[-3000:]}")
        yield prometheus
    finally:
        stop_traffic.set()
        if traffic is not None:
            traffic.join(timeout=15)
        if prometheus is not None:
            prometheus.stop()
        for e in envoys:
            e.stop()
        failing.stop()


# --- Flagger ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, want", [("failing", 0.0), ("healthy", 100.0)])
def test_flagger_success_rate(prom, target, want):
    """Always-failing canary → 0 %, never-failing canary → 100 %: a value, never "no data"."""
    got = values(prom.query(flagger(TEMPLATES["canary-router-success-rate"], target)))
    assert list(got) == [None], got  # one sample, no labels: what Flagger expects
    assert got[None] == pytest.approx(want)


@pytest.mark.parametrize("target", ["failing", "healthy"])
def test_every_flagger_template_returns_a_value(prom, target):
    for name, query in TEMPLATES.items():
        got = prom.query(flagger(query, target))
        assert len(got) == 1, f"{name} on {target}: {got}"
        assert math.isfinite(float(got[0]["value"][1])), f"{name} on {target}: {got}"


# --- Grafana ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, want", [
    ("failing", {"canary": 0.0, "stable": 100.0}),
    ("healthy", {"canary": 100.0, "stable": 100.0}),
])
def test_grafana_success_rate_per_variant(prom, target, want):
    [expr] = panel_exprs("Success rate per variant")
    got = values(prom.query(grafana(expr, target)), by="variant")
    assert got == pytest.approx(want)  # the canary's series is there, with its variant label


def test_grafana_observed_split(prom):
    observed = [e for e in panel_exprs("Observed split") if "requests_total" in e]
    assert len(observed) == 1, observed
    # A variant that never got a request reads 0 % (it has a weight, so it has a series).
    assert values(prom.query(grafana(observed[0], "idle")), by="variant") == pytest.approx(
        {"canary": 0.0, "stable": 100.0})
    for target in ("failing", "healthy"):
        got = values(prom.query(grafana(observed[0], target)), by="variant")
        assert set(got) == {"canary", "stable"}, got
        assert sum(got.values()) == pytest.approx(100.0)


@pytest.mark.parametrize("title, expr", DIVIDING_PANEL_EXPRS,
                         ids=[f"{t} #{i}" for i, (t, _) in enumerate(DIVIDING_PANEL_EXPRS)])
@pytest.mark.parametrize("target", ["failing", "healthy", "idle"])
def test_every_dividing_panel_expression_returns_values(prom, title, expr, target):
    """Every dividing panel expression: a non-empty vector, one sample per variant where it
    groups by variant, no NaN or infinity."""
    got = prom.query(grafana(expr, target))
    assert got, f"{title}: no data for {target}"
    for s in got:
        assert math.isfinite(float(s["value"][1])), f"{title} on {target}: {s}"
    if "by (variant" in expr:
        variants = [s["metric"].get("variant") for s in got]
        assert len(set(variants)) == len(variants) and None not in variants, got


def test_dashboard_has_the_dividing_panels_this_test_checks():
    titles = {t for t, _ in DIVIDING_PANEL_EXPRS}
    assert any(t.startswith("Success rate per variant") for t in titles), titles
    assert any(t.startswith("Observed split") for t in titles), titles


# --- the counter-example ------------------------------------------------------------------------

def test_old_query_shape_gives_no_data(prom):
    """The ratio over the successes alone (the queries before the fallback) is empty for a canary
    with no successful response: this test would fail on them."""
    # There is no success series at all for the failing canary...
    assert prom.query('canary_router_responses_total{policy="failing", variant="canary", '
                      + FAILURE_FREE + '}') == []
    # ...so Flagger's old query had no value (Flagger: "no values found", not a failed check),
    assert prom.query(flagger(OLD_FLAGGER_SUCCESS_RATE, "failing")) == []
    assert values(prom.query(flagger(OLD_FLAGGER_SUCCESS_RATE, "healthy"))) == pytest.approx(
        {None: 100.0})
    # the old panel had no canary line,
    assert set(values(prom.query(grafana(OLD_GRAFANA_SUCCESS_RATE, "failing")), by="variant")) \
        == {"stable"}
    # and the old split had no line for a variant without requests.
    assert set(values(prom.query(grafana(OLD_GRAFANA_SPLIT, "idle")), by="variant")) \
        == {"stable"}
