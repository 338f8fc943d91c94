"""The filter in a real Envoy: weighted, sticky and rule-based routing through Envoy's router."""
import re
from collections import Counter

import pytest

from harness import EnvoyFailed, bootstrap_for, bucket, expected_variant

pytestmark = pytest.mark.both_modules

CANARY_10 = [("canary", 10), ("stable", 90)]


def policy(variants, **extra):
    return {"name": extra.pop("name", "reviews"),
            "variants": [{"name": n, "weight": w} for n, w in variants], **extra}


def config(*policies, **top):
    return {"policies": list(policies), **top}


def user_requests(n, prefix="user"):
    return [("/", {"x-user-id": f"{prefix}-{i}"}) for i in range(n)]


def check_split(replies, variants, users, tolerance_pp=1.5):
    """Every reply was served by the variant named in its header, the split is within
    `tolerance_pp` of the weights, and each user got exactly the variant its bucket says."""
    counts = Counter()
    for (path, headers), r in zip(users, replies):
        assert r.status == 200
        assert r.served_by == r.json["variant_header"], "router did not follow the header"
        want = expected_variant(variants, bucket("reviews", headers["x-user-id"]))
        assert r.served_by == want, f"{headers['x-user-id']}: got {r.served_by}, bucket says {want}"
        counts[r.served_by] += 1
    errors = {}
    for name, weight in variants:
        share = 100.0 * counts[name] / len(replies)
        errors[name] = share - weight
        assert abs(share - weight) <= tolerance_pp, f"{name}: {share:.2f}% vs {weight}%"
    print(f"split over {len(replies)} users: {dict(counts)}; error (pp): "
          + ", ".join(f"{k} {v:+.2f}" for k, v in errors.items()))
    return counts


@pytest.mark.parametrize("variants", [CANARY_10, [("a", 20), ("b", 30), ("c", 50)]],
                         ids=["10-90", "20-30-50"])
def test_weighted_split_over_20000_users(proxy, variants):
    names = [n for n, _ in variants]
    cfg = config(policy(variants, salt="reviews", sticky={"keys": [{"header": "x-user-id"}]}))
    envoy = proxy(cfg, names)
    users = user_requests(20_000)
    check_split(envoy.request_many(users), variants, users)


def test_random_split_without_sticky(proxy):
    """Without `sticky`, the bucket is random per request; the split still follows the weights."""
    envoy = proxy(config(policy(CANARY_10)))
    replies = envoy.request_many([("/", {})] * 5000)
    counts = Counter(r.served_by for r in replies)
    assert abs(100.0 * counts["canary"] / 5000 - 10) <= 2.0, counts
    # Random per request: the same (key-less) client sees both variants.
    assert counts["canary"] and counts["stable"]


def test_sticky_user_keeps_variant_across_50_requests(proxy):
    envoy = proxy(config(policy(CANARY_10, sticky={"keys": [{"header": "x-user-id"}]})))
    users = [f"sticky-{i}" for i in range(100)]
    reqs = [("/", {"x-user-id": u}) for u in users for _ in range(50)]
    seen = {}
    for (_, h), r in zip(reqs, envoy.request_many(reqs)):
        seen.setdefault(h["x-user-id"], set()).add(r.served_by)
    assert all(len(v) == 1 for v in seen.values()), {u: v for u, v in seen.items() if len(v) > 1}
    assert {next(iter(v)) for v in seen.values()} == {"canary", "stable"}


def test_sticky_across_two_envoy_processes(envoys, backends):
    """Two independent proxies (own processes, own VMs, no shared state) agree on every user."""
    cfg = config(policy(CANARY_10, sticky={"keys": [{"header": "x-user-id"}, {"cookie": "session"}]}))
    b = bootstrap_for(cfg, backends.some("canary", "stable"), ["canary", "stable"])
    first, second = envoys(b, name="first"), envoys(b, concurrency=1, name="second")
    reqs = user_requests(1000, "two") + [("/", {"cookie": f"session=s{i}"}) for i in range(1000)]
    a = [r.served_by for r in first.request_many(reqs)]
    c = [r.served_by for r in second.request_many(reqs)]
    assert a == c
    assert 50 < a.count("canary") < 350


