"""Choose a model's query and document top-k on a dev split (issue 12): every (query top-k,
document top-k) pair of a grid, scored exactly, from one encoding of the queries and documents.

The paper keeps 40 latents per query and 400 per document for SAEs of 16k-131k latents (PAPER.md,
"Inference top-k"). For a narrower SAE the same cut is not obviously right: with 8,192 latents a
400-latent document covers 5% of the vocabulary, and what is cut is a model setting
(``query.top_k``, ``document.top_k`` in ``splare_config.json``; ``assemble --query-top-k
--doc-top-k``), so it is chosen like any other on held-out queries, never on test queries.

How: each text is encoded once without a cut (``SplareEncoder.pooled(..., apply_top_k=False)``:
the model's own normalisation, prefix, max length, pooling); then for each pair the vectors are
cut to their top-k, quantized as the model indexes them (``impact = round_half_up(weight x
scale)``, splare_lucene.quantize) and every document is scored by the exact dot product of
integer impacts, which is what a Lucene impact index scores (``ImpactSimilarity``), ranked in the
toolkit's one order (``evaluate`` -> ``ranking.rank_hits``: score, then document id). A model
that weights query latents by idf (``query_idf_power``, splare_lucene.latent_idf) is scored with
its stored weights in every cell (they were counted at its own document cut). The
model's own cell reproduces ``splare-lucene evaluate``'s figure (shipped default on the dev
split: 0.7919 both ways, benchmarks/results/default_recipe.md).

The choice rule, stated before reading the table: the cheapest cell within ``--tolerance``
(default 0.01) of the grid's best nDCG@10, where a cell's cost is the postings a query scores in
proportion, query terms x document terms (mean non-zeros after the cut). A paired t-test compares
the chosen cell with the model's own setting over the same queries.

    python benchmarks/dev_split.py
    python benchmarks/top_k_grid.py --candidate shipped=default \\
        --query-top-k 40,64,100,0 --doc-top-k 400,800,1600,0 --out benchmarks/results/top_k_grid

Sized for dev splits: the uncut encodings are dense, documents x latents x 4 bytes (800 x 8,192:
26 MB; 1,000 documents of a 131k-latent SAE: 0.5 GB), and each document cut makes a float64 copy.

``0`` means no cut (every non-zero latent). Encodings are cached as ``.npy`` under ``--cache``
(keyed by the model fingerprint and the collection), so a finer grid or another transform of
the queries costs only the scoring. ``--query-transform upper|title`` reports (never chooses) how
the cells fare with re-cased queries.
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

from splare_lucene.train.augment import title_case  # noqa: E402

# "title": the Title variant of case_robustness.py and of training's case augmentation (the first
# letter of each word upper-cased, the rest unchanged; str.title would also lower-case the rest)
TRANSFORMS = {"none": lambda s: s, "upper": str.upper, "title": title_case}


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given (for results files)."""
    full = path.resolve()
    return str(full.relative_to(ROOT) if full.is_relative_to(ROOT) else path)


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (0 = no cut); got {text!r}")
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0 (0 = no cut); got {text!r}")
    return values


def cut(matrix, k: int):
    """(n, V) float32 pooled weights -> (n, V) float64 with each row's top ``k`` kept (0: all)."""
    import numpy as np

    m = matrix.astype(np.float64)
    if k and k < m.shape[1]:
        drop = np.argpartition(-m, k, axis=1)[:, k:]
        np.put_along_axis(m, drop, 0.0, axis=1)
    return m


def quantize(weights, scale):
    """``round_half_up(weight x scale)`` as splare_lucene.quantize does (float64 integers);
    ``scale`` a number or an array that broadcasts over the columns."""
    import numpy as np

    x = weights * scale
    whole = np.floor(x)
    return whole + ((x - whole) >= 0.5)


def cut_and_quantize(matrix, k: int, scale: float):
    """(n, V) float32 pooled weights -> (n, V) float64 integer impacts: each row's top ``k``
    (0: all), then ``round_half_up(weight x scale)`` as splare_lucene.quantize does."""
    return quantize(cut(matrix, k), scale)


