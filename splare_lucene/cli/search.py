"""splare-lucene search: a query file to a TREC run, or one --query printed with its hits."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--index", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--queries", help="BEIR folder, .jsonl, .tsv (id<TAB>text), or irds:<id>")
    src.add_argument("--query", help="one query: print ranked hits with their text")
    p.add_argument("--output", help="TREC run file to write (with --queries)")
    p.add_argument("--k", type=positive_int, default=1000, help="hits per query (10 with --query)")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--tag", default="splare", help="run tag in the TREC file")
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
    from ..encoder import SplareEncoder
    from ..search import SplareQueryEncoder, batch_search, hit_text, open_searcher, write_trec_run

    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    searcher = open_searcher(args.index, SplareQueryEncoder(encoder, batch_size=args.batch_size))
    if args.query is not None:
        k = args.k if args.k != 1000 else 10
        from ..search import search_hits
        from ..types import Query

        for hit in search_hits(searcher, Query("query", args.query), k=k):  # the toolkit's tie rule
            text = " ".join(hit_text(searcher, hit.doc_id).split())
            print(f"{hit.rank:3d}  {hit.score:10.0f}  {hit.doc_id:<16} {text[:150]}")
        return 0
    from ..corpus import read_queries

    queries = list(read_queries(args.queries))
    results = batch_search(searcher, queries, k=args.k, threads=args.threads)
    write_trec_run(results, args.output, tag=args.tag)
    print(f"wrote {sum(len(h) for h in results.values())} hits for {len(results)} queries to {args.output}")
    return 0
