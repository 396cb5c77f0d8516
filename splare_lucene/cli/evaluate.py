"""splare-lucene evaluate: model + collections -> encode, index, search, score; print the table."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import fraction, non_negative_int, positive_int, thread_count


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
    add_hybrid_options(p, search=False)
    add_runtime(p)


def add_hybrid_options(p: argparse.ArgumentParser, *, search: bool):
    """--hybrid, --fusion, --alpha, --rrf-k (shared with ``search``); :func:`check_hybrid` checks
    them. Returns the argument group (``search`` adds its BM25 source options to it)."""
    from ..fusion import DEFAULT_ALPHA, DEFAULT_RRF_K, FUSION_METHODS

    what = ("search with the model and BM25 and write the fused hits (BM25 needs --corpus or --bm25-index)"
            if search else "add a row <model>+BM25 ... to the table: the model's run fused with BM25's (as --bm25 "
            "runs it)")
    g = p.add_argument_group("hybrid retrieval (docs/evaluation.md#hybrid-with-bm25)")
    g.add_argument("--hybrid", choices=["bm25"], help=what)
    g.add_argument("--fusion", choices=list(FUSION_METHODS), default=None,
                   help="rrf: reciprocal rank fusion (default); interpolation: alpha x SPLARE + (1 - alpha) x "
                   "BM25, each min-max normalised per query")
    g.add_argument("--alpha", type=fraction, default=None,
                   help=f"interpolation: the weight of SPLARE (1: SPLARE alone, 0: BM25 alone; default {DEFAULT_ALPHA})")
    g.add_argument("--rrf-k", type=non_negative_int, default=None,
                   help=f"rrf: the constant k in 1/(k + rank) (default {DEFAULT_RRF_K}, Cormack et al. 2009)")
    return g


def check_hybrid(args: argparse.Namespace) -> None:
    """Fusion options only with --hybrid, and each only with its method (exit 2 otherwise)."""
    from .options import ArgumentCheckError

    given = [o for o, v in (("--fusion", args.fusion), ("--alpha", args.alpha), ("--rrf-k", args.rrf_k),
                            ("--fusion-depth", getattr(args, "fusion_depth", None))) if v is not None]
    if args.hybrid is None:
        if given:
            raise ArgumentCheckError(f"argument {given[0]}: applies to hybrid retrieval; add --hybrid bm25")
        return
    args.fusion = args.fusion or "rrf"
    if args.fusion == "rrf" and args.alpha is not None:
        raise ArgumentCheckError("argument --alpha: applies to --fusion interpolation (rrf takes --rrf-k)")
    if args.fusion == "interpolation" and args.rrf_k is not None:
        raise ArgumentCheckError("argument --rrf-k: applies to --fusion rrf (interpolation takes --alpha)")


def check_arguments(args: argparse.Namespace) -> None:
    """Checks that involve two options (run by ``main`` right after parsing)."""
    check_hybrid(args)


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
        keep_jsonl=args.keep_jsonl, reuse=not args.no_reuse, model_name=args.name, backend=args.backend,
        hybrid=args.hybrid, fusion=args.fusion or "rrf", alpha=args.alpha, rrf_k=args.rrf_k)
    print(report.markdown, end="")
    for c in report.collections:
        state = "reused" if c["reused_index"] else "built"
        print(f"{c['topics']}: index {state} at {c['index_dir']}; run and per-query results in {c['work_dir']}")
    print("wrote " + ", ".join(str(p) for p in report.files.values()))
    return 0
