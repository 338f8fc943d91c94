"""The guard in a real Envoy (--concurrency 2): a canary that starts failing (503) or turns slow
trips its guard within seconds, all its traffic goes to the baseline (sticky users included),
a local webhook receiver gets the message. By default the guard aborts: the canary stays off
(and a rising ramp stops) until the configuration changes; with `on_trip: rearm` it gets its
traffic back after the hold, at most `max_trips` times. Relative limits compare the canary with
its baseline (failures injected by Envoy's fault filter). Below min_requests nothing trips; a
healthy canary never trips.

The trip timings and the requests that reached the failing canary are printed (run with -s)
and written to target/guard-report.json for the notes."""
import copy
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import (ROOT, Backend, bootstrap_for, control, hcm, prometheus_value, wait_for,
                     wasm_filter)

pytestmark = pytest.mark.both_modules

NODE = "guard-test-node"
REPORT = ROOT / "target" / "guard-report.json"


class Receiver:
    """A local webhook receiver: records each POSTed JSON body with its arrival time."""

    def __init__(self, status: int = 200):
        self.messages: list[tuple[float, dict]] = []
        messages = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                messages.append((time.time(), {
                    "body": json.loads(body),
                    "path": self.path,
                    "content_type": self.headers.get("content-type"),
                    "authorization": self.headers.get("authorization"),
                }))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, name: str) -> list[tuple[float, dict]]:
        return [(t, m) for t, m in self.messages if m["body"].get("event") == name]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def canary():
    """A canary backend of its own, controllable over /__control."""
    b = Backend("canary")
    yield b
    b.stop()


def served_log(backend: Backend) -> list[tuple[float, int]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{backend.port}/__log", timeout=5) as r:
        return [tuple(x) for x in json.loads(r.read())]


def guard_proxy(envoys, backends, canary, guard: dict, receiver=None, weights=(20, 80),
                vm_env: dict | None = None, ramp: dict | None = None, faults: dict | None = None):
    """Envoy with one guarded policy `reviews` (canary, stable). `vm_env`: the Wasm VM's
    environment variables; `faults`: per variant, the runtime key of an Envoy fault filter that
    answers that share (percent) of the variant's requests with 503 before they leave Envoy."""
    policy = {
        "name": "reviews",
        "variants": [{"name": "canary", "weight": weights[0]},
                     {"name": "stable", "weight": weights[1]}],
        "sticky": {"keys": [{"header": "x-user-id"}]},
        "guard": guard,
    }
    if ramp:
        policy["ramp"] = ramp
    b = bootstrap_for({"policies": [policy]}, {"canary": canary, "stable": backends["stable"]},
                      ["canary", "stable"])
    b["node"] = {"id": NODE, "cluster": "front"}
    if vm_env:
        vm = wasm_filter(b)["typed_config"]["config"]["vm_config"]
        vm["environment_variables"] = {"key_values": vm_env}
    if faults:
        fault_type = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
        filters = hcm(b)["http_filters"]
        filters.insert(len(filters) - 1, {"name": "envoy.filters.http.fault",
                                          "typed_config": {"@type": fault_type}})
        for route in hcm(b)["route_config"]["virtual_hosts"][0]["routes"]:
            variant = route["route"]["cluster"]
            if route["name"] == f"variant-{variant}" and variant in faults:
                route["typed_per_filter_config"] = {"envoy.filters.http.fault": {
                    "@type": fault_type,
                    "abort": {"http_status": 503,
                              "percentage": {"numerator": 0, "denominator": "HUNDRED"}},
                    "abort_percent_runtime": faults[variant],
                }}
        b["layered_runtime"] = {"layers": [{"name": "admin", "admin_layer": {}}]}
    if receiver is not None:
        hook = copy.deepcopy(b["static_resources"]["clusters"][0])
        hook["name"] = "hooks"
        hook["load_assignment"]["cluster_name"] = "hooks"
        ep = hook["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ep["address"]["socket_address"]["port_value"] = receiver.port
        b["static_resources"]["clusters"].append(hook)
    return envoys(b)


stat = prometheus_value


class Traffic:
    """Users sending requests through Envoy without pause on a few keep-alive connections;
    every reply is recorded with the time it arrived."""

    def __init__(self, envoy, users: int = 500, connections: int = 6):
        self.envoy = envoy
        self.replies: list[tuple[float, str, str | None, int]] = []
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(c, users, connections))
                        for c in range(connections)]
        for t in self.threads:
            t.start()

    def _run(self, c: int, users: int, connections: int) -> None:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.envoy.port, timeout=10)
        i = c
        while not self.stop_flag.is_set():
            user = f"u{i % users}"
            i += connections
            try:
                r = self.envoy.request("/", {"x-user-id": user}, conn=conn)
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.envoy.port, timeout=10)
                continue
            self.replies.append((time.time(), user, r.served_by, r.status))

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def between(self, start: float, end: float = float("inf")):
        return [r for r in list(self.replies) if start <= r[0] < end]


