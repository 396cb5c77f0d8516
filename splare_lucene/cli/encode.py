"""splare-lucene encode: corpus -> quantized JsonVectorCollection parts, resumable and shardable."""

from __future__ import annotations

import argparse
import logging

from .common import add_model, add_runtime
from .options import ArgumentCheckError, non_negative_float, non_negative_int, positive_float, positive_int

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p)
    p.add_argument("--corpus", required=True, help="BEIR folder, .jsonl(.gz), .tsv, or irds:<id>")
    p.add_argument("--output", required=True,
                   help="directory for the .jsonl.gz parts and the manifest; rerunning the same command "
                   "on an unfinished one resumes it")
    p.add_argument("--num-shards", type=positive_int, default=1,
                   help="split the corpus into N shards: document i goes to shard i %% N (default 1)")
    p.add_argument("--shard-id", type=non_negative_int, default=0, help="which shard to encode, 0..N-1 (default 0)")
    p.add_argument("--part-size", type=positive_int, default=None,
                   help="documents per part file, the unit of resumption (default 2000)")
    p.add_argument("--allow-empty", action="store_true", help="skip documents with empty text")
    p.add_argument("--overwrite", action="store_true",
                   help="start over: remove this shard's earlier output instead of resuming it")
    p.add_argument("--shards", type=positive_int, default=None, help=argparse.SUPPRESS)  # before parts; ignored
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: a Ray Data actor pool, one model copy per "
                   "worker (pip install 'splare-lucene[ray]'; see docs/scale.md)")
    ray = p.add_argument_group("--engine ray")
    ray.add_argument("--ray-address", default=None,
                     help="Ray cluster address (`auto`, or HOST:6379 as `ray start --head` prints); "
                     "default: start a local instance for this run")
    # defaults None, filled in by run(): check_arguments refuses them without --engine ray
    ray.add_argument("--num-workers", type=positive_int, default=None,
                     help="actors, each with one copy of the model (default 1)")
    ray.add_argument("--gpus-per-worker", type=non_negative_float, default=None,
                     help="GPUs per actor (default 0: CPU; 0.5: two actors per GPU)")
    ray.add_argument("--cpus-per-worker", type=positive_float, default=None,
                     help="CPUs per actor, and its torch threads on the CPU (default 1)")
    add_runtime(p)


def check_arguments(args: argparse.Namespace) -> None:
    """Checks that involve two options (run by ``main`` right after parsing)."""
    if args.shard_id >= args.num_shards:
        raise ArgumentCheckError(f"argument --shard-id: must be in [0, {args.num_shards - 1}] for "
                                 f"--num-shards {args.num_shards}, got {args.shard_id}")
    if args.engine != "ray":
        given = [flag for flag, value in (("--ray-address", args.ray_address), ("--num-workers", args.num_workers),
                                          ("--gpus-per-worker", args.gpus_per_worker),
                                          ("--cpus-per-worker", args.cpus_per_worker)) if value is not None]
        if given:
            raise ArgumentCheckError(f"argument {given[0]}: applies to --engine ray only (the local engine is "
                                     "one process on --device); add --engine ray, or drop "
                                     + ", ".join(given))


def run(args) -> int:
    from ..encoder import SplareEncoder
    from ..engines.parts import DEFAULT_PART_SIZE, ShardSpec, corpus_identity
    from ..pipeline import encode_corpus

    shard = ShardSpec(args.num_shards, args.shard_id)  # bad values fail before the model loads
    part_size = args.part_size or DEFAULT_PART_SIZE
    if args.shards is not None:
        logger.warning("--shards is ignored: the output is written in parts of --part-size documents, "
                       "one file each (Anserini indexes the files in parallel)")
    corpus_identity(args.corpus)  # a missing corpus fails before the model loads
    from ..outputs import check_not_input, check_output_dir, check_replaceable

    check_not_input(args.output, {"--corpus": args.corpus, "--model": args.model})
    check_output_dir(args.output)
    # a folder holding anything but encode files is refused, with or without --overwrite (without
    # it, resuming would refuse it too, but only after the model has loaded)
    check_replaceable(args.output, ["encode"])
    if args.engine == "ray":  # the actors load the model; this process never does
        from ..engines.ray import RayResources, encode_ray

        resources = RayResources(args.ray_address, 1 if args.num_workers is None else args.num_workers,
                                 0.0 if args.gpus_per_worker is None else args.gpus_per_worker,
                                 1.0 if args.cpus_per_worker is None else args.cpus_per_worker)
        summary = encode_ray(args.model, args.corpus, args.output, shard=shard, part_size=part_size,
                             batch_size=args.batch_size, allow_empty=args.allow_empty,
                             model_name=args.model, overwrite=args.overwrite, device=args.device,
                             dtype=args.dtype, resources=resources)
        print(summary.describe())
        return 0
    encoder = SplareEncoder.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    summary = encode_corpus(encoder, args.corpus, args.output, num_shards=shard.num_shards,
                            shard_id=shard.shard_id, part_size=part_size, batch_size=args.batch_size,
                            allow_empty=args.allow_empty, model_name=args.model, overwrite=args.overwrite)
    print(summary.describe())
    return 0
