"""The release pipeline's local parts: the GitHub Action's script (scripts/action-validate.sh)
with the command built here, its download-and-verify path against a release served from a local
directory (GitHub's release download is the stand-in that cannot run here), action.yml's
structure, the release metadata in Cargo.toml (one image path and version, referenced by every
manifest and page), scripts/release-info.sh and scripts/set-image.sh.

The workflows themselves run only on GitHub; actionlint checks them in scripts/test.sh.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from harness import ROOT, WASM

BIN = Path(os.environ.get("CANARY_ROUTER_BIN") or ROOT / "target" / "debug" / "canary-router")
ACTION_SCRIPT = ROOT / "scripts" / "action-validate.sh"
GOOD = "envoy-config/istio/canary.yaml"
CARGO = tomllib.loads((ROOT / "Cargo.toml").read_text())
VERSION = CARGO["workspace"]["package"]["version"]
IMAGE = CARGO["workspace"]["metadata"]["canary-router"]["image"]
REPOSITORY = CARGO["workspace"]["package"]["repository"]
ASSET = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
    os.uname().machine, "unknown") + "-unknown-linux-musl"


def run(cmd: list[str | Path], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CANARY_ROUTER_", "GITHUB_"))}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**clean, **env})


def validate(*args: str | Path, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    if "CANARY_ROUTER_BIN" not in env and "CANARY_ROUTER_DOWNLOAD_URL" not in env:
        if not BIN.exists():
            pytest.fail(f"{BIN} is missing: cargo build --bin canary-router (or set CANARY_ROUTER_BIN)")
        env["CANARY_ROUTER_BIN"] = str(BIN)
    return run([ACTION_SCRIPT, *args], cwd=cwd, **env)


@pytest.fixture
def broken(tmp_path) -> Path:
    """canary.yaml with the gateway policy's weights summing to 90."""
    text = (ROOT / GOOD).read_text()
    bad = text.replace("weight: 90", "weight: 80", 1)
    assert bad != text
    path = tmp_path / "canary.yaml"
    path.write_text(bad)
    return path


# --- the action's script, with the command built here ---------------------------------------

def test_valid_manifest_passes():
    r = validate(GOOD)
    assert r.returncode == 0, r.stderr
    assert "spec.pluginConfig: OK" in r.stdout
    assert f"canary-router {VERSION}" in r.stdout


def test_broken_manifest_fails_with_the_json_path(broken):
    r = validate(broken.name, cwd=broken.parent)
    assert r.returncode == 1
    assert ("canary.yaml: WasmPlugin canary-router-gateway: spec.pluginConfig: policies[0].variants: "
            "weights sum to 90, they must sum to 100") in r.stderr
    assert "::error" not in r.stdout  # annotations only under GitHub Actions


def test_broken_manifest_is_annotated_under_github_actions(broken, tmp_path):
    github_path = tmp_path / "github_path"
    r = validate(broken.name, cwd=broken.parent, GITHUB_ACTIONS="true", GITHUB_PATH=str(github_path))
    assert r.returncode == 1
    assert ("::error file=canary.yaml,title=canary-router validate::WasmPlugin canary-router-gateway: "
            "spec.pluginConfig: policies[0].variants: weights sum to 90, they must sum to 100"
            ) in r.stdout.splitlines()
    assert github_path.read_text().strip() == str(BIN.resolve().parent)


def test_files_from_the_action_input_with_globs(broken):
    (broken.parent / "sub").mkdir()
    shutil.copy(ROOT / GOOD, broken.parent / "sub" / "good.yaml")
    r = validate(cwd=broken.parent, CANARY_ROUTER_FILES="sub/*.yaml\n")
    assert r.returncode == 0, r.stderr
    r = validate(cwd=broken.parent, CANARY_ROUTER_FILES="  **/good.yaml\n canary.yaml ")
    assert r.returncode == 1
    assert "sub/good.yaml: WasmPlugin canary-router-gateway: spec.pluginConfig: OK" in r.stdout
    assert "canary.yaml: WasmPlugin canary-router-gateway: spec.pluginConfig: policies[0]" in r.stderr


