"""Hybrid retrieval: BM25, SPLARE and their fusion (RRF, interpolation) on cranfield and tatoeba.

Systems (every run k = 1000, fused at depth 1000 as `search --hybrid bm25` does; the fused runs
are cut at 100, which leaves nDCG@10 and R@100 unchanged):
  BM25               Anserini BM25 (k1=0.9, b=0.4), English analyzer (the corpora are English)
  SPLARE             the model (default: the built-in one), Lucene impact index, exact search
  RRF k=60           reciprocal rank fusion with Cormack et al.'s fixed constant (nothing tuned)
  RRF k=tuned        rrf_k chosen on the tune queries from --rrf-ks
  interp alpha=tuned alpha x SPLARE + (1 - alpha) x BM25, min-max normalised per query; alpha
                     chosen on the tune queries from --alphas

Split rule (fixed, stated, never looks at results): a query belongs to the TEST half when the
first byte of sha256(query id, UTF-8) is odd, else to the TUNE half. Fusion parameters are chosen
by mean nDCG@10 on the tune half: for cranfield on its own tune queries, for tatoeba once for all
languages (mean over the languages' tune halves). Every figure reported is on the test halves
only (all systems on the same queries).

Work (indexes, runs) is cached under benchmarks/results/hybrid-work/ (gitignored); a rerun reuses
finished runs. ``--cranfield-jsonl DIR`` indexes an encoded cranfield (``splare-lucene encode``
output, e.g. benchmarks/results/perf-work/cranfield-default) instead of encoding it again.

    python benchmarks/hybrid_fusion.py --model default \\
        --cranfield-jsonl benchmarks/results/perf-work/cranfield-default
    python benchmarks/hybrid_fusion.py --quick      # deu,fra only, smaller grids
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_results.py
from _results import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEASURES = ["nDCG@10", "R@100"]
logger = logging.getLogger("hybrid_fusion")


def split_of(qid: str) -> str:
    """'test' when the first byte of sha256(qid) is odd, else 'tune' (the benchmark's split rule)."""
    return "test" if hashlib.sha256(qid.encode("utf-8")).digest()[0] % 2 else "tune"


def _bm25_run(folder: Path, queries: dict[str, str], out: Path, threads: int):
    from splare_lucene.bm25 import bm25_index, bm25_search
    from splare_lucene.evaluate import read_run
    from splare_lucene.fusion import pairs_to_run
    from splare_lucene.ranking import write_trec_run

    if out.is_file():
        return read_run(out)
    index = bm25_index(str(folder), language="en", threads=threads)
    run = pairs_to_run(bm25_search(index, queries, k=1000, threads=threads, language="en"))
    write_trec_run(run, out, tag="bm25-en")
    return run


def _splare_run(encoder, folder: Path, queries, out: Path, work: Path, threads: int, jsonl: str | None):
    """The model's run over ``folder`` (cached in ``out``): from the encoded ``jsonl`` parts when
    given, else encoded + indexed + searched by evaluate_collection (its index cached in ``work``)."""
    from splare_lucene.evaluate import read_run
    from splare_lucene.ranking import write_trec_run

    if out.is_file():
        return read_run(out)
    if jsonl:
        from splare_lucene.backends import open_index
        from splare_lucene.cli.main import main as cli

        index_dir = work / "index-from-jsonl"
        if not (index_dir / "splare_index.json").is_file():
            if cli(["index", "--jsonl", jsonl, "--index", str(index_dir), "--threads", str(threads),
                    "--overwrite"]) != 0:
                raise SystemExit(f"indexing {jsonl} failed")
        index = open_index(index_dir, encoder)
        run = index.search(queries, k=1000, threads=threads)
    else:
        from splare_lucene.pipeline import evaluate_collection

        res = evaluate_collection(encoder, str(folder), work, k=1000, threads=threads, batch_size=16,
                                  model_name="splare", measures=MEASURES)
        run = read_run(res["run_path"])
    write_trec_run(run, out, tag="splare")
    return run


def _score(run, qrels, qids):
    """Mean nDCG@10 and R@100 of ``run`` over ``qids`` (queries judged in ``qrels``)."""
    from splare_lucene.evaluate import evaluate

    wanted = set(qids)
    metrics, _ = evaluate({q: h for q, h in run.items() if q in wanted},
                          {q: r for q, r in qrels.items() if q in wanted}, MEASURES)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--english", default="cranfield", help="English BEIR folder under --data")
    ap.add_argument("--cranfield-jsonl", default=None,
                    help="encoded --english corpus (encode output) to index instead of encoding it")
    ap.add_argument("--languages", default="deu,fra,spa,rus,cmn,ara",
                    help="tatoeba-xl X->English pairs (default: the six of splare_vs_splade.py)")
    ap.add_argument("--alphas", default=",".join(f"{a / 10:g}" for a in range(11)))
    ap.add_argument("--rrf-ks", default="10,30,60,100")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="deu,fra only; alphas 0,0.25,..,1; rrf-ks 10,60")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "hybrid_fusion"),
                    help="writes OUT.md and OUT.json")
    ap.add_argument("--work", default=str(REPO / "benchmarks" / "results" / "hybrid-work"),
                    help="cache of indexes and runs (per model fingerprint and collection)")
    args = ap.parse_args()
    if args.quick:
        args.languages, args.alphas, args.rrf_ks = "deu,fra", "0,0.25,0.5,0.75,1", "10,60"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    from splare_lucene.corpus import read_queries
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.evaluate import read_qrels
    from splare_lucene.fusion import fuse

    started = time.time()
    data = Path(args.data)
    out = Path(args.out)
    work = Path(args.work)
    alphas = [float(a) for a in args.alphas.split(",")]
    rrf_ks = [int(k) for k in args.rrf_ks.split(",")]
    langs = [lang for lang in args.languages.split(",") if lang]
    english = [args.english] if args.english else []  # --english "": tatoeba only
    tatoeba = [f"tatoeba-xl/{lang}-eng" for lang in langs]
    collections = english + tatoeba
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    model_key = (encoder.fingerprint or "nofp") + "-" + str(args.model).replace("/", "_")[-40:]

    runs, qrels, splits, seconds = {}, {}, {}, {}
    for coll in collections:
        folder = data / coll
        cwork = work / model_key / coll.replace("/", "_")
        cwork.mkdir(parents=True, exist_ok=True)
        qrels[coll] = read_qrels(folder / "qrels" / "test.tsv")
        queries = [q for q in read_queries(str(folder)) if q.id in qrels[coll]]
        splits[coll] = {s: [q.id for q in queries if split_of(q.id) == s] for s in ("tune", "test")}
        t0 = time.time()
        bm25 = _bm25_run(folder, {q.id: q.text for q in queries}, cwork / "bm25.trec", args.threads)
        t1 = time.time()
        splare = _splare_run(encoder, folder, queries, cwork / "splare.trec", cwork, args.threads,
                             args.cranfield_jsonl if coll == args.english else None)
        seconds[coll] = {"bm25": round(t1 - t0, 1), "splare": round(time.time() - t1, 1)}
        runs[coll] = {"BM25": bm25, "SPLARE": splare}
        logger.info("%s: %d queries (%d tune, %d test); runs ready", coll, len(queries),
                    len(splits[coll]["tune"]), len(splits[coll]["test"]))

    # Each split's queries are fused on their own (fusion is per query) and cut at k=100: nDCG@10
    # and R@100 of the top 100 are those of the full fused run (k only truncates), at a tenth of
    # the cost of building 1,000 ScoredDocs per query.
    def part(coll, split):
        wanted = set(splits[coll][split])
        return {name: {q: h for q, h in run.items() if q in wanted} for name, run in runs[coll].items()}

    def fused(coll, split, **params):
        p = part(coll, split)
        return fuse([p["SPLARE"], p["BM25"]], k=100, **params)

    # parameter choice on the tune halves only
    groups = {"cranfield": english, "tatoeba": tatoeba}
    tuning: dict = {}
    chosen: dict = {}
    for group, colls in groups.items():
        if not colls:
            continue
        curve = {"rrf_k": {}, "alpha": {}}
        for rk in rrf_ks:
            curve["rrf_k"][rk] = sum(_score(fused(c, "tune", method="rrf", rrf_k=rk), qrels[c], splits[c]["tune"])
                                     ["nDCG@10"] for c in colls) / len(colls)
        for a in alphas:
            curve["alpha"][a] = sum(_score(fused(c, "tune", method="interpolation", alpha=a), qrels[c],
                                           splits[c]["tune"])["nDCG@10"] for c in colls) / len(colls)
        # ties on the tune score: the smallest value (first in the grid), a fixed rule
        best_k = max(rrf_ks, key=lambda v: (round(curve["rrf_k"][v], 10), -rrf_ks.index(v)))
        best_a = max(alphas, key=lambda v: (round(curve["alpha"][v], 10), -alphas.index(v)))
        tuning[group] = {"rrf_k": {str(k): round(v, 4) for k, v in curve["rrf_k"].items()},
                         "alpha": {f"{k:g}": round(v, 4) for k, v in curve["alpha"].items()}}
        chosen[group] = {"rrf_k": best_k, "alpha": best_a}
        logger.info("%s: chosen on tune queries: rrf_k=%s, alpha=%s", group, best_k, best_a)

    results: dict = {}
    for group, colls in groups.items():
        for c in colls:
            test = part(c, "test")
            systems = {
                "BM25": test["BM25"], "SPLARE": test["SPLARE"],
                "RRF k=60": fused(c, "test", method="rrf", rrf_k=60),
                f"RRF k={chosen[group]['rrf_k']} (tuned)": fused(c, "test", method="rrf", rrf_k=chosen[group]["rrf_k"]),
                f"interp alpha={chosen[group]['alpha']:g} (tuned)": fused(c, "test", method="interpolation",
                                                                          alpha=chosen[group]["alpha"]),
            }
            results[c] = {name: _score(run, qrels[c], splits[c]["test"]) for name, run in systems.items()}
            results[c]["_queries"] = {"tune": len(splits[c]["tune"]), "test": len(splits[c]["test"])}

    def table_rows(coll_list, label):
        names = [n for n in results[coll_list[0]] if not n.startswith("_")]
        rows = []
        for i, name in enumerate(names):
            nd = sum(results[c][name]["nDCG@10"] for c in coll_list) / len(coll_list)
            rc = sum(results[c][name]["R@100"] for c in coll_list) / len(coll_list)
            rows.append(f"| {label} | {name} | {nd:.4f} | {rc:.4f} |")
        return rows

    head = ["| collection (test queries) | system | nDCG@10 | R@100 |", "|---|---|---:|---:|"]
    summary = head[:]
    if english:
        summary += table_rows(english, f"{args.english} ({results[args.english]['_queries']['test']})")
    if tatoeba:
        n_test = sum(results[c]["_queries"]["test"] for c in tatoeba)
        summary += table_rows(tatoeba, f"tatoeba X->eng, mean of {len(langs)} ({n_test})")
    per_lang = head[:]
    for c in tatoeba:
        per_lang += table_rows([c], f"{c} ({results[c]['_queries']['test']})")
    tune_lines = []
    for group, t in tuning.items():
        tune_lines.append(f"- {group}: rrf_k -> tune nDCG@10 {json.dumps(t['rrf_k'])}; chosen {chosen[group]['rrf_k']}")
        tune_lines.append(f"- {group}: alpha -> tune nDCG@10 {json.dumps(t['alpha'])}; chosen {chosen[group]['alpha']:g}")
    elapsed = time.time() - started
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0].replace(str(REPO) + "/", "")] + sys.argv[1:])
    text = "\n".join([
        "# Hybrid retrieval: SPLARE fused with BM25", "",
        f"Command: `{command}`  ",
        f"Model: {args.model} (fingerprint {encoder.fingerprint}); runs k=1000, fused at depth 1000 "
        "(`splare_lucene.fusion.fuse`, Pyserini's fusion module); BM25: Anserini, English analyzer.  ",
        "Split: a query is TEST when the first byte of sha256(query id) is odd, else TUNE. Fusion "
        "parameters were chosen by mean nDCG@10 on the tune queries (cranfield: its own; tatoeba: one "
        "setting for all languages) and every figure below is on the test queries only. `RRF k=60` is "
        "untuned (Cormack et al. 2009).  ",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"this invocation {elapsed / 60:.1f} min (cached runs reused: see the json's seconds).",
        "", "## Summary (test queries)", "", *summary, "",
        "## Per language (test queries)", "", *per_lang, "",
        "## Tuning (tune queries, mean nDCG@10)", "", *tune_lines, ""])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_results(out, {
        "command": command, "model": args.model, "model_fingerprint": encoder.fingerprint,
        "collections": collections, "split_rule": "test iff sha256(qid)[0] is odd", "chosen": chosen,
        "tuning": tuning, "results_test": results, "seconds": seconds, "elapsed_seconds": round(elapsed, 1)},
        text)


if __name__ == "__main__":
    main()
