#!/usr/bin/env python3
"""The benchmark harness (issue 6): cost per request of Canary Router against native Envoy
routing, Envoy's weighted clusters, an empty proxy-wasm filter and a Lua peer; scaling with
policies and rules; size and memory; the core's micro-benchmark.

    scripts/bench.sh            full run: writes BENCHMARKS.md, BENCHMARKS.svg, target/bench/
    scripts/bench.sh --quick    smoke run (< 3 min): writes only under target/bench-quick/

Run through scripts/bench.sh, which installs the tools and builds both .wasm files first.
`--hostile` (not part of a normal run) measures the hostile request shapes of
tests/test_hostile.py (scripts/bench/hostile.py). `--agreement CONFIG` (not part of a normal
run) measures CONFIG's instructions per request with both callgrind methods (two processes vs.
one process with dumps) and prints the agreement. `--report` rewrites BENCHMARKS.md from the last
full run's target/bench/results.json without measuring (after a change to the report only).
"""
from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import configs as C  # noqa: E402
import hostile  # noqa: E402
import procs as P  # noqa: E402
import report  # noqa: E402
import units as U  # noqa: E402

ROOT = C.ROOT
# Where every Envoy the benchmark starts finds the native module.
os.environ.setdefault("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", str(C.NATIVE_MODULE.parent))
BASE_ID = 61000  # tests use (pid % 5000) * 10 + k, the demo 4242

MODES = {
    "full": {
        "callgrind": None,  # every configuration
        "cg_warmup": 300, "cg_n1": 500, "cg_n2": 2500, "cg_pairs": 2,
        "warmup": 1000, "mem_requests": 100_000,
        # Short rounds, many of them: the median resists the bursts of a shared VM better.
        "rounds": 10, "seconds": 5.0,
        "final_memory": True,
        "micro": [],
    },
    "quick": {
        "callgrind": ["native", "floor", "canary-router", "no-response-metrics", "native-floor",
                      "native-module"],
        "cg_warmup": 50, "cg_n1": 50, "cg_n2": 250, "cg_pairs": 1,
        "warmup": 200, "mem_requests": 10_000,
        "rounds": 1, "seconds": 2.0,
        "final_memory": False,
        "micro": ["--quick"],
    },
}
POLICY_COUNTS = [1, 10, 100, 1000]
# Throughput rounds: the comparison set and the two scaling extremes.
WRK_CONFIGS = ["native", "native-weighted", "empty-wasm", "lua-peer", "canary-router", "native-module",
               "policies-1000", "rules-50"]
WRK_CONNECTIONS = 8
VM_TICK_WAIT = 11  # the filter sets its memory gauge on its 10 s tick


def log(msg: str) -> None:
    print(f"\033[1m--> {msg}\033[0m", file=sys.stderr, flush=True)


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    envoy_version = sh([P.envoy_binary(), "--version"])
    m = re.search(r"version: [0-9a-f]+/(\S+)", envoy_version)
    commit = sh(["git", "rev-parse", "--short", "HEAD"])
    dirty = bool(sh(["git", "status", "--porcelain", "--untracked-files=no"]))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "envoy": m.group(1) if m else envoy_version,
        "rustc": sh(["rustc", "--version"]),
        "valgrind": sh(["valgrind", "--version"]),
        "wrk": sh(["wrk", "-v"]).split(" [")[0] if sh(["wrk", "-v"]) else "",
        "commit": commit + ("-dirty" if dirty else ""),
        "loadavg_start": os.getloadavg()[0],
    }


