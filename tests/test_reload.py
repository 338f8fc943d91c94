"""Live updates: a new plugin configuration delivered by ECDS from a watched file
(envoy-config/ecds/) takes effect without a restart and without a failed request; an invalid
one is rejected and the last valid configuration keeps serving."""
import json
import os
import threading
import time
from collections import Counter

import yaml

from harness import (CONFIG_DIR, WASM, Backend, bucket, control, expected_variant, load_config,
                     prometheus_value, wait_for)

ECDS_DIR = CONFIG_DIR / "ecds"


def ecds_resource(variants, guard=None):
    res = yaml.safe_load((ECDS_DIR / "canary-router.yaml").read_text())
    wasm = res["resources"][0]["typed_config"]
    wasm["config"]["vm_config"]["code"]["local"]["filename"] = str(WASM)
    plugin = json.loads(wasm["config"]["configuration"]["value"])
    plugin["policies"][0]["variants"] = [{"name": n, "weight": w} for n, w in variants]
    if guard is not None:
        plugin["policies"][0]["guard"] = guard
    wasm["config"]["configuration"]["value"] = json.dumps(plugin)
    return res


def publish(directory, resource):
    """Atomically replaces the watched file, as a GitOps sync would."""
    tmp = directory / ".next.yaml"
    tmp.write_text(yaml.safe_dump(resource, sort_keys=False))
    os.replace(tmp, directory / "canary-router.yaml")


def stat(envoy, name):
    _, text = envoy.admin_get(f"/stats?filter=^{name}$")
    return int(text.split(":")[1]) if ":" in text else 0


class Traffic(threading.Thread):
    """Keeps sending requests for distinct users until stopped; records every outcome."""

    def __init__(self, envoy):
        super().__init__(daemon=True)
        self.envoy, self.stop_flag, self.results, self.errors = envoy, threading.Event(), [], []

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            user = f"live-{i % 2000}"
            try:
                r = self.envoy.request("/", {"x-user-id": user})
                self.results.append((user, r.status, r.served_by))
            except OSError as e:  # a refused or reset connection is a failed request too
                self.errors.append(repr(e))
            i += 1

    def stop(self):
        self.stop_flag.set()
        self.join()


def check_split(envoy, variants, users=1500):
    reqs = [("/", {"x-user-id": f"check-{i}"}) for i in range(users)]
    for (_, h), r in zip(reqs, envoy.request_many(reqs)):
        assert r.served_by == expected_variant(variants, bucket("reviews", h["x-user-id"]))


PREFIX = "extension_config_discovery.http_filter.canary-router"


def ecds_envoy(envoys, backends, watched):
    """The ECDS example watching `watched`, clusters on `backends` (by name)."""
    b = load_config("ecds/front-proxy-ecds.yaml")
    b["admin"]["address"]["socket_address"]["port_value"] = 0
    b["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 0
    for c in b["static_resources"]["clusters"]:
        port = backends[c["name"]].port
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"]["port_value"] = port
    hcm = b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    source = hcm["http_filters"][0]["config_discovery"]["config_source"]["path_config_source"]
    source["path"] = str(watched / "canary-router.yaml")
    source["watched_directory"]["path"] = str(watched)
    return envoys(b)


def test_ecds_reload_switches_weights_without_failures(envoys, backends, tmp_path):
    watched = tmp_path / "ecds"
    watched.mkdir()
    publish(watched, ecds_resource([("canary", 10), ("stable", 90)]))
    envoy = ecds_envoy(envoys, backends, watched)
    reload_under_traffic(envoy, watched, ecds_resource)


def reload_under_traffic(envoy, watched, resource):
    """Serving 10/90 from `watched`: a 50/50 resource (`resource(variants)`) takes effect under
    traffic, an invalid one is rejected with its path, and no request fails meanwhile."""
    prefix = PREFIX
    check_split(envoy, [("canary", 10), ("stable", 90)])

    traffic = Traffic(envoy)
    traffic.start()
    time.sleep(0.5)
    reloads = stat(envoy, f"{prefix}.config_reload")
    publish(watched, resource([("canary", 50), ("stable", 50)]))
    assert wait_for(lambda: stat(envoy, f"{prefix}.config_reload") > reloads)
    time.sleep(0.5)
    check_split(envoy, [("canary", 50), ("stable", 50)])

    # An invalid configuration: rejected, logged with its path, the 50/50 split keeps serving.
    fails = stat(envoy, f"{prefix}.config_fail")
    publish(watched, resource([("canary", 50), ("stable", 40)]))
    assert wait_for(lambda: stat(envoy, f"{prefix}.config_fail") > fails)
    time.sleep(0.5)
    traffic.stop()
    check_split(envoy, [("canary", 50), ("stable", 50)])
    assert "invalid plugin configuration: policies[0].variants: weights sum to 90" in envoy.log()

    statuses = Counter(s for _, s, _ in traffic.results)
    assert not traffic.errors, traffic.errors[:3]
    assert statuses == Counter({200: len(traffic.results)}), statuses
    assert len(traffic.results) > 100
    # Every user was served by the variant of the old split or of the new one, nothing else.
    for user, _, served in traffic.results:
        b_ = bucket("reviews", user)
        assert served in {expected_variant([("canary", 10), ("stable", 90)], b_),
                          expected_variant([("canary", 50), ("stable", 50)], b_)}
    print(f"{len(traffic.results)} requests during two reloads: {dict(statuses)}")


def test_a_new_configuration_rearms_a_tripped_guard(envoys, backends, tmp_path):
    """An aborted guard holds a failing canary off until the configuration changes."""
    canary = Backend("canary", status=503)
    try:
        watched = tmp_path / "ecds"
        watched.mkdir()
        guard = {"variant": "canary", "min_requests": 10, "max_failure_rate": 0.5}
        publish(watched, ecds_resource([("canary", 50), ("stable", 50)], guard))
        envoy = ecds_envoy(envoys, {"canary": canary, "stable": backends["stable"]}, watched)
        labels = {"policy": "reviews", "variant": "canary"}
        envoy.request_many([("/", {"x-user-id": f"t{i}"}) for i in range(60)])
        assert wait_for(lambda: prometheus_value(envoy, "canary_router_guard_tripped",
                                                 **labels) == 1, 10)
        time.sleep(1)  # every worker's next tick
        check_split(envoy, [("canary", 0), ("stable", 100)])

        # The canary is fixed and a new configuration arrives (another weight): the guard
        # starts afresh under it, long before its hour of hold.
        control(canary, status=200)
        reloads = stat(envoy, f"{PREFIX}.config_reload")
        publish(watched, ecds_resource([("canary", 40), ("stable", 60)], guard))
        assert wait_for(lambda: stat(envoy, f"{PREFIX}.config_reload") > reloads)
        time.sleep(0.5)
        check_split(envoy, [("canary", 40), ("stable", 60)])
        assert prometheus_value(envoy, "canary_router_guard_tripped", **labels) == 0
        assert prometheus_value(envoy, "canary_router_guard_trips_total", **labels) == 1
    finally:
        canary.stop()
