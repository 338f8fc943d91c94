"""The rollback loop for a fleet, end to end: proxies → GitHub → Git → Flux → Istio → proxies.

Real: N Envoys (`--concurrency 2`, default N = 2; `scripts/fleet.sh N` sets FLEET_SIZE) running
the filter, a bare Git repository on disk holding the Istio WasmPlugin manifest, the
`canary-router` command and `envoy-config/gitops/revert.sh`, the script the GitHub workflow runs.
Stand-ins for what cannot run here: GitHub is a local HTTP server that accepts the
`repository_dispatch` POST (checking the token the filter took from its VM's environment) and
runs what the workflow runs (clone, revert.sh, push); Flux and Istio are a sync loop that pulls
the repository every 0.5 s and writes the WasmPlugin's `pluginConfig` into the ECDS file every
Envoy watches (as Istio's ECDS push would).

A commit starts a canary that fails every request. Proxy A carries most of the traffic and
trips; its `github` message reaches the stand-in, which reverts the commit; the sync applies the
revert; every other proxy, which never reached `min_requests`, is back on stable. A second
dispatch for the same fingerprint makes no second revert. The times and the requests that
reached the canary at each proxy are printed (-s) and written to target/fleet-report.json."""
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from harness import ROOT, WASM, Backend, bucket, load_config, prometheus_value, wait_for
from test_guard import Traffic, served_log
from test_reload import PREFIX, stat

FLEET_SIZE = int(os.environ.get("FLEET_SIZE", "2"))
REVERT = ROOT / "envoy-config" / "gitops" / "revert.sh"
MANIFEST = "mesh/reviews-canary-router.yaml"
TOKEN = "t0ken-from-a-secret"
DISPATCH_PATH = "/repos/acme/mesh-config/dispatches"
REPORT = ROOT / "target" / "fleet-report.json"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def manifest(canary_weight: int) -> str:
    """The WasmPlugin in the GitOps repository: reviews at `canary_weight` %, guarded, with a
    `github` receiver whose token comes from the VM's environment."""
    plugin = {
        "policies": [{
            "name": "reviews",
            "variants": [{"name": "canary", "weight": canary_weight},
                         {"name": "stable", "weight": 100 - canary_weight}],
            "sticky": {"keys": [{"header": "x-user-id"}]},
            "guard": {
                "variant": "canary", "window_seconds": 10, "min_requests": 20,
                "max_failure_rate": 0.05,
                "notify": [{"format": "github", "cluster": "github",
                            "authority": "api.github.com", "path": DISPATCH_PATH,
                            "headers": {"authorization": "Bearer ${GITHUB_TOKEN}"}}],
            },
        }],
    }
    doc = {
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "canary-router-reviews", "namespace": "istio-system"},
        "spec": {
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            "url": "oci://ghcr.io/canary-router/canary-router:0.1.0",
            "pluginName": "canary-router",
            "failStrategy": "FAIL_OPEN",
            "pluginConfig": plugin,
            "vmConfig": {"env": [{"name": "GITHUB_TOKEN", "valueFrom": "HOST"}]},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


class Repo:
    """The GitOps repository: a bare repository on disk and a developer's clone."""

    def __init__(self, root: Path):
        self.bare = root / "mesh-config.git"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        self.dev = root / "dev"
        git(root, "clone", "-q", str(self.bare), str(self.dev))
        git(self.dev, "checkout", "-q", "-b", "main")

    def commit(self, canary_weight: int, message: str) -> str:
        path = self.dev / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest(canary_weight))
        git(self.dev, "add", MANIFEST)
        git(self.dev, "commit", "-q", "-m", message)
        git(self.dev, "push", "-q", "origin", "main")
        return git(self.dev, "rev-parse", "HEAD")

    def log(self) -> list[str]:
        return git(self.bare, "log", "--format=%H %s", "main").splitlines()


