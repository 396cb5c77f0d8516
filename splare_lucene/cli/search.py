"""splare-lucene search: a query file to a TREC run, or one --query printed with its hits."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import positive_int, probability, thread_count


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--index", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--queries", help="BEIR folder, .jsonl, .tsv (id<TAB>text), or irds:<id>")
    src.add_argument("--query", help="one query: print ranked hits with their text")
    p.add_argument("--output", help="TREC run file to write (with --queries)")
    p.add_argument("--k", type=positive_int, default=1000, help="hits per query (10 with --query)")
    p.add_argument("--threads", type=thread_count, default=1)
    p.add_argument("--tag", default="splare", help="run tag in the TREC file")
    p.add_argument("--backend", choices=["lucene", "seismic"], default=None,
                   help="default: the backend that built the index (its splare_index.json); if given, "
                   "it must be that one")
    p.add_argument("--seismic-query-cut", type=positive_int, default=None,
                   help="Seismic: search the query's N largest terms (default: all of them)")
    p.add_argument("--seismic-heap-factor", type=probability, default=None,
                   help="Seismic: scan a block when its bound exceeds this x the k-th score "
                   "(default 0.8, Seismic's README; 1.0 loses nothing)")
    add_runtime(p)


def run(args) -> int:
    from ..errors import ConfigError

    if args.queries and not args.output:
        raise ConfigError("--queries needs --output RUN_FILE")
    if args.query is not None and not args.query.strip():  # before the model loads
        from ..errors import InputError

        raise InputError(f"the query is empty (--query {args.query!r}); give the text to search for")
    if args.output:  # before any work: the run never replaces an input, and can be written
        from ..outputs import check_not_input, check_output_file

        check_not_input(args.output, {"--queries": args.queries, "--index": args.index, "--model": args.model})
        check_output_file(args.output)
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
    from ..backends import open_index
    from ..encoder import SplareEncoder
    from ..ranking import write_trec_run

    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    index = open_index(args.index, encoder, backend=backend, options=options)
    if args.query is not None:
        k = args.k if args.k != 1000 else 10
        from ..types import Query

        for hit in index.search_one(Query("query", args.query), k=k):  # the toolkit's tie rule
            text = " ".join(index.hit_text(hit.doc_id).split())
            print(f"{hit.rank:3d}  {hit.score:10.0f}  {hit.doc_id:<16} {text[:150]}")
        return 0
    from ..corpus import read_queries

    queries = list(read_queries(args.queries))
    results = index.search(queries, k=args.k, threads=args.threads)
    write_trec_run(results, args.output, tag=args.tag)
    print(f"wrote {sum(len(h) for h in results.values())} hits for {len(results)} queries to {args.output}")
    return 0
