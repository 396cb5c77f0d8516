"""Writing a benchmark's figures: ``OUT.json`` (every number) and ``OUT.md`` (the table), printed too."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(out: str | Path, results: dict, text: str) -> None:
    """Write ``results`` to ``out`` + ``.json`` and ``text`` to ``out`` + ``.md``; print ``text``."""
    out = Path(out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)
    print(text)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