def write_report(name: str, figures: dict) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report[name] = figures
    REPORT.write_text(json.dumps(report, indent=2))
    print(f"\n{name}: {json.dumps(figures)}")


#: Each worker learns of a trip at its next tick (250 ms with guards); this is how long the
#: tests let that take before they require that no request reaches the canary.
PROPAGATION = 1.0


def break_canary_and_wait_for_trip(traffic, receiver, canary, observe: float, **change):
    """Changes the canary's answer (`status`, `delay_ms`) while `traffic` runs, waits for the
    trip message, gives every worker time to learn of it, then watches `observe` seconds.
    Returns the time of the change, (arrival time, message) of the trip, and the replies
    of the watched seconds."""
    switched = time.time()
    control(canary, **change)
    assert wait_for(lambda: receiver.events("tripped"), timeout=20), "no trip message"
    trip = receiver.events("tripped")[0]
    time.sleep(PROPAGATION)
    after = time.time()
    time.sleep(observe)
    return switched, trip, traffic.between(after)


def test_rearming_canary_trips_notifies_and_resumes_after_hold(envoys, backends, canary,
                                                              receiver):
    """`on_trip: rearm`: the canary gets its traffic back after the hold. The receiver's path and
    token come from the VM's environment (`${NAME}`), not from the configuration."""
    hold = 6
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "baseline": "stable", "window_seconds": 10, "min_requests": 20,
        "max_failure_rate": 0.05, "max_p99_ms": 2000, "on_trip": "rearm", "hold_seconds": hold,
        "notify": {"cluster": "hooks", "path": "/hook/${HOOK_PATH}", "authority": "hooks.test",
                   "headers": {"authorization": "Bearer ${HOOK_TOKEN}"}},
    }, receiver, vm_env={"HOOK_PATH": "T0/B0", "HOOK_TOKEN": "s3cret"})
    assert stat(envoy, "canary_router_guard_tripped", policy="reviews", variant="canary") == 0
    traffic = Traffic(envoy)
    try:
        time.sleep(2)
        healthy = traffic.between(0)
        assert {r[2] for r in healthy} == {"canary", "stable"}
        flip, (tripped_at, trip), late = break_canary_and_wait_for_trip(
            traffic, receiver, canary, 2, status=503)
        # After the trip (and one tick for every worker to learn of it) no request reaches
        # the canary: every user is on stable, the canary's users included.
        assert late and all(r[2] == "stable" and r[3] == 200 for r in late)
        canary_users = {r[1] for r in healthy if r[2] == "canary"}
        assert canary_users & {r[1] for r in late}, "the canary's sticky users should be on stable"
        assert stat(envoy, "canary_router_guard_tripped", policy="reviews", variant="canary") == 1
        assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") == 1
        assert stat(envoy, "canary_router_weight", policy="reviews", variant="canary") == 0
        assert stat(envoy, "canary_router_weight", policy="reviews", variant="stable") == 10000
        assert stat(envoy, "canary_router_requests_total", policy="reviews", variant="stable",
                    reason="guard") > 0

        # The canary recovers; after the hold it gets its users back.
        control(canary, status=200)
        assert wait_for(lambda: receiver.events("rearmed"), timeout=hold + 10), "no re-arm message"
        rearmed_at, rearm = receiver.events("rearmed")[0]
        assert rearmed_at - tripped_at >= hold - 1
        assert wait_for(lambda: any(r[2] == "canary" for r in traffic.between(rearmed_at)), 5)
        assert wait_for(lambda: stat(envoy, "canary_router_guard_tripped", policy="reviews",
                                     variant="canary") == 0, 5)
        assert stat(envoy, "canary_router_weight", policy="reviews", variant="canary") == 2000
    finally:
        traffic.stop()

    # The message: Slack's `text` plus structured fields, with the configured path and headers.
    body = trip["body"]
    assert trip["path"] == "/hook/T0/B0"
    assert trip["content_type"] == "application/json"
    assert trip["authorization"] == "Bearer s3cret"
    assert "guard tripped on policy reviews: canary failure rate" in body["text"]
    assert f"Proxy: {NODE}" in body["text"]
    assert body["cause"] == "failure_rate" and body["failure_rate"] > 0.05
    assert body["requests"] >= 20 and body["failures"] >= 1
    assert (body["policy"], body["variant"], body["baseline"]) == ("reviews", "canary", "stable")
    assert (body["window_seconds"], body["hold_seconds"], body["node"]) == (10, hold, NODE)
    assert rearm["body"]["event"] == "rearmed" and "re-armed" in rearm["body"]["text"]
    assert len(receiver.events("tripped")) == 1  # one message per proxy, not per worker

    log = served_log(canary)
    failures = [t for t, s in log if s == 503]
    first_failure = min(failures)
    write_report("failure_rate_trip", {
        "seconds_from_first_failure_to_trip_message": round(tripped_at - first_failure, 3),
        "seconds_from_switch_to_trip_message": round(tripped_at - flip, 3),
        "failing_canary_requests_before_trip": sum(1 for t in failures if t <= tripped_at),
        "failing_canary_requests_total": len(failures),
        "window_at_trip": {k: body[k] for k in ("requests", "failures", "failure_rate", "p99_ms")},
        "seconds_from_trip_to_rearm": round(rearmed_at - tripped_at, 3),
    })
    # No 503 was served once every worker knew of the trip.
    assert not [t for t in failures if t > tripped_at + PROPAGATION]


