"""splare-lucene search: a query file to a TREC run, or one --query printed with its hits."""

from __future__ import annotations

import argparse
import logging

from .common import add_model, add_runtime
from .evaluate import add_hybrid_options, check_hybrid
from .options import ArgumentCheckError, positive_int, probability, thread_count

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--index", required=True,
                   help="the index directory `splare-lucene index` wrote (Lucene impact or Seismic)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--queries", help="BEIR folder, .jsonl, .tsv (id<TAB>text), or irds:<id>")
    src.add_argument("--query", help="one query: print ranked hits with their text")
    p.add_argument("--output", help="TREC run file to write (with --queries)")
    p.add_argument("--k", type=positive_int, default=1000, help="hits per query (10 with --query)")
    p.add_argument("--threads", type=thread_count, default=1,
                   help="search threads for --queries (Anserini's batch search; the same hits at any count)")
    p.add_argument("--tag", default=None,
                   help="run tag in the TREC file (default splare; with --hybrid, hybrid-<fusion> as evaluate writes)")
    p.add_argument("--query-quantization", choices=["none", "int8"], default="none",
                   help="int8: the backbone's linear layers in int8 for queries (CPU only; 1.5-2x faster "
                   "on one thread, rankings differ: benchmarks/results/query_encode.md)")
    p.add_argument("--explain", action="store_true",
                   help="with --query: a line per hit naming its top shared latents and their labels "
                   "(splare-lucene explain gives the full breakdown)")
    p.add_argument("--backend", choices=["lucene", "seismic"], default=None,
                   help="default: the backend that built the index (its splare_index.json); if given, "
                   "it must be that one")
    p.add_argument("--seismic-query-cut", type=positive_int, default=None,
                   help="Seismic: search the query's N largest terms (default: all of them)")
    p.add_argument("--seismic-heap-factor", type=probability, default=None,
                   help="Seismic: scan a block when its bound exceeds this x the k-th score "
                   "(default 0.8, Seismic's README; 1.0 loses nothing)")
    g = add_hybrid_options(p, search=True)
    g.add_argument("--bm25-index", metavar="DIR",
                   help="--hybrid bm25: a BM25 (plain Lucene) index of the same documents' text")
    g.add_argument("--corpus", metavar="C",
                   help="--hybrid bm25: the documents (as `index --corpus` reads them); their BM25 index is "
                   "built once and reused from the cache ($SPLARE_LUCENE_CACHE/bm25, default ~/.cache/splare_lucene/bm25)")
    g.add_argument("--language", default=None,
                   help="--hybrid bm25: BM25 analyzer language (default en; as `evaluate --language`)")
    g.add_argument("--fusion-depth", type=positive_int, default=None,
                   help="--hybrid: hits of each system fused (default max(--k, 1000), Pyserini's fusion depth)")
    add_runtime(p)


def check_arguments(args: argparse.Namespace) -> None:
    """Checks that involve two options (run by ``main`` right after parsing)."""
    if args.queries and not args.output:
        raise ArgumentCheckError("argument --queries: needs --output RUN_FILE (where the TREC run goes)")
    if args.explain and args.query is None:
        raise ArgumentCheckError("argument --explain: applies to one --query (use `splare-lucene explain` "
                                 "for a document)")
    check_hybrid(args)
    bm25_given = [o for o, v in (("--bm25-index", args.bm25_index), ("--corpus", args.corpus),
                                 ("--language", args.language)) if v is not None]
    if args.hybrid is None and bm25_given:
        raise ArgumentCheckError(f"argument {bm25_given[0]}: applies to --hybrid bm25")
    if args.hybrid == "bm25" and (args.bm25_index is None) == (args.corpus is None):
        raise ArgumentCheckError("argument --hybrid: bm25 needs the documents' text: give --corpus C (a BM25 "
                                 "index is built once and cached) or --bm25-index DIR, not both")
    if args.bm25_index is not None and args.language is not None:
        raise ArgumentCheckError("argument --language: applies to --corpus (an existing --bm25-index was built "
                                 "with its own analyzer); use --corpus C --language L")


