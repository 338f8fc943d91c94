#!/usr/bin/env python3
"""Packages a proxy-wasm module as OCI image layouts that Istio's Wasm image fetcher accepts.
Standard library only (Python >= 3.9); run by scripts/package-oci.sh, which documents the usage.

Two layouts, each a directory (image-layout 1.0.0: `oci-layout`, `index.json`, `blobs/sha256/`)
plus a tarball of it, both reproducible (fixed tar metadata, gzip mtime 0, compact JSON):

- `compat`: the "compat" variant of the Wasm image spec (solo-io/wasm spec/spec-compat.md): one
  `application/vnd.oci.image.layer.v1.tar+gzip` layer holding `plugin.wasm`, a standard OCI image
  config, the manifest annotation `module.wasm.image/variant=compat`. Standard media types, so
  any registry and tool takes it.
- `wasm`: the "oci" (Wasm artifact) variant (spec/spec.md), as `wasme` pushed it: exactly two
  layers, the runtime config (`application/vnd.module.wasm.config.v1+json`, also the manifest's
  config) and the raw module (`application/vnd.module.wasm.content.layer.v1+wasm`). Istio's
  fetcher requires exactly two layers for this variant.

What Istio checks (istio/istio pkg/wasm/imagefetcher.go, cache.go): for an `oci://` URL,
`WasmPlugin.spec.sha256` is compared with the hex digest of the image *manifest* it pulled
(`img.Digest().Hex`), not with the sha256 of the module; for `http(s)://` URLs with the sha256 of
the downloaded module.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11: the version is then read with a regular expression
    tomllib = None

OCI_LAYOUT_VERSION = "1.0.0"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
MT_WASM_CONTENT = "application/vnd.module.wasm.content.layer.v1+wasm"

REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
VERSION = "org.opencontainers.image.version"
PLUGIN_FILE = "plugin.wasm"  # the name Istio looks for in a compat layer
RUNTIME_CONFIG_FILE = "runtime-config.json"
ROOT_ID = "canary-router"  # the filter's root context id (WasmPlugin.spec.pluginName)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
WASM_MAGIC = b"\x00asm"


class Error(Exception):
    pass


def jbytes(obj) -> bytes:
    """Canonical bytes for content-addressed JSON: compact, key order as built, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_leb128(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise Error("truncated LEB128 in the Wasm module")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def wasm_exports(module: bytes) -> list[str]:
    """Names in the module's export section (section id 7)."""
    pos, names = 8, []
    while pos < len(module):
        section_id = module[pos]
        size, pos = read_leb128(module, pos + 1)
        end = pos + size
        if section_id == 7:
            count, p = read_leb128(module, pos)
            for _ in range(count):
                n, p = read_leb128(module, p)
                names.append(module[p:p + n].decode("utf-8", "replace"))
                p += n + 1  # name, export kind
                _, p = read_leb128(module, p)  # index
            return names
        pos = end
    return names


def crate_metadata(cargo_toml: Path) -> tuple[str | None, str]:
    """(version, name) of the root package, following `version.workspace = true`."""
    try:
        text = cargo_toml.read_text()
    except OSError:
        return None, "canary-router"
    if tomllib is None:
        m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        return (m.group(1) if m else None), "canary-router"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None, "canary-router"
    pkg = doc.get("package", {})
    version = pkg.get("version")
    if isinstance(version, dict) and version.get("workspace"):
        version = doc.get("workspace", {}).get("package", {}).get("version")
    return (version if isinstance(version, str) else None), pkg.get("name", "canary-router")


def tar_bytes(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A reproducible ustar archive: entries in the given order, (name, data) for a file,
    (name, None) for a directory; mtime 0, uid/gid 0, no user names, fixed modes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    """An OCI image layout being written into `path`."""

    def __init__(self, path: Path):
        self.path = path
        self.blobs: dict[str, bytes] = {}
        (path / "blobs" / "sha256").mkdir(parents=True)

    def blob(self, media_type: str, data: bytes, annotations: dict | None = None) -> dict:
        digest = sha256(data)
        if digest not in self.blobs:
            (self.path / "blobs" / "sha256" / digest).write_bytes(data)
            self.blobs[digest] = data
        desc = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}
        if annotations:
            desc["annotations"] = annotations
        return desc

    def finish(self, manifest: dict, tag: str) -> tuple[dict, bytes, bytes]:
        """Writes the manifest, index.json and oci-layout; returns (manifest descriptor,
        oci-layout bytes, index.json bytes)."""
        desc = self.blob(MT_MANIFEST, jbytes(manifest), {REF_NAME: tag})
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]}
        index_bytes = (json.dumps(index, indent=2) + "\n").encode()
        layout_bytes = jbytes({"imageLayoutVersion": OCI_LAYOUT_VERSION})
        (self.path / "index.json").write_bytes(index_bytes)
        (self.path / "oci-layout").write_bytes(layout_bytes)
        return desc, layout_bytes, index_bytes

    def tarball(self, layout_bytes: bytes, index_bytes: bytes) -> bytes:
        entries: list[tuple[str, bytes | None]] = [
            ("oci-layout", layout_bytes), ("index.json", index_bytes),
            ("blobs", None), ("blobs/sha256", None),
        ]
        entries += [(f"blobs/sha256/{d}", self.blobs[d]) for d in sorted(self.blobs)]
        return tar_bytes(entries)


