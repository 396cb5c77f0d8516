"""splare-lucene index: corpus (or encoded parts) -> a Lucene impact index, or a Seismic index
(``--backend seismic``, :mod:`splare_lucene.backends.seismic`)."""

from __future__ import annotations

import argparse

from .common import add_model, add_runtime
from .options import positive_float, positive_int, probability, thread_count


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="BEIR folder, .jsonl(.gz), .tsv, or irds:<id> (encoded first)")
    src.add_argument("--jsonl", nargs="+", metavar="DIR",
                     help="directories of encoded parts (from `encode`; the outputs of every shard of "
                     "`encode --num-shards N`, indexed together)")
    p.add_argument("--index", required=True, help="index directory to create")
    p.add_argument("--threads", type=thread_count, default=1, help="indexing threads")
    p.add_argument("--keep-jsonl", help="encode into (and keep) this directory; default: <index>.jsonl, "
                   "removed after indexing. Either way, rerunning after an interruption resumes encoding")
    p.add_argument("--part-size", type=positive_int, default=None,
                   help="documents per encoded part file, the unit of resumption (default 2000)")
    p.add_argument("--no-raw", action="store_true", help="do not store document text in the index")
    p.add_argument("--allow-empty", action="store_true", help="skip documents with empty text")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index")
    p.add_argument("--backend", default="lucene", choices=["lucene", "seismic"],
                   help="search engine to index for (default lucene; seismic needs "
                   "`pip install 'splare-lucene[seismic]'`)")
    seismic = p.add_argument_group("Seismic build parameters (--backend seismic; defaults: pyseismic-lsr's own)")
    seismic.add_argument("--seismic-n-postings", type=positive_int, help="average posting-list length kept (3500)")
    seismic.add_argument("--seismic-centroid-fraction", type=probability,
                         help="fraction of a posting list used as block centroids (0.1)")
    seismic.add_argument("--seismic-min-cluster-size", type=positive_int, help="smallest block (2)")
    seismic.add_argument("--seismic-summary-energy", type=probability,
                         help="fraction of a block's mass its summary keeps (0.4)")
    seismic.add_argument("--seismic-max-fraction", type=positive_float,
                         help="posting lists keep at most n_postings x this (1.5)")
    seismic.add_argument("--seismic-doc-cut", type=positive_int, help="document terms kept when clustering (15)")
    add_runtime(p)


def build_options(args) -> dict:
    """The backend's build options from the command line (options not given: the backend's
    defaults). Raises ConfigError for a ``--seismic-*`` option given with ``--backend lucene``."""
    if args.backend == "lucene":
        given = [n for n in vars(args) if n.startswith("seismic_") and getattr(args, n) is not None]
        if given:
            from ..errors import ConfigError

            raise ConfigError(f"--{given[0].replace('_', '-')} applies to --backend seismic only")
        return {"store_raw": not args.no_raw}
    options = {n.removeprefix("seismic_"): v for n, v in vars(args).items() if n.startswith("seismic_") and v is not None}
    options["store_text"] = not args.no_raw
    return options


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
    options = build_options(args)  # before any work
    if args.backend == "seismic":  # missing extra: the install command before the model loads
        from ..backends.seismic import import_seismic

        import_seismic()
    if args.jsonl:
        from ..backends import build_index

        counters = build_index(args.jsonl, args.index, backend=args.backend, threads=args.threads,
                               overwrite=args.overwrite, options=options)
    else:
        from ..encoder import SplareEncoder
        from ..pipeline import index_corpus

        if args.no_raw:
            raise ConfigError("--no-raw applies to --jsonl indexing; encode with `encode` first")
        encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
        counters = index_corpus(encoder, args.corpus, args.index, threads=args.threads,
                                batch_size=args.batch_size, allow_empty=args.allow_empty,
                                model_name=args.model, keep_jsonl=args.keep_jsonl,
                                overwrite=args.overwrite, part_size=args.part_size,
                                backend=args.backend, backend_options=options)
    print(f"index {args.index}: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return 0
