"""The Ray Data engine: one shard of a corpus encoded by a pool of actors, each loading the model
once and writing its own parts into the on-disk scheme of :mod:`.parts`.

Data flow (``encode --engine ray``)::

    driver: PartsDir.prepare (manifest, done parts)          [one process]
    read task: read_documents -> PartPlanner -> one row per part NOT done   [one Ray task, streaming]
    actor pool (map_batches, N actors, G GPUs each): encode_part -> PartsDir.write_part
    driver: consumes the finished-part rows (progress), then PartsDir.finish

Why the corpus is read by *one* streaming read task running the toolkit's own reader rather than
``ray.data.read_json``/``read_text``:

- the parts must be the local engine's parts (shard-local positions in the *validated* document
  stream: BEIR title + text, id key fallbacks, TSV headers, ``--allow-empty`` skipping, duplicate
  ids refused), so that either engine resumes the other's output and both write the same bytes.
  Ray's readers give no row positions, infer an Arrow schema per block (a BEIR corpus whose
  ``_id`` is sometimes a number fails), and split or merge blocks freely, which would cut parts
  differently from run to run;
- a part is one row (its ids and texts as lists), so a batch handed to an actor never splits a
  part: the actor encodes and writes whole parts, and resuming needs nothing but the done-markers;
- parsing is not the bottleneck: one core parses JSONL at tens of thousands of documents per
  second, while a GPU encodes a 2B-8B backbone at hundreds. The read task is a generator, so Ray
  Data's backpressure pauses it when the actors fall behind: memory stays bounded by a few parts
  per actor, whatever the corpus size (a ``from_items`` over a list would hold the whole corpus).

Open-source Ray Data has no job checkpoint: a killed job resumes from the parts already written
(the done-markers), exactly as the local engine does. ``ray`` is an optional extra:
``pip install 'splare-lucene[ray]'``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..corpus import read_documents
from ..errors import CheckpointError, ConfigError, SplareError
from ..outputs import check_not_input, check_output_dir
from .parts import DEFAULT_PART_SIZE, EncodingJob, PartPlanner, PartsDir, PartSpec, ShardSpec, make_job

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'splare-lucene[ray]'"
# Columns of the rows the read task yields (one row per part) and the actors return.
_SENTINEL = -1  # the last row of the read task: no part, the shard's document count in "total"


def import_ray():
    """``import ray`` and ``ray.data``, or ConfigError with the install command (the ``ray`` extra
    is optional; the local engine needs none of it)."""
    try:
        import ray
        import ray.data  # noqa: F401  (the Data library is a separate extra of ray: ray[data])
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed ({exc}); install it with "
                          f"`{INSTALL_HINT}` (or `pip install 'ray[data]'`), or use --engine local") from None
    return ray


@dataclass(frozen=True)
class RayResources:
    """Where and how wide the actor pool runs.

    ``address``: a running cluster (``ray start --head`` prints it; ``"auto"`` finds the local
    one); None starts a private local instance for the job and shuts it down at the end.
    ``num_workers``: actors, each holding one copy of the model. ``gpus_per_worker``: GPUs per
    actor (0: encode on the CPU; fractional values share a GPU between actors).
    ``cpus_per_worker``: CPUs reserved per actor, and its torch threads on the CPU. Raises
    ConfigError on values out of range."""

    address: str | None = None
    num_workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ConfigError(f"--num-workers must be >= 1; got {self.num_workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"--gpus-per-worker must be >= 0; got {self.gpus_per_worker}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"--cpus-per-worker must be > 0; got {self.cpus_per_worker}")

    @property
    def device(self) -> str:
        """The actors' torch device: ``cuda`` when they hold GPUs (Ray sets each actor's
        CUDA_VISIBLE_DEVICES, so ``cuda`` is its own GPU), else ``cpu``."""
        return "cuda" if self.gpus_per_worker > 0 else "cpu"

    @property
    def torch_threads(self) -> int:
        return max(1, int(self.cpus_per_worker))


def check_device(device: str, resources: RayResources) -> None:
    """``--device`` must agree with ``--gpus-per-worker`` (Ray, not torch, assigns the GPUs)."""
    if device not in ("auto", resources.device):
        hint = ("give --gpus-per-worker 1 (or a fraction) to encode on GPUs" if device == "cuda"
                else "leave --device auto: the workers use the GPUs --gpus-per-worker gives them")
        raise ConfigError(f"--device {device} does not fit --gpus-per-worker {resources.gpus_per_worker} "
                          f"(workers run on {resources.device}); {hint}")


# -- the model, without loading it in the driver ---------------------------------------------------


class _ModelInfo:
    """What :func:`~.parts.make_job` reads of an encoder (fingerprint, config, device, dtype), from
    the model directory's config and files only: the driver (often a head node without a GPU)
    never loads the backbone."""

    class _Backbone:
        class _Model:
            def __init__(self, dtype: str):
                self.dtype = dtype

        def __init__(self, dtype: str):
            self.model = self._Model(dtype)

    def __init__(self, model: str, device: str, dtype: str):
        from ..config import SplareConfig
        from ..encoder import model_fingerprints, resolve_model_dir

        self.model_dir = resolve_model_dir(model)
        self.config = SplareConfig.load(self.model_dir)
        self.fingerprint, self.document_fingerprint = model_fingerprints(self.model_dir, self.config)
        self.device = device
        self.backbone = self._Backbone(dtype)


def _worker_model_ref(model: str, model_dir: Path) -> str:
    """How the actors name the model: 'default' and hub ids as given (each node resolves them in
    its own install or cache), a local directory by its absolute path (it must be on a filesystem
    every node sees: see docs/scale.md). Each actor checks the fingerprint it loads."""
    if model == "default" or not Path(model).exists():
        return model
    return str(model_dir.resolve())


# -- the read side: one row per part not yet done --------------------------------------------------


def _datasource_class():
    """The Datasource class, built on first use so that this module imports without ray."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class PartsDatasource(Datasource):
        """The shard's parts that are not done, one row each, streamed by a single read task
        (see the module docstring for why one): ``index, start, stop, ids, texts, total``."""

        def __init__(self, source: str, allow_empty: bool, shard: ShardSpec, part_size: int,
                     done: dict):
            super().__init__()
            self.source = source
            self.allow_empty = allow_empty
            self.shard = shard
            self.part_size = part_size
            self.done = done

        def get_name(self) -> str:
            return "SplareCorpusParts"

        def estimate_inmemory_data_size(self) -> int | None:
            return None  # unknown until read; Ray then sizes blocks as they come

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list:
            source, allow_empty, shard, part_size, done = (self.source, self.allow_empty, self.shard,
                                                           self.part_size, self.done)

            def read() -> Iterator:
                import pyarrow as pa

                from ..corpus import read_documents

                planner = PartPlanner(read_documents(source, allow_empty=allow_empty), shard, part_size, done)
                for part, docs in planner:
                    yield pa.table({"index": [part.index], "start": [part.start], "stop": [part.stop],
                                    "ids": [[d.id for d in docs]], "texts": [[d.text for d in docs]],
                                    "total": [_SENTINEL]})
                yield pa.table({"index": [_SENTINEL], "start": [0], "stop": [0],
                                "ids": pa.array([[]], pa.list_(pa.string())),
                                "texts": pa.array([[]], pa.list_(pa.string())),
                                "total": [planner.documents]})

            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(read, meta)]

    return PartsDatasource


