"""scripts/package-oci.sh: the OCI image layouts it writes are checked here by an independent
verifier (nothing is imported from scripts/oci.py): index → manifest → config and layers resolve
by digest with matching sizes and sha256, the media types are those Istio's Wasm image fetcher
accepts, the module Istio would extract is byte-identical to the input, and the printed
`WasmPlugin.spec.sha256` is what Istio compares it with.

What Istio accepts, from istio/istio pkg/wasm/imagefetcher.go (`PrepareFetch`,
`extractOCIStandardImage`, `extractWasmPluginBinary`, `extractOCIArtifactImage`) and
pkg/wasm/cache.go (`LocalFileCache.Get`):
- an OCI manifest is tried first as the *compat* variant: the (last; Istio < 1.16: the only)
  layer must be `application/vnd.oci.image.layer.v1.tar+gzip`, a gzip tar in which the entry whose
  base name is `plugin.wasm` is the module;
- then as the *oci* (Wasm artifact) variant: exactly two layers, one of them
  `application/vnd.module.wasm.content.layer.v1+wasm`, whose raw bytes are the module (the other
  is the `application/vnd.module.wasm.config.v1+json` runtime config, solo-io/wasm spec/spec.md);
- the module must start with `\\0asm` and be at least 8 bytes (`isValidWasmBinary`);
- for `oci://` URLs the checksum compared with `WasmPlugin.spec.sha256` is `img.Digest().Hex`: the
  sha256 of the image manifest bytes (pilot/pkg/model/extensions.go passes spec.sha256 as
  `RemoteDataSource.sha256`, pkg/wasm/convert.go hands it to `cache.Get`).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness import ROOT, WASM

SCRIPT = ROOT / "scripts" / "package-oci.sh"

# Media types, as spelled in Istio's fetcher / go-containerregistry's `types` package.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"  # types.OCIManifestSchema1
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"  # types.OCIConfigJSON
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"  # types.OCILayer (compat)
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"  # oci variant, config layer
WASM_CONTENT = "application/vnd.module.wasm.content.layer.v1+wasm"  # oci variant, wasmLayerMediaType
PLUGIN_FILE = "plugin.wasm"  # wasmPluginFileName
REF_NAME = "org.opencontainers.image.ref.name"
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
SPEC_SHA_RE = re.compile(r"WasmPlugin\.spec\.sha256 \((\w+)\): ([0-9a-f]{64})$", re.M)
VARIANTS = ("compat", "wasm")
EMPTY_MODULE = b"\x00asm\x01\x00\x00\x00"  # the smallest valid Wasm module


class LayoutError(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise LayoutError(msg)


def read_blob(root: Path, desc: dict, what: str) -> bytes:
    """The blob a descriptor points to, after checking its digest and size against the file."""
    digest = desc.get("digest", "")
    algo, _, hexd = digest.partition(":")
    check(algo == "sha256" and re.fullmatch(r"[0-9a-f]{64}", hexd) is not None,
          f"{what}: bad digest {digest!r}")
    path = root / "blobs" / "sha256" / hexd
    check(path.is_file(), f"{what}: blob {digest} missing")
    data = path.read_bytes()
    check(len(data) == desc.get("size"), f"{what}: size {len(data)} != descriptor {desc.get('size')}")
    check(hashlib.sha256(data).hexdigest() == hexd, f"{what}: sha256 of the blob != {digest}")
    return data


def istio_compat_module(layer: bytes) -> bytes:
    """extractWasmPluginBinary: gunzip, walk the tar, the entry named */plugin.wasm."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)), mode="r:") as tar:
        for member in tar:
            if posixpath.basename(member.name) == PLUGIN_FILE:
                check(member.isfile(), f"{member.name} is not a regular file")
                return tar.extractfile(member).read()
    raise LayoutError(f"{PLUGIN_FILE} not found in the layer")