@pytest.mark.parametrize("args, env, message", [
    (["nothing/*.yaml"], {}, "'nothing/*.yaml' matches no file"),
    ([], {}, "usage: scripts/action-validate.sh"),
    ([GOOD], {"CANARY_ROUTER_BIN": "/nonexistent/canary-router"}, "is not an executable file"),
])
def test_usage_errors(args, env, message):
    r = validate(*args, **env)
    assert r.returncode != 0
    assert message in r.stderr


# --- the download path, a release served from a local directory -----------------------------

def release_dir(tmp_path: Path, binary: bytes, checksum: str | None = None) -> Path:
    """A directory laid out like the release's assets, as the action downloads them."""
    d = tmp_path / "release"
    d.mkdir()
    (d / f"canary-router-{ASSET}").write_bytes(binary)
    digest = checksum if checksum is not None else hashlib.sha256(binary).hexdigest()
    (d / f"canary-router-{ASSET}.sha256").write_text(f"{digest}  canary-router-{ASSET}\n")
    return d


def download(d: Path, *files: str, **env: str) -> subprocess.CompletedProcess:
    return validate(*(files or (GOOD,)), CANARY_ROUTER_DOWNLOAD_URL=d.as_uri(),
                    RUNNER_TEMP=str(d.parent), **env)