def encode_uncut(encoder, texts: list[str], kind: str, batch_size: int, desc: str):
    """Texts -> (n, d_sae) float32 pooled weights without the side's top-k, length-sorted batches."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), int(encoder.d_sae)), dtype=np.float32)
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch"):
            idx = order[start:start + batch_size]
            out[idx] = encoder.pooled([texts[i] for i in idx], kind, apply_top_k=False).float().cpu().numpy()
    return out


def load_encodings(name: str, model: str, args, collection, queries) -> dict:
    """The model's uncut encodings of ``collection``'s documents and of ``queries`` (one matrix per
    ``args.query_transform``), from ``args.cache`` or encoded and cached there.

    Returns ``{"config", "fingerprint", "doc_ids", "D": (documents, d_sae) float32,
    "Q": {transform: (queries, d_sae) float32}}`` (``Q`` empty when ``queries`` is None). The cache
    key is the model fingerprint and the collection's folder name (``{fingerprint}-{name}.docs.npy``,
    ``...queries-{split}-{transform}.npy``).
    """
    import numpy as np

    from splare_lucene.config import SplareConfig
    from splare_lucene.corpus import read_documents
    from splare_lucene.encoder import SplareEncoder, model_fingerprint, resolve_model_dir

    directory = Path(resolve_model_dir(model))
    config = SplareConfig.load(directory)
    fingerprint = model_fingerprint(directory, config)
    tag = f"{fingerprint}-{collection.name}"
    args.cache.mkdir(parents=True, exist_ok=True)
    docs = list(read_documents(str(collection), allow_empty=True))  # empty ones skipped, as evaluate's index does
    encoder = None

    def load():
        nonlocal encoder
        if encoder is None:
            encoder = SplareEncoder.from_pretrained(model, device=args.device)
        return encoder

    doc_file = args.cache / f"{tag}.docs.npy"
    if doc_file.is_file():
        D = np.load(doc_file)
    else:
        D = encode_uncut(load(), [d.text for d in docs], "document", args.batch_size, f"{name}: documents")
        np.save(doc_file, D)
    Q = {}
    for transform in args.query_transform if queries is not None else ():
        q_file = args.cache / f"{tag}.queries-{args.split}-{transform}.npy"
        if q_file.is_file():
            Q[transform] = np.load(q_file)
        else:
            Q[transform] = encode_uncut(load(), [TRANSFORMS[transform](q.text) for q in queries], "query", 32,
                                        f"{name}: queries ({transform})")
            np.save(q_file, Q[transform])
    return {"config": config, "fingerprint": fingerprint, "doc_ids": [d.id for d in docs], "D": D, "Q": Q}


def run_from_scores(scores, queries, doc_ids: list[str], k: int) -> dict:
    """(queries, documents) scores -> a run: each query's ``k`` best documents with a score > 0,
    by score, then collection order (``np.argsort(kind="stable")``)."""
    import numpy as np

    from splare_lucene.types import ScoredDoc

    run = {}
    for i, query in enumerate(queries):
        top = np.argsort(-scores[i], kind="stable")[:k]
        run[query.id] = [ScoredDoc(query.id, doc_ids[j], float(scores[i, j]), r + 1)
                         for r, j in enumerate(top) if scores[i, j] > 0]
    return run


def grid_for(name: str, model: str, args, collection, queries, qrels) -> dict:
    import numpy as np

    from splare_lucene.evaluate import evaluate, paired_test

    enc = load_encodings(name, model, args, collection, queries)
    config, fingerprint, doc_ids, D = enc["config"], enc["fingerprint"], enc["doc_ids"], enc["D"]
    per_transform = {}
    for transform in args.query_transform:
        Q = enc["Q"][transform]
        cells = {}
        scale = config.quantization_scale
        if config.query_idf_power:  # the model's own query weighting (splare_lucene.latent_idf), fixed counts
            from splare_lucene.encoder import resolve_model_dir
            from splare_lucene.latent_idf import LatentDocumentFrequency

            scale = scale * LatentDocumentFrequency.load(resolve_model_dir(model)).query_weights(config.query_idf_power)
        query_cuts = {qk: quantize(cut(Q, qk), scale) for qk in args.query_top_k}
        for dk in args.doc_top_k:
            Dc = cut_and_quantize(D, dk, config.quantization_scale)
            d_nnz = float((Dc > 0).sum(1).mean())
            for qk, Qc in query_cuts.items():
                run = run_from_scores(Qc @ Dc.T, queries, doc_ids, args.k)
                metrics, rows = evaluate(run, qrels, args.measures)
                per_query = {qid: v for qid, m, v in rows if m == args.measures[0]}
                q_nnz = float((Qc > 0).sum(1).mean())
                cells[f"{qk}/{dk}"] = {
                    "query_top_k": qk, "doc_top_k": dk, "metrics": metrics,
                    "query_nnz": round(q_nnz, 1), "doc_nnz": round(d_nnz, 1), "cost": round(q_nnz * d_nnz),
                    "per_query": {q.id: per_query.get(q.id, 0.0) for q in queries}}
                print(f"{name} [{transform}] query top-k {qk or 'all'} / doc top-k {dk or 'all'}: "
                      + ", ".join(f"{m} {v:.4f}" for m, v in metrics.items()), flush=True)
        per_transform[transform] = cells
    first = args.measures[0]
    cells = per_transform[args.query_transform[0]]
    best = max(c["metrics"][first] for c in cells.values())
    eligible = [key for key, c in cells.items() if c["metrics"][first] >= best - args.tolerance]
    chosen = min(eligible, key=lambda key: (cells[key]["cost"], -cells[key]["metrics"][first]))
    own = f"{config.query.top_k}/{config.document.top_k}"
    p = None
    if own in cells and own != chosen:
        qids = [q.id for q in queries]
        p = paired_test([cells[chosen]["per_query"][q] for q in qids], [cells[own]["per_query"][q] for q in qids],
                        "t-test")
    for t in per_transform.values():
        for c in t.values():
            c.pop("per_query")
    return {"model": model, "fingerprint": fingerprint, "text_normalization": config.text_normalization,
            "own": own, "best": best, "chosen": chosen, "p_chosen_vs_own": p, "cells": per_transform}


def table(name: str, r: dict, args, transform: str) -> list[str]:
    first = args.measures[0]
    cells = r["cells"][transform]
    head = "| doc top-k \\ query top-k | " + " | ".join(str(q or "all") for q in args.query_top_k) + " |"
    lines = [head, "|---|" + "---:|" * len(args.query_top_k)]
    for dk in args.doc_top_k:
        row = []
        for qk in args.query_top_k:
            key = f"{qk}/{dk}"
            v = f"{cells[key]['metrics'][first]:.4f}"
            if transform == args.query_transform[0] and key == r["chosen"]:
                v = f"**{v}**"
            if key == r["own"]:
                v += " (own)"
            row.append(v)
        lines.append(f"| {dk or 'all'} | " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", action="append", required=True, metavar="NAME=MODEL",
                   help="a model directory or 'default'; repeat for several")
    p.add_argument("--collection", type=Path, default=ROOT / "build" / "dev" / "squad-dev",
                   help="BEIR-layout folder (default: the dev split of benchmarks/dev_split.py)")
    p.add_argument("--split", default="dev", help="qrels split (default dev)")
    p.add_argument("--query-top-k", type=int_list, default=[40, 64, 100, 0])
    p.add_argument("--doc-top-k", type=int_list, default=[400, 800, 1600, 0])
    p.add_argument("--query-transform", nargs="+", choices=sorted(TRANSFORMS), default=["none"],
                   help="queries as given (none), upper-cased or title-cased; the first one decides the choice")
    p.add_argument("--measures", default="nDCG@10,R@100", help="ir_measures names; the first decides")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="the chosen cell is the cheapest within this much of the best first measure")
    p.add_argument("--k", type=int, default=100, help="hits per query")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--cache", type=Path, default=ROOT / "build" / "top-k-grid")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "top_k_grid"))
    args = p.parse_args(argv)
    from splare_lucene.evaluate import split_measures

    args.measures = split_measures(args.measures)
    candidates = parse_candidates(args.candidate)
    qrels_file = args.collection / "qrels" / f"{args.split}.tsv"
    if not qrels_file.is_file():
        default = ROOT / "build" / "dev" / "squad-dev"
        hint = " (run python benchmarks/dev_split.py first)" if args.collection.resolve() == default else ""
        raise SystemExit(f"no qrels at {qrels_file}{hint}")

    import torch

    from splare_lucene.corpus import read_queries
    from splare_lucene.evaluate import read_qrels

    torch.set_num_threads(args.threads)
    qrels = read_qrels(qrels_file)
    queries = [q for q in read_queries(str(args.collection)) if q.id in qrels]
    start = time.time()
    results = {name: grid_for(name, model, args, args.collection, queries, qrels) for name, model in candidates}
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/top_k_grid.py"] + (argv or sys.argv[1:]))
    first = args.measures[0]
    lines = [f"# Query and document top-k on {args.collection.name} ({args.split}: {len(queries)} queries)", "",
             f"Command: `{command}`  ",
             f"Exact scoring of quantized impacts (what a Lucene impact index scores), {first} per cell; "
             f"**bold**: chosen (the cheapest cell within {args.tolerance} of the best, cost = query "
             "non-zeros x document non-zeros); (own): the model's current setting; all = no cut.", ""]
    for name, r in results.items():
        for transform in args.query_transform:
            label = "" if transform == "none" else f", queries {transform}"
            lines += [f"## {name} (`{r['model']}`, text_normalization {r['text_normalization']}{label})", ""]
            lines += table(name, r, args, transform) + [""]
        c = r["cells"][args.query_transform[0]][r["chosen"]]
        pv = r["p_chosen_vs_own"]
        lines += [f"Chosen: query top-k {c['query_top_k'] or 'all'}, document top-k {c['doc_top_k'] or 'all'} "
                  f"({first} {c['metrics'][first]:.4f}; {c['query_nnz']} x {c['doc_nnz']} mean non-zeros"
                  + ("" if pv is None else f"; paired t-test vs own setting p = {pv:.3g}") + "). "
                  f"Apply it with `splare-lucene configure --model {r['model']} --output DIR --query-top-k "
                  f"{c['query_top_k']} --doc-top-k {c['doc_top_k']}`.", ""]
    cache = args.cache.resolve()
    cache = cache.relative_to(ROOT) if cache.is_relative_to(ROOT) else cache
    lines.append(f"Seconds: {time.time() - start:.0f} (encodings cached under {cache})")
    write_results(args.out, {"command": command, "collection": shown_path(args.collection), "split": args.split,
                             "queries": len(queries), "measures": args.measures, "tolerance": args.tolerance,
                             "candidates": results}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
