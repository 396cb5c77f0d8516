"""splare-lucene index: corpus (or encoded shards) -> Lucene impact index."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="BEIR folder, .jsonl(.gz), .tsv, or irds:<id> (encoded first)")
    src.add_argument("--jsonl", help="directory of already encoded shards (from `encode`)")
    p.add_argument("--index", required=True, help="index directory to create")
    p.add_argument("--threads", type=int, default=1, help="indexing threads (and shards)")
    p.add_argument("--keep-jsonl", help="also keep the encoded shards in this directory")
    p.add_argument("--no-raw", action="store_true", help="do not store document text in the index")
    p.add_argument("--allow-empty", action="store_true", help="skip documents with empty text")
    p.add_argument("--overwrite", action="store_true")
    add_runtime(p)


def run(args) -> int:
    from ..errors import ConfigError

    if args.jsonl:
        from ..index import build_index
        from ..jsonl import index_meta, read_summary

        meta = index_meta(read_summary(args.jsonl) or {})
        counters = build_index(args.jsonl, args.index, threads=args.threads, meta=meta,
                               store_raw=not args.no_raw, overwrite=args.overwrite)
    else:
        from ..encoder import SplareEncoder
        from ..pipeline import index_corpus

        if args.no_raw:
            raise ConfigError("--no-raw applies to --jsonl indexing; encode with `encode` first")
        encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
        counters = index_corpus(encoder, args.corpus, args.index, threads=args.threads,
                                batch_size=args.batch_size, allow_empty=args.allow_empty,
                                model_name=args.model, keep_jsonl=args.keep_jsonl,
                                overwrite=args.overwrite)
    print(f"index {args.index}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return 0
