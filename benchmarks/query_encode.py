"""Query encoding latency on the CPU, one thread: the float32 reference against faster variants.

Per query, batch of 1 (the interactive case), variants interleaved query by query in one process
so that machine load hits them alike. Figures per query set (cranfield queries and a sample of
squad-train questions): p50/p99 latency of ``SplareEncoder.encode([q], "query")`` + ``terms``
(what a search pays before Lucene), the reference's time broken down (tokenizer, backbone,
SAE + pooling, top-k and sparse conversion), and fidelity against the reference: identical
query vectors (integer impacts, as searched), mean overlap of their term sets, max |impact
difference|, and top-10 agreement of the search results.

Top-10 agreement needs the documents' vectors as the index holds them: ``--doc-vectors DIR`` (an
``splare-lucene encode`` output of cranfield with the same model, e.g.
benchmarks/results/perf-work/cranfield-default). Each query is scored against them exactly as
Lucene's impact search does (sum over shared terms of query impact x document impact, integers),
ranked by the toolkit's rule (score descending, id ascending); agreement is
|top-10(reference) & top-10(variant)| / 10, averaged over queries, with nDCG@10 of each variant
(cranfield qrels restricted to the documents given). Only cranfield queries are scored (squad
questions have no index here).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/query_encode.py \
        --doc-vectors benchmarks/results/perf-work/cranfield-default [--quick]

Writes results/query_encode.json and .md (``--out`` to change), with the exact command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_results.py
from _results import percentile, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))
VARIANTS = {  # name -> (quantize, smooth)
    "fp32": ("none", None),
    "int8": ("int8", True),
    "int8-nosmooth": ("int8", False),
}
logger = logging.getLogger("query_encode")


def read_texts(path: Path, limit: int) -> list[tuple[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                rows.append((str(obj["_id"]), obj["text"]))
            if len(rows) >= limit:
                break
    return rows


def load_variant(name: str):
    from splare_lucene.encoder import SplareEncoder

    quantize, smooth = VARIANTS[name]
    enc = SplareEncoder.from_pretrained("default", device="cpu", dtype="float32")
    return enc.quantize_for_queries(quantize, smooth=smooth) if quantize != "none" else enc


def breakdown(enc, texts: list[str]) -> dict[str, float]:
    """p50 ms of each step of the reference path for one query at a time."""
    import torch

    from splare_lucene.backbone import hidden_states, tokenize
    from splare_lucene.encoder import _to_sparse
    from splare_lucene.pooling import top_k

    side = enc.config.side("query")
    steps: dict[str, list[float]] = {"tokenizer": [], "backbone": [], "sae_pool": [], "topk_sparse_terms": []}
    with torch.inference_mode():
        for text in texts:
            t0 = time.perf_counter()
            ids, attn, pool_mask = tokenize(enc.backbone, [text], side.max_length, "cpu",
                                            enc.config.pool_special_tokens)
            t1 = time.perf_counter()
            hidden = hidden_states(enc.backbone, ids, attn, enc.config.bidirectional)  # (1, T, d)
            t2 = time.perf_counter()
            pooled = enc.head.pool(hidden, pool_mask)  # (1, d_sae)
            t3 = time.perf_counter()
            enc.terms(_to_sparse(top_k(pooled, side.top_k).float()[0]))
            t4 = time.perf_counter()
            for key, a, b in (("tokenizer", t0, t1), ("backbone", t1, t2), ("sae_pool", t2, t3),
                              ("topk_sparse_terms", t3, t4)):
                steps[key].append((b - a) * 1000)
    return {k: round(statistics.median(v), 2) for k, v in steps.items()}


def gemm_floor(enc, texts: list[str], repeats: int = 3) -> dict[str, float]:
    """How fast float32 could be on this core: the reference's matrix products alone, per query.

    Every ``nn.Linear`` call of the backbone is recorded (rows, in, out) by a forward hook while a
    query is encoded, plus the SAE encoder's product ((tokens x d_model) @ (d_model x d_sae)); each
    product is then replayed alone with random float32 tensors of the same shapes (best of
    ``repeats``). FLOPs = sum of 2 x rows x in x out. The replayed time is a floor for any float32
    implementation that uses this torch build's GEMM (attention, norms, activations and Python
    overhead come on top); a different GEMM library can only gain what it beats this one by on
    these shapes. Returns medians over ``texts``: GFLOP per query, GEMM-only ms and the GFLOPS
    this core reached on them.
    """
    import torch

    from splare_lucene.backbone import hidden_states, tokenize

    side = enc.config.side("query")
    shapes: list[tuple[int, int, int]] = []

    def hook(module, inputs, _output):
        x = inputs[0]
        shapes.append((x.numel() // x.shape[-1], module.in_features, module.out_features))

    handles = [m.register_forward_hook(hook) for m in enc.backbone.model.modules() if isinstance(m, torch.nn.Linear)]
    per_query_flops, per_query_ms = [], []
    cache: dict[tuple[int, int, int], float] = {}
    try:
        with torch.inference_mode():
            for text in texts:
                shapes.clear()
                ids, attn, _ = tokenize(enc.backbone, [text], side.max_length, "cpu", enc.config.pool_special_tokens)
                hidden = hidden_states(enc.backbone, ids, attn, enc.config.bidirectional)
                calls = list(shapes) + [(hidden.shape[1], hidden.shape[-1], enc.d_sae)]
                for shape in set(calls) - set(cache):
                    rows, d_in, d_out = shape
                    x, w = torch.randn(rows, d_in), torch.randn(d_out, d_in)
                    best = float("inf")
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        torch.nn.functional.linear(x, w)
                        best = min(best, time.perf_counter() - t0)
                    cache[shape] = best * 1000
                per_query_flops.append(sum(2 * r * i * o for r, i, o in calls))
                per_query_ms.append(sum(cache[c] for c in calls))
    finally:
        for h in handles:
            h.remove()
    flops, ms = statistics.median(per_query_flops), statistics.median(per_query_ms)
    return {"queries": len(texts), "gflop_per_query_p50": round(flops / 1e9, 3),
            "gemm_only_ms_p50": round(ms, 1), "gemm_gflops": round(flops / 1e9 / (ms / 1000), 1)}


def top10(query: dict[str, int], docs) -> list[str]:
    """Exact impact scoring (Lucene's for an impact index) of one query over all documents."""
    import numpy as np

    ids, columns, matrix = docs
    q = np.zeros(len(columns), dtype=np.int64)
    for term, weight in query.items():
        if term in columns:
            q[columns[term]] = weight
    scores = matrix @ q  # (n_docs,)
    order = sorted(range(len(ids)), key=lambda i: (-int(scores[i]), ids[i]))
    return [ids[i] for i in order[:10] if scores[i] > 0]


def ndcg10(runs: list[list[str]], qids: list[str], qrels_path: Path, docs_ids: set[str]) -> float | None:
    """Mean nDCG@10 (ir_measures) of top-10 lists over the judged queries, qrels restricted to the
    scored documents (so a partial document set compares variants, not published figures)."""
    import ir_measures

    if not qrels_path.is_file():
        return None
    qrels = []
    with qrels_path.open(encoding="utf-8") as f:
        next(f)  # header: query-id corpus-id score
        for line in f:
            qid, did, rel = line.split("\t")[:3]
            if did in docs_ids and int(rel) > 0:
                qrels.append(ir_measures.Qrel(qid, did, int(rel)))
    run = [ir_measures.ScoredDoc(qid, did, float(10 - r)) for qid, hits in zip(qids, runs)
           for r, did in enumerate(hits)]
    judged = {q.query_id for q in qrels}
    run = [h for h in run if h.query_id in judged]
    return round(ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10], 4)


