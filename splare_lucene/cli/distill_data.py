"""splare-lucene distill-data: a BEIR folder + a dense teacher -> a KL training file for
``splare-lucene train --data FILE --loss kl``.

Per training query: its positive, BM25 negatives and teacher-mined negatives, each with the
teacher's score ``--score-scale x cosine`` (why the scale: :mod:`splare_lucene.train.distill`).
The teacher is the optional extra ``pip install 'splare-lucene[teacher]'``; docs/training.md
("Distillation data") has the recipe and the check of the packaged teacher.
"""

from __future__ import annotations

import argparse

from .options import ArgumentCheckError, fraction, non_negative_int, positive_float, positive_int, seed_int, \
    thread_count


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="FOLDER",
                   help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--output", required=True, help="JSONL training file to write (.gz: gzipped); a record "
                   "of the settings and counts goes to OUTPUT.meta.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--split", default="train", help="qrels split (default train)")
    p.add_argument("--teacher", default="minilm", metavar="minilm|PATH|ORG/NAME",
                   help="minilm (default): all-MiniLM-L6-v2 from the teacher extra, checked against the "
                   "published weights; or a sentence-transformers model directory, or a hub id")
    p.add_argument("--max-queries", type=positive_int, help="at most this many training queries (a seeded "
                   "random subset; default all)")
    p.add_argument("--bm25-negatives", type=non_negative_int, default=4, help="BM25 negatives per query (default 4)")
    p.add_argument("--teacher-negatives", type=non_negative_int, default=4,
                   help="teacher-mined (dense) negatives per query (default 4)")
    p.add_argument("--depth", type=positive_int, default=30,
                   help="each miner's negatives are drawn at random from its top DEPTH hits that are not "
                   "positives (default 30)")
    p.add_argument("--score-scale", type=positive_float, default=20.0,
                   help="scores written = SCALE x teacher cosine; `train --loss kl` softmaxes them as they "
                   "are. Default 20: the scale all-MiniLM-L6-v2 was trained with (its train_script.py)")
    p.add_argument("--max-seq-length", type=positive_int,
                   help="teacher truncation in word pieces (default: the model's, 256 for minilm)")
    p.add_argument("--holdout", type=fraction, default=0.0,
                   help="fraction of queries held out as a dev split, never written: a query is held out "
                   "iff sha256(id of its positive document) maps below it (all questions of a passage on "
                   "one side; independent of --seed and --max-queries). Default 0")
    p.add_argument("--dev-qrels", metavar="FILE", help="write the held-out queries' qrels here (BEIR TSV, "
                   "for `evaluate --collection FOLDER --split SPLIT --qrels FILE`); needs --holdout > 0")
    p.add_argument("--exclude-queries", metavar="FILE",
                   help="query ids never to write, one per line (first field; '#' comments)")
    p.add_argument("--seed", type=seed_int, default=0, help="random choices of queries and negatives (default 0)")
    p.add_argument("--threads", type=thread_count, default=1, help="BM25 indexing and search threads")
    p.add_argument("--cache-dir", help="corpus embeddings cache (default: <splare cache>/teacher-embeddings; "
                   "keyed by teacher and corpus)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the embeddings cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # no --dtype: the teacher runs in float32, since its scores are the training targets
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="teacher device")
    p.add_argument("--batch-size", type=positive_int, default=64, help="teacher texts per forward pass (default 64)")


def check_arguments(args: argparse.Namespace) -> None:
    if args.holdout >= 1.0:
        raise ArgumentCheckError(f"argument --holdout: must be below 1 (1 would hold out every query); "
                                 f"got {args.holdout}")
    if args.dev_qrels and args.holdout <= 0:
        raise ArgumentCheckError("argument --dev-qrels: needs --holdout > 0 (no query is held out otherwise)")
    if args.bm25_negatives + args.teacher_negatives == 0:
        raise ArgumentCheckError("argument --bm25-negatives/--teacher-negatives: both are 0; ask for at least "
                                 "one negative per query")
    if args.depth < max(args.bm25_negatives, args.teacher_negatives):
        raise ArgumentCheckError(f"argument --depth: {args.depth} is below the negatives drawn from one miner "
                                 f"({max(args.bm25_negatives, args.teacher_negatives)}); raise --depth")


def run(args) -> int:
    from pathlib import Path

    from ..backbone import cache_dir, pick_device
    from ..errors import ConfigError
    from ..outputs import check_apart, check_not_input, check_output_file
    from ..train.distill import (DistillOptions, meta_path, qrels_file, read_id_list,
                                 write_distillation_data)
    from ..train.teacher import DenseTeacher

    inputs = {"--data": args.data, "--exclude-queries": args.exclude_queries, "--teacher": args.teacher}
    outputs = [("--output", args.output), ("--output's record", str(meta_path(args.output)))]
    if args.dev_qrels:
        outputs.append(("--dev-qrels", args.dev_qrels))
        check_apart(args.output, args.dev_qrels, what="--output", other_what="--dev-qrels")
    for what, path in outputs:
        check_not_input(path, inputs, what=what)
        if Path(path).exists() and not args.overwrite:  # fail before the teacher loads
            raise ConfigError(f"{what} {path} already exists; pass --overwrite to replace it")
        check_output_file(path, what=what)
    folder = Path(args.data)
    if not folder.is_dir():
        raise ConfigError(f"--data {args.data}: not a directory; distill-data reads a BEIR folder "
                          "(corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    qrels_file(folder, args.split)  # before the teacher loads
    options = DistillOptions(
        split=args.split, max_queries=args.max_queries, bm25_negatives=args.bm25_negatives,
        teacher_negatives=args.teacher_negatives, depth=args.depth, score_scale=args.score_scale,
        holdout=args.holdout, seed=args.seed, batch_size=args.batch_size,
        exclude=read_id_list(args.exclude_queries) if args.exclude_queries else frozenset())
    teacher = DenseTeacher.load(args.teacher, device=pick_device(args.device), max_seq_length=args.max_seq_length)
    embedding_cache = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else \
        cache_dir() / "teacher-embeddings"
    report = write_distillation_data(folder, args.output, teacher, options, threads=args.threads,
                                     embedding_cache_dir=embedding_cache, dev_qrels=args.dev_qrels,
                                     progress=not args.no_progress)
    print(report.describe())
    return 0