# -- the actors ------------------------------------------------------------------------------------


class PartEncoder:
    """A Ray Data actor: loads the model once, then encodes and writes whole parts.

    ``__call__`` takes a pyarrow batch of part rows and returns, per row, ``index``,
    ``documents`` (encoded here) and ``total`` (passed through from the read task's last row).
    Raises CheckpointError when the model it loads is not the one the job was planned with (a
    node with another copy of the model directory)."""

    def __init__(self, model: str, job: dict, output_dir: str, device: str, dtype: str,
                 batch_size: int, threads: int):
        import torch

        from ..allocator import fix_mmap_threshold
        from ..encoder import SplareEncoder

        torch.set_num_threads(threads)  # one actor per reserved CPU: no oversubscription
        fix_mmap_threshold()  # resident memory flat over a long encode (splare_lucene/allocator.py)
        self.job = EncodingJob.from_dict(job)
        self.parts = PartsDir(output_dir, self.job)
        self.batch_size = batch_size
        self.encoder = SplareEncoder.from_pretrained(model, device=device, dtype=dtype)
        if self.encoder.fingerprint != self.job.model_fingerprint:
            raise CheckpointError(f"worker on {os.uname().nodename} loaded model {model!r} with fingerprint "
                                  f"{self.encoder.fingerprint}, but the job was planned with "
                                  f"{self.job.model_fingerprint}: every node must see the same model "
                                  "(put the model directory on a shared filesystem)")

    def __call__(self, batch):
        import pyarrow as pa

        from ..allocator import release_free_memory
        from ..types import Document
        from .local import encode_part

        out: dict[str, list[int]] = {"index": [], "documents": [], "total": []}
        for row in batch.to_pylist():
            if row["index"] != _SENTINEL:
                docs = [Document(i, t) for i, t in zip(row["ids"], row["texts"])]
                # not bound to a name: freed once written, not kept while the next part encodes
                self.parts.write_part(PartSpec(row["index"], row["start"], row["stop"]),
                                      encode_part(self.encoder, docs, batch_size=self.batch_size))
                release_free_memory()
            out["index"].append(row["index"])
            out["documents"].append(len(row["ids"]))
            out["total"].append(row["total"])
        return pa.table(out)