class Harness:
    def __init__(self, mode: str, out: Path):
        self.mode = mode
        self.m = MODES[mode]
        self.out = out
        self.work = out / "envoy"
        self.configs = {c.name: c for c in C.all_configs(POLICY_COUNTS)}
        self.base_id = BASE_ID
        self.unit_functions: dict | None = None  # set by cost_units
        # Pin Envoy (one worker) and wrk to different cores when there are at least two.
        two = (os.cpu_count() or 1) >= 2 and P.run(["taskset", "-c", "1", "true"], 10).returncode == 0
        self.envoy_cpu, self.wrk_cpu = (0, 1) if two else (None, None)

    def next_base_id(self) -> int:
        self.base_id += 1
        return self.base_id

    def bootstrap(self, name: str) -> dict:
        return self.configs[name].bootstrap(P.free_port(), P.free_port())

    # --- 0. every configuration passes envoy --mode validate --------------------------------

    def validate_all(self) -> None:
        log(f"envoy --mode validate: {len(self.configs)} configurations")
        jobs = [(name, self.bootstrap(name), self.next_base_id()) for name in self.configs]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda j: P.validate(j[1], self.work / "validate" / f"{j[0]}.yaml", j[2]),
                          jobs))

    # --- 1. instructions per request (callgrind) --------------------------------------------

    def check_routing(self, envoy: P.Envoy, name: str) -> list[dict]:
        """Each (user, cluster) check: one request, and that cluster's counter must move."""
        results = []
        for user, cluster in self.configs[name].checks:
            before = envoy.counter(f"cluster.{cluster}.upstream_rq_total")
            status = P.request_once(envoy.port, self.configs[name].host, user)
            after = envoy.counter(f"cluster.{cluster}.upstream_rq_total")
            ok = status == 200 and after == before + 1
            results.append({"user": user, "expected_cluster": cluster, "ok": ok})
            if not ok:
                raise RuntimeError(f"{name}: a request as {user} did not reach cluster {cluster} "
                                   f"(status {status}); the route was not re-selected?\n"
                                   f"{envoy.log_tail()}")
        return results

    def callgrind_one(self, name: str, n1: int, n2: int, warmup: int, pairs: int = 1,
                      tag: str = "") -> dict:
        """One Envoy under callgrind (instrumentation on once it is ready): `warmup` requests,
        then `pairs` times (n1 requests, dump, n2 requests, dump). Each pair gives
        (I(n2) - I(n1)) / (n2 - n1); the result is their mean."""
        cfg = self.configs[name]
        out = self.out / "callgrind" / f"{name}{tag}.out"
        t0 = time.monotonic()
        envoy = P.Envoy(name + tag, self.bootstrap(name), self.work / "callgrind",
                        self.next_base_id(), callgrind_out=out)
        estimates, files, seconds_n2 = [], [], 0.0
        try:
            started = time.monotonic() - t0
            P.callgrind_control(["--instr=on"], envoy.pid)
            P.curl_requests(envoy.port, cfg.host, warmup)
            P.callgrind_dump(envoy)                       # startup + warm-up: not used
            for _ in range(pairs):
                P.curl_requests(envoy.port, cfg.host, n1)
                f1 = P.callgrind_dump(envoy)
                t1 = time.monotonic()
                P.curl_requests(envoy.port, cfg.host, n2)
                f2 = P.callgrind_dump(envoy)
                seconds_n2 = time.monotonic() - t1
                i1, i2 = P.callgrind_total(f1), P.callgrind_total(f2)
                estimates.append({"n1": n1, "n2": n2, "instructions_n1": i1,
                                  "instructions_n2": i2, "per_request": (i2 - i1) / (n2 - n1)})
                files += [str(f1.relative_to(ROOT)), str(f2.relative_to(ROOT))]
            served = envoy.requests_served()
            clusters = {c: envoy.counter(f"cluster.{c}.upstream_rq_total")
                        for c in ("stable", "canary")}
            checks = self.check_routing(envoy, name)
            envoy.alive_or_raise()
        finally:
            envoy.stop()
        expected = warmup + pairs * (n1 + n2)
        if served != expected:
            raise RuntimeError(f"{name}: Envoy served {served} requests, expected {expected}")
        per_request = statistics.mean(e["per_request"] for e in estimates)
        spread = (max(e["per_request"] for e in estimates)
                  - min(e["per_request"] for e in estimates)) / per_request
        log(f"  {name + tag:16} {per_request / 1000:8.1f} K instructions/request"
            + (f" (pairs differ by {100 * spread:.2f} %)" if pairs > 1 else "")
            + f"; start {started:.0f} s, {n2} requests in {seconds_n2:.0f} s")
        return {"instructions_per_request": per_request, "estimates": estimates,
                "pair_spread_pct": 100 * spread, "warmup": warmup, "files": files,
                "clusters": clusters, "checks": checks, "start_seconds": round(started, 1),
                "seconds_n2": round(seconds_n2, 1)}

    def callgrind_all(self) -> dict:
        names = self.m["callgrind"] or list(self.configs)
        log(f"callgrind: instructions per request, requests {self.m['cg_n2']} - {self.m['cg_n1']} "
            f"over one keep-alive connection, one configuration at a time")
        results = {}
        for name in names:
            results[name] = self.callgrind_one(name, self.m["cg_n1"], self.m["cg_n2"],
                                               self.m["cg_warmup"], self.m["cg_pairs"])
        self.cost_units(results)
        if self.mode == "full":
            # Repeatability across processes: native again, at the end of the callgrind phase.
            again = self.callgrind_one("native", self.m["cg_n1"], self.m["cg_n2"],
                                       self.m["cg_warmup"], self.m["cg_pairs"], tag="-repeat")
            results["native"]["repeat"] = again["instructions_per_request"]
        return results

    def cost_units(self, results: dict) -> None:
        """Callbacks, host calls and buffers per request of each configuration, and the price of
        each unit, from its last pair of dumps (scripts/bench/units.py). The functions that
        count them are found once, in the profile of a configuration whose module reads a
        buffer, and then counted in every profile (native's counts are zero)."""
        binary = Path(P.envoy_binary())
        loc, why = None, "no configuration under callgrind returned a buffer"
        for name in ("canary-router", *results):
            if name not in results or not self.configs[name].wasm:
                continue
            try:
                loc = U.locate(binary, U.parse(ROOT / results[name]["files"][-1]))
                break
            except (LookupError, ValueError, OSError) as e:
                why = f"{name}: {e}"
        if loc is None:
            log(f"cost units: not counted ({why})")
            return
        log("cost units per request (callbacks in, host calls out, buffers returned):")
        for name, res in results.items():
            f1, f2 = (ROOT / f for f in res["files"][-2:])
            e = res["estimates"][-1]
            res["units"] = U.units(f1, f2, e["n2"] - e["n1"], loc)
            u = res["units"]
            log(f"  {name:20} {u['callbacks']:5.2f} {u['host_calls']:5.2f} {u['buffers']:5.2f}")
        self.unit_functions = {k: v for k, v in loc.items() if k != "binary_end"}

    # --- 2 and 3. throughput, latency and memory (all Envoys up front, wrk interleaved) ------

    def memory_point(self, envoys: dict[str, P.Envoy], label: str) -> dict:
        point = {}
        for name, e in envoys.items():
            e.alive_or_raise()
            point[name] = {"requests": e.requests_served(), "rss_kib": e.rss_kib(),
                           "vm_memory_bytes": e.vm_memory_bytes() if self.configs[name].wasm
                           else None}
        log(f"  memory {label}: " + ", ".join(
            f"{n} {p['rss_kib'] / 1024:.1f} MiB" for n, p in point.items()))
        return point

    def drive(self, e: P.Envoy, name: str, target: int) -> None:
        """wrk until Envoy has served `target` requests (scripts/bench/drive.lua stops sending
        at the count; wrk is stopped as soon as Envoy has served them)."""
        need = target - e.requests_served()
        if need <= 0:
            return
        w = P.wrk_background(e.port, self.configs[name].host, need, WRK_CONNECTIONS, self.wrk_cpu)
        try:
            deadline = time.monotonic() + 900
            while e.requests_served() < target:
                if w.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: wrk ended before Envoy served {target} requests "
                                       f"({e.requests_served()})\n{e.log_tail()}")
                time.sleep(0.1)
        finally:
            P.stop(w)
        status = e.counter("http.front.downstream_rq_2xx")
        if status < e.requests_served() - 10:
            raise RuntimeError(f"{name}: only {status} of {e.requests_served()} answers were 2xx")

    def load_phase(self) -> tuple[dict, dict]:
        names = WRK_CONFIGS
        log(f"wrk: starting {len(names)} Envoys (pinned to cpu {self.envoy_cpu}, wrk on cpu "
            f"{self.wrk_cpu})")
        envoys: dict[str, P.Envoy] = {}
        try:
            self.start_warm(names, envoys)
            log(f"memory: warm-up done ({self.m['warmup']} requests each); waiting {VM_TICK_WAIT} s "
                f"for the filter's 10 s tick")
            time.sleep(VM_TICK_WAIT)
            memory = {"after_warmup": self.memory_point(envoys, "after warm-up")}
            decisions = {n: self.decisions(e) for n, e in envoys.items() if self.configs[n].router}
            for n, d in decisions.items():
                # Warm-up requests (alice) plus the routing check's alice: stable by sticky key.
                if d.get("stable/sticky_key") != self.m["warmup"] + 1:
                    log(f"  warning: {n}: decisions after warm-up {d}, expected "
                        f"stable/sticky_key {self.m['warmup'] + 1}")
            target = self.m["mem_requests"] + self.m["warmup"]
            log(f"memory: driving each Envoy to {target} requests")
            for name, e in envoys.items():
                self.drive(e, name, target)
            time.sleep(VM_TICK_WAIT)
            memory["after_requests"] = self.memory_point(envoys, f"after {target} requests")

            runs = self.wrk_rounds(envoys, names, self.m["rounds"])
            if self.m["final_memory"]:
                time.sleep(VM_TICK_WAIT)
                memory["after_rounds"] = self.memory_point(envoys, "after the wrk rounds")
            clusters = self.cluster_counts(envoys)
        finally:
            for e in envoys.values():
                e.stop()

        throughput = summarize_rounds(runs, clusters)
        memory["decisions_after_warmup"] = decisions
        return throughput, memory

    def wrk_rounds(self, envoys: dict[str, P.Envoy], names: list[str],
                   rounds: int) -> dict[str, list[dict]]:
        """`rounds` rounds of wrk, each running every configuration once in turn (A B C … A B C …),
        so that each round's ratio to native compares Envoys measured under the same load."""
        log(f"wrk: {rounds} round(s) x {len(names)} configurations x {self.m['seconds']:.0f} s, "
            f"interleaved, -t1 -c{WRK_CONNECTIONS}")
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for r in range(rounds):
            for name in names:
                e = envoys[name]
                cpu, served = e.cpu_seconds(), e.requests_served()
                res = P.wrk(e.port, self.configs[name].host, self.m["seconds"],
                            WRK_CONNECTIONS, self.wrk_cpu)
                e.alive_or_raise()
                # Envoy's CPU time per request served: what the other loads of a shared
                # machine take from a round's wall clock, they do not add to it.
                res["cpu_us_per_request"] = (1e6 * (e.cpu_seconds() - cpu)
                                             / max(1, e.requests_served() - served))
                if res["errors"]:
                    raise RuntimeError(f"{name}: wrk saw {res['errors']} errors\n{e.log_tail()}")
                runs[name].append(res)
            log(f"  round {r + 1}: " + ", ".join(
                f"{n} {runs[n][-1]['rps']:.0f}" for n in names) + " req/s")
        return runs

    def start_warm(self, names: list[str], envoys: dict[str, P.Envoy]) -> None:
        """One Envoy per configuration, pinned to the Envoy cpu, into `envoys` (the caller stops
        them, including those started before a failure); each one's routing checked, then
        warmed up."""
        for name in names:
            envoys[name] = P.Envoy(name, self.bootstrap(name), self.work / "load",
                                   self.next_base_id(), cpu=self.envoy_cpu)
        for name, e in envoys.items():
            self.check_routing(e, name)
            P.curl_requests(e.port, self.configs[name].host, self.m["warmup"])

    @staticmethod
    def cluster_counts(envoys: dict[str, P.Envoy]) -> dict[str, dict[str, int]]:
        """Requests each Envoy sent to each cluster."""
        return {n: {c: e.counter(f"cluster.{c}.upstream_rq_total") for c in ("stable", "canary")}
                for n, e in envoys.items()}

    def throughput_only(self, rounds: int) -> dict:
        """The load phase's wrk rounds alone (no memory run): `--throughput`, to see how well
        two runs agree."""
        names = WRK_CONFIGS
        envoys: dict[str, P.Envoy] = {}
        try:
            self.start_warm(names, envoys)
            runs = self.wrk_rounds(envoys, names, rounds)
            clusters = self.cluster_counts(envoys)
        finally:
            for e in envoys.values():
                e.stop()
        return summarize_rounds(runs, clusters)

    @staticmethod
    def decisions(e: P.Envoy) -> dict[str, int]:
        """canary_router_requests_total by variant/reason (the filter's own count)."""
        out: dict[str, int] = {}
        for k, v in e.stats("canary_router_requests_total").items():
            # The Wasm filter's tagged names, or the native module's labelled ones
            # (`….variant.canary.reason.rule`).
            variant = re.search(r"variant=\.=(.*?);\.;|\.variant\.([^.]+)", k)
            reason = re.search(r"reason=\.=(.*?);\.;|\.reason\.([^.]+)", k)
            if variant and reason and v:
                key = f"{variant.group(1) or variant.group(2)}/{reason.group(1) or reason.group(2)}"
                out[key] = out.get(key, 0) + int(v)
        return out

    # --- 4. the core's micro-benchmark ------------------------------------------------------

    def micro(self) -> list[dict]:
        log("cargo bench --bench decide" + (" -- --quick" if self.m["micro"] else ""))
        r = P.run(["cargo", "bench", "-q", "--bench", "decide", "--", *self.m["micro"]],
                  timeout=900, cwd=ROOT)
        if r.returncode != 0:
            raise RuntimeError(f"cargo bench failed:\n{r.stdout}\n{r.stderr[-3000:]}")
        rows = [json.loads(line[len("BENCH "):]) for line in r.stdout.splitlines()
                if line.startswith("BENCH ")]
        for row in rows:
            log(f"  {row['name']:14} {row['ns_per_decision']:8.1f} ns/decision")
        return rows

    # --- sizes ------------------------------------------------------------------------------

    @staticmethod
    def sizes() -> dict:
        return {"canary-router": C.WASM.stat().st_size, "empty-wasm": C.EMPTY_WASM.stat().st_size,
                "floor": C.FLOOR_WASM.stat().st_size}


