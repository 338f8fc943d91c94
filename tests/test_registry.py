"""The OCI images of scripts/package-oci.sh through a real registry and a real client: Debian's
`docker-registry` (the CNCF distribution registry 2.8), started here on 127.0.0.1 on a free port
with its own configuration and a temporary storage directory, and Debian's `skopeo` (1.9), both
installed by `scripts/setup.sh --test`. Nothing depends on the package's own service (:5000).

- The skopeo push commands the script prints are run as printed (only the destination and
  `--dest-tls-verify=false` for the local plain-HTTP registry change), from the layout directory
  and from the tarball, for both variants.
- The registry then serves the manifest under exactly the digest the script printed as
  `WasmPlugin.spec.sha256`: the sha256 of the bytes `skopeo inspect --raw` reads, the registry's
  `Docker-Content-Digest` header and skopeo's `--digestfile` all say so, and the bytes are those
  of the layout.
- Pulled back by that digest, the manifest, config and layers are unchanged (so are the media
  types) and the module Istio would load from them is byte-identical to dist/canary-router.wasm.
- A blob corrupted in the registry's storage is served by the registry but refused by skopeo
  (digest mismatch) and nothing of it is written; a corrupted manifest is refused when pulled by
  digest (the `oci://…@sha256:` pin), not when pulled by tag, where only a client that hashes the
  bytes it got (Istio with `spec.sha256`) notices: the registry's header still gives the old
  digest.

Why `--preserve-digests`: skopeo's default keeps the source's manifest type "with fallbacks"
(skopeo-copy(1)): a destination that refuses OCI manifests, a `--format` or compression option,
or a blob substituted from its blob-info cache makes it rewrite the manifest, so the digest users
pinned changes. `--preserve-digests` makes it copy the manifest as is or fail
(test_preserve_digests_keeps_the_manifest_a_conversion_would_rewrite shows the difference).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness import ROOT, WASM, LoggedProcess, free_port, required_tool
# The independent layout verifier (index → manifest → blobs by digest, and the module Istio's
# fetcher extracts: plugin.wasm from the compat tar+gzip layer, the raw artifact layer).
from test_oci import (OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, SPEC_SHA_RE, VARIANTS,
                      WASM_CONFIG, WASM_CONTENT, package, verify_layout)

TAG = "0.1.0"  # the crate version: the tag scripts/package-oci.sh gives the layouts
MEDIA_TYPES = {  # (config, layers) of each variant, as written and as they must come back
    "compat": (OCI_CONFIG, [OCI_LAYER_GZIP]),
    "wasm": (WASM_CONFIG, [WASM_CONFIG, WASM_CONTENT]),
}


class Registry(LoggedProcess):
    """`docker-registry serve CONFIG` on 127.0.0.1 (a free port), storing in `workdir/storage`."""

    def __init__(self, workdir: Path):
        exe = required_tool("docker-registry")
        self.storage = workdir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            # No blob descriptor cache: what is read is what the storage holds.
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
            "http": {"addr": self.host, "secret": "canary-router-tests"},
        }
        (workdir / "config.yml").write_text(yaml.safe_dump(config))
        self.start_until_ready([exe, "serve", str(workdir / "config.yml")],
                               workdir / "registry.log", f"http://{self.host}/v2/", timeout=30)

    def get(self, path: str, method: str = "GET", accept: str = OCI_MANIFEST):
        """(status, headers, body) of the registry's HTTP API."""
        req = urllib.request.Request(f"http://{self.host}{path}", method=method,
                                     headers={"Accept": accept})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def blob_data(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob (manifests are blobs too)."""
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def answers(self) -> bool:
        with socket.socket() as s:
            s.settimeout(2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()
    assert reg.proc.poll() is not None, "docker-registry still running"
    assert not reg.answers(), f"something still listens on {reg.host}"


@pytest.fixture(scope="module")
def skopeo(tmp_path_factory):
    """skopeo with its own trust policy (accept anything: the test does not depend on
    /etc/containers/policy.json) and its own empty credentials file."""
    exe = required_tool("skopeo")
    d = tmp_path_factory.mktemp("skopeo")
    (d / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (d / "auth.json").write_text("{}")

    def run(command: str, *args: str) -> subprocess.CompletedProcess:
        """`skopeo COMMAND ARGS`; `copy` and `inspect` get their TLS and credential options
        for the local plain-HTTP registry."""
        opts = {"copy": ["--src-tls-verify=false", "--dest-tls-verify=false",
                         "--authfile", str(d / "auth.json")],
                "inspect": ["--tls-verify=false", "--authfile", str(d / "auth.json")]}
        return subprocess.run([exe, "--policy", str(d / "policy.json"), command,
                               *opts.get(command, []), *args],
                              cwd=ROOT, capture_output=True, timeout=120)

    return run


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The layouts scripts/package-oci.sh writes, its output and the printed spec.sha256."""
    out = tmp_path_factory.mktemp("oci")
    r = package(WASM, out)
    assert r.returncode == 0, r.stderr
    printed = dict(SPEC_SHA_RE.findall(r.stdout))
    assert set(printed) == set(VARIANTS), r.stdout
    return out, r.stdout, printed


def printed_skopeo_pushes(stdout: str) -> dict[str, list[list[str]]]:
    """The `skopeo copy` lines printed under each `# VARIANT` heading, as argument lists."""
    pushes: dict[str, list[list[str]]] = {}
    variant = None
    for line in stdout.splitlines():
        if line.startswith("  # "):
            variant = line[4:].strip()
        elif variant and line.startswith("  skopeo copy "):
            pushes.setdefault(variant, []).append(shlex.split(line))
    return pushes


def repo(variant: str, source: str) -> str:
    return f"canary-router/{variant}-{source}"


@pytest.fixture(scope="module")
def pushed(registry, skopeo, layouts, tmp_path_factory):
    """Runs every printed skopeo push, each to its own repository: {(variant, source): the
    digest skopeo's --digestfile reports}, source being the layout directory or the tarball."""
    _, stdout, _ = layouts
    pushes = printed_skopeo_pushes(stdout)
    assert set(pushes) == set(VARIANTS), stdout
    d = tmp_path_factory.mktemp("digests")
    result = {}
    for variant, commands in pushes.items():
        for argv in commands:
            assert argv[:3] == ["skopeo", "copy", "--preserve-digests"], argv
            src, dest = argv[-2], argv[-1]
            assert dest.startswith("docker://"), argv
            source = src.split(":", 1)[0]  # oci or oci-archive
            digestfile = d / f"{variant}-{source}"
            r = skopeo("copy", "--digestfile", str(digestfile), *argv[2:-1],
                       f"docker://{registry.host}/{repo(variant, source)}:{TAG}")
            assert r.returncode == 0, r.stderr.decode()
            result[(variant, source)] = digestfile.read_text().strip()
    assert {s for _, s in result} == {"oci", "oci-archive"}
    return result


@pytest.mark.parametrize("variant", VARIANTS)
def test_registry_serves_the_printed_digest(registry, skopeo, layouts, pushed, variant):
    out, _, printed = layouts
    manifest_bytes = verify_layout(out / variant)["manifest_bytes"]
    for source in ("oci", "oci-archive"):
        name = repo(variant, source)
        assert pushed[(variant, source)] == f"sha256:{printed[variant]}"
        # What a client reads by tag, hashed: the value Istio compares with spec.sha256.
        r = skopeo("inspect", "--raw", f"docker://{registry.host}/{name}:{TAG}")
        assert r.returncode == 0, r.stderr.decode()
        assert hashlib.sha256(r.stdout).hexdigest() == printed[variant]
        assert r.stdout == manifest_bytes
        # The registry's own word, over its HTTP API.
        status, headers, body = registry.get(f"/v2/{name}/manifests/{TAG}")
        assert status == 200
        assert headers["Docker-Content-Digest"] == f"sha256:{printed[variant]}"
        assert headers["Content-Type"] == OCI_MANIFEST
        assert body == manifest_bytes


def pulled_layout(dest: Path) -> dict:
    """A layout skopeo wrote, checked like ours (its index.json has no mediaType)."""
    return verify_layout(dest, written_here=False)


def pull(skopeo, ref: str, dest: Path) -> subprocess.CompletedProcess:
    return skopeo("copy", "--preserve-digests", ref, f"oci:{dest}:{TAG}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_pulled_by_digest_the_module_is_byte_identical(registry, skopeo, layouts, pushed,
                                                      variant, tmp_path):
    out, _, printed = layouts
    sent = verify_layout(out / variant)
    r = pull(skopeo, f"docker://{registry.host}/{repo(variant, 'oci')}@sha256:{printed[variant]}",
             tmp_path / "pulled")
    assert r.returncode == 0, r.stderr.decode()
    got = pulled_layout(tmp_path / "pulled")
    assert got["digest"] == f"sha256:{printed[variant]}"
    assert got["manifest_bytes"] == sent["manifest_bytes"]
    assert (got["config"], got["layers"]) == (sent["config"], sent["layers"])
    config_type, layer_types = MEDIA_TYPES[variant]
    assert got["manifest"]["mediaType"] == OCI_MANIFEST
    assert got["manifest"]["config"]["mediaType"] == config_type
    assert [layer["mediaType"] for layer in got["manifest"]["layers"]] == layer_types
    # plugin.wasm out of the compat tar+gzip layer; the artifact's raw module layer.
    assert got["variant"] == variant
    assert got["module"] == WASM.read_bytes()


def test_preserve_digests_keeps_the_manifest_a_conversion_would_rewrite(registry, skopeo, layouts,
                                                                        pushed):
    """A conversion (here asked for with --format v2s2; skopeo also falls back to one on its
    own when a registry refuses OCI manifests) changes the digest users pinned; with
    --preserve-digests skopeo copies the manifest unchanged or fails, never pushes another."""
    out, _, printed = layouts
    src = f"oci:{out / 'compat'}:{TAG}"
    converted = f"docker://{registry.host}/canary-router/converted:{TAG}"
    r = skopeo("copy", "--format", "v2s2", src, converted)
    assert r.returncode == 0, r.stderr.decode()
    raw = skopeo("inspect", "--raw", converted).stdout
    assert hashlib.sha256(raw).hexdigest() != printed["compat"]
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"

    preserved = f"docker://{registry.host}/canary-router/preserved:{TAG}"
    r = skopeo("copy", "--preserve-digests", "--format", "v2s2", src, preserved)
    if r.returncode == 0:  # skopeo 1.9 keeps the OCI manifest; a refusal would do as well
        raw = skopeo("inspect", "--raw", preserved).stdout
        assert hashlib.sha256(raw).hexdigest() == printed["compat"]
    else:
        assert registry.get(f"/v2/canary-router/preserved/manifests/{TAG}")[0] == 404


@contextlib.contextmanager
def tampered(path: Path, old: bytes | None = None, new: bytes | None = None):
    """A file of the registry's storage changed (one bit flipped, or `old` replaced by `new`,
    the size kept), restored afterwards."""
    original = path.read_bytes()
    if old is None:
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01
        changed = bytes(data)
    else:
        assert old in original and len(old) == len(new)
        changed = original.replace(old, new)
    path.write_bytes(changed)
    try:
        yield changed
    finally:
        path.write_bytes(original)


def module_layer(layout: dict) -> dict:
    """The descriptor of the layer that carries the module."""
    return layout["manifest"]["layers"][-1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_tampered_blob_is_refused(registry, skopeo, layouts, pushed, variant, tmp_path):
    out, _, printed = layouts
    layer = module_layer(verify_layout(out / variant))
    ref = f"docker://{registry.host}/{repo(variant, 'oci')}:{TAG}"
    module = WASM.read_bytes()
    with tampered(registry.blob_data(layer["digest"])) as bad:
        # The registry serves the changed bytes under the old digest; the client must refuse.
        status, _, body = registry.get(f"/v2/{repo(variant, 'oci')}/blobs/{layer['digest']}",
                                       accept="*/*")
        assert status == 200 and body == bad
        assert f"sha256:{hashlib.sha256(body).hexdigest()}" != layer["digest"]
        r = pull(skopeo, ref, tmp_path / "pulled")
        assert r.returncode != 0
        err = r.stderr.decode()
        assert "Digest did not match" in err and layer["digest"] in err, err
        # Nothing of the image was written: no index, no layer, not the module.
        dest = tmp_path / "pulled"
        assert not (dest / "index.json").exists()
        written = [p.read_bytes() for p in dest.rglob("*") if p.is_file()]
        assert not any(data in (bad, module) or module in data for data in written)
        assert not (dest / "blobs/sha256" / layer["digest"].removeprefix("sha256:")).exists()
    # Restored, the same pull goes through: it was the tampering that was refused.
    r = pull(skopeo, ref, tmp_path / "again")
    assert r.returncode == 0, r.stderr.decode()
    assert pulled_layout(tmp_path / "again")["module"] == module


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_tampered_manifest_is_refused_when_pulled_by_digest(registry, skopeo, layouts, pushed,
                                                              variant, tmp_path):
    """The manifest changed in storage (valid JSON, same size: the version annotation) under
    the same digest. Pinned by digest (`oci://…@sha256:`) skopeo refuses it. By tag it takes
    it, and the registry's Docker-Content-Digest still names the old digest: only hashing
    the bytes (Istio's spec.sha256 check, `skopeo inspect --raw | sha256sum`) shows it."""
    out, _, printed = layouts
    digest = f"sha256:{printed[variant]}"
    name = repo(variant, "oci")
    annotation = b'"org.opencontainers.image.version":"0.1.0"'
    with tampered(registry.blob_data(digest), annotation, annotation.replace(b"0.1.0", b"6.6.6")):
        r = pull(skopeo, f"docker://{registry.host}/{name}@{digest}", tmp_path / "by-digest")
        assert r.returncode != 0
        err = r.stderr.decode()
        assert "Manifest does not match provided manifest digest" in err, err
        assert not (tmp_path / "by-digest" / "index.json").exists()

        r = pull(skopeo, f"docker://{registry.host}/{name}:{TAG}", tmp_path / "by-tag")
        assert r.returncode == 0, r.stderr.decode()
        got = pulled_layout(tmp_path / "by-tag")
        assert got["manifest"]["annotations"]["org.opencontainers.image.version"] == "6.6.6"
        assert got["digest"] != digest
        _, headers, body = registry.get(f"/v2/{name}/manifests/{TAG}")
        assert headers["Docker-Content-Digest"] == digest
        assert hashlib.sha256(body).hexdigest() != printed[variant]