def test_slow_canary_trips_on_p99(envoys, backends, canary, receiver):
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "window_seconds": 10, "min_requests": 10,
        "max_failure_rate": 0.05, "max_p99_ms": 150,
        "notify": {"cluster": "hooks", "path": "/hook"},
    }, receiver)
    traffic = Traffic(envoy, connections=8)
    try:
        time.sleep(1.5)
        assert not receiver.messages
        flip, (tripped_at, trip), late = break_canary_and_wait_for_trip(
            traffic, receiver, canary, 1.5, delay_ms=400)
        assert late and all(r[2] == "stable" for r in late)
    finally:
        traffic.stop()
    body = trip["body"]
    assert body["cause"] == "p99" and body["failures"] == 0
    assert body["p99_ms"] >= 150
    assert "p99 > 150 ms" in body["text"]
    slow = [t for t, _ in served_log(canary) if t >= flip]
    write_report("p99_trip", {
        "seconds_from_slow_switch_to_trip_message": round(tripped_at - flip, 3),
        "slow_canary_requests_before_trip": sum(1 for t in slow if t <= tripped_at),
        "window_at_trip": {k: body[k] for k in ("requests", "failures", "p99_ms")},
    })


def test_below_min_requests_nothing_trips(envoys, backends, canary):
    control(canary, status=503)
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "window_seconds": 60, "min_requests": 50,
        "max_failure_rate": 0.05,
    }, weights=(100, 0))
    replies = envoy.request_many([("/", {"x-user-id": f"u{i}"}) for i in range(40)])
    assert all(r.served_by == "canary" and r.status == 503 for r in replies)
    # Several ticks later: 40 failures of 40, but fewer than 50 requests: no trip.
    time.sleep(1.5)
    assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") == 0
    assert envoy.request("/", {"x-user-id": "x"}).served_by == "canary"
    # Ten more reach min_requests: it trips, and the next requests go to stable.
    envoy.request_many([("/", {"x-user-id": f"v{i}"}) for i in range(10)])
    assert wait_for(lambda: stat(envoy, "canary_router_guard_trips_total", policy="reviews",
                                 variant="canary") == 1, 10)
    time.sleep(PROPAGATION)
    replies = envoy.request_many([("/", {"x-user-id": f"w{i}"}) for i in range(50)])
    assert all(r.served_by == "stable" for r in replies)