def compat_manifest(layout: Layout, module: bytes, common: dict) -> dict:
    layer_tar = tar_bytes([(PLUGIN_FILE, module)])
    layer = gzip.compress(layer_tar, compresslevel=9, mtime=0)
    config = {
        # Go's GOOS/GOARCH for WASI preview 1 (image-spec: os/architecture use Go's values): the
        # module imports WASI preview 1 (`random_get`), which every proxy-wasm host provides.
        "architecture": "wasm",
        "os": "wasip1",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256(layer_tar)}"]},
    }
    return {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": layout.blob(MT_IMAGE_CONFIG, jbytes(config)),
        "layers": [layout.blob(MT_LAYER_TAR_GZIP, layer)],
        "annotations": {"module.wasm.image/variant": "compat", **common},
    }


def artifact_manifest(layout: Layout, module: bytes, common: dict) -> dict:
    abi = sorted(e for e in wasm_exports(module) if e.startswith("proxy_abi_version_"))
    runtime = {"type": "envoy_proxy", "abiVersions": abi, "config": {"rootIds": [ROOT_ID]}}
    runtime_bytes = jbytes(runtime)
    return {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": layout.blob(MT_WASM_CONFIG, runtime_bytes),
        "layers": [
            layout.blob(MT_WASM_CONFIG, runtime_bytes, {TITLE: RUNTIME_CONFIG_FILE}),
            layout.blob(MT_WASM_CONTENT, module, {TITLE: PLUGIN_FILE}),
        ],
        "annotations": {
            "module.wasm.runtime/type": "envoy_proxy",
            "module.wasm.runtime/abi_version": ",".join(abi),
            **common,
        },
    }


def build(variant: str, make_manifest, out: Path, tarball: Path, module: bytes, tag: str,
          common: dict) -> dict:
    """Builds one layout next to its final place, then swaps it in (no stale blobs remain)."""
    final = out / variant
    tmp, old = out / f".{variant}.tmp", out / f".{variant}.old"
    for d in (tmp, old):
        shutil.rmtree(d, ignore_errors=True)
    layout = Layout(tmp)
    desc, layout_bytes, index_bytes = layout.finish(make_manifest(layout, module, common), tag)
    tar_tmp = tarball.with_name(tarball.name + ".tmp")
    tar_tmp.write_bytes(layout.tarball(layout_bytes, index_bytes))
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    os.replace(tar_tmp, tarball)
    return desc


def show(path: Path) -> str:
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wasm", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cargo-toml", type=Path)
    ap.add_argument("--tag", default="", help="default: the crate version, else latest")
    ap.add_argument("--image", required=True,
                    help="registry/repository used in the printed push commands")
    args = ap.parse_args()

    try:
        module = args.wasm.read_bytes()
    except OSError as e:
        raise Error(f"{args.wasm}: {e.strerror}: run scripts/build.sh first") from None
    if len(module) < 8 or module[:4] != WASM_MAGIC:
        raise Error(f"{args.wasm} is not a Wasm module (no \\0asm header)")
    version, name = crate_metadata(args.cargo_toml) if args.cargo_toml else (None, "canary-router")
    tag = args.tag or version or "latest"
    if not TAG_RE.fullmatch(tag):
        raise Error(f"invalid tag {tag!r}: [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")
    common = {TITLE: name}
    if version:
        common[VERSION] = version

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for variant, make in (("compat", compat_manifest), ("wasm", artifact_manifest)):
        tarball = out / f"{name}-{variant}.tar"
        desc = build(variant, make, out, tarball, module, tag, common)
        results[variant] = (desc["digest"], out / variant, tarball)

    ref = f"{args.image}:{tag}"
    p = print
    p(f"{show(args.wasm)}: {len(module)} bytes, sha256 {sha256(module)}")
    p(f"OCI image layouts in {show(out)}, tag {tag}:")
    for variant, (digest, d, t) in results.items():
        p(f"  {variant:<6} manifest {digest}  layout {show(d)}  tarball {show(t)}")
    p("")
    p("WasmPlugin.spec.sha256 for an oci:// url is the digest of the image manifest Istio pulls")
    p("(not the module's sha256, which is the one to pin for an https:// url):")
    for variant, (digest, _, _) in results.items():
        p(f"  WasmPlugin.spec.sha256 ({variant}): {digest.removeprefix('sha256:')}")
    p("")
    p(f"Push one variant (compat: any registry; wasm: the Wasm artifact media types) to {ref}:")
    for variant, (_, d, t) in results.items():
        p(f"  # {variant}")
        p(f"  oras cp --from-oci-layout {show(d)}:{tag} {ref}")
        p(f"  crane push {show(d)} {ref}")
        p(f"  skopeo copy --preserve-digests oci:{show(d)}:{tag} docker://{ref}")
        p(f"  skopeo copy --preserve-digests oci-archive:{show(t)}:{tag} docker://{ref}")
    compat_hex = results["compat"][0].removeprefix("sha256:")
    p("")
    p("then, in the WasmPlugin (compat pushed):")
    p(f"  url: oci://{ref}")
    p(f"  sha256: {compat_hex}")
    p(f"or pin by digest: url: oci://{args.image}@sha256:{compat_hex}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