class GitHub:
    """Stands in for GitHub: accepts `repository_dispatch` and runs what the workflow
    (envoy-config/gitops/canary-router-rollback.yaml) runs, one dispatch at a time (the
    workflow's concurrency group): a fresh clone, revert.sh with the payload, a push if it made
    a commit."""

    def __init__(self, repo: Repo, workdir: Path):
        self.repo, self.workdir = repo, workdir
        self.dispatches: list[tuple[float, dict, dict]] = []
        self.runs: list[dict] = []
        self.lock = threading.Lock()
        github = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                ok = (self.path == DISPATCH_PATH
                      and self.headers.get("authorization") == f"Bearer {TOKEN}"
                      and self.headers.get("user-agent")
                      and body.get("event_type") == "canary-router-tripped")
                github.dispatches.append((time.time(), body, dict(self.headers)))
                self.send_response(204 if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()
                if ok:
                    threading.Thread(target=github.run_workflow, args=(body,)).start()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def run_workflow(self, body: dict) -> None:
        with self.lock:
            n = len(self.runs)
            checkout = self.workdir / f"run-{n}"
            git(self.workdir, "clone", "-q", str(self.repo.bare), str(checkout))
            payload = checkout.parent / f"payload-{n}.json"
            payload.write_text(json.dumps(body))
            before = git(checkout, "rev-parse", "HEAD")
            env = {**os.environ, "CANARY_ROUTER": os.environ["CANARY_ROUTER_BIN"],
                   "GIT_AUTHOR_NAME": "canary-router[bot]",
                   "GIT_AUTHOR_EMAIL": "bot@example.com",
                   "GIT_COMMITTER_NAME": "canary-router[bot]",
                   "GIT_COMMITTER_EMAIL": "bot@example.com"}
            done = subprocess.run(["bash", str(REVERT), str(payload), MANIFEST], cwd=checkout,
                                  env=env, capture_output=True, text=True)
            after = git(checkout, "rev-parse", "HEAD")
            if done.returncode == 0 and after != before:
                git(checkout, "push", "-q", "origin", "HEAD:main")
            self.runs.append({"time": time.time(), "rc": done.returncode,
                              "reverted": after != before, "output": done.stdout + done.stderr})

    def close(self):
        self.server.shutdown()


def ecds_resource(plugin_config: dict) -> dict:
    """What Istio makes of the WasmPlugin for one proxy: the Wasm filter's ECDS resource, the
    pluginConfig as JSON, the VM's environment from the proxy's (here: given)."""
    return {"resources": [{
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": "canary-router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "canary-router", "root_id": "canary-router",
                "failure_policy": "FAIL_OPEN",
                "vm_config": {
                    "vm_id": "canary-router", "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(WASM)}},
                    "environment_variables": {"key_values": {"GITHUB_TOKEN": TOKEN}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json.dumps(plugin_config),
                },
            },
        },
    }]}


class Sync(threading.Thread):
    """Stands in for Flux and Istio: pulls the repository every 0.5 s and, when the WasmPlugin
    changed, writes its pluginConfig into the ECDS file that every Envoy watches."""

    def __init__(self, repo: Repo, workdir: Path, watched: Path):
        super().__init__(daemon=True)
        self.checkout, self.watched = workdir / "flux", watched
        git(workdir, "clone", "-q", str(repo.bare), str(self.checkout))
        self.applied: list[tuple[float, str]] = []
        self.stop_flag = threading.Event()
        self.apply()

    def apply(self) -> None:
        head = git(self.checkout, "rev-parse", "HEAD")
        if self.applied and self.applied[-1][1] == head:
            return
        doc = yaml.safe_load((self.checkout / MANIFEST).read_text())
        tmp = self.watched / ".next.yaml"
        tmp.write_text(yaml.safe_dump(ecds_resource(doc["spec"]["pluginConfig"]),
                                      sort_keys=False))
        os.replace(tmp, self.watched / "canary-router.yaml")
        self.applied.append((time.time(), head))

    def run(self):
        while not self.stop_flag.wait(0.5):
            git(self.checkout, "pull", "-q", "--ff-only")
            self.apply()

    def stop(self):
        self.stop_flag.set()
        self.join()