def verify_layout(root: Path, strict: bool = True, written_here: bool = True) -> dict:
    """Checks an OCI image layout the way a registry client and Istio's fetcher would read it;
    returns the variant, manifest digest and bytes, and the module Istio would load.
    `written_here=False` for a layout another tool wrote (tests/test_registry.py: skopeo 1.9
    leaves out index.json's mediaType, which image-spec 1.0 does not require)."""
    try:
        layout = json.loads((root / "oci-layout").read_bytes())
        index = json.loads((root / "index.json").read_bytes())
    except (OSError, ValueError) as e:
        raise LayoutError(f"oci-layout / index.json: {e}") from e
    check(layout.get("imageLayoutVersion") == "1.0.0", f"oci-layout: {layout}")
    check(index.get("schemaVersion") == 2
          and index.get("mediaType", None if written_here else OCI_INDEX) == OCI_INDEX,
          "index.json: not an OCI image index")
    check(len(index.get("manifests", [])) == 1, "index.json: expected exactly one manifest")
    desc = index["manifests"][0]
    check(desc.get("mediaType") == OCI_MANIFEST, f"index.json: media type {desc.get('mediaType')}")
    tag = desc.get("annotations", {}).get(REF_NAME, "")
    check(TAG_RE.fullmatch(tag) is not None, f"index.json: ref.name {tag!r} is not a valid tag")

    manifest_bytes = read_blob(root, desc, "manifest")
    manifest = json.loads(manifest_bytes)
    check(manifest.get("schemaVersion") == 2, "manifest: schemaVersion")
    check(manifest.get("mediaType") == OCI_MANIFEST, "manifest: mediaType")
    config = read_blob(root, manifest["config"], "config")
    layer_descs = manifest.get("layers", [])
    layers = [read_blob(root, d, f"layer {i}") for i, d in enumerate(layer_descs)]
    check(layers != [], "manifest: no layers")
    media = [d["mediaType"] for d in layer_descs]

    if media[-1] == OCI_LAYER_GZIP:  # Istio tries the compat variant first
        variant = "compat"
        check(len(layers) == 1, f"compat: {len(layers)} layers (older Istio wants exactly 1)")
        check(manifest["config"]["mediaType"] == OCI_CONFIG, "compat: config media type")
        check(manifest.get("annotations", {}).get("module.wasm.image/variant") == "compat",
              "compat: annotation module.wasm.image/variant=compat missing")
        image_config = json.loads(config)
        diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layers[0])).hexdigest()
        check(image_config.get("rootfs") == {"type": "layers", "diff_ids": [diff_id]},
              "compat: rootfs.diff_ids != sha256 of the uncompressed layer")
        check(bool(image_config.get("os")) and bool(image_config.get("architecture")),
              "compat: os/architecture missing")
        module = istio_compat_module(layers[0])
    else:  # then as the oci (Wasm artifact) variant
        variant = "wasm"
        check(len(layers) == 2, f"oci variant: {len(layers)} layers, Istio wants exactly 2")
        check(sorted(media) == sorted([WASM_CONFIG, WASM_CONTENT]), f"oci variant: {media}")
        check(manifest["config"]["mediaType"] == WASM_CONFIG, "oci variant: config media type")
        runtime = json.loads(layers[media.index(WASM_CONFIG)])
        check(runtime.get("type") == "envoy_proxy", f"runtime config: {runtime}")
        module = layers[media.index(WASM_CONTENT)]

    check(len(module) >= 8 and module[:4] == b"\x00asm", "module: not a Wasm binary")
    if strict:
        referenced = {desc["digest"], manifest["config"]["digest"], *(d["digest"] for d in layer_descs)}
        present = {f"sha256:{p.name}" for p in (root / "blobs" / "sha256").iterdir()}
        check(present == referenced, f"unreferenced or missing blobs: {present ^ referenced}")
    return {"variant": variant, "tag": tag, "digest": desc["digest"], "manifest": manifest,
            "manifest_bytes": manifest_bytes, "config": config, "layers": layers, "module": module}


