"""splare-lucene index: corpus (or encoded parts) -> Lucene impact index."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="BEIR folder, .jsonl(.gz), .tsv, or irds:<id> (encoded first)")
    src.add_argument("--jsonl", nargs="+", metavar="DIR",
                     help="directories of encoded parts (from `encode`; the outputs of every shard of "
                     "`encode --num-shards N`, indexed together)")
    p.add_argument("--index", required=True, help="index directory to create")
    p.add_argument("--threads", type=int, default=1, help="indexing threads")
    p.add_argument("--keep-jsonl", help="encode into (and keep) this directory; default: <index>.jsonl, "
                   "removed after indexing. Either way, rerunning after an interruption resumes encoding")
    p.add_argument("--part-size", type=int, default=None,
                   help="documents per encoded part file, the unit of resumption (default 2000)")
    p.add_argument("--no-raw", action="store_true", help="do not store document text in the index")
    p.add_argument("--allow-empty", action="store_true", help="skip documents with empty text")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    add_runtime(p)


def run(args) -> int:
    from ..errors import ConfigError

    if args.jsonl:
        from ..index import build_index

        counters = build_index(args.jsonl, args.index, threads=args.threads,
                               store_raw=not args.no_raw, overwrite=args.overwrite)
    else:
        from ..encoder import SplareEncoder
        from ..pipeline import index_corpus

        if args.no_raw:
            raise ConfigError("--no-raw applies to --jsonl indexing; encode with `encode` first")
        if args.part_size is not None and args.part_size < 1:
            raise ConfigError(f"--part-size must be >= 1; got {args.part_size}")
        encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
        counters = index_corpus(encoder, args.corpus, args.index, threads=args.threads,
                                batch_size=args.batch_size, allow_empty=args.allow_empty,
                                model_name=args.model, keep_jsonl=args.keep_jsonl,
                                overwrite=args.overwrite, part_size=args.part_size)
    print(f"index {args.index}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return 0