def summarize_rounds(runs: dict[str, list[dict]], clusters: dict[str, dict]) -> dict:
    """Per configuration: each round's req/s divided by the same round's native req/s, and the
    median of those ratios. Rounds move together (the machine's load moves every Envoy of a
    round), so the per-round ratio cancels most of the swing that raw req/s show."""
    throughput = {}
    for name, rounds in runs.items():
        ratios = [rounds[i]["rps"] / runs["native"][i]["rps"] for i in range(len(rounds))]
        throughput[name] = {
            "rounds": rounds,
            "ratios": ratios,
            "rps_median": statistics.median(x["rps"] for x in rounds),
            "p50_ms_median": statistics.median(x["p50_ms"] for x in rounds),
            "p99_ms_median": statistics.median(x["p99_ms"] for x in rounds),
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "clusters": clusters[name],
        }
        cpu = [rounds[i].get("cpu_us_per_request") for i in range(len(rounds))]
        native_cpu = [x.get("cpu_us_per_request") for x in runs["native"]]
        if all(cpu) and all(native_cpu):
            # Capacity against native: native's CPU time per request over this one's, per round.
            cpu_ratios = [n / c for n, c in zip(native_cpu, cpu)]
            throughput[name] |= {
                "cpu_us_per_request_median": statistics.median(cpu),
                "cpu_ratios": cpu_ratios,
                "cpu_ratio_median": statistics.median(cpu_ratios),
                "cpu_ratio_min": min(cpu_ratios),
                "cpu_ratio_max": max(cpu_ratios),
            }
    return throughput


