"""envoy-config/gitops/revert.sh, run for real in a temporary Git repository standing in for the
GitOps repository: a tripped guard's dispatch reverts the commit that introduced the failing
configuration, once, and only while that configuration is at HEAD.

The binary is $CANARY_ROUTER_BIN, or target/debug/canary-router (scripts/test.sh builds it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import CONFIG_DIR, ROOT

BIN = Path(os.environ.get("CANARY_ROUTER_BIN") or ROOT / "target" / "debug" / "canary-router")
REVERT = ROOT / "envoy-config" / "gitops" / "revert.sh"
CANARY = (CONFIG_DIR / "istio" / "canary.yaml").read_text()
MANIFEST = "clusters/prod/canary.yaml"  # where the manifest sits in the GitOps repository
GATEWAY = "WasmPlugin canary-router-gateway: spec.pluginConfig"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def weights(text: str, canary: int) -> str:
    """The manifest with the gateway's canary at `canary` %."""
    out = text.replace("{name: canary, weight: 10}", f"{{name: canary, weight: {canary}}}", 1)
    out = out.replace("{name: stable, weight: 90}", f"{{name: stable, weight: {100 - canary}}}", 1)
    assert out != text or canary == 10
    return out


class Repo:
    """A Git work tree in `path`, with git's own configuration only (no user or system one)."""

    def __init__(self, path: Path):
        if not BIN.exists():
            pytest.fail(f"{BIN} is missing: cargo build --bin canary-router "
                        "(or set CANARY_ROUTER_BIN)")
        self.path = path
        self.env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                    "CANARY_ROUTER": str(BIN), "LC_ALL": "C"}
        self.env.pop("CANARY_ROUTER_MANIFESTS", None)
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Test")
        self.git("config", "user.email", "test@example.com")

    def git(self, *args: str) -> str:
        r = subprocess.run(["git", *args], cwd=self.path, env=self.env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"git {' '.join(args)}: {r.stderr}"
        return r.stdout

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def count(self) -> int:
        return int(self.git("rev-list", "--count", "HEAD"))

    def read(self, name: str = MANIFEST) -> str:
        return (self.path / name).read_text()

    def fingerprint(self, name: str = MANIFEST, place: str = GATEWAY) -> str:
        r = subprocess.run([str(BIN), "fingerprint", name], cwd=self.path, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        lines = dict(reversed(l.split("  ", 1)) for l in r.stdout.splitlines())
        return lines[f"{name}: {place}"]

    def revert(self, payload: dict, *manifests: str, env: dict | None = None,
               code: int = 0) -> subprocess.CompletedProcess:
        path = self.path.parent / "payload.json"
        path.write_text(json.dumps(payload))
        r = subprocess.run(["bash", str(REVERT), str(path), *manifests], cwd=self.path,
                           env={**self.env, **(env or {})}, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        # Whatever happened, the work tree is left clean.
        assert self.git("status", "--porcelain", "--untracked-files=no") == ""
        return r


def dispatch(fp: str, whole: bool = True) -> dict:
    """The guard's repository_dispatch body (or its client_payload alone)."""
    payload = {"policy": "reviews", "variant": "canary", "baseline": "stable",
               "cause": "failure_rate", "figures": {"failure_rate": 0.31, "requests": 120},
               "node": "istio-ingressgateway-7d9f-x2k4p.istio-system", "time":
               "2026-05-04T10:20:30Z", "config_fingerprint": fp}
    return {"event_type": "canary-router-tripped", "client_payload": payload} if whole else payload


@pytest.fixture
def repo(tmp_path) -> Repo:
    """The manifest at 10 %, then a commit raising the canary to 25 %; other files around."""
    r = Repo(tmp_path / "gitops")
    r.commit("reviews: canary 10 %", {MANIFEST: CANARY, "README.md": "GitOps\n",
                                       "clusters/prod/kustomization.yaml": "resources: [canary.yaml]\n"})
    r.first = r.head()
    r.commit("reviews: canary 25 %", {MANIFEST: weights(CANARY, 25)})
    r.second = r.head()
    return r


@pytest.mark.parametrize("whole", [True, False], ids=["dispatch", "client_payload"])
def test_reverts_the_commit_once(repo, whole):
    fp = repo.fingerprint()
    r = repo.revert(dispatch(fp, whole))
    assert repo.count() == 3
    assert repo.git("rev-parse", "HEAD~1").strip() == repo.second
    assert repo.read() == CANARY
    assert repo.git("diff", "--name-only", "HEAD~1", "HEAD").split() == [MANIFEST]
    message = repo.git("log", "-1", "--format=%B")
    subject = message.splitlines()[0]
    for word in ["reviews", "canary", "failure_rate", "istio-ingressgateway-7d9f-x2k4p", fp]:
        assert word in subject, subject
    assert f"{repo.second} reviews: canary 25 %" in message
    assert f"{MANIFEST}: {GATEWAY}" in message
    assert f"Canary-Router-Fingerprint: {fp}" in message
    assert '"failure_rate":0.31' in message
    assert "committed" in r.stdout and "not pushed" in r.stdout
    # The proxies' next configuration is the first one again.
    assert repo.fingerprint() != fp

    # The same dispatch again (a second proxy's, or a late one): nothing to do.
    again = repo.revert(dispatch(fp, whole))
    assert repo.count() == 3
    assert f"no configuration at HEAD has fingerprint {fp}" in again.stdout
    assert "nothing to do" in again.stdout


def test_wrong_fingerprint_is_a_no_op(repo):
    head = repo.head()
    (repo.path.parent / "first.yaml").write_text(CANARY)
    first = repo.fingerprint("../first.yaml")  # the configuration before the change
    for fp in ["0123456789abcdef", first, first.upper()]:
        r = repo.revert(dispatch(fp))
        assert "nothing to do" in r.stdout
    assert repo.head() == head


def test_a_configuration_older_than_its_file_is_not_reverted(repo):
    """The callers' WasmPlugin in the same file did not change: its configuration came with the
    commit that added the file, which later commits changed: that revert conflicts."""
    head = repo.head()
    fp = repo.fingerprint(place="WasmPlugin canary-router-reviews-callers: spec.pluginConfig")
    r = repo.revert(dispatch(fp), code=1)
    assert "conflicts" in r.stderr and "nothing committed" in r.stderr
    assert repo.head() == head


def test_revert_that_deletes_the_manifest_is_refused(tmp_path):
    """Reverting the commit that added the WasmPlugin would remove the plugin: refused."""
    repo = Repo(tmp_path / "gitops")
    repo.commit("readme", {"README.md": "GitOps\n"})
    repo.commit("reviews: canary 10 %", {MANIFEST: CANARY})
    head = repo.head()
    r = repo.revert(dispatch(repo.fingerprint()), code=1)
    assert "deletes" in r.stderr and "nothing committed" in r.stderr
    assert repo.head() == head and repo.read() == CANARY


def test_manifests_named_or_from_the_environment(repo):
    fp = repo.fingerprint()
    head = repo.head()
    # Named files that do not hold it: nothing to do.
    repo.revert(dispatch(fp), "README.md", "clusters/prod/kustomization.yaml")
    repo.revert(dispatch(fp), env={"CANARY_ROUTER_MANIFESTS": "nowhere/*.yaml README.md"})
    assert repo.head() == head
    repo.revert(dispatch(fp), env={"CANARY_ROUTER_MANIFESTS": "README.md clusters/**/*.yaml"})
    assert repo.count() == 3 and repo.read() == CANARY


def test_reverts_the_commit_that_introduced_the_configuration(repo):
    """A later commit that changed the file but not the configuration (a comment, a label)
    stays; the commit that brought the configuration in is reverted."""
    later = repo.read().replace("name: canary-router-gateway\n",
                                "name: canary-router-gateway\n  labels: {team: reviews}\n", 1)
    fp = repo.fingerprint()
    third = repo.commit("gateway: team label", {MANIFEST: later})
    assert repo.fingerprint() == fp
    repo.revert(dispatch(fp))
    assert repo.count() == 4
    assert repo.read() == CANARY.replace("name: canary-router-gateway\n",
                                         "name: canary-router-gateway\n  labels: {team: reviews}\n",
                                         1)
    assert f"{repo.second} reviews: canary 25 %" in repo.git("log", "-1", "--format=%B")
    assert third in repo.git("rev-list", "HEAD")


def test_revert_that_fails_validation_is_refused(tmp_path):
    """The commit before the failing one held an invalid configuration (weights 10 + 80):
    reverting to it would break every proxy's configuration, so nothing is committed."""
    repo = Repo(tmp_path / "gitops")
    invalid = CANARY.replace("{name: stable, weight: 90}", "{name: stable, weight: 80}", 1)
    repo.commit("reviews: canary 10 % (broken)", {MANIFEST: invalid})
    repo.commit("reviews: canary 25 %", {MANIFEST: weights(CANARY, 25)})
    head = repo.head()
    r = repo.revert(dispatch(repo.fingerprint()), code=1)
    assert "is not a valid configuration" in r.stderr and "nothing committed" in r.stderr
    assert "policies[0].variants" in r.stderr  # validate's own error
    assert repo.head() == head and repo.read() == weights(CANARY, 25)


def test_conflicting_revert_is_refused(repo):
    """A later edit next to the changed lines (same configuration) makes the revert conflict:
    nothing is committed and the work tree is left as it was."""
    fp = repo.fingerprint()
    edited = repo.read().replace("{name: stable, weight: 75}\n",
                                 "{name: stable, weight: 75}\n      # 25 % since Monday\n", 1)
    repo.commit("comment", {MANIFEST: edited})
    head = repo.head()
    assert repo.fingerprint() == fp
    r = repo.revert(dispatch(fp), code=1)
    assert "conflicts" in r.stderr and "nothing committed" in r.stderr
    assert repo.head() == head and repo.read() == edited


@pytest.mark.parametrize("payload, message", [
    ({"client_payload": {"policy": "reviews"}}, "not 16 hex digits"),
    ({"config_fingerprint": "12345"}, "not 16 hex digits"),
    ({"config_fingerprint": "$(touch pwned)abcdef"}, "not 16 hex digits"),
    ([1, 2], "cannot read the payload"),
])
def test_bad_payloads_fail(repo, payload, message):
    head = repo.head()
    r = repo.revert(payload, code=1)
    assert message in r.stderr
    assert repo.head() == head and not (repo.path / "pwned").exists()


def test_payload_fields_stay_data(repo):
    """Shell syntax and newlines in the payload end up as text in the commit message."""
    payload = dispatch(repo.fingerprint())
    payload["client_payload"]["node"] = "$(touch pwned)`id`\nSigned-off-by: x"
    repo.revert(payload)
    subject = repo.git("log", "-1", "--format=%s")
    assert "$(touch pwned)`id` Signed-off-by: x" in subject
    assert not (repo.path / "pwned").exists()


def test_dirty_work_tree_is_refused(repo):
    (repo.path / MANIFEST).write_text(repo.read() + "# local edit\n")
    r = subprocess.run(["bash", str(REVERT), os.devnull], cwd=repo.path, env=repo.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "uncommitted changes" in r.stderr


def test_usage():
    r = subprocess.run(["bash", str(REVERT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "PAYLOAD_JSON_FILE" in r.stderr
    assert re.search(r"CANARY_ROUTER_MANIFESTS", r.stderr)
