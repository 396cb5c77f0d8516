"""Does weighting query latents by their idf help? (issue 12, eighth round)

SPLARE scores a document by the dot product of query and document latent impacts (PAPER.md); a
latent that fires on most documents of a collection adds to almost every score. ``docs/explain.md``
("A hub document, and why") found documents that match many queries through such latents. BM25
discounts a term that most documents hold by its idf; this script measures the same discount on
SPLARE's query side, with nothing retrained: each query latent's weight is multiplied by

    idf(latent) ** power,   idf = ln(1 + (N - df + 0.5) / (df + 0.5))

(Lucene's ``BM25Similarity.idf``, Robertson/Sparck Jones with +1 inside the log so it stays > 0),
N the collection's documents, df the documents whose quantized impact for that latent is > 0 after
the document cut. ``power`` 0 is today's scoring. Two sources of df: the searched collection itself
(what an index knows), or with ``--idf-from FOLDER`` a fixed set of documents (say, training
paragraphs) applied unchanged to every collection (what a model directory could carry).

Each text is encoded once without a cut and cached (``benchmarks/top_k_grid.py``'s cache and
encoder: the model's normalisation, prefix, max length, pooling), cut and quantized per cell as
the model indexes it (a query impact is ``round_half_up(weight x scale x idf ** power)``: integers,
as Pyserini's ``LuceneImpactSearcher`` sends them), and every document is scored exactly::

    python benchmarks/query_idf.py --candidate default=default --collection build/dev/squad-dev-1000 \\
        --power 0,0.5,1 --out benchmarks/results/query_idf_dev1000

Sized like top_k_grid.py's dev splits: the uncut encodings are dense (documents x latents x 4 bytes).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _results import parse_candidates, write_results  # noqa: E402
from top_k_grid import (TRANSFORMS, cut, cut_and_quantize, int_list, load_encodings, quantize,  # noqa: E402
                        run_from_scores, shown_path)


def float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}")
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0; got {text!r}")
    return values


def bm25_idf(doc_impacts):
    """(documents, latents) impacts -> (latents,) float64 idf, df = documents with an impact > 0:
    :func:`splare_lucene.latent_idf.bm25_idf`, the formula a model's stored counts go through."""
    from splare_lucene.latent_idf import bm25_idf as idf_of_counts

    return idf_of_counts((doc_impacts > 0).sum(axis=0), doc_impacts.shape[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", action="append", required=True, metavar="NAME=MODEL",
                   help="a model directory or 'default'; repeat for several")
    p.add_argument("--collection", type=Path, required=True, help="BEIR-layout folder with qrels")
    p.add_argument("--split", default="dev", help="qrels split (default dev)")
    p.add_argument("--power", type=float_list, default=[0.0, 0.5, 1.0],
                   help="idf exponents; 0 = today's scoring (default 0,0.5,1)")
    p.add_argument("--query-top-k", type=int_list, default=None,
                   help="query cuts (default: the model's own); 0 = no cut")
    p.add_argument("--doc-top-k", type=int_list, default=None,
                   help="document cuts (default: the model's own); 0 = no cut")
    p.add_argument("--idf-from", type=Path, default=None,
                   help="take df from this BEIR folder's documents (same model, same cut) instead of "
                        "the searched collection's")
    p.add_argument("--query-transform", nargs="+", choices=sorted(TRANSFORMS), default=["none"])
    p.add_argument("--measures", default="nDCG@10,R@100", help="ir_measures names")
    p.add_argument("--k", type=int, default=100, help="hits per query")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--cache", type=Path, default=ROOT / "build" / "top-k-grid")
    p.add_argument("--out", required=True, help="results path without extension (.json and .md)")
    args = p.parse_args(argv)

    import torch

    from splare_lucene.corpus import read_queries
    from splare_lucene.evaluate import evaluate, paired_test, read_qrels, split_measures

    args.measures = split_measures(args.measures)
    qrels_file = args.collection / "qrels" / f"{args.split}.tsv"
    if not qrels_file.is_file():
        raise SystemExit(f"no qrels at {qrels_file}: give a BEIR-layout folder and its --split")
    torch.set_num_threads(args.threads)
    qrels = read_qrels(qrels_file)
    queries = [q for q in read_queries(str(args.collection)) if q.id in qrels]
    qids = [q.id for q in queries]
    first = args.measures[0]
    start = time.time()
    results = {}
    for name, model in parse_candidates(args.candidate):
        enc = load_encodings(name, model, args, args.collection, queries)
        config = enc["config"]
        idf_docs = None if args.idf_from is None else load_encodings(
            f"{name} (idf)", model, args, args.idf_from, None)["D"]
        q_cuts = args.query_top_k or [config.query.top_k or 0]
        d_cuts = args.doc_top_k or [config.document.top_k or 0]
        cells = []
        for dk in d_cuts:
            Dc = cut_and_quantize(enc["D"], dk, config.quantization_scale)
            idf = bm25_idf(Dc if idf_docs is None else cut_and_quantize(idf_docs, dk, config.quantization_scale))
            for transform in args.query_transform:
                for qk in q_cuts:
                    Qw = cut(enc["Q"][transform], qk)
                    base = None
                    for power in args.power:
                        scores = quantize(Qw, config.quantization_scale * idf ** power) @ Dc.T
                        metrics, rows = evaluate(run_from_scores(scores, queries, enc["doc_ids"], args.k),
                                                 qrels, args.measures)
                        per_query = {qid: v for qid, m, v in rows if m == first}
                        values = [per_query.get(q, 0.0) for q in qids]
                        if base is None:
                            base = values
                        cell = {"query_top_k": qk, "doc_top_k": dk, "transform": transform, "power": power,
                                "metrics": metrics,
                                "p_vs_first_power": None if values is base else paired_test(values, base, "t-test")}
                        cells.append(cell)
                        print(f"{name} [{transform}] {qk or 'all'}/{dk or 'all'} idf^{power:g}: "
                              + ", ".join(f"{m} {v:.4f}" for m, v in metrics.items()), flush=True)
        results[name] = {"model": model, "fingerprint": enc["fingerprint"],
                         "text_normalization": config.text_normalization,
                         "idf": "ln(1 + (N - df + 0.5) / (df + 0.5)) over the document impacts after the cut",
                         "idf_from": shown_path(args.idf_from or args.collection),
                         "cells": cells}

    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/query_idf.py"] + (argv or sys.argv[1:]))
    lines = [f"# Query latents weighted by idf ** power on {args.collection.name} ({args.split}: {len(queries)} queries)",
             "", f"Command: `{command}`  ",
             "Exact scoring of quantized impacts; power 0 is the model's own scoring. p: paired t-test "
             f"of {first} against the first power of the same cell.", ""]
    for name, r in results.items():
        lines += [f"## {name} (`{r['model']}`, fingerprint {r['fingerprint']}, "
                  f"text_normalization {r['text_normalization']}; df over {r['idf_from']})", "",
                  "| queries | query/doc top-k | idf power | " + " | ".join(args.measures) + " | p |",
                  "|---|---|---:|" + "---:|" * len(args.measures) + "---:|"]
        for c in r["cells"]:
            pv = c["p_vs_first_power"]
            lines.append(f"| {c['transform']} | {c['query_top_k'] or 'all'}/{c['doc_top_k'] or 'all'} | "
                         f"{c['power']:g} | " + " | ".join(f"{c['metrics'][m]:.4f}" for m in args.measures)
                         + f" | {'' if pv is None else f'{pv:.3g}'} |")
        lines.append("")
    lines.append(f"Seconds: {time.time() - start:.0f}")
    write_results(args.out, {"command": command, "collection": shown_path(args.collection), "split": args.split,
                             "queries": len(queries), "measures": args.measures, "powers": args.power,
                             "candidates": results}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