def test_healthy_canary_never_trips_in_20000_requests(envoys, backends, canary, receiver):
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "window_seconds": 10, "min_requests": 20,
        "max_failure_rate": 0.01, "max_p99_ms": 1000, "max_failure_rate_increase": 0.01,
        "notify": {"cluster": "hooks", "path": "/hook"},
    }, receiver, weights=(50, 50))
    replies = envoy.request_many([("/", {"x-user-id": f"u{i}"}) for i in range(20_000)],
                                 connections=8)
    assert all(r.status == 200 for r in replies)
    canary_share = sum(r.served_by == "canary" for r in replies) / len(replies)
    assert 0.45 < canary_share < 0.55
    time.sleep(1)  # the last outcomes reach the window
    assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") == 0
    assert stat(envoy, "canary_router_guard_tripped", policy="reviews", variant="canary") == 0
    assert not receiver.messages
    # The window did see the canary's requests: the responses counter agrees.
    assert stat(envoy, "canary_router_responses_total", policy="reviews", variant="canary",
                code_class="2xx", grpc_status="none") == sum(r.served_by == "canary" for r in replies)


@pytest.mark.wasm_only  # native: a retry waits for the worker's next request (README)
def test_notify_failures_are_retried_logged_and_counted(envoys, backends, canary):
    """A receiver that answers 500, or a cluster that does not exist: the trip still happens; the
    message is sent again after 1 s, 2 s … while `retries` last, then the failure is logged and
    counted."""
    control(canary, status=503)
    dead = Receiver(status=500)
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5,
        "notify": {"cluster": "hooks", "path": "/hook", "timeout_ms": 2000, "retries": 2},
    }, dead, weights=(100, 0))
    envoy.request_many([("/", {"x-user-id": f"u{i}"}) for i in range(10)])
    assert wait_for(lambda: stat(envoy, "canary_router_guard_notify_failures_total",
                                 policy="reviews", variant="canary") >= 1, 15)
    # It arrived three times (one send, two retries), and the receiver answered 500 each time.
    attempts = [t for t, _ in dead.events("tripped")]
    assert len(attempts) == 3, attempts
    assert attempts[1] - attempts[0] >= 0.9 and attempts[2] - attempts[1] >= 1.9, attempts
    log = envoy.log()
    assert log.count("trying again in") == 2
    assert "guard notification failed: slack message to cluster hooks after 3 attempts: " \
           "the receiver answered 500" in log
    time.sleep(PROPAGATION)
    assert envoy.request("/", {"x-user-id": "x"}).served_by == "stable"
    dead.close()

    # A cluster that does not exist: Envoy refuses the call at once.
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5,
        "notify": {"cluster": "no-such-cluster", "path": "/hook", "retries": 0},
    }, weights=(100, 0))
    envoy.request_many([("/", {"x-user-id": f"u{i}"}) for i in range(10)])
    assert wait_for(lambda: stat(envoy, "canary_router_guard_notify_failures_total",
                                 policy="reviews", variant="canary") == 1, 10)
    assert "message to cluster no-such-cluster after 1 attempts: cannot send" in envoy.log()
    assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") == 1


