"""Scheduled ramps in a real Envoy (--concurrency 2): a fast ramp (seconds per step) moves the
observed split and the weight gauge step by step, and no user moves from canary back to stable
while it rises."""
import datetime
import re
import time

from harness import bootstrap_for, bucket, expected_variant

STEP_SECONDS = 4
STEPS = [10, 50, 90]
USERS = [f"r{i}" for i in range(1000)]


def weight_gauge(envoy) -> int | None:
    text = envoy.prometheus()
    m = re.search(r'^canary_router_weight\{policy="reviews",variant="canary"\} (\S+)$', text, re.M)
    return int(float(m.group(1))) if m else None


def test_fast_ramp_moves_split_and_gauge_step_by_step(envoys, backends):
    start = int(time.time()) + 4
    start_text = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    plugin = {"policies": [{
        "name": "reviews",
        "variants": [{"name": "canary", "weight": 0}, {"name": "stable", "weight": 100}],
        "sticky": {"keys": [{"header": "x-user-id"}]},
        "ramp": {"variant": "canary", "start": start_text, "steps": STEPS,
                 "step_seconds": STEP_SECONDS},
    }]}
    envoy = envoys(bootstrap_for(plugin, backends.some("canary", "stable"), ["canary", "stable"]))

    # (canary percent in force, time the phase begins): before the start, then each step.
    phases = [(0, start - 4)] + [(w, start + i * STEP_SECONDS) for i, w in enumerate(STEPS)]
    seen_canary = set()
    for i, (percent, begins) in enumerate(phases):
        ends = phases[i + 1][1] if i + 1 < len(phases) else begins + 60
        # Each worker VM refreshes its weights on its 1 s tick: measure inside the phase.
        time.sleep(max(0.0, begins + 1.5 - time.time()))
        assert time.time() < ends - 1.5, "the test machine is too slow for this schedule"
        split = [("canary", percent), ("stable", 100 - percent)]
        replies = envoy.request_many([("/", {"x-user-id": u}) for u in USERS])
        assert time.time() < ends, "a phase ended during its requests"
        got = {u: r.served_by for u, r in zip(USERS, replies)}
        for u in USERS:
            assert got[u] == expected_variant(split, bucket("reviews", u)), (percent, u)
        # Once on the canary, a user stays there as the ramp rises.
        assert seen_canary <= {u for u, v in got.items() if v == "canary"}
        seen_canary |= {u for u, v in got.items() if v == "canary"}
        share = sum(v == "canary" for v in got.values()) / len(USERS)
        assert abs(share - percent / 100) < 0.05, (percent, share)
        assert weight_gauge(envoy) == percent * 100
    # After the last step the final weight holds.
    time.sleep(max(0.0, phases[-1][1] + STEP_SECONDS + 1.5 - time.time()))
    assert weight_gauge(envoy) == STEPS[-1] * 100
