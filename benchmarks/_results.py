"""Shared by the benchmark scripts: summarising timings (:func:`percentile`), reading
``--candidate NAME=MODEL`` options (:func:`parse_candidates`) and writing a benchmark's figures:
``OUT.json`` (every number) and ``OUT.md`` (the table), printed too."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(out: str | Path, results: dict, text: str, *, echo: bool = True) -> None:
    """Write ``results`` to ``out`` + ``.json`` and ``text`` to ``out`` + ``.md``; print ``text``
    (unless ``echo`` is False: a script that printed its tables as it went)."""
    out = Path(out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)
    if echo:
        print(text)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by the nearest-rank rule on the sorted values
    (index ``round(q / 100 * (n - 1))``: a measured value, never an interpolation between two)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def parse_candidates(specs: list[str]) -> list[tuple[str, str]]:
    """``["name=MODEL", ...]`` (repeated ``--candidate`` options) -> ``[(name, model), ...]``.
    Raises SystemExit naming the spec that is not ``NAME=MODEL``."""
    candidates = []
    for spec in specs:
        name, sep, model = spec.partition("=")
        if not sep or not name or not model:
            raise SystemExit(f"--candidate {spec!r}: expected NAME=MODEL")
        candidates.append((name, model))
    return candidates
