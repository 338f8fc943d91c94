"""The API schemas of the systems that load the filter (../shared/schemas), by apiVersion and
kind, for validating the manifests in envoy-config/ with a JSON Schema validator."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from harness import ROOT

SCHEMAS = ROOT.parent / "shared" / "schemas"


@lru_cache(maxsize=None)
def _crd_schemas() -> dict:
    """{(group/version, kind): openAPIV3Schema} from the CRD files (YAML, possibly multi-doc)."""
    out = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for v in doc["spec"]["versions"]:
                out[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return out


# JSON Schema files (no apiVersion inside): file name → (apiVersion, kind).
_JSON_SCHEMAS = {
    "gateway.envoyproxy.io_envoyextensionpolicy_v1alpha1.json":
        ("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy"),
    "gateway.networking.k8s.io_httproute_v1.json": ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    "flagger.app_metrictemplate_v1beta1.json": ("flagger.app/v1beta1", "MetricTemplate"),
}


def schema_for(api_version: str, kind: str) -> dict:
    """The schema for a manifest; AssertionError if the schemas do not know it."""
    crds = _crd_schemas()
    if (api_version, kind) in crds:
        return crds[(api_version, kind)]
    for name, key in _JSON_SCHEMAS.items():
        if key == (api_version, kind):
            return json.loads((SCHEMAS / name).read_text())
    raise AssertionError(f"no schema for {api_version} {kind} in {SCHEMAS}")


def validate(doc: dict) -> None:
    """Validates one manifest against its schema, with no field the schema does not declare
    (raises jsonschema.ValidationError)."""
    schema = schema_for(doc["apiVersion"], doc["kind"])
    jsonschema.validate(doc, schema)
    unknown = unknown_fields(doc, schema)
    if unknown:
        raise jsonschema.ValidationError(
            f"{doc['kind']} {doc.get('metadata', {}).get('name')}: fields the schema does not "
            f"declare (kubectl refuses them; Kubernetes would drop them): {', '.join(unknown)}")


def manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def unknown_fields(doc, schema: dict, path: str = "") -> list[str]:
    """Fields of `doc` that its schema does not declare, as `kubectl apply` (strict field
    validation, its default) refuses them, where a JSON Schema validator lets them through
    (a CRD's schema declares `properties` without `additionalProperties: false`, and
    Kubernetes would otherwise prune such fields without a word)."""
    out: list[str] = []
    if isinstance(doc, dict) and isinstance(schema, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return out
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if not path and key in ("apiVersion", "kind", "metadata"):
                continue  # every object's, implicit in a CRD's schema
            if props is not None and key in props:
                out += unknown_fields(value, props[key], f"{path}.{key}" if path else key)
            elif isinstance(extra, dict):
                out += unknown_fields(value, extra, f"{path}.{key}" if path else key)
            elif props is not None and extra is not True:
                out.append(f"{path}.{key}" if path else key)
    elif isinstance(doc, list) and isinstance(schema, dict) and "items" in schema:
        for i, item in enumerate(doc):
            out += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return out