def load_docs(directory: Path):
    import numpy as np
    from scipy.sparse import csr_matrix

    from splare_lucene.jsonl import read_vectors

    ids, rows, cols, vals, columns = [], [], [], [], {}
    for n, (doc_id, vector) in enumerate(read_vectors(directory)):
        ids.append(doc_id)
        for term, weight in vector.items():
            rows.append(n)
            cols.append(columns.setdefault(term, len(columns)))
            vals.append(weight)
    matrix = csr_matrix((np.array(vals, dtype=np.int64), (rows, cols)), shape=(len(ids), len(columns)))
    return ids, columns, matrix


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cranfield", type=int, default=225, help="cranfield queries (all 225 by default)")
    p.add_argument("--squad", type=int, default=200, help="squad-train questions (first N)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--doc-vectors", type=Path, help="encoded cranfield documents for top-10 agreement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--floor-queries", type=int, default=50,
                   help="queries whose matrix products are replayed alone (the float32 floor)")
    p.add_argument("--quick", action="store_true", help="40 cranfield + 20 squad queries")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "query_encode")
    args = p.parse_args()
    if args.quick:
        args.cranfield, args.squad = min(args.cranfield, 40), min(args.squad, 20)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if "fp32" not in args.variants:
        args.variants.insert(0, "fp32")
    sets = {"cranfield": read_texts(SHARED / "cranfield" / "queries.jsonl", args.cranfield),
            "squad-train": read_texts(SHARED / "squad-train" / "queries.jsonl", args.squad)}
    t = time.perf_counter()
    encoders = {name: load_variant(name) for name in args.variants}
    logger.info("loaded %s in %.0f s", list(encoders), time.perf_counter() - t)
    docs = load_docs(args.doc_vectors) if args.doc_vectors else None

    results: dict = {"command": " ".join(["OMP_NUM_THREADS=1", sys.executable.replace(str(REPO) + "/", ""),
                                          *map(shlex.quote, sys.argv)]),
                     "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                f"torch {torch.__version__}, 1 thread",
                     "load_average_start": os.getloadavg()[0], "sets": {}}
    for set_name, rows in sets.items():
        texts = [text for _, text in rows]
        for enc in encoders.values():  # warm-up: first calls allocate and pack
            for text in texts[:args.warmup]:
                enc.terms(enc.encode([text], "query")[0])
        times = {name: [] for name in encoders}
        terms = {name: [] for name in encoders}
        for text in texts:
            for name, enc in encoders.items():
                t0 = time.perf_counter()
                vector = enc.encode([text], "query")[0]
                q = enc.terms(vector)
                times[name].append((time.perf_counter() - t0) * 1000)
                terms[name].append(q)
        ref = terms["fp32"]
        out = {"queries": len(texts), "breakdown_fp32_p50_ms": breakdown(encoders["fp32"], texts),
               "fp32_gemm_floor": gemm_floor(encoders["fp32"], texts[:args.floor_queries]),
               "variants": {}}
        ref_top = [top10(q, docs) for q in ref] if docs and set_name == "cranfield" else None
        qids = [qid for qid, _ in rows]
        qrels_path = SHARED / set_name / "qrels" / "test.tsv"
        for name in encoders:
            row = {"p50_ms": round(statistics.median(times[name]), 1),
                   "p99_ms": round(percentile(times[name], 99), 1),
                   "identical_vectors": round(sum(a == b for a, b in zip(ref, terms[name])) / len(ref), 3),
                   "term_overlap": round(statistics.mean(len(set(a) & set(b)) / max(1, len(a))
                                                         for a, b in zip(ref, terms[name])), 3),
                   "max_abs_impact_diff": max(max((abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)),
                                                  default=0) for a, b in zip(ref, terms[name]))}
            row["speedup_p50"] = round(statistics.median(times["fp32"]) / statistics.median(times[name]), 2)
            if ref_top is not None:
                mine = [top10(q, docs) for q in terms[name]]
                row["top10_agreement"] = round(statistics.mean(
                    len(set(a) & set(b)) / max(1, len(a)) for a, b in zip(ref_top, mine)), 3)
                row["ndcg@10"] = ndcg10(mine, qids, qrels_path, set(docs[0]))
            out["variants"][name] = row
            logger.info("%s %s: %s", set_name, name, row)
        if ref_top is not None:
            # How fragile top-10 is on this collection: the reference's impacts each moved by one
            # quantization step at random (+-1, seeded), the smallest change a query can undergo.
            import random

            rng = random.Random(0)
            jittered = [{t: max(1, w + rng.choice((-1, 1))) for t, w in q.items()} for q in ref]
            out["top10_agreement_fp32_jitter1"] = round(statistics.mean(
                len(set(a) & set(top10(q, docs))) / max(1, len(a)) for a, q in zip(ref_top, jittered)), 3)
            logger.info("%s: top-10 agreement of the reference with +-1 impact jitter: %s", set_name,
                        out["top10_agreement_fp32_jitter1"])
        results["sets"][set_name] = out
    results["load_average_end"] = os.getloadavg()[0]
    if docs:
        results["doc_vectors"] = f"{args.doc_vectors} ({len(docs[0])} documents)"
    write(results, args.out)
    return 0


