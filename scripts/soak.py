#!/usr/bin/env python3
"""The soak run (scripts/soak.sh [MINUTES]): one Envoy (--concurrency 2) with the filter's
typical configuration (sticky header key, cookie minting, three rules, stats and the access-log
filter state on) in front of a direct_response upstream in the same Envoy; wrk at saturation for
MINUTES with requests that carry no sticky key, so every request mints a cookie.

Afterwards it checks, and prints: zero non-2xx responses and socket errors, no Wasm VM failure
(log and stats), Envoy RSS and the filter's VM memory flat between warm-up and the end, and
the filter's counters equal to the requests Envoy served."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))

import configs as C  # noqa: E402
import procs as P  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "target" / "soak"
CONNECTIONS = 32


def log(msg: str) -> None:
    print(f"\033[1m--> {msg}\033[0m", file=sys.stderr, flush=True)


def wrk(port: int, seconds: int) -> dict:
    """wrk at saturation, no sticky key (every request mints a cookie)."""
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "-H", f"Host: {C.host_for(0)}",
           f"http://127.0.0.1:{port}/"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed: {r.stdout}{r.stderr}")
    out = r.stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def point(envoy: P.Envoy) -> dict:
    """RSS and the VM memory gauge (set on the filter's 10 s tick: read after 11 s)."""
    time.sleep(11)
    return {"rss_kib": envoy.rss_kib(), "vm_memory_bytes": envoy.vm_memory_bytes(),
            "served": envoy.requests_served()}


def filter_counts(envoy: P.Envoy) -> dict:
    _, text = envoy.admin_get("/stats/prometheus")
    sums: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(canary_router_\w+_total)\{(.*)\} (\S+)$", text, re.M):
        key = name + ("[minted]" if 'reason="minted_cookie"' in labels else "")
        sums[key] = sums.get(key, 0) + float(value)
        if key != name:
            sums[name] = sums.get(name, 0) + float(value)
    return sums


def main() -> int:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    front, upstream = P.free_port(), P.free_port()
    config = {**C.TYPICAL, "filter_state": True}
    bootstrap = C.bootstrap(front, upstream, C.HEADER_ROUTES,
                            [C.wasm_filter("canary-router", C.WASM, json.dumps(config))])
    bootstrap["stats_flush_interval"] = "5s"
    OUT.mkdir(parents=True, exist_ok=True)
    P.validate(bootstrap, OUT / "validate.yaml", 4600)
    envoy = P.Envoy("soak", bootstrap, OUT, 4610, concurrency=2)
    try:
        log(f"warm-up: wrk 20 s, {CONNECTIONS} connections, no sticky key (cookie minting)")
        warm = wrk(envoy.port, 20)
        before = point(envoy)
        log(f"after warm-up: RSS {before['rss_kib']} KiB, VM memory {before['vm_memory_bytes']} bytes")
        log(f"soak: wrk {minutes:g} min")
        soak = wrk(envoy.port, int(minutes * 60))
        after = point(envoy)
        counts = filter_counts(envoy)
        wasm_stats = {k: v for k, v in envoy.stats("wasm").items()}
        envoy.alive_or_raise()
    finally:
        envoy.stop()
    text = envoy.log_path.read_text(errors="replace")
    failures = [l for l in text.splitlines()
                if re.search(r"wasm.*(fail|crash|unreachable|RuntimeError|trap)", l, re.I)]
    served = after["served"]
    sent = warm["requests"] + soak["requests"]
    report = {"minutes": minutes, "warm_up": warm, "soak": soak, "before": before,
              "after": after, "filter_counters": counts, "wasm_stats": wasm_stats,
              "wasm_failure_log_lines": failures[:20]}
    (OUT / "report.json").write_text(json.dumps(report, indent=2))
    checks = [
        ("no non-2xx response", warm["non_2xx"] + soak["non_2xx"] == 0,
         f"{warm['non_2xx'] + soak['non_2xx']}"),
        ("no socket error", warm["socket_errors"] + soak["socket_errors"] == 0,
         f"{warm['socket_errors'] + soak['socket_errors']}"),
        ("no Wasm VM failure in the log", not failures, f"{len(failures)} lines"),
        ("no Wasm VM failure in the stats",
         not any(v for k, v in wasm_stats.items() if re.search(r"fail|crash", k)),
         ", ".join(f"{k}={v:g}" for k, v in wasm_stats.items() if re.search(r"fail|crash|active|created", k))),
        ("VM memory flat after warm-up", before["vm_memory_bytes"] == after["vm_memory_bytes"],
         f"{before['vm_memory_bytes']} -> {after['vm_memory_bytes']} bytes"),
        ("Envoy RSS flat after warm-up (within 2 %)",
         after["rss_kib"] <= before["rss_kib"] * 1.02,
         f"{before['rss_kib']} -> {after['rss_kib']} KiB"),
        ("requests counted = requests served",
         counts.get("canary_router_requests_total") == served,
         f"{counts.get('canary_router_requests_total', 0):.0f} counted, {served} served, {sent} sent by wrk"),
        ("every request minted a cookie",
         counts.get("canary_router_requests_total[minted]") == served,
         f"{counts.get('canary_router_requests_total[minted]', 0):.0f}"),
        ("responses counted = requests served",
         counts.get("canary_router_responses_total") == served,
         f"{counts.get('canary_router_responses_total', 0):.0f}"),
    ]
    print(f"\nsoak: {minutes:g} min, {soak['requests']} requests ({soak['rps']:.0f}/s) after "
          f"{warm['requests']} warm-up requests")
    ok = True
    for name, passed, detail in checks:
        ok &= passed
        print(f"  {'ok  ' if passed else 'FAIL'} {name}: {detail}")
    print(f"report: {OUT / 'report.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
