"""Cost per request of hostile requests (issue 8): instructions per request under callgrind for
each request shape of tests/test_hostile.py, through native Envoy routing and through Canary
Router, so that the filter's own share (the difference) is visible and can be compared with an
ordinary request. Run by `scripts/bench.sh --hostile`; writes target/bench/hostile.json and the
"Hostile requests" section of BENCHMARKS.md, which the full run keeps (`--hostile --quick`:
target/bench-quick/ only).

Both Envoys raise Envoy's request limits (1 MiB of headers, 10 000 headers) so that the big
requests reach the filter; with Envoy's defaults they are refused with 431 before any filter runs
(tests/test_hostile.py).
"""
from __future__ import annotations

import copy
import json
import re
import sys
import time
from pathlib import Path

import configs as C
import procs as P

sys.path.insert(0, str(C.ROOT / "tests"))
# The configuration and request shapes of tests/test_hostile.py.
from hostile_inputs import HOSTILE_CONFIG, cookie_of, query_of  # noqa: E402

KIB = 1024


def shapes() -> list[dict]:
    """(name, description, header lines, query): every request also carries the Host."""
    malformed = (b'=;;=a; "x; session; ;\t;' * 400)[:8 * KIB]
    return [
        {"name": "typical", "what": "x-user-id: alice (the ordinary request)",
         "headers": [b"x-user-id: alice"], "query": ""},
        {"name": "cookie-64k", "what": "a 64 KiB cookie header, ~5 500 pairs, the sticky "
         "cookie last", "headers": [b"cookie: " + cookie_of(64 * KIB, "session=zed").encode()],
         "query": ""},
        {"name": "cookie-malformed", "what": "8 KiB of malformed cookie syntax",
         "headers": [b"cookie: " + malformed], "query": ""},
        {"name": "headers-3000", "what": "3 000 extra headers, the sticky key last",
         "headers": [f"x-h{i}: v".encode() for i in range(3000)] + [b"x-user-id: many"],
         "query": ""},
        {"name": "query-64k", "what": "a 64 KiB query string of broken escapes, the key last",
         "headers": [], "query": query_of(64 * KIB, "uid=q%71")},
        {"name": "regex-4k", "what": "a 4 096-byte value, the longest a regex is run on "
         "(src/regex.rs MAX_MATCH_INPUT), against the rule `(a+)+b`",
         "headers": [b"x-beta: " + b"a" * 4095 + b"c"], "query": ""},
        {"name": "regex-50k", "what": "a 50 000-character value against the rule `(a+)+b` "
         "(over 4 096 bytes: not run, no match)",
         "headers": [b"x-beta: " + b"a" * 50_000 + b"c"], "query": ""},
        {"name": "invalid-utf8", "what": "sticky key not UTF-8 (treated as absent: a cookie is "
         "minted)", "headers": [b"x-user-id: \xff\xfe\xfd"], "query": ""},
    ]


