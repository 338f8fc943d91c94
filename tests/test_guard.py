"""The guard in a real Envoy (--concurrency 2): a canary that starts failing (503) or turns slow
trips its guard within seconds, all its traffic goes to the baseline (sticky users included),
a local webhook receiver gets the Slack-style message, and after the hold the canary gets
traffic again. Below min_requests nothing trips; a healthy canary never trips.

The trip timings and the requests that reached the failing canary are printed (run with -s)
and written to target/guard-report.json for the notes."""
import copy
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import ROOT, Backend, bootstrap_for, control, prometheus_value, wait_for

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


def guard_proxy(envoys, backends, canary, guard: dict, receiver=None, weights=(20, 80)):
    plugin = {"policies": [{
        "name": "reviews",
        "variants": [{"name": "canary", "weight": weights[0]},
                     {"name": "stable", "weight": weights[1]}],
        "sticky": {"keys": [{"header": "x-user-id"}]},
        "guard": guard,
    }]}
    b = bootstrap_for(plugin, {"canary": canary, "stable": backends["stable"]},
                      ["canary", "stable"])
    b["node"] = {"id": NODE, "cluster": "front"}
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


def test_failing_canary_trips_notifies_and_resumes_after_hold(envoys, backends, canary, receiver):
    hold = 6
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "baseline": "stable", "window_seconds": 10, "min_requests": 20,
        "max_failure_rate": 0.05, "max_p99_ms": 2000, "hold_seconds": hold,
        "notify": {"cluster": "hooks", "path": "/hook/T0/B0", "authority": "hooks.test",
                   "headers": {"authorization": "Bearer s3cret"}},
    }, receiver)
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
        "max_failure_rate": 0.05, "max_p99_ms": 150, "hold_seconds": 300,
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
        "max_failure_rate": 0.05, "hold_seconds": 300,
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
        "max_failure_rate": 0.01, "max_p99_ms": 1000, "hold_seconds": 300,
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


def test_notify_failures_are_logged_and_counted(envoys, backends, canary):
    """A receiver that is down (a cluster with no listener behind it) or a cluster that does not
    exist: the trip still happens; the failure is logged and counted."""
    control(canary, status=503)
    dead = Receiver(status=500)
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5, "hold_seconds": 60,
        "notify": {"cluster": "hooks", "path": "/hook", "timeout_ms": 2000},
    }, dead, weights=(100, 0))
    envoy.request_many([("/", {"x-user-id": f"u{i}"}) for i in range(10)])
    assert wait_for(lambda: stat(envoy, "canary_router_guard_notify_failures_total",
                                 policy="reviews", variant="canary") >= 1, 10)
    assert dead.events("tripped")  # it arrived, but the receiver answered 500
    assert "guard notification failed: the receiver answered 500" in envoy.log()
    time.sleep(PROPAGATION)
    assert envoy.request("/", {"x-user-id": "x"}).served_by == "stable"
    dead.close()

    # A cluster that does not exist: Envoy refuses the call at once.
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5, "hold_seconds": 60,
        "notify": {"cluster": "no-such-cluster", "path": "/hook"},
    }, weights=(100, 0))
    envoy.request_many([("/", {"x-user-id": f"u{i}"}) for i in range(10)])
    assert wait_for(lambda: stat(envoy, "canary_router_guard_notify_failures_total",
                                 policy="reviews", variant="canary") == 1, 10)
    assert "cannot send to cluster no-such-cluster" in envoy.log()
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
    assert body["hold_seconds"] == 20
    time.sleep(PROPAGATION)
    assert all(r.served_by == "stable" and r.status == 200 for r in envoy.request_many(users))


def test_still_failing_after_the_hold_it_trips_again(envoys, backends, canary, receiver):
    control(canary, status=503)
    envoy = guard_proxy(envoys, backends, canary, {
        "variant": "canary", "min_requests": 5, "max_failure_rate": 0.5, "hold_seconds": 2,
        "notify": {"cluster": "hooks", "path": "/hook"},
    }, receiver, weights=(50, 50))
    traffic = Traffic(envoy, connections=2)
    try:
        assert wait_for(lambda: len(receiver.events("tripped")) >= 2, 20)
    finally:
        traffic.stop()
    events = [m["body"]["event"] for _, m in receiver.messages]
    assert events[:3] == ["tripped", "rearmed", "tripped"], events
    assert stat(envoy, "canary_router_guard_trips_total", policy="reviews", variant="canary") >= 2