def write(results: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Query encoding latency (CPU, one thread, batch of 1)", "",
             f"Command: `{results['command']}`", "",
             f"Machine: {results['machine']}; load average {results['load_average_start']:.2f} at start, "
             f"{results['load_average_end']:.2f} at end. Variants interleaved query by query.", "",
             "Variants: `fp32`, the reference (`--query-quantization none`; LoRA merged at load, blocks "
             "above L, final norm and LM head never built); `int8`, `--query-quantization int8` "
             "(SmoothQuant rescaling calibrated on the packaged demo texts, then every backbone linear "
             "layer int8: `splare_lucene/speed.py`); `int8-nosmooth`, the same without the rescaling. "
             "Vector figures compare integer impacts (scale of the model) with the reference's.", ""]
    if "doc_vectors" in results:
        lines += [f"Top-10 agreement and nDCG@10 (qrels restricted to these documents): exact impact "
                  f"scoring over {results['doc_vectors']}.", ""]
    for set_name, figures in results["sets"].items():
        lines += [f"## {set_name} ({figures['queries']} queries)", "",
                  "| variant | p50 ms | p99 ms | speed-up (p50) | identical vectors | term overlap | "
                  "max abs impact diff | top-10 agreement | nDCG@10 |", "|---|---|---|---|---|---|---|---|---|"]
        for name, row in figures["variants"].items():
            lines.append(f"| {name} | {row['p50_ms']} | {row['p99_ms']} | {row['speedup_p50']}x | "
                         f"{row['identical_vectors']} | {row['term_overlap']} | {row['max_abs_impact_diff']} | "
                         f"{row.get('top10_agreement', 'n/a')} | {row.get('ndcg@10', 'n/a')} |")
        if "top10_agreement_fp32_jitter1" in figures:
            lines += ["", "Top-10 agreement of the reference with every query impact moved by +-1 at random "
                      f"(the smallest change a query vector can undergo): {figures['top10_agreement_fp32_jitter1']}"]
        b = figures["breakdown_fp32_p50_ms"]
        lines += ["", "fp32 breakdown, p50 ms: " + ", ".join(f"{k} {v}" for k, v in b.items())]
        if "fp32_gemm_floor" in figures:
            f = figures["fp32_gemm_floor"]
            half = figures["variants"]["fp32"]["p50_ms"] / 2
            lines += ["", f"fp32 floor (first {f['queries']} queries, medians): {f['gflop_per_query_p50']} GFLOP per "
                      f"query in matrix products (backbone linear layers + SAE encoder); replayed alone they take "
                      f"{f['gemm_only_ms_p50']} ms ({f['gemm_gflops']} GFLOPS on this core). Halving the reference's "
                      f"p50 means {half:.1f} ms, " + ("below" if half < f["gemm_only_ms_p50"] else "above")
                      + " what these products alone cost in float32."]
        lines.append("")
    write_results(out, results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
