"""Every relative link in the repository's Markdown (README, docs/, benchmarks/) points at a file
that exists and, with a ``#fragment``, at a heading of that file (GitHub's anchor rules), so a
renamed result file or heading cannot leave a dead link behind."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```.*?```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading's text: markup dropped, lower-cased, punctuation other than
    ``-`` and ``_`` removed, spaces turned into ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set:
    seen: dict = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            anchor = github_anchor(match.group(1))
            n = seen.get(anchor, 0)
            seen[anchor] = n + 1
            out.add(anchor if n == 0 else f"{anchor}-{n}")
    return out


def markdown_files():
    for pattern in ("*.md", "docs/*.md", "benchmarks/*.md", "benchmarks/results/*.md"):
        yield from sorted(ROOT.glob(pattern))


def dead_links(md: Path) -> list:
    dead = []
    for target in LINK.findall(FENCE.sub("", md.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
            continue
        path, _, fragment = target.partition("#")
        resolved = (md.parent / path) if path else md
        if not resolved.exists():
            dead.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            dead.append(f"{target} (no such heading)")
    return dead


def test_github_anchor_rules():
    assert github_anchor("What the table says (2026-12-03 run: both, as is)") == (
        "what-the-table-says-2026-12-03-run-both-as-is")
    assert github_anchor("`make demo` and [links](x.md)") == "make-demo-and-links"


def test_dead_links_are_found(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n[ok](a.md#title) [gone](b.md) [bad](a.md#nope)\n")
    assert dead_links(tmp_path / "a.md") == ["b.md (no such file)", "a.md#nope (no such heading)"]


@pytest.mark.parametrize("md", list(markdown_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dead_links(md):
    assert dead_links(md) == [], f"{md.relative_to(ROOT)}: fix or remove these links"
