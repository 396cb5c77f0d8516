"""splare-lucene search: a query file to a TREC run, or one --query printed with its hits."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--index", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--queries", help="BEIR folder, .jsonl, .tsv (id<TAB>text), or irds:<id>")
    src.add_argument("--query", help="one query: print ranked hits with their text")
    p.add_argument("--output", help="TREC run file to write (with --queries)")
    p.add_argument("--k", type=int, default=1000, help="hits per query (10 with --query)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="splare", help="run tag in the TREC file")
    add_runtime(p)


def run(args) -> int:
    from ..errors import ConfigError

    if args.queries and not args.output:
        raise ConfigError("--queries needs --output RUN_FILE")
    from ..encoder import SplareEncoder
    from ..search import SplareQueryEncoder, batch_search, hit_text, open_searcher, write_trec_run

    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    searcher = open_searcher(args.index, SplareQueryEncoder(encoder, batch_size=args.batch_size))
    if args.query is not None:
        k = args.k if args.k != 1000 else 10
        for rank, hit in enumerate(searcher.search(args.query, k=k), start=1):
            text = " ".join(hit_text(searcher, hit.docid).split())
            print(f"{rank:3d}  {hit.score:10.0f}  {hit.docid:<16} {text[:150]}")
        return 0
    from ..corpus import read_queries

    queries = list(read_queries(args.queries))
    results = batch_search(searcher, queries, k=args.k, threads=args.threads)
    write_trec_run(results, args.output, tag=args.tag)
    print(f"wrote {sum(len(h) for h in results.values())} hits for {len(results)} queries to {args.output}")
    return 0
