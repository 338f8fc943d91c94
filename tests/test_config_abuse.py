"""Configuration abuse in a real Envoy: a 10 MB configuration, deeply nested JSON, 10 000
policies, a rule list with a bad regex. Each either gets a clear error naming its place (Envoy
refuses the configuration and does not start) or works within the documented limits
(docs/configuration.md, "When the configuration is wrong")."""
import json
import time

import pytest

from harness import EnvoyFailed, bootstrap_for, bucket, expected_variant

VARIANTS = [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}]


def refused(envoys, backends, config: str) -> str:
    """Starts Envoy with `config`; it must refuse it. Returns Envoy's log."""
    b = bootstrap_for(config, backends.some("canary", "stable"), ["canary", "stable"])
    with pytest.raises(EnvoyFailed) as e:
        envoys(b)
    return e.value.log


def test_a_10_mb_configuration_is_refused_with_its_size(envoys, backends):
    padding = "x" * (10 * 1024 * 1024)
    config = json.dumps({"policies": [{"name": "p", "variants": VARIANTS}], "pad": padding})
    log = refused(envoys, backends, config)
    assert f"configuration is {len(config)} bytes; the limit is 4194304" in log


def test_deeply_nested_json_is_refused_at_its_depth(envoys, backends):
    config = '{"policies": ' + "[" * 100_000 + "]" * 100_000 + "}"
    log = refused(envoys, backends, config)
    assert "nested too deeply (more than 64 levels)" in log
    assert "invalid plugin configuration: policies" in log


def test_a_bad_regex_in_a_rule_list_names_the_rule(envoys, backends):
    rules = [{"variant": "canary", "match": [{"header": "x-a", "regex": f"a{i}"}]}
             for i in range(20)]
    rules[13]["match"][0]["regex"] = "(unclosed"
    config = json.dumps({"policies": [{"name": "p", "variants": VARIANTS, "rules": rules}]})
    log = refused(envoys, backends, config)
    assert ('invalid plugin configuration: policies[0].rules[13].match[0].regex: invalid regex '
            '"(unclosed": unclosed group') in log


def test_10000_policies_work(envoys, backends):
    n = 10_000
    policies = [{"name": f"svc-{i:05d}", "hosts": [f"svc-{i:05d}.example.com"],
                 "variants": VARIANTS, "sticky": {"keys": [{"header": "x-user-id"}]}}
                for i in range(n)]
    config = json.dumps({"policies": policies})
    assert len(config) < 4 * 1024 * 1024
    started = time.monotonic()
    envoy = envoys(bootstrap_for(config, backends.some("canary", "stable"), ["canary", "stable"]))
    print(f"\n10 000 policies ({len(config)} bytes): Envoy ready in {time.monotonic() - started:.1f} s")
    assert "configured 10000 policies" in envoy.log()
    for i in (0, 4_321, n - 1):
        host = f"svc-{i:05d}.example.com"
        for u in ("alice", "bob", "carol", "dave"):
            r = envoy.request("/", {"x-user-id": u}, host=host)
            want = expected_variant([("canary", 10), ("stable", 90)], bucket(f"svc-{i:05d}", u))
            assert r.served_by == want, (host, u)
    # A host no policy names: untouched (the default route).
    assert envoy.request("/", {"x-user-id": "alice"}, host="other.example.com").served_by == "stable"
