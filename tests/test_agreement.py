"""Property: `canary-router simulate` and the filter in a real Envoy (the Wasm filter and the
native module) decide the same variant for
random configurations and random requests (seeded, so a failure reproduces).

Each configuration has 2-3 variants with random weights (whole and decimal), a random salt,
sticky keys drawn from headers, cookies and query parameters, and rules with every operator on
values drawn from a small alphabet so that they hold often. Each request carries random headers,
cookies and query parameters from the same alphabet, and mostly one of the policy's sticky keys.
Where the filter mints a sticky cookie (its own random id), the id it sent back is given to the
command, which must place it as the filter did."""
from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from urllib.parse import quote

import pytest

from harness import bootstrap_for
from test_cli import BIN

NAMES = ["x-a", "x-b", "x-c"]
VALUES = ["", "a", "b", "ab", "ba", "aab", "b a", "ü", "a;b"]
VARIANTS = ["v1", "v2", "v3"]
pytestmark = pytest.mark.both_modules

SEEDS = range(8)
REQUESTS = 120


def random_weights(rnd: random.Random, n: int) -> list[float | int]:
    if rnd.random() < 0.5:
        cuts = sorted(rnd.randint(0, 100) for _ in range(n - 1))
        return [b - a for a, b in zip([0] + cuts, cuts + [100])]
    cuts = sorted(rnd.randint(0, 10_000) for _ in range(n - 1))
    parts = [b - a for a, b in zip([0] + cuts, cuts + [10_000])]
    return [p / 100 for p in parts]


def random_condition(rnd: random.Random) -> dict:
    source = rnd.choice(["header", "cookie", "query"])
    cond: dict = {source: rnd.choice(NAMES) if source == "header" else rnd.choice(["a", "b"])}
    op = rnd.choice(["exact", "prefix", "suffix", "contains", "regex", "present"])
    if op == "present":
        cond[op] = rnd.random() < 0.5
    elif op == "regex":
        cond[op] = rnd.choice(["a+", "(a|b)*", "a.b", "[ab]{2}", "(?i)A.*", "b?a"])
    else:
        cond[op] = rnd.choice(["a", "b", "ab"])
    return cond


def random_config(rnd: random.Random) -> dict:
    n = rnd.choice([2, 3])
    variants = [{"name": v, "weight": w} for v, w in zip(VARIANTS[:n], random_weights(rnd, n))]
    keys = rnd.sample([{"header": "x-user-id"}, {"cookie": "session"}, {"query": "uid"}],
                      rnd.randint(1, 3))
    rules = [{"variant": rnd.choice(VARIANTS[:n]),
              "match": [random_condition(rnd) for _ in range(rnd.randint(1, 2))]}
             for _ in range(rnd.randint(0, 4))]
    policy = {"name": "svc", "salt": f"salt-{rnd.randint(0, 999)}", "variants": variants,
              "sticky": {"keys": keys, "cookie": {"name": "canary-id"}}}
    if rules:
        policy["rules"] = rules
    return {"variant_header": "x-canary-variant", "policies": [policy]}


def random_request(rnd: random.Random, i: int, keys: list[dict]) -> tuple[dict, dict, dict]:
    headers = {n: rnd.choice(VALUES) for n in NAMES if rnd.random() < 0.5}
    cookies = {n: rnd.choice(VALUES).replace(";", "") for n in ("a", "b") if rnd.random() < 0.4}
    query = {n: rnd.choice(VALUES) for n in ("a", "b") if rnd.random() < 0.4}
    # A sticky key of the policy, mostly.
    if rnd.random() < 0.85:
        (where, name), = rnd.choice(keys).items()
        {"header": headers, "cookie": cookies, "query": query}[where][name] = f"user-{i}"
    return headers, cookies, query


def path_of(query: dict) -> str:
    if not query:
        return "/"
    return "/?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())


def simulate(config_file, headers: dict, cookies: dict, query: dict) -> dict:
    args = [str(BIN), "simulate", str(config_file), "--json", "--host", "reviews",
            "--path", path_of(query)]
    for k, v in headers.items():
        args += ["--header", f"{k}={v}"]
    for k, v in cookies.items():
        args += ["--cookie", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out.splitlines()[0])


@pytest.mark.parametrize("seed", SEEDS)
def test_simulate_and_filter_agree_on_random_configs(envoys, backends, tmp_path, seed):
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: cargo build --bin canary-router")
    rnd = random.Random(seed)
    config = random_config(rnd)
    variants = [v["name"] for v in config["policies"][0]["variants"]]
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    envoy = envoys(bootstrap_for(config, backends.some(*variants), variants))

    reasons: Counter = Counter()
    compared = 0
    for i in range(REQUESTS):
        headers, cookies, query = random_request(rnd, i, config["policies"][0]["sticky"]["keys"])
        want = simulate(config_file, headers, cookies, query)
        sent = dict(headers)
        if cookies:
            sent["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        # UTF-8 on the wire (http.client would send str values as Latin-1).
        r = envoy.request(path_of(query), {k: v.encode() for k, v in sent.items()})
        assert r.status == 200
        reasons[want["reason"]] += 1
        if want["reason"] == "minted_cookie":
            # The filter minted its own id: presented back, the command must place it where
            # the filter did.
            set_cookie = r.header("set-cookie")
            assert set_cookie and set_cookie.startswith("canary-id="), r.headers
            minted = set_cookie.split(";")[0].split("=", 1)[1]
            again = simulate(config_file, headers, {**cookies, "canary-id": minted}, query)
            assert again["reason"] == "sticky_cookie", again
            assert r.served_by == again["variant"], (config, headers, cookies, query, again)
        else:
            assert r.served_by == want["variant"], (config, headers, cookies, query, want)
        compared += 1
    print(f"seed {seed}: {dict(reasons)}")
    assert compared == REQUESTS
    assert reasons["sticky_key"] > REQUESTS // 4, reasons
