#!/usr/bin/env python3
"""The guard demo (scripts/demo.sh --trip): Envoy runs envoy-config/guard.yaml on :10000 with
backends on :8081 (stable) and :8082 (canary). This script receives the guard's webhook on
:8083, sends steady traffic from 400 users, makes the canary fail mid-run, and prints, second by
second, who served the requests, then the trip message, the stats, and that the canary stays
off once fixed (the guard aborts the rollout until the configuration changes)."""
import http.client
import json
import re
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
messages: list[tuple[float, dict]] = []


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        messages.append((time.time(), json.loads(body)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


replies: list[tuple[float, str | None, int]] = []
stop = threading.Event()


def users(worker: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", 10000, timeout=10)
    i = worker
    while not stop.is_set():
        conn.request("GET", "/", headers={"host": "reviews", "x-user-id": f"user-{i % 400}"})
        r = conn.getresponse()
        r.read()
        replies.append((time.time(), r.getheader("x-served-by"), r.status))
        i += 4
        time.sleep(0.004)


def canary(**params) -> None:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    urllib.request.urlopen(f"http://127.0.0.1:8082/__control?{query}", timeout=5).read()


def stats() -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", 9901)
    conn.request("GET", "/stats/prometheus")
    out = {}
    for line in conn.getresponse().read().decode().splitlines():
        m = re.match(r'(canary_router_\w+)\{(.*)\} (\S+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def show_stats() -> None:
    s = stats()
    for (name, labels), value in sorted(s.items()):
        if name.startswith("canary_router_guard") or name == "canary_router_weight" or (
                name == "canary_router_requests_total" and 'reason="guard"' in labels):
            print(f"   {name}{{{labels}}} {value:g}")


def table_row(second: int, start: float) -> None:
    rows = [r for r in replies if start + second <= r[0] < start + second + 1]
    served = Counter(r[1] for r in rows)
    failed = sum(1 for r in rows if r[2] >= 500)
    print(f"   {second:>4}s  {served['canary']:>6} {served['stable']:>6}  {failed:>8}")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 8083), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workers = [threading.Thread(target=users, args=(w,)) for w in range(4)]
    start = time.time()
    for w in workers:
        w.start()
    print("\n1. 400 users, canary 20 %, guard: > 5 % failures or p99 > 800 ms over 10 s trips it")
    print("   second  canary stable  failures")
    shown = 0

    def show_until(t: float) -> None:
        nonlocal shown
        while time.time() < t:
            time.sleep(0.05)
            while start + shown + 1 <= time.time():
                table_row(shown, start)
                shown += 1

    show_until(start + 3)
    flipped = time.time()
    canary(status=503)
    print(f"   -- the canary starts answering 503 at {flipped - start:.1f}s --")
    deadline = time.time() + 20
    while not any(m.get("event") == "tripped" for _, m in messages) and time.time() < deadline:
        show_until(time.time() + 0.2)
    show_until(start + shown + 3)
    trip = next(((t, m) for t, m in messages if m.get("event") == "tripped"), None)
    if trip is None:
        print("   no trip message arrived (see dist/demo-envoy.log)")
    else:
        t, m = trip
        failing = sum(1 for r in replies if r[1] == "canary" and r[2] >= 500)
        print(f"\n2. Tripped {t - flipped:.2f}s after the switch; {failing} user requests got the "
              f"failing canary's 503 in all. The webhook got:")
        print("   " + json.dumps(m, indent=None)[:600])
    print("\n3. Stats now (canary_router_guard_*, weights in force, requests sent to stable by "
          "the guard):")
    show_stats()
    canary(status=200)
    print("\n4. The canary is fixed, but the guard aborted the rollout (on_trip: abort): the canary "
          "stays off until the configuration changes (in a mesh: the revert in Git, applied by "
          "Flux, pushed by Istio; envoy-config/gitops/README.md)")
    print("   second  canary stable  failures")
    show_until(time.time() + 5)
    stop.set()
    for w in workers:
        w.join()
    print()
    show_stats()
    server.shutdown()


if __name__ == "__main__":
    main()
