"""Shared by the benchmark scripts: summarising timings (:func:`percentile`), reading
``--candidate NAME=MODEL`` options (:func:`parse_candidates`) and writing a benchmark's figures:
``OUT.json`` (every number) and ``OUT.md`` (the table), printed too."""

from __future__ import annotations

import json
import platform
from pathlib import Path

# Instruction-set features that change CPU matrix-product speed (and int8's): timings taken on a
# machine with AVX-512 VNNI are not comparable with ones taken on AVX2 alone.
_GEMM_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def cpu_description() -> str:
    """The CPU as ``/proc/cpuinfo`` names it, with its family and model numbers and the GEMM-relevant
    instruction sets it has (e.g. ``"AMD EPYC (family 25, model 17); avx2 avx512f avx512_vnni"``);
    ``platform.processor()`` or ``platform.machine()`` where ``/proc/cpuinfo`` cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    name = fields.get("model name") or platform.machine()
    family = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
    return f"{name}{family}; " + (" ".join(f for f in _GEMM_FLAGS if f in flags) or "no AVX2")


def write_results(out: str | Path, results: dict, text: str, *, echo: bool = True) -> None:
    """Write ``results`` to ``out`` + ``.json`` and ``text`` to ``out`` + ``.md``; print ``text``
    (unless ``echo`` is False: a script that printed its tables as it went). Both record the CPU
    (:func:`cpu_description`) unless ``results`` already has a ``"cpu"`` entry."""
    out = Path(out)
    if "cpu" not in results:
        results = {**results, "cpu": cpu_description()}
        text = text.rstrip("\n") + f"\n\nCPU: {results['cpu']}\n"
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
