"""splare-lucene evaluate: model + collections -> encode, index, search, score; print the table."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import positive_int, thread_count


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--collection", action="append", required=True, metavar="C",
                   help="BEIR-layout folder, beir/<name>/<split> (beir/cqadupstack/test: its 12 forums), "
                        "miracl/<lang>/dev, or irds:<ir_datasets id>; repeat for several")
    p.add_argument("--split", default="test", help="qrels split of folders and BEIR names (default test; "
                                                   "MIRACL names default to dev)")
    p.add_argument("--queries-from", metavar="Q",
                   help="cross-lingual: search these queries (a collection, or a .jsonl/.tsv file) against "
                        "each collection's corpus; qrels from Q when it has them, else from the collection")
    p.add_argument("--qrels", help="qrels file to use instead (BEIR TSV or TREC)")
    p.add_argument("--measures", action="append", metavar="M,M",
                   help="ir_measures names, comma-separated (default nDCG@10,R@100,R@1000,RR@10; MRR@10 "
                        "is RR@10); the first one is tested for significance and plotted")
    p.add_argument("--baseline-run", action="append", default=[], metavar="RUN",
                   help="TREC run to compare with (one per --collection, same order); the significance "
                        "baseline")
    p.add_argument("--baseline-name", default="baseline", help="system name of --baseline-run in the table")
    p.add_argument("--bm25", action="store_true",
                   help="add a BM25 baseline (Anserini, with the collection language's analyzer); the "
                        "significance baseline unless --baseline-run is given")
    p.add_argument("--language", help="analyzer language for BM25 (default: MIRACL's language, else en)")
    p.add_argument("--significance", default="t-test", choices=["t-test", "randomization"],
                   help="paired two-sided test on the first measure's per-query values")
    p.add_argument("--output", help="output folder (default runs/evaluate/<model name>)")
    p.add_argument("--name", help="system name of the model in the table (default: the model's name)")
    p.add_argument("--k", type=positive_int, default=1000, help="hits per query")
    p.add_argument("--threads", type=thread_count, default=1, help="indexing and search threads")
    p.add_argument("--plot", action="store_true", help="also write results.png (first measure, per collection)")
    p.add_argument("--keep-jsonl", action="store_true",
                   help="keep the encoded corpus beside the index (re-indexing then skips encoding)")
    p.add_argument("--no-reuse", action="store_true", help="rebuild indexes even when they match")
    p.add_argument("--download", action="store_true",
                   help="let ir_datasets download missing files (default: fail, naming the files to place)")
    p.add_argument("--backend", default="lucene", choices=["lucene", "seismic"],
                   help="search engine to index and search with (default lucene; seismic with its default "
                   "parameters, see docs/pipeline.md#backends)")
    add_runtime(p)


def run(args) -> int:
    from ..evaluate import split_measures
    from ..pipeline import run_evaluation

    measures = [m for text in (args.measures or []) for m in split_measures(text)] or None
    report = run_evaluation(
        args.model, args.collection, output=args.output, split=args.split, measures=measures,
        queries_from=args.queries_from, qrels=args.qrels, baseline_runs=args.baseline_run,
        baseline_name=args.baseline_name, bm25=args.bm25, language=args.language,
        significance=args.significance, k=args.k, threads=args.threads, batch_size=args.batch_size,
        device=args.device, dtype=args.dtype, plot=args.plot, allow_download=args.download,
        keep_jsonl=args.keep_jsonl, reuse=not args.no_reuse, model_name=args.name, backend=args.backend)
    print(report.markdown, end="")
    for c in report.collections:
        state = "reused" if c["reused_index"] else "built"
        print(f"{c['topics']}: index {state} at {c['index_dir']}; run and per-query results in {c['work_dir']}")
    print("wrote " + ", ".join(str(p) for p in report.files.values()))
    return 0
