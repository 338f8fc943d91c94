"""Request parts of exact sizes for the hostile-input tests and the benchmark of their cost
(scripts/bench/hostile.py imports this module too)."""
from __future__ import annotations

from typing import Callable

# The configuration the hostile requests meet: sticky header, cookie and query keys, a
# nested-quantifier regex rule and a cookie rule.
HOSTILE_CONFIG = {"policies": [{
    "name": "reviews",
    "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
    "sticky": {"keys": [{"header": "x-user-id"}, {"cookie": "session"}, {"query": "uid"}],
               "cookie": {"name": "canary-id", "max_age": 60}},
    "rules": [{"variant": "canary", "match": [{"header": "x-beta", "regex": "(a+)+b"}]},
              {"variant": "canary", "match": [{"cookie": "ab", "exact": "b"}]}],
}]}


def joined(size: int, item: Callable[[int], str], sep: str, last: str) -> str:
    """`item(0) sep item(1) sep … sep last`, padded at the front to exactly `size` bytes (ASCII
    items), so that `last` stays as it is."""
    parts: list[str] = []
    n = len(last)
    while n + len(item(len(parts))) + len(sep) <= size:
        parts.append(item(len(parts)))
        n += len(parts[-1]) + len(sep)
    value = sep.join(parts + [last])
    return "p" * (size - len(value)) + value


def cookie_of(size: int, last: str) -> str:
    """A cookie header value of `size` bytes: `k0=v0; k1=v1; …; last`."""
    return joined(size, lambda i: f"k{i}=v{i}", "; ", last)


def query_of(size: int, last: str) -> str:
    """A query string of `size` bytes of broken escapes (`q0=%zz+0&…`) ending in `last`."""
    return joined(size, lambda i: f"q{i}=%zz+{i}", "&", last)