def run_bench(mode: str, out: Path, docs: Path) -> dict:
    h = Harness(mode, out)
    started = time.monotonic()
    results: dict = {"mode": mode, "machine": machine(), "settings": {
        k: v for k, v in h.m.items() if k != "micro"} | {
        "wrk_connections": WRK_CONNECTIONS, "wrk_threads": 1, "wrk_configs": WRK_CONFIGS,
        "policy_counts": POLICY_COUNTS, "user": C.USER, "user_variant": C.USER_VARIANT,
        "envoy_cpu": h.envoy_cpu, "wrk_cpu": h.wrk_cpu},
        "configs": {n: {"description": c.description, "group": c.group, "host": c.host,
                        "policies": c.policies, "wasm": c.wasm} for n, c in h.configs.items()},
        "results_path": str((out / "results.json").relative_to(ROOT)),
        "callgrind_dir": str((out / "callgrind").relative_to(ROOT))}
    # The last two `--throughput` runs: how well two runs of the wrk rounds agree.
    results["throughput_runs"] = []
    for f in sorted((ROOT / "target" / "bench-throughput").glob("run-*.json"))[-2:]:
        run = json.loads(f.read_text())
        tp = run.pop("throughput")
        run["ratios"] = {n: t["ratios"] for n, t in tp.items()}
        run["cpu_ratios"] = {n: t.get("cpu_ratios") for n, t in tp.items()}
        results["throughput_runs"].append(run)
    agreement_file = ROOT / "target" / "bench" / "agreement.json"
    if agreement_file.exists():
        results["agreement"] = json.loads(agreement_file.read_text())
    results["wasm_bytes"] = h.sizes()
    load = results["machine"]["loadavg"] = {}  # 1-minute load average when each phase starts
    load["validate"] = os.getloadavg()[0]
    h.validate_all()
    load["callgrind"] = os.getloadavg()[0]
    results["callgrind"] = h.callgrind_all()
    results["unit_functions"] = h.unit_functions
    load["wrk"] = os.getloadavg()[0]
    results["throughput"], results["memory"] = h.load_phase()
    load["micro"] = os.getloadavg()[0]
    results["micro"] = h.micro()
    load["end"] = os.getloadavg()[0]
    results["machine"]["loadavg_end"] = load["end"]
    results["seconds"] = round(time.monotonic() - started)

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, out, docs)
    log(f"wrote {out / 'results.json'}, {docs / 'BENCHMARKS.md'}, {docs / 'BENCHMARKS.svg'} "
        f"({results['seconds']} s)")
    return results