def test_minted_cookie_round_trip(proxy):
    cookie_cfg = {"name": "canary-id", "max_age": 86400, "path": "/", "secure": False,
                  "http_only": True, "same_site": "Lax"}
    envoy = proxy(config(policy(CANARY_10, sticky={"keys": [{"header": "x-user-id"}],
                                                   "cookie": cookie_cfg})))
    counts = Counter()
    ids = set()
    for _ in range(300):
        first = envoy.request("/")
        set_cookie = first.all("set-cookie")
        assert len(set_cookie) == 1, first.headers
        m = re.fullmatch(r"canary-id=([0-9a-f]{32}); Max-Age=86400; Path=/; HttpOnly; SameSite=Lax",
                         set_cookie[0])
        assert m, set_cookie[0]
        cid = m.group(1)
        ids.add(cid)
        # The variant of the first response is the one the minted id buckets to.
        assert first.served_by == expected_variant(CANARY_10, bucket("reviews", cid))
        # The browser presents the cookie: same variant, no new cookie.
        for _ in range(3):
            again = envoy.request("/", {"cookie": f"other=1; canary-id={cid}"})
            assert again.served_by == first.served_by
            assert again.header("set-cookie") is None
        counts[first.served_by] += 1
    assert len(ids) == 300, "minted ids must be unique"
    assert counts["canary"] and counts["stable"], counts
    # A sticky key, when present, wins over minting: no cookie is set.
    keyed = envoy.request("/", {"x-user-id": "alice"})
    assert keyed.header("set-cookie") is None



def test_a_cookie_configured_by_name_holds_across_the_site(proxy):
    """`"cookie": {"name": "canary-id"}` alone: the minted cookie gets `Path=/`. A client that
    keeps cookies as browsers do (Python's http.cookiejar, RFC 6265 path rules: a cookie without
    `Path` is scoped to the directory of the page that set it) lands on a deep link first, then
    asks for /favicon.ico and other pages: it presents the same id everywhere, so no page mints
    another and every page is served by the same variant."""
    import http.cookiejar
    import urllib.request

    envoy = proxy(config(policy([("canary", 50), ("stable", 50)],
                                sticky={"cookie": {"name": "canary-id"}})))
    for visitor in range(20):
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        served, minted = set(), []
        for path in ["/shop/item/42", "/favicon.ico", "/", "/account/orders", "/shop/cart"]:
            req = urllib.request.Request(f"http://127.0.0.1:{envoy.port}{path}",
                                         headers={"host": "reviews"})
            with opener.open(req, timeout=10) as r:
                served.add(r.headers.get("x-served-by"))
                minted += r.headers.get_all("set-cookie") or []
        assert len(minted) == 1, (visitor, minted)
        assert "; Path=/;" in minted[0] or minted[0].endswith("; Path=/"), minted[0]
        assert [c.path for c in jar] == ["/"]
        assert len(served) == 1, (visitor, served)


OPERATOR_CASES = [
    # (match condition, request headers/path that match, ones that don't)
    ({"header": "x-beta", "exact": "true"}, {"x-beta": "true"}, {"x-beta": "TRUE"}),
    ({"header": "x-beta", "prefix": "tr"}, {"x-beta": "trial"}, {"x-beta": "atr"}),
    ({"header": "x-beta", "suffix": "-beta"}, {"x-beta": "web-beta"}, {"x-beta": "beta-web"}),
    ({"header": "x-beta", "contains": "eta"}, {"x-beta": "my-beta-1"}, {"x-beta": "alpha"}),
    ({"header": "x-beta", "present": True}, {"x-beta": ""}, {"x-other": "1"}),
    ({"header": "x-beta", "present": False}, {"x-other": "1"}, {"x-beta": "1"}),
    ({"header": "x-beta", "regex": "v[0-9]+"}, {"x-beta": "v42"}, {"x-beta": "v42x"}),
    ({"cookie": "ab", "exact": "b"}, {"cookie": "x=1; ab=b"}, {"cookie": "ab=bb"}),
    ({"cookie": "ab", "prefix": "gr"}, {"cookie": "ab=group1"}, {"cookie": "xab=group1"}),
    ({"cookie": "ab", "suffix": "1"}, {"cookie": "ab=group1"}, {"cookie": "ab=group2"}),
    ({"cookie": "ab", "contains": "oup"}, {"cookie": "ab=group1"}, {"cookie": "ab=grp"}),
    ({"cookie": "ab", "present": True}, {"cookie": "ab="}, {"cookie": "abc=1"}),
    ({"cookie": "ab", "regex": "[a-z]+-[0-9]"}, {"cookie": "ab=team-7"}, {"cookie": "ab=team-77"}),
    ({"query": "variant", "exact": "canary"}, "/?variant=canary", "/?variant=stable"),
    ({"query": "variant", "prefix": "can"}, "/p?x=1&variant=canary", "/p?variants=canary"),
    ({"query": "variant", "suffix": "ary"}, "/?variant=canary", "/?variant=can"),
    ({"query": "variant", "contains": "na"}, "/?variant=canary", "/?variant=stable"),
    ({"query": "variant", "present": True}, "/?variant", "/?other=variant"),
    ({"query": "variant", "regex": "c.*y"}, "/?variant=c%61nary", "/?variant=canary2"),
]