def fleet_envoy(envoys, name: str, backends: dict, github_port: int, watched: Path):
    """The ECDS example (envoy-config/ecds/front-proxy-ecds.yaml) as proxy `name`, with a
    `github` cluster to the stand-in."""
    b = load_config("ecds/front-proxy-ecds.yaml")
    b["node"] = {"id": name, "cluster": "gateway"}
    b["admin"]["address"]["socket_address"]["port_value"] = 0
    b["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 0
    clusters = b["static_resources"]["clusters"]
    github = json.loads(json.dumps(clusters[0]))
    github["name"] = github["load_assignment"]["cluster_name"] = "github"
    clusters.append(github)
    ports = {**{n: be.port for n, be in backends.items()}, "github": github_port}
    for c in clusters:
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"]["port_value"] = ports[c["name"]]
    hcm = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    source = hcm["http_filters"][0]["config_discovery"]["config_source"]["path_config_source"]
    source["path"] = str(watched / "canary-router.yaml")
    source["watched_directory"]["path"] = str(watched)
    return envoys(b, name=name)


#: Users whose sticky bucket is in the canary's 20 %: a quiet proxy's traffic comes from them,
#: so it goes to the canary for as long as the rollout is in force there.
CANARY_USERS = [u for u in (f"quiet-{i}" for i in range(2000)) if bucket("reviews", u) < 2000]


class Trickle(threading.Thread):
    """A quiet proxy's traffic: one request every `period` seconds, from canary users."""

    def __init__(self, envoy, period: float):
        super().__init__(daemon=True)
        self.envoy, self.period, self.stop_flag = envoy, period, threading.Event()
        self.replies: list[tuple[float, str | None, int]] = []

    def run(self):
        i = 0
        while not self.stop_flag.wait(self.period):
            r = self.envoy.request("/", {"x-user-id": CANARY_USERS[i % len(CANARY_USERS)]})
            self.replies.append((time.time(), r.served_by, r.status))
            i += 1

    def stop(self):
        self.stop_flag.set()
        self.join()


def canary_responses(envoy) -> float:
    return sum(prometheus_value(envoy, "canary_router_responses_total", policy="reviews",
                                variant="canary", code_class=c, grpc_status="none")
               for c in ("2xx", "5xx"))


def test_a_trip_at_one_proxy_reverts_the_rollout_for_the_fleet(envoys, backends, tmp_path):
    assert FLEET_SIZE >= 2
    repo = Repo(tmp_path)
    repo.commit(0, "reviews: stable only")
    canary = Backend("canary", status=503)
    github = GitHub(repo, tmp_path)
    watched = tmp_path / "ecds"
    watched.mkdir()
    sync = Sync(repo, tmp_path, watched)
    sync.start()
    traffic, quiet = None, []
    try:
        proxies = [fleet_envoy(envoys, f"proxy-{chr(ord('a') + i)}",
                               {"canary": canary, "stable": backends["stable"]}, github.port,
                               watched) for i in range(FLEET_SIZE)]
        busy, others = proxies[0], proxies[1:]
        traffic = Traffic(busy, connections=4)
        # The others stay below min_requests (20 in 10 s): 4 requests a second.
        quiet = [Trickle(p, 0.25) for p in others]
        for q in quiet:
            q.start()
        time.sleep(1)
        reloads = [stat(p, f"{PREFIX}.config_reload") for p in proxies]

        started = time.time()
        rollout = repo.commit(20, "reviews: canary 20 %")
        assert wait_for(lambda: all(stat(p, f"{PREFIX}.config_reload") > n
                                    for p, n in zip(proxies, reloads)), 20)
        assert wait_for(lambda: github.runs, 30), "no dispatch ran"
        assert github.runs[0]["rc"] == 0 and github.runs[0]["reverted"], github.runs[0]
        reverted_at = github.runs[0]["time"]
        # The revert commit names the commit it reverts.
        assert rollout in git(repo.bare, "log", "-1", "--format=%B", "main")
        # The sync applies the revert; every proxy reloads it.
        reloads = [stat(p, f"{PREFIX}.config_reload") for p in proxies]
        assert wait_for(lambda: len(sync.applied) >= 3, 20)
        assert wait_for(lambda: all(stat(p, f"{PREFIX}.config_reload") > n
                                    for p, n in zip(proxies, reloads)), 20)
        reconfigured_at = time.time()
        time.sleep(1.5)  # the quiet proxies send a few more requests
    finally:
        if traffic:
            traffic.stop()
        for q in quiet:
            q.stop()
        sync.stop()
        canary_log = served_log(canary)
        canary.stop()

    # Only the busy proxy tripped; the quiet ones never reached min_requests.
    trips = [prometheus_value(p, "canary_router_guard_trips_total", policy="reviews",
                              variant="canary") for p in proxies]
    assert trips[0] == 1 and not any(trips[1:]), trips
    dispatch_at, dispatch, headers = github.dispatches[0]
    payload = dispatch["client_payload"]
    assert payload["node"] == "proxy-a" and payload["cause"] == "failure_rate"
    fingerprint = subprocess.run([os.environ["CANARY_ROUTER_BIN"], "fingerprint",
                                  str(sync.checkout / MANIFEST)], capture_output=True,
                                 text=True)
    # The configuration in force when it tripped is the rollout's, which HEAD no longer has.
    assert payload["config_fingerprint"] not in fingerprint.stdout
    # Every proxy is back on stable, the quiet ones included, and its weight gauge says so.
    for p in proxies:
        assert prometheus_value(p, "canary_router_weight", policy="reviews",
                                variant="canary") == 0
    for q in quiet:
        during = [r for r in q.replies if started < r[0] < reverted_at]
        after = [r for r in q.replies if r[0] > reconfigured_at]
        # Its users were on the (failing) canary during the rollout, on stable after the revert.
        assert any(r[1] == "canary" for r in during), during
        assert after and all(r[1] == "stable" for r in after), after
    assert git(sync.checkout, "show", "HEAD:" + MANIFEST) == git(
        sync.checkout, "show", "HEAD~2:" + MANIFEST)

    # A second dispatch for the same fingerprint (another proxy, or a replay) reverts nothing.
    commits = len(repo.log())
    github.run_workflow(dispatch)
    assert github.runs[-1]["rc"] == 0 and not github.runs[-1]["reverted"], github.runs[-1]
    assert len(repo.log()) == commits
    github.close()

    first_failure = min(t for t, s in canary_log if s == 503)
    report = {
        "proxies": FLEET_SIZE,
        "seconds_from_first_canary_failure_to_trip_dispatch": round(
            dispatch_at - first_failure, 3),
        "seconds_from_rollout_commit_to_trip_dispatch": round(dispatch_at - started, 3),
        "seconds_from_trip_dispatch_to_revert_commit": round(reverted_at - dispatch_at, 3),
        "seconds_from_revert_commit_to_last_proxy_reconfigured": round(
            reconfigured_at - reverted_at, 3),
        "seconds_from_rollout_commit_to_last_proxy_reconfigured": round(
            reconfigured_at - started, 3),
        "canary_requests_per_proxy": {p.log_path.stem: canary_responses(p) for p in proxies},
        "requests_per_proxy": {p.log_path.stem: sum(
            prometheus_value(p, "canary_router_responses_total", policy="reviews", variant=v,
                             code_class=c, grpc_status="none")
            for v in ("canary", "stable") for c in ("2xx", "5xx")) for p in proxies},
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    print("\nfleet:", json.dumps(report))