def raise_limits(bootstrap: dict) -> dict:
    """Both listeners (the front one and the upstream one it forwards to)."""
    b = copy.deepcopy(bootstrap)
    for listener in b["static_resources"]["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["max_request_headers_kb"] = 1024
        hcm["common_http_protocol_options"] = {"max_headers_count": 10000}
    return b


def configs() -> dict[str, C.BenchConfig]:
    native = next(c for c in C.all_configs([]) if c.name == "native")
    router = C.canary_router("canary-router-hostile", "the configuration of tests/test_hostile.py",
                             {"variant_header": "x-canary-variant", **HOSTILE_CONFIG})
    return {"native": native, "canary-router": router}


def curl(port: int, host: str, shape: dict, n: int, header_file: Path) -> None:
    """`n` requests of `shape` over one keep-alive connection; every answer must be 200 "ok"."""
    if n <= 0:
        return
    url = f"http://127.0.0.1:{port}/?{shape['query'] or 'k'}&n=[1-{n}]"
    r = P.run(["curl", "-s", "-w", "%{http_code}\n", "-H", f"Host: {host}", "-H", f"@{header_file}",
               url], timeout=900)
    ok = r.stdout.count("ok200\n")
    if r.returncode != 0 or ok != n:
        raise RuntimeError(f"curl {shape['name']}: {ok}/{n} answers were 200 ok "
                           f"(exit {r.returncode}): {r.stdout[:200]!r} {r.stderr[:200]!r}")


def measure(h, name: str, cfg: C.BenchConfig, shape: dict, n1: int, n2: int, warmup: int,
            log) -> dict:
    work = h.out / "hostile"
    work.mkdir(parents=True, exist_ok=True)
    header_file = work / f"{shape['name']}.headers"
    header_file.write_bytes(b"".join(line + b"\n" for line in shape["headers"]))
    tag = f"{name}-{shape['name']}"
    out = h.out / "callgrind" / f"{tag}.out"
    bootstrap = raise_limits(cfg.bootstrap(P.free_port(), P.free_port()))
    envoy = P.Envoy(tag, bootstrap, work, h.next_base_id(), callgrind_out=out)
    try:
        P.callgrind_control(["--instr=on"], envoy.pid)
        curl(envoy.port, cfg.host, shape, warmup, header_file)
        P.callgrind_dump(envoy)
        curl(envoy.port, cfg.host, shape, n1, header_file)
        f1 = P.callgrind_dump(envoy)
        curl(envoy.port, cfg.host, shape, n2, header_file)
        f2 = P.callgrind_dump(envoy)
        served = envoy.requests_served()
        envoy.alive_or_raise()
        envoy_log = envoy.log_path.read_text(errors="replace")
    finally:
        envoy.stop()
    if served != warmup + n1 + n2:
        raise RuntimeError(f"{tag}: Envoy served {served}, expected {warmup + n1 + n2}")
    if re.search(r"Function: proxy_on_\w+ failed|Uncaught|panicked", envoy_log):
        raise RuntimeError(f"{tag}: a Wasm VM failed:\n{P.tail(envoy.log_path)}")
    per = (P.callgrind_total(f2) - P.callgrind_total(f1)) / (n2 - n1)
    request_bytes = sum(len(l) + 2 for l in shape["headers"]) + len(shape["query"])
    log(f"  {tag:32} {per / 1000:9.1f} K instructions/request")
    return {"instructions_per_request": per, "request_bytes": request_bytes,
            "n1": n1, "n2": n2, "warmup": warmup}


def run(h, quick: bool, log) -> dict:
    n1, n2, warmup = (10, 40, 10) if quick else (50, 250, 50)
    cfgs = configs()
    for name, cfg in cfgs.items():
        P.validate(raise_limits(cfg.bootstrap(P.free_port(), P.free_port())),
                   h.out / "hostile" / f"validate-{name}.yaml", h.next_base_id())
    rows = []
    for shape in shapes():
        row = {"shape": shape["name"], "what": shape["what"]}
        for name, cfg in cfgs.items():
            row[name] = measure(h, name, cfg, shape, n1, n2, warmup, log)
        native = row["native"]["instructions_per_request"]
        ours = row["canary-router"]["instructions_per_request"]
        row["filter_instructions"] = ours - native
        rows.append(row)
    typical = rows[0]["filter_instructions"]
    for row in rows:
        row["filter_vs_typical"] = row["filter_instructions"] / typical if typical else None
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": quick,
            "rows": rows}


BEGIN, END = "<!-- hostile:begin -->", "<!-- hostile:end -->"


def markdown(results: dict) -> str:
    lines = [BEGIN, "## Hostile requests", "",
             f"`scripts/bench.sh --hostile` ({results['date']}): instructions per request under "
             "callgrind (the method above, one process, requests over one keep-alive connection) "
             "for the request shapes of `tests/test_hostile.py`, through native routing and "
             "through Canary Router with that test's configuration (sticky header, cookie and "
             "query keys, a `(a+)+b` regex rule, a cookie rule). Envoy's limits are raised to "
             "1 MiB of headers and 10 000 headers so that the requests reach the filter (with the "
             "defaults, 60 KiB and 100, Envoy answers 431 first). The filter's share is the "
             "difference.", "",
             "| request | bytes | native | canary-router | filter's share | per byte | × typical |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    num = lambda v, f: format(v, f).replace(",", " ")  # noqa: E731
    for r in results["rows"]:
        size = r["canary-router"]["request_bytes"]
        lines.append(f"| {r['what']} | {num(size, ',')} | "
                     f"{num(r['native']['instructions_per_request'] / 1000, ',.1f')} K | "
                     f"{num(r['canary-router']['instructions_per_request'] / 1000, ',.1f')} K | "
                     f"{num(r['filter_instructions'] / 1000, ',.1f')} K | "
                     f"{per_byte(r['filter_instructions'], size)} | {r['filter_vs_typical']:.1f} |")
    big = [r for r in results["rows"] if r["canary-router"]["request_bytes"] >= KIB]
    if big:
        ours = [r["filter_instructions"] / r["canary-router"]["request_bytes"] for r in big]
        envoys = [r["native"]["instructions_per_request"] / r["native"]["request_bytes"]
                  for r in big]
        lines += ["", f"For the large requests the filter's share is {min(ours):.0f} to "
                  f"{max(ours):.0f} instructions per byte of request, where Envoy's own handling "
                  f"of the same requests takes {min(envoys):.0f} to {max(envoys):.0f} per byte: "
                  "every parser and regex-lite do work linear in what they read, and a regex "
                  "runs on at most 4 096 bytes."]
    lines += ["", "Every request was answered 200 and no VM failed (the harness checks the "
              "served count and the log).", END]
    return "\n".join(lines) + "\n"


def per_byte(instructions: float, size: int) -> str:
    return f"{instructions / size:.0f}" if size >= KIB else "–"


def write_section(md_path: Path, results: dict) -> None:
    text = md_path.read_text() if md_path.exists() else ""
    section = markdown(results)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    md_path.write_text(text)


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None
