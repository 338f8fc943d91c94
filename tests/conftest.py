import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import NATIVE, WASM, Backend, Envoy, bootstrap_for, native_supported  # noqa: E402


# Test files that read only the repository's own files: no Envoy, no built module.
NEEDS_NOTHING_BUILT = {"test_docs.py"}


def pytest_collection_finish(session):
    needs_module = any(item.path.name not in NEEDS_NOTHING_BUILT for item in session.items)
    for built in ((WASM, NATIVE) if native_supported() else (WASM,)) if needs_module else ():
        if not built.exists():
            pytest.exit(f"{built} is missing: run scripts/build.sh (scripts/test.sh does)",
                        returncode=2)


@pytest.fixture(scope="session")
def backends():
    """Backends by name, started on first use and shared by all tests."""
    started: dict[str, Backend] = {}

    class Pool(dict):
        def __missing__(self, name):
            started[name] = Backend(name)
            return started[name]

        def some(self, *names):
            return {n: self[n] for n in names}

    yield Pool()
    for b in started.values():
        b.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "both_modules: run against the Wasm filter and the native module")
    config.addinivalue_line(
        "markers", "wasm_only: in a both_modules file, what the native module does not do "
        "(node metadata, route metadata, guard notifications: README \"Native module\")")


def pytest_generate_tests(metafunc):
    """Tests marked `both_modules` (the decisions: routing, stickiness, rules, forged header,
    stats, guard) run against the Wasm filter and the native module; the others against the
    Wasm filter only (what they test is the Wasm filter's, or the native module refuses it)."""
    if "module" in metafunc.fixturenames:
        both = (metafunc.definition.get_closest_marker("both_modules") is not None
                and metafunc.definition.get_closest_marker("wasm_only") is None
                and native_supported())
        metafunc.parametrize("module", ["wasm", "native"] if both else ["wasm"])


@pytest.fixture
def envoys(tmp_path, request, module):
    """Starts Envoys for one test and stops them after it; prints their logs on failure."""
    running: list[Envoy] = []

    def start(bootstrap: dict, concurrency: int = 2, name: str | None = None,
              module: str = module) -> Envoy:
        e = Envoy(bootstrap, tmp_path, concurrency, name or f"envoy{len(running)}", module)
        running.append(e)
        return e

    yield start
    for e in running:
        e.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for e in running:
            print(f"--- {e.log_path} (last 40 lines)")
            print("\n".join(e.log().splitlines()[-40:]))


@pytest.fixture
def proxy(envoys, backends):
    """proxy(config, variants) → an Envoy running `config` with a route per variant."""

    def start(config, variants=("canary", "stable"), **kw):
        return envoys(bootstrap_for(config, backends.some(*variants), list(variants), **kw))

    return start


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