def test_each_rule_operator(proxy):
    """Each operator on each source: the rule sends matching requests to canary (weight 0)."""
    rules = [{"variant": "canary", "match": [cond]} for cond, _, _ in OPERATOR_CASES]
    # One policy per case, selected by path prefix, so one Envoy serves all cases.
    policies = [policy([("canary", 0), ("stable", 100)], name=f"op{i}",
                       path_prefix=f"/case{i}/", rules=[rule])
                for i, rule in enumerate(rules)]
    envoy = proxy(config(*policies))
    for i, (cond, yes, no) in enumerate(OPERATOR_CASES):
        for req, want in ((yes, "canary"), (no, "stable")):
            if isinstance(req, str):  # a query string
                path, headers = f"/case{i}/" + req.lstrip("/"), {}
            else:
                path, headers = f"/case{i}/", req
            r = envoy.request(path, headers)
            assert r.served_by == want, f"{cond} on {req!r}: got {r.served_by}, want {want}"


def test_rule_conditions_are_anded_and_first_rule_wins(proxy):
    envoy = proxy(config(policy([("canary", 0), ("stable", 100)], rules=[
        {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"},
                                        {"cookie": "ab", "exact": "b"}]},
        {"variant": "stable", "match": [{"header": "x-beta", "present": True}]},
        {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]},
    ])))
    assert envoy.request("/", {"x-beta": "true", "cookie": "ab=b"}).served_by == "canary"
    # Only one condition of the first rule: the second rule (stable) wins before the third.
    assert envoy.request("/", {"x-beta": "true"}).served_by == "stable"


