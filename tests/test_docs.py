"""The documentation holds together, without Envoy or built artifacts: every relative link in the
Markdown files resolves (to a heading too, for `#anchor` links, by GitHub's slug rules), the
README stays short, a YAML snippet in the user docs is a manifest that validates against its API
schema or an excerpt of a file in envoy-config/, and CONTRIBUTING.md's layout table names every
module of the core and of the filters."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from harness import ROOT
from schemas import validate

# Bytes: the README gets a user running (quick starts for each mesh, the comparison users ask
# for first); the rest lives in docs/.
README_LIMIT = 16_000

DOCS = sorted({ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "BENCHMARKS.md",
               *(ROOT / "docs").glob("*.md"), *(ROOT / "envoy-config").rglob("README.md")})

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"
                         r"\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lowercased, without punctuation other
    than `-` and `_`, spaces turned into `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links → their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # _emphasis_, not snake_case
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file: its headings' slugs (repeats get -1, -2, …) and HTML
    anchors."""
    text = path.read_text()
    seen: dict[str, int] = {}
    out = set(HTML_ANCHOR.findall(text))
    for _, title in HEADING.findall(FENCE.sub("", text)):
        s = slug(title)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = prose(path.read_text())
    return INLINE_LINK.findall(text) + REFERENCE_DEF.findall(text)


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) is not None or target.startswith("//")


def test_the_documents_are_there():
    names = {rel(p) for p in DOCS}
    for name in ("README.md", "CONTRIBUTING.md", "BENCHMARKS.md", "docs/configuration.md",
                 "docs/operations.md", "docs/install.md", "docs/metrics.md", "docs/cli.md",
                 "docs/guard-statistics.md", "envoy-config/gitops/README.md"):
        assert name in names


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in links(doc):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / unquote(file_part)).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no {dest}")
        elif anchor and dest.is_file() and dest.suffix == ".md" and \
                unquote(anchor).lower() not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_every_relative_link_resolves(doc):
    broken = broken_links(doc)
    assert not broken, f"{rel(doc)}:\n" + "\n".join(broken)


def test_the_link_checker_sees_broken_links(tmp_path):
    """The check above is not vacuous: a missing file, a missing heading, and links in code that
    are not links."""
    (tmp_path / "other.md").write_text(
        "# A `tricky` Heading: with (punctuation)\n## snake_case x\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](other.md#a-tricky-heading-with-punctuation) [b](other.md#snake_case-x)\n"
                   "[c](missing.md) [d](other.md#nope) `[e](in-code.md)`\n"
                   "```\n[f](in-fence.md)\n```\n[g](https://example.com/x.md)\n")
    found = links(doc)
    assert "in-code.md" not in found and "in-fence.md" not in found
    assert anchors(tmp_path / "other.md") == {"a-tricky-heading-with-punctuation", "snake_case-x"}
    broken = " ".join(broken_links(doc))
    assert "missing.md" in broken and "#nope" in broken
    assert "other.md#a-tricky" not in broken and "#snake_case-x" not in broken
    assert "example.com" not in broken


def test_slugs_follow_github():
    assert slug("The `canary-router` command") == "the-canary-router-command"
    assert slug("Guard: automatic rollback") == "guard-automatic-rollback"
    assert slug("Choosing `window_seconds` and `min_requests`") == \
        "choosing-window_seconds-and-min_requests"
    assert slug("Rollback through Git, for the whole fleet") == \
        "rollback-through-git-for-the-whole-fleet"
    assert slug("Ramps, guards and Flagger") == "ramps-guards-and-flagger"


def test_readme_is_short():
    size = (ROOT / "README.md").stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; move detail to docs/"


def test_the_readme_keeps_its_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "scripts/demo.sh" in text and "scripts/test.sh" in text


USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_FILES = sorted(p for p in (ROOT / "envoy-config").rglob("*.y*ml"))


