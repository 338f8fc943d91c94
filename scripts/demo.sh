#!/usr/bin/env bash
# The main job, end to end: set up, build the filter, start two backends (stable, canary) and
# Envoy with envoy-config/front-proxy.yaml, send traffic, print the observed split, stop.
#   scripts/demo.sh [USERS]     (default 2000 distinct users)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
users="${1:-2000}"

"$ROOT/scripts/setup.sh"
"$ROOT/scripts/build.sh"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for port in 8081 8082 10000 9901; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; stop whatever listens there and retry" >&2; exit 1
  fi
done

log "backends: stable on :8081, canary on :8082"
"$VENV/bin/python" scripts/backend.py stable 8081 >/dev/null & pids+=($!)
"$VENV/bin/python" scripts/backend.py canary 8082 >/dev/null & pids+=($!)

log "envoy $("$(envoy_bin)" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1) with envoy-config/front-proxy.yaml on :10000 (admin :9901)"
"$(envoy_bin)" -c envoy-config/front-proxy.yaml --concurrency 2 --base-id 4242 -l warning \
  > "$ROOT/dist/demo-envoy.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do
  curl -sf -o /dev/null http://127.0.0.1:9901/ready && break
  sleep 0.05
done
curl -sf -o /dev/null http://127.0.0.1:9901/ready || { cat "$ROOT/dist/demo-envoy.log"; exit 1; }

"$VENV/bin/python" - "$users" <<'PY'
import http.client, json, re, sys
from collections import Counter

users = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", 10000)

def get(path="/", **headers):
    conn.request("GET", path, headers={"host": "reviews", **headers})
    r = conn.getresponse()
    r.read()
    return r

print(f"\n1. Weighted, sticky by user: {users} users with x-user-id (config: canary 10 %, stable 90 %)")
split = Counter(get(**{"x-user-id": f"user-{i}"}).getheader("x-served-by") for i in range(users))
for v in ("canary", "stable"):
    print(f"   {v:7} {split[v]:6}  {100 * split[v] / users:5.1f} %")

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

admin = http.client.HTTPConnection("127.0.0.1", 9901)
admin.request("GET", "/stats?filter=cluster\\.(stable|canary)\\.upstream_rq_2xx$")
print("\n6. Envoy's own counters (admin /stats):")
for line in admin.getresponse().read().decode().splitlines():
    print(f"   {line}")
PY
log "done; Envoy log in dist/demo-envoy.log"
