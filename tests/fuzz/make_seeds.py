#!/usr/bin/env python3
"""Regenerates the tracked seed corpora in seeds/<target>/ from the repository's test
configurations: the plugin configurations embedded in envoy-config/**/*.yaml, the JSON
configurations in src/tests/*.rs, and the regex patterns and inputs of src/tests/regex.rs.
Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import hashlib, json, pathlib, re, ast

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def write(target, data: bytes):
    d = HERE / "seeds" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def plugin_configs():
    """Strings in the YAML documents that are JSON objects with `policies`."""
    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
        elif isinstance(node, str) and "policies" in node:
            try:
                if isinstance(json.loads(node), dict):
                    yield node
            except ValueError:
                pass
    for path in sorted((ROOT / "envoy-config").rglob("*.yaml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        for doc in docs:
            yield from walk(doc)
    for path in sorted((ROOT / "src" / "tests").glob("*.rs")):
        for m in re.finditer(r'r#"(\{.*?)"#', path.read_text(), re.S):
            text = m.group(1)
            if "policies" in text:
                try:
                    json.loads(text)
                    yield text
                except ValueError:
                    pass


def rust_strings(block):
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', block):
        try:
            yield ast.literal_eval('"' + m.group(1) + '"')
        except (ValueError, SyntaxError):
            pass


def main():
    seen = set()
    for text in plugin_configs():
        if text not in seen:
            seen.add(text)
            write("config_bytes", text.encode())
    src = (ROOT / "src" / "tests" / "regex.rs").read_text()
    patterns = list(rust_strings(src.split("const PATTERNS")[1].split("];")[0]))
    inputs = list(rust_strings(src.split("const INPUTS")[1].split("];")[0]))
    for p in patterns:
        write("regex", "\0".join([p] + inputs[:8]).encode())
    print(f"config_bytes: {len(seen)} seeds, regex: {len(patterns)} seeds")


main()