def test_shipped_guard_example_trips_as_its_header_says(envoys, backends, canary, receiver):
    """envoy-config/guard.yaml (the demo's file): 20 % canary; 503s trip the guard, the message
    names the proxy's node id, and the canary's users go to stable."""
    from harness import load_config, wasm_filter
    b = load_config("guard.yaml")
    b["admin"]["address"]["socket_address"]["port_value"] = 0
    b["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 0
    ports = {"stable": backends["stable"].port, "canary": canary.port, "hooks": receiver.port}
    for c in b["static_resources"]["clusters"]:
        if c["name"] in ports:
            ep = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ep["address"]["socket_address"]["port_value"] = ports[c["name"]]
    wasm_filter(b)["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = \
        str(ROOT / "dist" / "canary-router.wasm")
    envoy = envoys(b)
    users = [("/", {"x-user-id": f"e{i}"}) for i in range(500)]
    before = envoy.request_many(users)
    share = sum(r.served_by == "canary" for r in before) / len(before)
    assert 0.15 < share < 0.25
    control(canary, status=503)
    envoy.request_many(users)
    assert wait_for(lambda: receiver.events("tripped"), timeout=10)
    body = receiver.events("tripped")[0][1]["body"]
    assert body["node"] == "demo-proxy" and "Proxy: demo-proxy" in body["text"]
    assert "until the configuration changes" in body["text"]
    time.sleep(PROPAGATION)
    assert all(r.served_by == "stable" and r.status == 200 for r in envoy.request_many(users))


def test_rearm_stops_after_max_trips(envoys, backends, canary, receiver):
    """`on_trip: rearm`, `max_trips: 2`, a 2 s hold and a canary that never recovers: it trips,
    re-arms, trips a second time, and that trip is final: it stays off for good."""
    control(canary, status=503)
    hold = 2
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5, "on_trip": "rearm",
        "hold_seconds": hold, "max_trips": 2,
        "notify": {"cluster": "hooks", "path": "/hook"},
    }, receiver, weights=(50, 50))
    traffic = Traffic(envoy, connections=2)
    try:
        assert wait_for(lambda: len(receiver.events("tripped")) >= 2, 20)
        second_trip = receiver.events("tripped")[1][0]
        time.sleep(PROPAGATION + 5 * hold)
    finally:
        traffic.stop()
    events = [m["body"]["event"] for _, m in receiver.messages]
    assert events == ["tripped", "rearmed", "tripped"], events
    assert "until the configuration changes" in receiver.messages[-1][1]["body"]["text"]
    assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") == 2
    assert stat(envoy, "canary_router_guard_tripped", policy="reviews", variant="canary") == 1
    assert stat(envoy, "canary_router_weight", policy="reviews", variant="canary") == 0
    late = [t for t, _ in served_log(canary) if t > second_trip + PROPAGATION]
    assert not late, f"{len(late)} requests reached the canary after the final trip"


def test_aborted_canary_stays_off_for_good(envoys, backends, canary, receiver):
    """The default (`on_trip: abort`): a canary that fails forever is cut off once and no request
    reaches it afterwards, for ten seconds (five hold periods of the re-arming guard that used to
    bring it back every 2 s)."""
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 20, "max_failure_rate": 0.05,
        "notify": [{"cluster": "hooks", "path": "/hook"},
                   {"format": "generic", "cluster": "hooks", "path": "/generic"}],
    }, receiver)
    traffic = Traffic(envoy)
    try:
        time.sleep(1)
        flip, (tripped_at, trip), _ = break_canary_and_wait_for_trip(
            traffic, receiver, canary, 10, status=503)
    finally:
        traffic.stop()
    failures = [t for t, s in served_log(canary) if s == 503]
    after = [t for t in failures if t > tripped_at + PROPAGATION]
    assert not after, f"{len(after)} requests reached the canary after the cut"
    assert [m["body"]["event"] for _, m in receiver.messages if m["path"] == "/hook"] == ["tripped"]
    generic = next(m["body"] for _, m in receiver.messages if m["path"] == "/generic")
    assert generic["final"] is True and generic["on_trip"] == "abort"
    assert generic["figures"]["variant"]["failures"] >= 1
    assert len(generic["config_fingerprint"]) == 16
    assert stat(envoy, "canary_router_guard_tripped", policy="reviews", variant="canary") == 1
    assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") == 1
    write_report("abort", {
        "seconds_from_first_failure_to_trip_message": round(tripped_at - min(failures), 3),
        "failing_canary_requests_total": len(failures),
        "failing_canary_requests_after_cut_plus_propagation": len(after),
        "seconds_watched_after_trip": 10,
    })


