"""Choose the default model's recipe on the dev split (issue 12): candidate models side by side on
``build/dev/squad-dev`` (made by ``benchmarks/dev_split.py``: held-out squad-train queries, never
a test collection), with BM25 for reference.

Each candidate is evaluated by ``splare-lucene evaluate --collection DEV --split dev --bm25``
(index cached under ``--work``; a rerun only re-reads). The table gives nDCG@10, RR@10 and R@100
and a paired t-test on nDCG@10 of every candidate against the first one (``evaluate.paired_test``
over the dev queries), plus what each model was trained with (its ``train_report.json`` and
``text_normalization``). ``--teacher`` adds the distillation teacher's own dense ranking
(all-MiniLM-L6-v2, extra ``teacher``: exact cosine over the dev corpus, 100 hits per query), the
ceiling a KL student is pulled towards.

    python benchmarks/dev_split.py
    python benchmarks/default_recipe.py --candidate infonce=build/kl/ft-infonce-lc \\
        --candidate kl=build/kl/ft-kl-lc --out benchmarks/results/default_recipe

A candidate is ``name=MODEL`` (a model directory or ``default``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _results import parse_candidates, write_results  # noqa: E402

MEASURES = ["nDCG@10", "RR@10", "R@100"]


def per_query(path: Path, system: str, measure: str) -> dict[str, float]:
    with path.open(encoding="utf-8") as f:
        return {r["query_id"]: float(r["value"]) for r in csv.DictReader(f, delimiter="\t")
                if r["system"] == system and r["measure"] == measure}


def training_of(model: str) -> dict:
    """What the model was trained with: its train_report (loss, steps, negatives, seconds) and config."""
    from splare_lucene.config import SplareConfig
    from splare_lucene.encoder import resolve_model_dir

    directory = Path(resolve_model_dir(model))
    config = SplareConfig.load(directory)
    out = {"text_normalization": config.text_normalization}
    report = directory / "train_report.json"
    if report.is_file():
        r = json.loads(report.read_text())
        cfg = r.get("config", {})
        out.update(loss=r.get("loss"), steps=r.get("steps"), examples=r.get("examples"),
                   negatives=cfg.get("negatives"), batch_size=cfg.get("batch_size"), lr=cfg.get("lr"),
                   in_batch_negatives=cfg.get("in_batch_negatives"), seconds=r.get("seconds_this_run"))
    return out


def teacher_metrics(dev: Path, teacher: str) -> dict:
    """The teacher's exact dense ranking of the dev corpus (cosine of L2-normalised embeddings)."""
    import numpy as np

    from splare_lucene.corpus import read_documents, read_queries
    from splare_lucene.evaluate import evaluate, read_qrels
    from splare_lucene.train.teacher import DenseTeacher
    from splare_lucene.types import ScoredDoc

    qrels = read_qrels(dev / "qrels" / "dev.tsv")
    docs = list(read_documents(str(dev)))
    queries = [q for q in read_queries(str(dev)) if q.id in qrels]
    model = DenseTeacher.load(teacher)
    d = np.asarray(model.embed([x.text for x in docs], progress=False))
    q = np.asarray(model.embed([x.text for x in queries], progress=False))
    scores = q @ d.T
    run = {}
    for i, query in enumerate(queries):
        top = np.argsort(-scores[i], kind="stable")[:100]
        run[query.id] = [ScoredDoc(query.id, docs[j].id, float(scores[i, j]), r + 1) for r, j in enumerate(top)]
    metrics, _ = evaluate(run, qrels, MEASURES)
    return {"teacher": model.info.name, "weights_sha256": model.info.weights_sha256, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev", type=Path, default=ROOT / "build" / "dev" / "squad-dev")
    p.add_argument("--candidate", action="append", required=True, metavar="NAME=MODEL")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "dev" / "runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--teacher", nargs="?", const="minilm", default=None,
                   help="add the teacher's dense ranking (default teacher: minilm, the packaged all-MiniLM-L6-v2)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "default_recipe"))
    args = p.parse_args(argv)
    if not (args.dev / "qrels" / "dev.tsv").is_file():
        raise SystemExit(f"no dev split at {args.dev}: run python benchmarks/dev_split.py first")
    candidates = parse_candidates(args.candidate)

    from splare_lucene.cli.main import main as cli
    from splare_lucene.evaluate import paired_test

    results, timings = {}, {}
    for name, model in candidates:
        out = args.work / name
        start = time.time()
        code = cli(["evaluate", "--model", model, "--name", name, "--collection", str(args.dev), "--split", "dev",
                    "--bm25", "--measures", ",".join(MEASURES), "--output", str(out),
                    "--threads", str(args.threads)])
        if code != 0:
            raise SystemExit(f"evaluate failed for {name} ({model})")
        timings[name] = round(time.time() - start, 1)
        report = json.loads((out / "results.json").read_text())
        rows = {r["system"]: r for r in report["rows"] if r["collection"] != "mean"}
        tsv = next(out.rglob("per_query.tsv"))
        results[name] = {"model": model, "fingerprint": report["model_fingerprint"],
                         "metrics": rows[name]["metrics"], "queries": rows[name]["queries"],
                         "bm25": rows["BM25"]["metrics"], "per_query": per_query(tsv, name, MEASURES[0]),
                         "training": training_of(model)}
    first = candidates[0][0]
    qids = sorted(results[first]["per_query"])
    for name in results:
        if name != first:
            a = [results[name]["per_query"].get(q, 0.0) for q in qids]
            b = [results[first]["per_query"].get(q, 0.0) for q in qids]
            results[name]["p_vs_" + first] = paired_test(a, b, "t-test")
    teacher = teacher_metrics(args.dev, args.teacher) if args.teacher else None
    meta = json.loads((args.dev / "dev_split.json").read_text())
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/default_recipe.py"] + (argv or sys.argv[1:]))
    lines = ["# The default model's recipe, chosen on the dev split", "",
             f"Command: `{command}`  ",
             f"Dev split: `benchmarks/dev_split.py` ({meta['queries']} held-out squad-train queries, "
             f"{meta['documents']} paragraphs: {meta['positives']} positives, {meta['siblings']} from the same "
             f"articles, {meta['fill']} others; holdout {meta['holdout']}).", "",
             "| system | loss | negatives per query | text normalisation | steps | " + " | ".join(MEASURES)
             + f" | p (nDCG@10, t-test vs {first}) |",
             "|---|---|---:|---|---:|" + "---:|" * len(MEASURES) + "---:|"]
    bm25 = results[first]["bm25"]
    lines.append("| BM25 | - | - | Anserini analyzer | - | " + " | ".join(f"{bm25[m]:.4f}" for m in MEASURES) + " | - |")
    if teacher:
        lines.append(f"| teacher ({args.teacher}, dense, exact) | - | - | as given | - | "
                     + " | ".join(f"{teacher['metrics'][m]:.4f}" for m in MEASURES) + " | - |")
    for name, r in results.items():
        t = r["training"]
        neg = t.get("negatives")
        neg = "-" if neg is None else (f"{neg} + in-batch" if t.get("in_batch_negatives") and t.get("loss") == "infonce"
                                        else str(neg))
        pv = r.get("p_vs_" + first)
        lines.append(f"| {name} | {t.get('loss', '-')} | {neg} | {t['text_normalization']} | {t.get('steps', '-')} | "
                     + " | ".join(f"{r['metrics'][m]:.4f}" for m in MEASURES)
                     + f" | {'-' if pv is None else f'{pv:.3g}'} |")
    lines.append("")
    for r in results.values():
        r.pop("per_query")
    write_results(args.out, {"command": command, "dev_split": meta, "candidates": results, "teacher": teacher,
                             "evaluate_seconds": timings}, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