def install(d: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The script with exactly these arguments (none: the input alone decides)."""
    return run([ACTION_SCRIPT, *args], CANARY_ROUTER_DOWNLOAD_URL=d.as_uri(),
               RUNNER_TEMP=str(d.parent), **env)


@pytest.fixture
def release(tmp_path):
    if ASSET.startswith("unknown"):
        pytest.skip("no release binary for this architecture")
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: cargo build --bin canary-router")
    return tmp_path


def test_download_verified_and_run(release):
    d = release_dir(release, BIN.read_bytes())
    r = download(d)
    assert r.returncode == 0, r.stderr
    assert f"downloading {d.as_uri()}/canary-router-{ASSET}" in r.stderr
    assert "spec.pluginConfig: OK" in r.stdout


def test_tampered_binary_is_refused_and_never_run(release):
    """The .sha256 is the real binary's; the served file is another program, which would leave a
    marker file if it ran."""
    marker = release / "ran"
    d = release_dir(release, f"#!/bin/sh\ntouch {marker}\nexit 0\n".encode(),
                    checksum=hashlib.sha256(BIN.read_bytes()).hexdigest())
    r = download(d)
    assert r.returncode == 1
    assert f"sha256 mismatch for {d.as_uri()}/canary-router-{ASSET}" in r.stderr
    assert "refusing to run it" in r.stderr
    assert not marker.exists()
    assert not list(release.glob("canary-router.*/canary-router"))  # the download is removed


@pytest.mark.parametrize("content", ["", "not-a-digest  canary-router\n"])
def test_missing_or_malformed_checksum_is_refused(release, content):
    d = release_dir(release, BIN.read_bytes())
    (d / f"canary-router-{ASSET}.sha256").write_text(content)
    r = download(d)
    assert r.returncode == 1
    assert "holds no sha256" in r.stderr


def test_install_only_puts_the_verified_binary_on_the_path(release):
    """What the rollback workflow uses for `canary-router fingerprint`: the binary, checked,
    on GITHUB_PATH; nothing validated."""
    d = release_dir(release, BIN.read_bytes())
    github_path = release / "github_path"
    r = install(d, "--install", GITHUB_ACTIONS="true", GITHUB_PATH=str(github_path))
    assert r.returncode == 0, r.stderr
    assert "validate" not in r.stderr and r.stdout.startswith("canary-router ")
    [line] = github_path.read_text().splitlines()
    installed = Path(line) / "canary-router"
    assert installed.read_bytes() == BIN.read_bytes()
    # The input, as the action passes it; and files with it are a usage error.
    r = install(d, CANARY_ROUTER_INSTALL_ONLY="true")
    assert r.returncode == 0, r.stderr
    r = install(d, "--install", GOOD)
    assert r.returncode == 2 and "takes no files" in r.stderr
    r = install(d, CANARY_ROUTER_INSTALL_ONLY="yes")
    assert r.returncode == 2 and "true or false" in r.stderr
    # A tampered binary is refused here too.
    (release / "t").mkdir()
    d2 = release_dir(release / "t", b"#!/bin/sh\nexit 0\n",
                     checksum=hashlib.sha256(BIN.read_bytes()).hexdigest())
    r = install(d2, "--install")
    assert r.returncode == 1 and "sha256 mismatch" in r.stderr


def test_missing_release_names_the_url(release):
    missing = release / "v9.9.9"
    missing.mkdir()
    r = download(missing, CANARY_ROUTER_VERSION="9.9.9")
    assert r.returncode == 1
    assert f"cannot download {missing.as_uri()}/canary-router-{ASSET}.sha256" in r.stderr
    assert "release v9.9.9" in r.stderr


# --- action.yml -----------------------------------------------------------------------------

def test_action_yml_structure():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert inputs["files"]["required"] is False and inputs["install-only"]["default"] == "false"
    steps = action["runs"]["steps"]
    text = yaml.safe_dump(steps)
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", text))
    assert used == set(inputs), f"inputs used {used}, declared {set(inputs)}"
    scripts = []
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            scripts += re.findall(r"\$GITHUB_ACTION_PATH/(\S+?)\"", step["run"])
    assert scripts == ["scripts/action-validate.sh"]
    assert os.access(ROOT / scripts[0], os.X_OK)
    # Every input reaches the script as the variable the script reads.
    env = steps[0]["env"]
    script = ACTION_SCRIPT.read_text()
    for var in env:
        assert f"${{{var}" in script or f"${var}" in script, var


# --- one image path and version ---------------------------------------------------------------

def cargo_toml_sh(section: str, key: str) -> str:
    r = run(["bash", "-c", f'source scripts/lib.sh && cargo_toml {section} {key}'])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_lib_sh_reads_cargo_toml_as_toml_does():
    assert cargo_toml_sh("workspace.package", "version") == VERSION
    assert cargo_toml_sh("workspace.package", "repository") == REPOSITORY
    assert cargo_toml_sh("workspace.metadata.canary-router", "image") == IMAGE
    assert cargo_toml_sh("package", "version") == ""  # `version.workspace = true`: no string


# An image reference: REGISTRY/…/canary-router with an optional :TAG or @DIGEST (github.com URLs
# are the repository, not an image). Layout references: dist/oci/{compat,wasm}:TAG.
IMAGE_REF = re.compile(r"(?:(?<=//)|(?<![\w./-]))((?!github\.com/)(?:[a-z0-9-]+\.)+[a-z0-9-]+(?::\d+)?"
                       r"(?:/[\w.-]+)*/canary-router)(?![\w-]|\.\w|/)(?::(\w[\w.-]*)|@)?")
LAYOUT_REF = re.compile(r"dist/oci/(?:compat|wasm):(\w[\w.-]*)")


def references(root: Path) -> list[tuple[str, str, str | None]]:
    """(file, image path, tag) of every image reference in envoy-config/, docs/ and README.md,
    and ("file", "dist/oci", tag) of every layout reference."""
    files = [root / "README.md", *(root / "docs").rglob("*"), *(root / "envoy-config").rglob("*")]
    found = []
    for f in sorted(p for p in files if p.is_file()):
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        rel = f.relative_to(root).as_posix()
        found += [(rel, m[1], m[2]) for m in IMAGE_REF.finditer(text)]
        found += [(rel, "dist/oci", m[1]) for m in LAYOUT_REF.finditer(text)]
    return found


def stale(root: Path, image: str, version: str) -> list[tuple[str, str, str | None]]:
    return [(f, path, tag) for f, path, tag in references(root)
            if path not in (image, "dist/oci") or tag not in (None, version)]


def test_every_manifest_and_page_references_the_published_image():
    refs = references(ROOT)
    # The Istio manifests (any file there), Envoy Gateway's, the README and the install page.
    for f in ("envoy-config/istio/canary.yaml", "envoy-config/envoy-gateway/canary-router-policy.yaml",
              "README.md", "docs/install.md"):
        assert (f, IMAGE, VERSION) in refs, f
    assert stale(ROOT, IMAGE, VERSION) == []


@pytest.mark.parametrize("text", [
    "url: oci://ghcr.io/your-org/canary-router:0.1.0",
    f"url: oci://{IMAGE}:0.0.9",
    f"  image: {{url: registry.example:5000/team/canary-router@sha256:{'0' * 64}}}",
    "crane push dist/oci/compat ghcr.io/canary-router/canary-router:latest",
    "skopeo copy oci:dist/oci/compat:0.0.9 docker://IMG",
])
def test_a_stale_reference_is_found(tmp_path, text):
    (tmp_path / "envoy-config" / "istio").mkdir(parents=True)
    (tmp_path / "envoy-config" / "istio" / "new-traffic-extension.yaml").write_text(text + "\n")
    assert len(stale(tmp_path, IMAGE, VERSION)) == 1


@pytest.mark.parametrize("text", [
    "https://github.com/canary-router/canary-router/releases",
    "https://example.com/canary-router.wasm",
    "target/debug/canary-router and filters/canary-router-filter",
])
def test_other_mentions_are_not_image_references(tmp_path, text):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(text + "\n")
    assert references(tmp_path) == []


def copy_for_set_image(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("Cargo.toml", "README.md"):
        shutil.copy(ROOT / name, root / name)
    for name in ("scripts", "docs", "envoy-config"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_set_image_changes_the_path_everywhere(tmp_path):
    root = copy_for_set_image(tmp_path)
    before = references(root)
    new = "registry.example.com:5000/acme/canary-router"
    r = run([root / "scripts" / "set-image.sh", new], cwd=root)
    assert r.returncode == 0, r.stderr
    assert "envoy-config/istio/canary.yaml" in r.stdout.split()
    assert tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["metadata"][
        "canary-router"]["image"] == new
    assert stale(root, new, VERSION) == []
    after = references(root)
    assert [(f, tag) for f, _, tag in after] == [(f, tag) for f, _, tag in before]
    # Run again: nothing left to change.
    again = run([root / "scripts" / "set-image.sh"], cwd=root)
    assert again.returncode == 0 and again.stdout == ""


def test_set_image_updates_tags_after_a_version_bump(tmp_path):
    root = copy_for_set_image(tmp_path)
    cargo = root / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace(f'version = "{VERSION}"', 'version = "9.8.7"', 1))
    assert stale(root, IMAGE, "9.8.7") != []
    r = run([root / "scripts" / "set-image.sh"], cwd=root)
    assert r.returncode == 0, r.stderr
    assert stale(root, IMAGE, "9.8.7") == []


@pytest.mark.parametrize("image", ["GHCR.io/Acme/canary-router", "ghcr.io/acme/other", "canary-router"])
def test_set_image_refuses_a_bad_path(tmp_path, image):
    root = copy_for_set_image(tmp_path)
    r = run([root / "scripts" / "set-image.sh", image], cwd=root)
    assert r.returncode == 2
    assert f"image '{image}'" in r.stderr
    assert (root / "Cargo.toml").read_text() == (ROOT / "Cargo.toml").read_text()


def test_package_oci_prints_the_image_from_cargo_toml(tmp_path):
    r = run([ROOT / "scripts" / "package-oci.sh", WASM, tmp_path])
    assert r.returncode == 0, r.stderr
    assert f"url: oci://{IMAGE}:{VERSION}" in r.stdout


# --- release-info.sh --------------------------------------------------------------------------

def release_info(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run([ROOT / "scripts" / "release-info.sh", *args], **env)


def test_release_info_for_the_matching_tag():
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    r = release_info(f"v{VERSION}", GITHUB_REPOSITORY=owner_repo)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"version={VERSION}", f"tag=v{VERSION}", f"image={IMAGE}",
                                     f"repository={REPOSITORY}"]


@pytest.mark.parametrize("tag, env, message", [
    ("v9.9.9", {}, f"tag 'v9.9.9' does not match Cargo.toml workspace.package.version {VERSION}"),
    (VERSION, {}, "does not match"),  # without the v
    (f"v{VERSION}", {"GITHUB_REPOSITORY": "acme/fork"},
     "Cargo.toml workspace.package.repository is"),
])
def test_release_info_refuses(tag, env, message):
    r = release_info(tag, **env)
    assert r.returncode == 1
    assert message in r.stderr
    assert r.stdout == ""


# --- the module's bytes carry no machine path ---------------------------------------------------

def test_module_embeds_no_cargo_home_or_checkout_path():
    """scripts/build.sh maps the Cargo home to /cargo: without it the module holds this
    machine's path and the release is not reproducible elsewhere."""
    data = WASM.read_bytes()
    home = os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo")
    assert home.encode() not in data
    assert str(ROOT).encode() not in data
    assert b"/cargo/registry/src/" in data  # the mapped form (a dependency's panic location)
