"""Hostile requests: the filter answers every one with a safe default and its VM survives."""
import re

from harness import bootstrap_for, bucket, expected_variant, hcm
from hostile_inputs import HOSTILE_CONFIG, cookie_of, query_of

CANARY_10 = [("canary", 10), ("stable", 90)]
CONFIG = HOSTILE_CONFIG

TRAP_SIGNS = re.compile(r"panicked|wasm trap|Uncaught|unreachable|Function: proxy_on_\w+ failed",
                        re.IGNORECASE)


def start(envoys, backends):
    b = bootstrap_for(CONFIG, backends.some("canary", "stable"), ["canary", "stable"])
    # Let large requests reach the filter instead of Envoy's own limits (60 KiB, 100 headers).
    h = hcm(b)
    h["max_request_headers_kb"] = 1024
    h["common_http_protocol_options"] = {"max_headers_count": 10000}
    return envoys(b)


def wasm_stats(envoy) -> dict:
    """Envoy's Wasm runtime stats (`wasm.*`): VMs created and active, reload failures."""
    _, text = envoy.admin_get("/stats?filter=^wasm\\.")
    return {k: int(v) for k, v in (l.split(": ") for l in text.splitlines() if ": " in l)
            if v.isdigit()}


def test_envoy_limits_answer_first_with_default_settings(envoys, backends):
    """With Envoy's defaults (request headers ≤ 60 KiB, ≤ 100 headers) the 64 KiB cookie, the
    64 KiB query and thousands of headers are refused by Envoy with 431 before any filter runs;
    the filter never sees them and its VM is untouched."""
    b = bootstrap_for(CONFIG, backends.some("canary", "stable"), ["canary", "stable"])
    envoy = envoys(b)
    before = wasm_stats(envoy)
    assert len(cookie_of(64 * 1024, "session=zed")) == 64 * 1024
    assert len(query_of(64 * 1024, "uid=q%71")) == 64 * 1024
    for headers, path in [({"cookie": cookie_of(64 * 1024, "session=zed")}, "/"),
                          ({}, "/?" + query_of(64 * 1024, "uid=q%71")),
                          ({f"x-h{i}": "v" for i in range(3000)}, "/")]:
        assert envoy.request(path, headers).status == 431
    assert envoy.request("/", {"x-user-id": "alice"}).status == 200
    _, text = envoy.admin_get("/stats?filter=http.ingress.downstream_rq_4xx")
    assert text.strip().endswith(": 3"), text
    assert wasm_stats(envoy) == before
    assert not [l for l in envoy.log().splitlines() if TRAP_SIGNS.search(l)]


def test_hostile_requests_get_safe_defaults(envoys, backends):
    envoy = start(envoys, backends)
    vms_before = wasm_stats(envoy)
    assert vms_before.get("wasm.envoy.wasm.runtime.v8.active", 0) >= 2

    # A 64 KiB cookie header with thousands of pairs, and a 200 KiB one with 10 000; the
    # sticky cookie comes last.
    r = envoy.request("/", {"cookie": cookie_of(64 * 1024, "session=zed")})
    assert r.status == 200
    assert r.served_by == expected_variant(CANARY_10, bucket("reviews", "zed"))
    pairs = "; ".join(f"k{i}=v{i}" for i in range(10_000))
    r = envoy.request("/", {"cookie": f"{pairs}; session=zed"})
    assert r.status == 200
    assert r.served_by == expected_variant(CANARY_10, bucket("reviews", "zed"))

    # Malformed cookie syntax: pairs without '=', stray quotes and separators are skipped.
    for junk in [";;;", "=", "==;=a", 'session="unterminated', "session", "\t; ; session =  x ;"]:
        r = envoy.request("/", {"cookie": junk})
        assert r.status == 200 and r.served_by in ("canary", "stable"), junk
    r = envoy.request("/", {"cookie": "\t; ; session =  x ;"})
    assert r.served_by == expected_variant(CANARY_10, bucket("reviews", "x"))

    # Non-UTF-8 and control bytes in header values, sent raw: the key is treated as absent,
    # so the filter falls through to minting a cookie.
    for value in (b"\xff\xfe\xfd", b"caf\xc3", b"a\x01b\x7f"):
        raw = envoy.raw(b"GET / HTTP/1.1\r\nhost: reviews\r\nx-user-id: " + value +
                        b"\r\nconnection: close\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        print(f"x-user-id {value!r}: HTTP {status}")
        if status == 400:
            continue  # Envoy's codec refused the bytes before the filter (control characters)
        assert status == 200, raw[:200]
        assert b"set-cookie: canary-id=" in raw.lower(), raw[:400]

    # 3000 headers.
    many = {f"x-h{i}": "v" for i in range(3000)}
    r = envoy.request("/", {**many, "x-user-id": "many"})
    assert r.status == 200
    assert r.served_by == expected_variant(CANARY_10, bucket("reviews", "many"))

    # A 64 KiB query string of broken escapes with the key at its end, and a pathological
    # input for a nested-quantifier regex (linear-time engine: no blow-up).
    r = envoy.request("/?" + query_of(64 * 1024, "uid=q%71"))
    assert r.status == 200
    assert r.served_by == expected_variant(CANARY_10, bucket("reviews", "qq"))
    r = envoy.request("/", {"x-beta": "a" * 50_000 + "c"})
    assert r.status == 200 and r.served_by in ("canary", "stable")
    assert envoy.request("/", {"x-beta": "aaab"}).served_by == "canary"

    # The VM is alive and still deciding correctly; no trap anywhere in the log.
    assert envoy.request("/", {"x-user-id": "alice"}).served_by == \
        expected_variant(CANARY_10, bucket("reviews", "alice"))
    bad = [l for l in envoy.log().splitlines() if TRAP_SIGNS.search(l)]
    assert not bad, bad[:5]
    # Envoy's Wasm stats agree: no VM created again (FAIL_RELOAD replaces a trapped VM) or
    # gone, no reload failure.
    vms_after = wasm_stats(envoy)
    for k in ("wasm.envoy.wasm.runtime.v8.created", "wasm.envoy.wasm.runtime.v8.active"):
        assert vms_after.get(k) == vms_before.get(k), (k, vms_before, vms_after)
    assert not any(v for k, v in vms_after.items() if "failure" in k), vms_after