def _bm25_index(args) -> str:
    """The BM25 index of --hybrid: --bm25-index checked, or built/reused from --corpus (before the
    model loads, so a wrong path fails fast)."""
    from pathlib import Path

    from ..errors import ConfigError, InputError

    if args.bm25_index is not None:
        path = Path(args.bm25_index)
        if not path.is_dir():
            raise InputError("no such BM25 index directory; build one with `python -m pyserini.index.lucene "
                             "... ` or pass --corpus C instead", path=str(path))
        if (path / "splare_index.json").is_file():
            raise ConfigError(f"--bm25-index {path} is a SPLARE impact index, not a BM25 index of the text; "
                              "pass --corpus C (the documents) to build the BM25 index")
        return str(path)
    if not args.corpus.startswith("irds:") and not Path(args.corpus).exists():
        raise InputError("no such corpus (BEIR folder, .jsonl, .tsv or irds:<id>) for --hybrid bm25",
                         path=args.corpus)
    from ..bm25 import bm25_index

    return str(bm25_index(args.corpus, language=args.language or "en", threads=args.threads))


def run(args) -> int:
    if args.query is not None and not args.query.strip():  # before the model loads
        from ..errors import InputError

        raise InputError(f"the query is empty (--query {args.query!r}); give the text to search for")
    if args.query is not None and not any(ch.isalnum() for ch in args.query):
        logger.warning("the query %r has no letters or digits: its latents come from punctuation or symbols "
                       "alone, so the hits rank documents that share those latents, rarely documents about "
                       "anything (BM25 would find no term to match); give the words to search for", args.query)
    if args.output:  # before any work: the run never replaces an input, and can be written
        from ..outputs import check_not_input, check_output_file

        check_not_input(args.output, {"--queries": args.queries, "--index": args.index, "--model": args.model})
        check_output_file(args.output)
    queries = None
    if args.queries:  # read (and refused when missing, empty or malformed) before the model loads
        from ..corpus import read_queries

        queries = list(read_queries(args.queries))
    from ..backends import resolve_backend

    backend = resolve_backend(args.index, args.backend)  # before the model loads
    options: dict = {"batch_size": args.batch_size}
    seismic = {"query_cut": args.seismic_query_cut, "heap_factor": args.seismic_heap_factor}
    if backend == "seismic":
        from ..backends.seismic import import_seismic

        import_seismic()  # missing extra: the install command before the model loads
        options.update({k: v for k, v in seismic.items() if v is not None})
    elif any(v is not None for v in seismic.values()):
        raise ConfigError(f"--seismic-* options apply to Seismic indexes; {args.index} is a {backend} index")
    bm25 = _bm25_index(args) if args.hybrid == "bm25" else None
    from ..backends import open_index
    from ..encoder import SplareEncoder
    from ..ranking import write_trec_run

    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype,
                                             quantize=args.query_quantization)
    index = open_index(args.index, encoder, backend=backend, options=options)
    if args.query is not None:
        k = args.k if args.k != 1000 else 10
        from ..types import Query

        if bm25 is None:
            hits = index.search_one(Query("query", args.query), k=k)  # the toolkit's tie rule
        else:
            hits = _hybrid(index, [Query("query", args.query)], bm25, args, k=k)["query"]
        if args.explain:
            from ..explain.explain import explain_hit

            q_vec = encoder.encode([args.query], kind="query")[0]  # once, not once per hit
        for hit in hits:
            text = " ".join(index.hit_text(hit.doc_id).split())
            score = f"{hit.score:10.0f}" if bm25 is None else f"{hit.score:10.5f}"  # fused scores are < 1
            print(f"{hit.rank:3d}  {score}  {hit.doc_id:<16} {text[:150]}")
            if args.explain:
                print(f"     {explain_hit(encoder, index, args.query, hit.doc_id, query_vector=q_vec)}")
        return 0
    if bm25 is None:
        results = index.search(queries, k=args.k, threads=args.threads)
    else:
        results = _hybrid(index, queries, bm25, args, k=args.k)
    from ..fusion import run_tag

    tag = args.tag or ("splare" if bm25 is None else run_tag(args.fusion))
    write_trec_run(results, args.output, tag=tag)
    print(f"wrote {sum(len(h) for h in results.values())} hits for {len(results)} queries to {args.output}")
    return 0


def _hybrid(index, queries, bm25_index: str, args, *, k: int):
    from ..pipeline import hybrid_search

    return hybrid_search(index, queries, bm25_index, language=args.language or "en", fusion=args.fusion,
                         alpha=args.alpha, rrf_k=args.rrf_k, depth=args.fusion_depth, k=k, threads=args.threads)