def test_a_rising_ramp_stops_when_the_guard_trips(envoys, backends, canary, receiver):
    """A ramp rising every 2 s: once the guard trips the canary stays at 0 % and its weight gauge
    says so while the schedule would have raised it further."""
    import datetime
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    control(canary, status=503)
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 10, "max_failure_rate": 0.2,
        "notify": {"cluster": "hooks", "path": "/hook"},
    }, receiver, weights=(0, 100), ramp={
        "variant": "canary", "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "steps": [10, 20, 30, 40, 50, 60, 70, 80, 90], "step_seconds": 2,
    })
    traffic = Traffic(envoy, connections=2)
    try:
        assert wait_for(lambda: receiver.events("tripped"), 20)
        tripped_at = receiver.events("tripped")[0][0]
        time.sleep(PROPAGATION)
        gauges = []
        for _ in range(3):  # three more steps of the schedule
            time.sleep(2)
            gauges.append((stat(envoy, "canary_router_weight", policy="reviews",
                                variant="canary"),
                           stat(envoy, "canary_router_weight", policy="reviews",
                                variant="stable")))
    finally:
        traffic.stop()
    assert gauges == [(0, 10000)] * 3, gauges
    late = [t for t, _ in served_log(canary) if t > tripped_at + PROPAGATION]
    assert not late


def test_relative_limits_judge_the_canary_against_its_baseline(envoys, backends, canary,
                                                               receiver):
    """Envoy's fault filter fails a share of each variant's requests. Both at 8 % for a minute:
    a shared dependency failing, not the canary: no trip. The canary at 30 % against stable's
    8 %: it trips, on `failure_rate_increase`."""
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "window_seconds": 5, "min_requests": 50,
        "max_failure_rate_increase": 0.05,
        "notify": {"format": "generic", "cluster": "hooks", "path": "/hook"},
    }, receiver, weights=(50, 50), faults={"canary": "canary.abort", "stable": "stable.abort"})
    envoy.admin_post("/runtime_modify?canary.abort=8&stable.abort=8")
    traffic = Traffic(envoy)
    try:
        time.sleep(60)
        quiet = traffic.between(0)
        assert not receiver.messages, receiver.messages
        flip = time.time()
        envoy.admin_post("/runtime_modify?canary.abort=30")
        assert wait_for(lambda: receiver.events("tripped"), 20), "no trip"
        tripped_at, trip = receiver.events("tripped")[0]
    finally:
        traffic.stop()
    # The fault filter answers before a backend: the filter's own counters tell the variants.
    responses = {v: {c: stat(envoy, "canary_router_responses_total", policy="reviews",
                             variant=v, code_class=c, grpc_status="none") for c in ("2xx", "5xx")}
                 for v in ("canary", "stable")}
    body = trip["body"]
    assert body["cause"] == "failure_rate_increase"
    figures = body["figures"]
    assert figures["variant"]["failure_rate"] > figures["baseline"]["failure_rate"] + 0.05
    write_report("relative_limits", {
        "requests_in_the_quiet_minute": len(quiet),
        "responses_by_variant_at_the_end": responses,
        "seconds_from_switch_to_trip_message": round(tripped_at - flip, 3),
        "window_at_trip": figures,
    })
