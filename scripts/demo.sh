#!/usr/bin/env bash
# The main job, end to end: set up, build the filter, start two backends (stable, canary) and
# Envoy with envoy-config/front-proxy.yaml, send traffic, print the observed split, stop.
#   scripts/demo.sh [USERS]     (default 2000 distinct users)
#   scripts/demo.sh --trip      the guard: envoy-config/guard.yaml, a canary that starts failing
#                               mid-run, the trip, the webhook message, the canary kept off
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
mode="split"
if [[ "${1:-}" == "--trip" ]]; then
  mode=trip
  shift
fi
users="${1:-2000}"
config=envoy-config/front-proxy.yaml
[[ $mode == trip ]] && config=envoy-config/guard.yaml

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for port in 8081 8082 8083 10000 9901; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; stop whatever listens there and retry" >&2; exit 1
  fi
done

log "backends: stable on :8081, canary on :8082"
"$VENV/bin/python" scripts/backend.py stable 8081 >/dev/null & pids+=($!)
"$VENV/bin/python" scripts/backend.py canary 8082 >/dev/null & pids+=($!)

log "envoy $("$(envoy_bin)" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1) with $config on :10000 (admin :9901)"
"$(envoy_bin)" -c "$config" --concurrency 2 --base-id 4242 -l warning \
  > "$ROOT/dist/demo-envoy.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do
  curl -sf -o /dev/null http://127.0.0.1:9901/ready && break
  sleep 0.05
done
curl -sf -o /dev/null http://127.0.0.1:9901/ready || { cat "$ROOT/dist/demo-envoy.log"; exit 1; }

if [[ $mode == trip ]]; then
  "$VENV/bin/python" scripts/demo_trip.py
  log "done; Envoy log in dist/demo-envoy.log"
  exit 0
fi

"$VENV/bin/python" - "$users" <<'PY'
import http.client, json, re, sys
from collections import Counter

users = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", 10000)

sent = 0

def get(path="/", **headers):
    global sent
    sent += 1
    conn.request("GET", path, headers={"host": "reviews", **headers})
    r = conn.getresponse()
    r.read()
    return r

print(f"\n1. Weighted, sticky by user: {users} users with x-user-id (config: canary 10 %, stable 90 %)")
for i in range(users):
    get(**{"x-user-id": f"user-{i}"})
print("   sent; the split is read from Envoy's stats at the end")

print("\n2. Sticky: user-7 asks 20 times")
seen = Counter(get(**{"x-user-id": "user-7"}).getheader("x-served-by") for _ in range(20))
print(f"   served by {dict(seen)}")

print("\n3. No key: the filter mints a sticky cookie; the browser sends it back")
first = get()
cookie = first.getheader("set-cookie")
print(f"   Set-Cookie: {cookie}")
cid = cookie.split(";")[0]
again = Counter(get(cookie=cid).getheader("x-served-by") for _ in range(10))
print(f"   first {first.getheader('x-served-by')}, then {dict(again)}")

print("\n4. Rules beat weights")
for label, kw in [("x-beta: true", {"x-beta": "true"}), ("cookie ab=never", {"cookie": "ab=never"}),
                  ("?variant=canary", None)]:
    r = get("/?variant=canary") if kw is None else get(**{"x-user-id": "user-3", **kw})
    print(f"   {label:18} -> {r.getheader('x-served-by')}")

print("\n5. A forged x-canary-variant is overwritten")
stable_user = next(f"user-{i}" for i in range(100)
                   if get(**{"x-user-id": f"user-{i}"}).getheader("x-served-by") == "stable")
r = get(**{"x-user-id": stable_user, "x-canary-variant": "canary"})
print(f"   {stable_user} sends x-canary-variant: canary -> served by {r.getheader('x-served-by')}")

import time

def scrape():
    admin = http.client.HTTPConnection("127.0.0.1", 9901)
    admin.request("GET", "/stats/prometheus")
    text = admin.getresponse().read().decode()
    requests, responses, reasons, ok = Counter(), Counter(), Counter(), Counter()
    for line in text.splitlines():
        m = re.match(r'(canary_router_\w+)\{(.*)\} (\S+)$', line)
        if not m:
            continue
        name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))
        if name == "canary_router_requests_total":
            requests[labels["variant"]] += value
            reasons[(labels["variant"], labels["reason"])] += value
        elif name == "canary_router_responses_total":
            responses[labels["variant"]] += value
            if labels["code_class"] not in ("5xx", "none") and labels["grpc_status"] in ("none", "OK"):
                ok[labels["variant"]] += value
    return text, requests, responses, reasons, ok

# The filter batches its counters and flushes them every second: wait until Envoy has them all.
deadline = time.monotonic() + 5
while True:
    text, requests, responses, reasons, ok = scrape()
    if sum(responses.values()) >= sent or time.monotonic() > deadline:
        break
    time.sleep(0.2)
total = sum(requests.values())
print("\n6. From Envoy's /stats/prometheus (canary_router_requests_total, canary_router_responses_total):")
print(f"   {'variant':8} {'requests':>9} {'share':>7} {'success':>8}   reasons")
for v in sorted(requests):
    why = ", ".join(f"{r} {int(n)}" for (var, r), n in sorted(reasons.items()) if var == v)
    rate = 100 * ok[v] / responses[v] if responses[v] else 0.0
    print(f"   {v:8} {int(requests[v]):9} {100 * requests[v] / total:6.1f}% {rate:7.1f}%   {why}")
for line in text.splitlines():
    if line.startswith("canary_router_weight{"):
        print(f"   {line}")
PY
log "done; Envoy log in dist/demo-envoy.log"
