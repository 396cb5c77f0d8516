"""Quantization fidelity: does ranking by integer impacts agree with ranking by float weights?

Encodes a BEIR-layout collection once (float vectors, the model's own top-k), then for each
quantization scale ranks every document for every query by the exact integer dot product
(what Lucene computes) and compares with the float dot-product ranking:

* top-10 overlap: |float top-10 & int top-10| / 10, averaged over queries (target >= 0.95);
* nDCG@10 of both rankings against the qrels (ir_measures);
* mean document impact (indexing time and index size grow with it: Anserini repeats a term
  ``impact`` times) and the share of document entries rounded away.

    python benchmarks/quantization_fidelity.py --corpus ../shared/data/cranfield
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def encode_matrix(encoder, items, kind, batch_size):
    import scipy.sparse as sp

    rows, cols, vals, ids = [], [], [], []
    for n, (item, vec) in enumerate(encoder.encode_stream(items, kind=kind, batch_size=batch_size)):
        ids.append(item.id)
        rows.append(np.full(vec.nnz, n))
        cols.append(vec.indices)
        vals.append(vec.values)
    m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(ids), encoder.d_sae), dtype=np.float64)
    return ids, m


def quantized(m, scale):
    q = m.copy()
    q.data = np.floor(q.data * scale + 0.5)
    q.eliminate_zeros()
    return q


def rank(scores, doc_ids, k):
    out = []
    for row in scores:
        row = np.asarray(row).ravel()
        top = np.argsort(-row, kind="stable")[:k]
        out.append([(doc_ids[i], float(row[i])) for i in top if row[i] > 0])
    return out


def ndcg10(runs, qids, qrels_path):
    import ir_measures
    from ir_measures import nDCG

    qrels = list(ir_measures.read_trec_qrels(_beir_qrels(qrels_path)))
    run = [ir_measures.ScoredDoc(q, d, s) for q, hits in zip(qids, runs) for d, s in hits]
    return ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]


def _beir_qrels(path):
    lines = Path(path).read_text().splitlines()
    out = []
    for line in lines[1:]:
        q, d, s = line.split("\t")[:3]
        out.append(f"{q} 0 {d} {s}")
    tmp = Path("/tmp") / f"qrels-{abs(hash(str(path)))}.trec"
    tmp.write_text("\n".join(out) + "\n")
    return str(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--corpus", required=True, help="BEIR folder with corpus, queries, qrels/test.tsv")
    ap.add_argument("--scales", default="10,30,100,300")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--output", help="write the results as JSON here")
    args = ap.parse_args()

    import torch

    from splare_lucene import SplareEncoder
    from splare_lucene.corpus import read_documents, read_queries

    start = time.time()
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    doc_ids, D = encode_matrix(encoder, read_documents(args.corpus, allow_empty=True), "document", args.batch_size)
    qids, Q = encode_matrix(encoder, read_queries(args.corpus), "query", args.batch_size)
    encode_s = time.time() - start
    qrels = Path(args.corpus) / "qrels" / "test.tsv"
    float_runs = rank((Q @ D.T).toarray(), doc_ids, 10)
    results = {"model": args.model, "corpus": args.corpus, "documents": len(doc_ids), "queries": len(qids),
               "doc_nnz_mean": float(np.diff(D.indptr).mean()), "query_nnz_mean": float(np.diff(Q.indptr).mean()),
               "float_ndcg10": ndcg10(float_runs, qids, qrels), "scales": [],
               "encode_seconds": round(encode_s, 1), "torch_threads": torch.get_num_threads(),
               "machine": platform.processor() or platform.machine()}
    for scale in [float(s) for s in args.scales.split(",")]:
        Dq, Qq = quantized(D, scale), quantized(Q, scale)
        int_runs = rank((Qq @ Dq.T).toarray(), doc_ids, 10)
        overlap = np.mean([len({d for d, _ in a} & {d for d, _ in b}) / max(1, min(10, len(a)))
                           for a, b in zip(float_runs, int_runs)])
        results["scales"].append({
            "scale": scale, "top10_overlap": float(overlap), "int_ndcg10": ndcg10(int_runs, qids, qrels),
            "doc_mean_impact": float(Dq.data.mean()), "doc_entries_dropped": 1 - Dq.nnz / D.nnz,
            "query_entries_dropped": 1 - Qq.nnz / Q.nnz})
    print(f"{results['documents']} documents, {results['queries']} queries; non-zeros per doc "
          f"{results['doc_nnz_mean']:.0f}, per query {results['query_nnz_mean']:.0f}; "
          f"float nDCG@10 {results['float_ndcg10']:.4f}; encoding took {encode_s:.0f} s")
    print("| scale | top-10 overlap | int nDCG@10 | mean doc impact | doc entries dropped |")
    print("|---:|---:|---:|---:|---:|")
    for r in results["scales"]:
        print(f"| {r['scale']:g} | {r['top10_overlap']:.4f} | {r['int_ndcg10']:.4f} | "
              f"{r['doc_mean_impact']:.1f} | {r['doc_entries_dropped']:.2%} |")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
