"""splare-lucene index: corpus (or encoded parts) -> Lucene impact index."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="BEIR folder, .jsonl(.gz), .tsv, or irds:<id> (encoded first)")
    src.add_argument("--jsonl", nargs="+", metavar="DIR",
                     help="directories of encoded parts (from `encode`; the outputs of every shard of "
                     "`encode --num-shards N`, indexed together)")
    p.add_argument("--index", required=True, help="index directory to create")
    p.add_argument("--threads", type=positive_int, default=1, help="indexing threads")
    p.add_argument("--keep-jsonl", help="encode into (and keep) this directory; default: <index>.jsonl, "
                   "removed after indexing. Either way, rerunning after an interruption resumes encoding")
    p.add_argument("--part-size", type=positive_int, default=None,
                   help="documents per encoded part file, the unit of resumption (default 2000)")
    p.add_argument("--no-raw", action="store_true", help="do not store document text in the index")
    p.add_argument("--allow-empty", action="store_true", help="skip documents with empty text")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    add_runtime(p)


def run(args) -> int:
    import os

    from ..errors import ConfigError
    from ..outputs import check_apart, check_not_input, check_output_dir, check_replaceable

    # every output checked before the model loads or anything is encoded (issue 10)
    inputs = {"--corpus": args.corpus, "--jsonl": args.jsonl, "--model": None if args.jsonl else args.model}
    check_not_input(args.index, inputs, what="--index")
    if os.path.lexists(args.index) and not args.overwrite:
        raise ConfigError(f"index directory {args.index} already exists; pass --overwrite to replace it")
    check_output_dir(args.index, what="--index")
    check_replaceable(args.index, ["index"], what="--index")
    if args.corpus:
        from ..pipeline import default_work_dir

        work, what = (args.keep_jsonl, "--keep-jsonl") if args.keep_jsonl else (default_work_dir(args.index),
                                                                                "work directory")
        check_not_input(work, inputs, what=what)
        check_apart(work, args.index, what=what, other_what="--index")
        check_output_dir(work, what=what)
        check_replaceable(work, ["encode"], what=what)  # encoding into it resumes; other files: refused
    if args.jsonl:
        from ..index import build_index

        counters = build_index(args.jsonl, args.index, threads=args.threads,
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
                                overwrite=args.overwrite, part_size=args.part_size)
    print(f"index {args.index}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return 0