def snippets(doc: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", doc.read_text(), re.M | re.S)


def significant(text: str) -> list[str]:
    """Lines that are neither blank nor comments."""
    return [line.rstrip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def is_excerpt(snippet: str, text: str) -> bool:
    """`snippet` is a run of consecutive lines of `text` (comments aside), shifted left as a
    whole."""
    want = significant(snippet)
    have = significant(text)
    for i, line in enumerate(have):
        shift = len(line) - len(line.lstrip()) - (len(want[0]) - len(want[0].lstrip()))
        if line.strip() != want[0].strip() or shift < 0:
            continue
        if [h for h in have[i:i + len(want)]] == [" " * shift + w for w in want]:
            return True
    return False


@pytest.mark.parametrize("doc", USER_DOCS, ids=rel)
def test_every_yaml_snippet_is_a_checked_manifest_or_an_excerpt_of_an_example(doc):
    """A manifest shown whole validates against its API schema (../shared/schemas); anything
    else is copied from a file in envoy-config/, which the other tests run or validate."""
    invented = []
    for block in snippets(doc, "yaml"):
        documents = [d for d in yaml.safe_load_all(block) if d is not None]
        if documents and all(isinstance(d, dict) and "apiVersion" in d and "kind" in d
                             for d in documents):
            for manifest in documents:
                validate(manifest)
        elif not any(is_excerpt(block, f.read_text()) for f in EXAMPLE_FILES):
            invented.append(block.splitlines()[0])
    assert not invented, f"{rel(doc)}: YAML neither a whole manifest nor from envoy-config/: " \
        f"{invented}"


def test_the_excerpt_check_is_not_vacuous():
    text = "a:\n  # a comment\n  b: {c: 1}\n  d: 2\n"
    assert is_excerpt("b: {c: 1}\nd: 2\n", text)
    assert not is_excerpt("b: {c: 1}\nd: 3\n", text)
    assert not is_excerpt("b: {c: 1}\n  d: 2\n", text)


@pytest.mark.skipif(not os.environ.get("CANARY_ROUTER_BIN"), reason="needs CANARY_ROUTER_BIN")
@pytest.mark.parametrize("doc", USER_DOCS, ids=rel)
def test_every_whole_configuration_in_the_docs_is_valid(doc, tmp_path):
    """A JSON snippet that is a whole plugin configuration passes `canary-router validate`
    (with the command built; `scripts/test.sh` builds it)."""
    for i, block in enumerate(snippets(doc, "json")):
        try:
            config = json.loads(block)
        except json.JSONDecodeError:
            continue  # a fragment ("ramp": {...})
        if not isinstance(config, dict) or "policies" not in config:
            continue
        path = tmp_path / f"snippet-{i}.json"
        path.write_text(block)
        out = subprocess.run([os.environ["CANARY_ROUTER_BIN"], "validate", str(path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{rel(doc)} JSON snippet {i}: {out.stderr}"


# --- CONTRIBUTING.md's layout table ---------------------------------------------------------------

def layout_paths() -> set[str]:
    """The paths in the first column of the table under CONTRIBUTING.md's "## Layout"."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "CONTRIBUTING.md has no '## Layout' section"
    rows = [line for line in section.group(1).splitlines() if line.startswith("|")]
    return {m for row in rows for m in re.findall(r"`([^`]+)`", row.split("|")[1])}


def modules() -> set[str]:
    files = [p for p in (ROOT / "src").rglob("*.rs")
             if (ROOT / "src" / "tests") not in p.parents]
    files += [p for p in ROOT.glob("filters/*/src/**/*.rs")]
    return {rel(p) for p in files}


def test_layout_names_every_module():
    missing = sorted(modules() - layout_paths())
    assert not missing, f"add a row for each to CONTRIBUTING.md's layout table: {missing}"


def test_layout_names_no_file_that_is_gone():
    gone = sorted(p for p in layout_paths() if not (ROOT / p).exists())
    assert not gone, f"CONTRIBUTING.md's layout table names files that do not exist: {gone}"


def test_the_layout_check_reads_the_table():
    assert "src/decide.rs" in modules() and "src/decide.rs" in layout_paths()
    assert not any(p.startswith("src/tests/") and p.endswith(".rs") for p in modules())