def package(wasm: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), str(wasm), str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def packaged(wasm: Path, out: Path, **env: str) -> str:
    r = package(wasm, out, **env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("oci")
    return out, packaged(WASM, out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_layout_resolves_and_holds_the_module(built, variant):
    out, _ = built
    v = verify_layout(out / variant)
    assert v["variant"] == variant
    assert v["module"] == WASM.read_bytes()
    assert v["tag"] == "0.1.0"  # the crate version from Cargo.toml


def test_media_types_are_those_istio_accepts(built):
    out, _ = built
    compat = verify_layout(out / "compat")["manifest"]
    assert compat["mediaType"] == OCI_MANIFEST
    assert compat["config"]["mediaType"] == OCI_CONFIG
    assert [l["mediaType"] for l in compat["layers"]] == [OCI_LAYER_GZIP]
    wasm = verify_layout(out / "wasm")["manifest"]
    assert wasm["mediaType"] == OCI_MANIFEST
    assert wasm["config"]["mediaType"] == WASM_CONFIG
    assert [l["mediaType"] for l in wasm["layers"]] == [WASM_CONFIG, WASM_CONTENT]


def test_compat_layer_is_a_reproducible_tar_of_plugin_wasm(built):
    out, _ = built
    v = verify_layout(out / "compat")
    layer = v["layers"][0]
    assert layer[:2] == b"\x1f\x8b" and layer[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        [member] = tar.getmembers()
    assert (member.name, member.mode, member.uid, member.gid, member.mtime) == (PLUGIN_FILE, 0o644, 0, 0, 0)
    config = json.loads(v["config"])
    assert (config["os"], config["architecture"]) == ("wasip1", "wasm")


def test_wasm_runtime_config_names_root_id_and_abi(built):
    out, _ = built
    v = verify_layout(out / "wasm")
    runtime = json.loads(v["config"])
    assert runtime["config"]["rootIds"] == ["canary-router"]  # WasmPlugin.spec.pluginName
    assert runtime["abiVersions"] == ["proxy_abi_version_0_2_1"]
    assert b"proxy_abi_version_0_2_1" in WASM.read_bytes()
    assert v["layers"][0] == v["config"]  # the config layer, as wasme pushed it


def test_printed_sha256_is_the_manifest_digest_istio_compares(built):
    out, stdout = built
    printed = dict(SPEC_SHA_RE.findall(stdout))
    assert set(printed) == set(VARIANTS), stdout
    module_sha = hashlib.sha256(WASM.read_bytes()).hexdigest()
    for variant in VARIANTS:
        v = verify_layout(out / variant)
        # Istio: img.Digest().Hex, the sha256 of the manifest bytes a registry serves.
        assert printed[variant] == hashlib.sha256(v["manifest_bytes"]).hexdigest()
        assert v["digest"] == f"sha256:{printed[variant]}"
        assert printed[variant] != module_sha
        assert f"manifest {v['digest']}" in stdout
    assert module_sha in stdout  # for https:// URLs


def test_printed_push_commands(built):
    _, stdout = built
    for variant in VARIANTS:
        layout = re.escape(f"{variant}")
        assert re.search(rf"oras cp --from-oci-layout \S+/{layout}:0\.1\.0 \S+:0\.1\.0", stdout)
        assert re.search(rf"crane push \S+/{layout} \S+:0\.1\.0", stdout)
        assert re.search(rf"skopeo copy --preserve-digests oci:\S+/{layout}:0\.1\.0 docker://\S+:0\.1\.0", stdout)


@pytest.mark.parametrize("variant", VARIANTS)
def test_tarball_holds_the_same_layout(built, variant, tmp_path):
    out, _ = built
    tarball = out / f"canary-router-{variant}.tar"
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
        for m in members:
            assert not m.name.startswith(("/", "..")) and (m.mtime, m.uid, m.gid) == (0, 0, 0)
        # Names were checked above; the "data" filter exists from Python 3.11.4 / 3.12.
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert files(tmp_path) == files(out / variant)
    assert verify_layout(tmp_path)["module"] == WASM.read_bytes()


def test_reproducible_and_idempotent(built, tmp_path):
    out, stdout = built
    again = tmp_path / "again"
    assert SPEC_SHA_RE.findall(packaged(WASM, again)) == SPEC_SHA_RE.findall(stdout)
    packaged(WASM, again)  # into the same directory: same result, nothing left over
    for variant in VARIANTS:
        assert files(again / variant) == files(out / variant)
        name = f"canary-router-{variant}.tar"
        assert (again / name).read_bytes() == (out / name).read_bytes()
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out.iterdir())


def test_rebuild_with_another_module_leaves_no_stale_blobs(tmp_path):
    other = tmp_path / "other.wasm"
    other.write_bytes(EMPTY_MODULE)
    out = tmp_path / "oci"
    packaged(other, out)
    assert verify_layout(out / "wasm")["module"] == EMPTY_MODULE
    packaged(WASM, out)
    for variant in VARIANTS:
        assert verify_layout(out / variant, strict=True)["module"] == WASM.read_bytes()


def test_tag_from_environment_does_not_change_the_digest(built, tmp_path):
    out, stdout = built
    tagged = packaged(WASM, tmp_path, OCI_TAG="canary-1")
    assert SPEC_SHA_RE.findall(tagged) == SPEC_SHA_RE.findall(stdout)
    for variant in VARIANTS:
        assert verify_layout(tmp_path / variant)["tag"] == "canary-1"
    assert package(WASM, tmp_path / "bad", OCI_TAG="-bad tag").returncode != 0


def flip_byte(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[min(offset, len(data) - 1)] ^= 0x01
    path.write_bytes(bytes(data))


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", ["layer", "config", "manifest"])
def test_verifier_catches_a_tampered_blob(built, tmp_path, variant, target):
    out, _ = built
    copy = tmp_path / variant
    shutil.copytree(out / variant, copy)
    v = verify_layout(copy)
    digest = {"layer": v["manifest"]["layers"][-1]["digest"],
              "config": v["manifest"]["config"]["digest"], "manifest": v["digest"]}[target]
    flip_byte(blob_path(copy, digest))
    with pytest.raises(LayoutError, match="sha256"):
        verify_layout(copy)


def test_verifier_catches_a_wrong_media_type_with_consistent_digests(built, tmp_path):
    """Re-hashed so every digest matches: only the media type check can fail."""
    out, _ = built
    copy = tmp_path / "wasm"
    shutil.copytree(out / "wasm", copy)
    v = verify_layout(copy)
    manifest = v["manifest"]
    manifest["layers"][1]["mediaType"] = "application/wasm"
    data = json.dumps(manifest).encode()
    blob_path(copy, v["digest"]).unlink()
    digest = hashlib.sha256(data).hexdigest()
    (copy / "blobs" / "sha256" / digest).write_bytes(data)
    index = json.loads((copy / "index.json").read_text())
    index["manifests"][0].update(digest=f"sha256:{digest}", size=len(data))
    (copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(LayoutError, match="oci variant"):
        verify_layout(copy)


def test_missing_wasm_fails_clearly(tmp_path):
    r = package(tmp_path / "nope.wasm", tmp_path / "out")
    assert r.returncode != 0
    assert "run scripts/build.sh first" in r.stderr
    assert not (tmp_path / "out").exists()


def test_not_a_wasm_module_is_refused(tmp_path):
    bogus = tmp_path / "bogus.wasm"
    bogus.write_bytes(b"#!/bin/sh\necho not wasm\n")
    r = package(bogus, tmp_path / "out")
    assert r.returncode != 0 and "not a Wasm module" in r.stderr