# -- the driver ------------------------------------------------------------------------------------


def _connect(ray, resources: RayResources) -> bool:
    """Join ``resources.address`` or start a local instance; True when this call started it (and
    so must shut it down)."""
    if ray.is_initialized():
        logger.info("using the Ray instance already initialised in this process")
        return False
    if resources.address:
        ray.init(address=resources.address, log_to_driver=True)
        return True
    # A private local instance. Logical CPUs may exceed the cores: the read task takes one, each
    # actor cpus_per_worker; with num_cpus = cores on a 2-core machine, the read task and two
    # 1-CPU actors could never all be scheduled and the job would wait forever.
    need = resources.num_workers * resources.cpus_per_worker + 1
    num_cpus = max(os.cpu_count() or 1, math.ceil(need))
    # address="local": a new instance even when `ray start` runs on this machine (a bare
    # ray.init() would join that cluster, and refuse num_cpus there).
    kwargs: dict[str, Any] = {"address": "local", "num_cpus": num_cpus, "include_dashboard": False,
                              "log_to_driver": True}
    if resources.gpus_per_worker == 0:
        kwargs["num_gpus"] = 0
    logger.info("starting a local Ray instance (%d logical CPUs)", num_cpus)
    ray.init(**kwargs)
    return True


def _check_cluster(ray, resources: RayResources) -> None:
    """Refuse a pool the cluster cannot hold: Ray Data would otherwise wait for the missing
    actors forever (an actor pool of fixed size starts only when all its actors are placed)."""
    total = ray.cluster_resources()
    gpus, cpus = float(total.get("GPU", 0)), float(total.get("CPU", 0))
    need_gpus = resources.num_workers * resources.gpus_per_worker
    need_cpus = resources.num_workers * resources.cpus_per_worker + 1  # + the read task
    if need_gpus > gpus:
        fit = int(gpus // resources.gpus_per_worker) if gpus else 0
        raise ConfigError(f"{resources.num_workers} workers x {resources.gpus_per_worker} GPUs need {need_gpus:g} "
                          f"GPUs; the Ray cluster has {gpus:g} GPUs. Use --num-workers {max(fit, 1)}"
                          + ("" if fit else " with --gpus-per-worker 0 (CPU)")
                          + ", or add GPU nodes (`ray start --address HEAD:6379` on each; see docs/scale.md)")
    if need_cpus > cpus:
        raise ConfigError(f"{resources.num_workers} workers x {resources.cpus_per_worker:g} CPUs + 1 for the "
                          f"corpus reader need {need_cpus:g} CPUs; the Ray cluster has {cpus:g}. Lower "
                          "--num-workers or --cpus-per-worker (fractions are allowed), or start the head "
                          "with more logical CPUs (`ray start --head --num-cpus N`)")


def _unwrap(exc: BaseException) -> BaseException | None:
    """The toolkit error (InputError, CheckpointError, ...) raised inside a Ray task or actor, if
    any: Ray wraps it (RayTaskError, UserCodeException), and the CLI should print its message."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, SplareError):
            cause = getattr(e, "cause", None)  # RayTaskError subclasses keep the original in .cause
            return cause if isinstance(cause, SplareError) else e
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def encode_ray(model: str, source: str, output_dir: str | os.PathLike, *, shard: ShardSpec = ShardSpec(),
               part_size: int = DEFAULT_PART_SIZE, batch_size: int = 16, allow_empty: bool = False,
               model_name: str = "", overwrite: bool = False, restart_mismatched: bool = False,
               progress: bool = True, meta: dict | None = None, device: str = "auto", dtype: str = "auto",
               resources: RayResources = RayResources()):
    """Encode ``shard`` of ``source`` into ``output_dir`` with a Ray Data actor pool.

    The same contract as :func:`~.local.encode_local` (resume, ``overwrite``, refusal of another
    job's directory, the same parts and bytes), with ``model`` (a model directory, hub id or
    ``"default"``) loaded by each actor instead of an encoder loaded here. ``output_dir`` must be
    on a filesystem every node of the cluster writes to. ``device``/``dtype``: as ``encode``'s
    flags; ``device`` must agree with ``resources.gpus_per_worker`` (ConfigError otherwise).

    Returns the shard's :class:`~splare_lucene.jsonl.WriteSummary`. Raises ConfigError (no ray,
    bad resources, another job's directory), InputError (corpus problems, raised in the read
    task), CheckpointError (a node loaded another model)."""
    ray = import_ray()
    check_device(device, resources)
    if dtype == "auto" and resources.device == "cpu":
        dtype = "float32"  # backbone.resolve_dtype's choice on the CPU, recorded as the local engine does
    info = _ModelInfo(model, resources.device, dtype)
    # as encode_local: before the directory is touched, never into the corpus or the model, and
    # an empty corpus is refused here (one line read), not after a "running" manifest is written
    check_not_input(output_dir, {"--corpus": source, "--model": str(info.model_dir)})
    check_output_dir(output_dir)
    documents = read_documents(source, allow_empty=allow_empty)
    try:
        next(documents)
    finally:
        documents.close()
    job = make_job(info, source, model_name=model_name or model, shard=shard, part_size=part_size,
                   allow_empty=allow_empty, batch_size=batch_size, extra=meta)
    out = PartsDir(output_dir, job)
    state = out.start(overwrite=overwrite, restart_mismatched=restart_mismatched)
    if state.complete:
        return state.summary

    started = _connect(ray, resources)
    try:
        _check_cluster(ray, resources)
        total = _run_pool(ray, model=_worker_model_ref(model, info.model_dir), source=source, job=job,
                          output_dir=Path(output_dir).resolve(), state=state, device=device, dtype=dtype,
                          batch_size=batch_size, resources=resources, progress=progress)
    except Exception as exc:
        inner = _unwrap(exc)
        if inner is not None and inner is not exc:
            raise inner from None
        raise
    finally:
        if started:
            ray.shutdown()
    summary = out.finish(total)
    logger.debug("wrote %s: %s", output_dir, summary.describe())  # the CLI prints it
    return summary


def _run_pool(ray, *, model: str, source: str, job: EncodingJob, output_dir: Path, state, device: str,
              dtype: str, batch_size: int, resources: RayResources, progress: bool) -> int:
    """Run the dataset to the end; returns the shard's document count (from the read task)."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.target_max_block_size)
    ctx.enable_progress_bars = False  # one bar (below), in documents, instead of Ray's per operator
    # Each part must leave the read task as its own block: Ray's output buffer otherwise merges
    # yielded blocks up to target_max_block_size (128 MiB, i.e. dozens of parts), holding them
    # back until then and handing them all to ONE actor. A 1-byte target emits every yield (a
    # one-row block cannot be sliced further). override_num_blocks=1: there is one read task,
    # and without it Ray splits every output block 200 ways (its default minimum parallelism).
    ctx.target_max_block_size = 1
    try:
        datasource = _datasource_class()(source, job.allow_empty, job.shard, job.part_size, state.done)
        ds = ray.data.read_datasource(datasource, override_num_blocks=1).map_batches(
            PartEncoder,
            fn_constructor_kwargs=dict(model=model, job=job.to_dict(), output_dir=str(output_dir),
                                       device=resources.device if device == "auto" else device, dtype=dtype,
                                       batch_size=batch_size, threads=resources.torch_threads),
            compute=ray.data.ActorPoolStrategy(size=resources.num_workers),
            batch_size=1,  # one part per call: a part is the unit of work and of resumption
            batch_format="pyarrow",
            num_cpus=resources.cpus_per_worker,
            num_gpus=resources.gpus_per_worker or None,
            zero_copy_batch=True,
        )
        return _consume(ds, job, state, source, progress)
    finally:
        ctx.enable_progress_bars, ctx.target_max_block_size = saved


def _consume(ds, job: EncodingJob, state, source: str, progress: bool) -> int:
    """Iterate the finished-part rows (progress bar); returns the read task's document count."""
    from tqdm.auto import tqdm

    desc = "encode documents (ray" + (f", {job.shard.tag})" if job.shard.num_shards > 1 else ")")
    bar = tqdm(unit="doc", desc=desc, initial=state.done_documents, disable=not progress,
               dynamic_ncols=True, smoothing=0.05)
    total = None
    try:
        for row in ds.iter_rows():
            if row["index"] == _SENTINEL:
                total = int(row["total"])
            else:
                bar.update(int(row["documents"]))
                logger.debug("part %d written (%d documents)", row["index"], row["documents"])
    finally:
        bar.close()
    if total is None:  # the read task always yields it last; a missing one is a Ray-side failure
        raise ConfigError(f"the Ray job over {source} ended without reading the whole corpus; rerun the "
                          "same command to resume it")
    return total