def write_report(results: dict, out: Path, docs: Path) -> None:
    """BENCHMARKS.md and its chart in `docs` from a run's results (`out` holds its files)."""
    docs.mkdir(parents=True, exist_ok=True)
    # Hand-written sections (one-off measurements) between the kept markers survive the rewrite.
    md = docs / "BENCHMARKS.md"
    hand_written = re.findall(r"<!-- kept:begin -->.*?<!-- kept:end -->\n", md.read_text(), re.S) \
        if md.exists() else []
    report.write(results, md, docs / "BENCHMARKS.svg")
    if hand_written:
        md.write_text(md.read_text().rstrip("\n") + "\n\n" + "\n".join(hand_written))
    # The hostile-request figures come from their own run (--hostile); keep them.
    kept = hostile.load(out / "hostile.json")
    if kept is not None:
        hostile.write_section(docs / "BENCHMARKS.md", kept)


def agreement(name: str, out: Path, n1: int, n2: int, settle: float) -> None:
    """Two-process method (ENVOY-NOTES: full instrumentation, one process per request count,
    totals at exit) against the harness's one-process method (dumps), on one configuration."""
    h = Harness("full", out)
    totals = {}
    for n in (n1, n2):
        f = out / "callgrind" / f"{name}-two-process-{n}.out"
        log(f"two-process: {name}, {n} requests (valgrind from the start; slow)")
        envoy = P.Envoy(f"{name}-{n}", h.bootstrap(name), h.work / "agreement", h.next_base_id(),
                        callgrind_out=f, instr_at_start=True)
        time.sleep(settle)
        P.curl_requests(envoy.port, h.configs[name].host, n)
        envoy.stop()
        totals[n] = P.callgrind_total(f)
    two = (totals[n2] - totals[n1]) / (n2 - n1)
    log(f"one-process: {name}")
    one = h.callgrind_one(name, n1, n2, 300, 1, tag="-one-process")["instructions_per_request"]
    result = {"config": name, "n1": n1, "n2": n2, "settle_seconds": settle,
              "two_process": two, "one_process": one,
              "difference_pct": 100 * (one - two) / two,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    # Appended to target/bench/agreement.json; the full run's BENCHMARKS.md quotes every entry.
    dest = ROOT / "target" / "bench" / "agreement.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(dest.read_text()) if dest.exists() else []
    dest.write_text(json.dumps(previous + [result], indent=2) + "\n")
    print(json.dumps(result, indent=2))


def run_hostile(quick: bool) -> None:
    """Instructions per request of the hostile request shapes (scripts/bench/hostile.py)."""
    out = ROOT / "target" / ("bench-quick" if quick else "bench")
    h = Harness("quick" if quick else "full", out)
    log("hostile requests: instructions per request, native and canary-router, per shape")
    results = hostile.run(h, quick, log)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hostile.json").write_text(json.dumps(results, indent=2) + "\n")
    md = out / "BENCHMARKS.md" if quick else ROOT / "BENCHMARKS.md"
    hostile.write_section(md, results)
    log(f"wrote {out / 'hostile.json'} and the hostile section of {md}")


def run_throughput(rounds: int) -> None:
    """The wrk rounds alone, with the full run's settings; each run is kept in
    target/bench-throughput/ and compared with the previous one: how far the median per-round
    ratios of two runs lie apart is what the full run's round count has to keep under 5 %."""
    out = ROOT / "target" / "bench-throughput"
    h = Harness("full", out)
    started = time.monotonic()
    tp = h.throughput_only(rounds)
    run = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "rounds": rounds, "seconds": h.m["seconds"], "loadavg_end": os.getloadavg()[0],
           "wall_seconds": round(time.monotonic() - started),
           "ratio_median": {n: t["ratio_median"] for n, t in tp.items()},
           "cpu_ratio_median": {n: t.get("cpu_ratio_median") for n, t in tp.items()},
           "throughput": tp}
    out.mkdir(parents=True, exist_ok=True)
    previous = sorted(out.glob("run-*.json"))
    dest = out / f"run-{len(previous) + 1:02d}.json"
    dest.write_text(json.dumps(run, indent=2) + "\n")
    log(f"wrote {dest} ({run['wall_seconds']} s)")
    last = json.loads(previous[-1].read_text()) if previous else None
    for n, r in run["ratio_median"].items():
        c = run["cpu_ratio_median"][n]
        line = f"  {n:16} req/s vs native {r:.3f}, CPU-time capacity vs native {c:.3f}"
        if last and n in last["ratio_median"]:
            a, b = last["ratio_median"][n], last.get("cpu_ratio_median", {}).get(n)
            line += (f"; previous run ({last['rounds']} rounds) {a:.3f} ({100 * (r - a) / a:+.1f} %)"
                     + (f", {b:.3f} ({100 * (c - b) / b:+.1f} %)" if b else ""))
        log(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run; outputs in target/bench-quick")
    ap.add_argument("--agreement", metavar="CONFIG", help="compare the two callgrind methods")
    ap.add_argument("--hostile", action="store_true",
                    help="instructions per request of hostile requests (with --quick: fewer)")
    ap.add_argument("--throughput", type=int, metavar="ROUNDS",
                    help="the wrk rounds alone (ROUNDS of them), compared with the previous run")
    ap.add_argument("--report", action="store_true",
                    help="rewrite BENCHMARKS.md from the last full run's target/bench/results.json "
                         "(after a change to the report, not to the code measured)")
    ap.add_argument("--settle", type=float, default=0.0, metavar="S",
                    help="--agreement: idle seconds between ready and the requests (two-process)")
    args = ap.parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(P.stop_all)

    try:
        if args.report:
            out = ROOT / "target" / "bench"
            write_report(json.loads((out / "results.json").read_text()), out, ROOT)
        elif args.throughput:
            run_throughput(args.throughput)
        elif args.hostile:
            run_hostile(args.quick)
        elif args.agreement:
            agreement(args.agreement, ROOT / "target" / "bench-agreement", 500, 2500, args.settle)
        elif args.quick:
            out = ROOT / "target" / "bench-quick"
            run_bench("quick", out, out)
        else:
            run_bench("full", ROOT / "target" / "bench", ROOT)
    except (P.EnvoyFailed, RuntimeError) as e:
        print(f"\nbenchmark failed: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