def test_rules_take_precedence_over_weights_and_sticky_keys(proxy):
    envoy = proxy(config(policy(CANARY_10, sticky={"keys": [{"header": "x-user-id"}]}, rules=[
        {"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]},
        {"variant": "stable", "match": [{"cookie": "ab", "exact": "never"}]},
    ])))
    stable_users = [u for u in (f"p{i}" for i in range(50))
                    if expected_variant(CANARY_10, bucket("reviews", u)) == "stable"]
    canary_users = [u for u in (f"p{i}" for i in range(200))
                    if expected_variant(CANARY_10, bucket("reviews", u)) == "canary"]
    for u in stable_users[:10]:
        assert envoy.request("/", {"x-user-id": u}).served_by == "stable"
        assert envoy.request("/", {"x-user-id": u, "x-beta": "true"}).served_by == "canary"
    for u in canary_users[:10]:
        assert envoy.request("/", {"x-user-id": u}).served_by == "canary"
        assert envoy.request("/", {"x-user-id": u, "cookie": "ab=never"}).served_by == "stable"


def test_forged_variant_header_is_overwritten(proxy):
    envoy = proxy(config(policy([("canary", 0), ("stable", 100)])))
    for forged in ("canary", "stable", "bogus", ""):
        r = envoy.request("/", {"x-canary-variant": forged})
        assert r.served_by == "stable"
        assert r.json["variant_header"] == "stable"
    # Two forged values: both replaced by the one decision.
    r = envoy.raw(b"GET / HTTP/1.1\r\nhost: reviews\r\nx-canary-variant: canary\r\n"
                  b"x-canary-variant: canary\r\nconnection: close\r\n\r\n")
    assert b"x-served-by: stable" in r and b'"variant_headers": ["stable"]' in r


def test_routes_selector_sees_the_route_matched_on_arrival(proxy):
    """Envoy matches the route before filters run, so `routes` sees the route the request got
    as it arrived (a forged header may have picked a variant route). Listing the variant routes
    in the policy, as docs/configuration.md advises, makes the filter overwrite the forged
    header."""
    only_default = proxy(config(policy([("canary", 0), ("stable", 100)], routes=["default"])))
    assert only_default.request("/").served_by == "stable"
    assert only_default.request("/").json["variant_header"] == "stable"
    # The forged header picked route variant-canary, which this policy does not select.
    assert only_default.request("/", {"x-canary-variant": "canary"}).json["variant_header"] == "canary"

    all_routes = proxy(config(policy([("canary", 0), ("stable", 100)],
                                     routes=["default", "variant-canary", "variant-stable"])))
    r = all_routes.request("/", {"x-canary-variant": "canary"})
    assert r.served_by == "stable" and r.json["variant_header"] == "stable"


def test_trust_incoming(proxy):
    trusting = policy([("canary", 0), ("stable", 100)], trust_incoming=True)
    envoy = proxy(config(trusting))
    assert envoy.request("/", {"x-canary-variant": "canary"}).served_by == "canary"
    assert envoy.request("/", {"x-canary-variant": "stable"}).served_by == "stable"
    # A value that names no variant of the policy is not trusted: overwritten by the decision.
    r = envoy.request("/", {"x-canary-variant": "bogus"})
    assert r.served_by == "stable" and r.json["variant_header"] == "stable"
    assert envoy.request("/").served_by == "stable"


def test_no_policy_passes_untouched(proxy):
    envoy = proxy(config(policy([("canary", 100), ("stable", 0)], hosts=["reviews"],
                                path_prefix="/api")))
    assert envoy.request("/api/x", host="reviews").served_by == "canary"
    assert envoy.request("/api/x", host="REVIEWS:8080").served_by == "canary"
    for host, path in (("ratings", "/api/x"), ("reviews", "/web")):
        r = envoy.request(path, host=host)
        assert r.served_by == "stable"  # the default route
        assert r.json["variant_header"] is None
        # Not our request: a client header is left as it is.
        r = envoy.request(path, {"x-canary-variant": "canary"}, host=host)
        assert r.json["variant_header"] == "canary"


def test_hosts_wildcard_and_first_policy_wins(proxy):
    envoy = proxy(config(
        policy([("canary", 100), ("stable", 0)], name="exact", hosts=["api.example.com"]),
        policy([("canary", 0), ("stable", 100)], name="wild", hosts=["*.example.com"]),
        policy([("canary", 100), ("stable", 0)], name="any"),
    ))
    assert envoy.request("/", host="api.example.com").served_by == "canary"
    assert envoy.request("/", host="www.example.com").served_by == "stable"
    assert envoy.request("/", host="a.b.example.com").served_by == "stable"
    assert envoy.request("/", host="example.com").served_by == "canary"  # only "any"


def test_expose_variant_and_custom_header(proxy):
    cfg = config(policy([("canary", 100), ("stable", 0)]), variant_header="x-version",
                 expose_variant=True)
    envoy = proxy(cfg, header="x-version")
    r = envoy.request("/")
    assert r.served_by == "canary"
    assert r.header("x-version") == "canary"


def test_source_ip_key(proxy):
    envoy = proxy(config(policy(CANARY_10, sticky={"keys": [{"header": "x-user-id"},
                                                            {"source_ip": True}]})))
    want = expected_variant(CANARY_10, bucket("reviews", "127.0.0.1"))
    assert {envoy.request("/").served_by for _ in range(20)} == {want}


@pytest.mark.parametrize("bad, path", [
    ({"policies": [policy([("canary", 10), ("stable", 80)])]}, "policies[0].variants"),
    ({"policies": [policy([("canary", 10.001), ("stable", 89.999)])]}, "policies[0].variants[0].weight"),
    ({"policies": [policy(CANARY_10, rules=[{"variant": "beta", "match": [{"header": "x", "exact": "1"}]}])]},
     "policies[0].rules[0].variant"),
    ({"policies": [policy(CANARY_10, rules=[{"variant": "canary", "match": [{"header": "x", "regex": "a("}]}])]},
     "policies[0].rules[0].match[0].regex"),
    ({"policies": [{**policy(CANARY_10), "wieght": 1}]}, "policies[0]"),
    ({"policies": []}, "policies"),
], ids=["sum", "decimals", "unknown-variant", "bad-regex", "unknown-field", "empty"])
def test_invalid_config_is_refused_with_its_path(envoys, backends, bad, path):
    b = bootstrap_for(bad, backends.some("canary", "stable"), ["canary", "stable"])
    with pytest.raises(EnvoyFailed) as failed:
        envoys(b)
    log = failed.value.log
    lines = [l for l in log.splitlines() if "invalid plugin configuration" in l]
    assert lines, log[-3000:]
    assert any(f"invalid plugin configuration: {path}" in l for l in lines), lines
    print(lines[0])
