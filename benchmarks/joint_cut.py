"""The default model's cut and candidate choice on two dev splits at once (issue 12).

Reads the JSON of ``top_k_grid.py`` runs: one on the English dev split (``--english``,
build/dev/squad-dev) and one or more on cross-lingual dev splits (``--cross-lingual``: tatoeba
languages the reported table never uses, e.g. nld-eng and ita-eng). For every candidate present
in all of them (several ``--english`` results are read as one: their candidates together) and every
(query top-k, document top-k) cell they all measured:

    joint = (English nDCG@10 + mean of the cross-lingual nDCG@10) / 2

The chosen cell is the cheapest (nominal query top-k x document top-k; "all" cells are skipped)
whose joint is within ``--tolerance`` (default 0.01) of the candidate's best joint. Then, rule 2 of
docs/training.md ("A second round"): a candidate passes if at its cell both its English and its
cross-lingual figure are at least the reference's (``--reference NAME`` at ``--reference-cell``,
default the reference's own setting); among those that pass, the highest joint is taken.

Writes ``OUT.json`` and ``OUT.md`` (default benchmarks/results/joint_cut)::

    python benchmarks/joint_cut.py --english benchmarks/results/top_k_grid.json \\
        benchmarks/results/top_k_grid_case50.json benchmarks/results/top_k_grid_cased_lr2.json \\
        --cross-lingual benchmarks/results/top_k_grid_round2_nld.json \\
        benchmarks/results/top_k_grid_round2_ita.json --reference shipped-lc --reference-cell 150/400
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

MEASURE = "nDCG@10"


def cells_of(grid: dict, name: str) -> dict[str, float]:
    """{"q/d": nDCG@10} of candidate ``name`` (queries as given) in one top_k_grid.py result."""
    cells = grid["candidates"][name]["cells"]["none"]
    return {cell: r["metrics"][MEASURE] for cell, r in cells.items() if "all" not in cell}


def joint_table(english: dict, cross: list[dict], name: str) -> dict[str, dict]:
    """{cell: {"english", "cross_lingual", "joint", "cost"}} over the cells every grid measured."""
    en = cells_of(english, name)
    xs = [cells_of(g, name) for g in cross]
    shared = sorted(set(en).intersection(*xs), key=lambda c: tuple(int(v) for v in c.split("/")))
    table = {}
    for cell in shared:
        x = sum(g[cell] for g in xs) / len(xs)
        q, d = (int(v) for v in cell.split("/"))
        table[cell] = {"english": en[cell], "cross_lingual": x, "joint": (en[cell] + x) / 2, "cost": q * d}
    return table


def merged(grids: list[dict]) -> dict:
    """One grid holding the candidates of ``grids`` (runs of top_k_grid.py on the same split, e.g.
    an earlier run's candidates beside a new one's); a name in two of them is refused."""
    out = {**grids[0], "candidates": {}}
    for grid in grids:
        for name, candidate in grid["candidates"].items():
            if name in out["candidates"]:
                raise SystemExit(f"candidate {name!r} is in two results on {grid['collection']}; rename one "
                                 "(--candidate NAME=MODEL)")
            out["candidates"][name] = candidate
    return out


def by_collection(grids: list[dict]) -> list[dict]:
    """``grids`` merged per collection (first-seen order): several runs on one cross-lingual split
    count as one split holding all their candidates."""
    groups: dict[str, list[dict]] = {}
    for grid in grids:
        groups.setdefault(grid["collection"], []).append(grid)
    return [merged(g) for g in groups.values()]


def choose(table: dict[str, dict], tolerance: float) -> str:
    """The cheapest cell within ``tolerance`` of the best joint (ties: the higher joint)."""
    best = max(r["joint"] for r in table.values())
    near = [c for c, r in table.items() if r["joint"] >= best - tolerance]
    return min(near, key=lambda c: (table[c]["cost"], -table[c]["joint"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--english", type=Path, nargs="+", required=True,
                   help="top_k_grid.py JSON on the English dev split; several: their candidates together")
    p.add_argument("--cross-lingual", type=Path, nargs="+", required=True,
                   help="top_k_grid.py JSON on each cross-lingual dev split; several on one split: their "
                        "candidates together")
    p.add_argument("--reference", required=True, help="the candidate to beat (the current default)")
    p.add_argument("--reference-cell", help="its cell, q/d (default: its own setting)")
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "joint_cut"))
    args = p.parse_args(argv)
    english = merged([json.loads(f.read_text()) for f in args.english])
    cross = by_collection([json.loads(f.read_text()) for f in args.cross_lingual])
    names = [n for n in english["candidates"] if all(n in g["candidates"] for g in cross)]
    if args.reference not in names:
        raise SystemExit(f"--reference {args.reference!r} is not in every grid; candidates in all: {names}")
    tables = {n: joint_table(english, cross, n) for n in names}
    ref_cell = args.reference_cell or english["candidates"][args.reference]["own"]
    if ref_cell not in tables[args.reference]:
        raise SystemExit(f"--reference-cell {ref_cell!r} was not measured in every grid")
    ref = tables[args.reference][ref_cell]
    summary = {}
    for n in names:
        cell = choose(tables[n], args.tolerance)
        r = tables[n][cell]
        passes = r["english"] >= ref["english"] and r["cross_lingual"] >= ref["cross_lingual"]
        summary[n] = {"cell": cell, **r, "passes": passes if n != args.reference else None,
                      "model": english["candidates"][n]["model"],
                      "fingerprint": english["candidates"][n].get("fingerprint")}
    passing = [n for n in names if summary[n]["passes"]]
    taken = max(passing, key=lambda n: summary[n]["joint"]) if passing else args.reference
    command = "python benchmarks/joint_cut.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    langs = ", ".join(Path(g["collection"]).name for g in cross)
    lines = [f"# Joint cut: English dev and cross-lingual dev ({langs})", "",
             f"Command: `{command}`  ",
             f"joint = (English dev {MEASURE} + mean cross-lingual {MEASURE}) / 2; cell = the cheapest (query "
             f"top-k x document top-k) within {args.tolerance} of the best joint; a candidate passes when at its "
             f"cell both figures are at least the reference's ({args.reference} at {ref_cell}: English "
             f"{ref['english']:.4f}, cross-lingual {ref['cross_lingual']:.4f}).", "",
             "| candidate | cell | English dev | cross-lingual dev | joint | passes |",
             "|---|---|---:|---:|---:|---|"]
    for n in names:
        s = summary[n]
        mark = "reference" if s["passes"] is None else ("yes" if s["passes"] else "no")
        lines.append(f"| {n} | {s['cell']} | {s['english']:.4f} | {s['cross_lingual']:.4f} | {s['joint']:.4f} | {mark} |")
    lines += ["", f"Taken: **{taken}**" + (f" at {summary[taken]['cell']}" if taken != args.reference else
                                          " (no candidate passes; the reference stays)"), ""]
    for n in names:
        qs = sorted({c.split("/")[0] for c in tables[n]}, key=int)
        ds = sorted({c.split("/")[1] for c in tables[n]}, key=int)
        lines += [f"## {n}: joint per cell", "", "| doc top-k \\ query top-k | " + " | ".join(qs) + " |"]
        lines.append("|---|" + "---:|" * len(qs))
        for d in ds:
            row = [f"{tables[n][f'{q}/{d}']['joint']:.4f}" if f"{q}/{d}" in tables[n] else "-" for q in qs]
            lines.append(f"| {d} | " + " | ".join(row) + " |")
        lines.append("")
    write_results(args.out, {"command": command, "reference": args.reference, "reference_cell": ref_cell,
                             "tolerance": args.tolerance, "summary": summary, "taken": taken,
                             "tables": tables}, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
