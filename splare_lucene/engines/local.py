"""The local engine: one process encodes one shard of a corpus, part after part, resumably.

Each part is encoded on its own (its documents sorted by length, then batched), so a part's
vectors depend only on its documents, the model and the batch size: a run resumed after any
number of kills writes the same bytes as an uninterrupted one, and so does the Ray engine, which
encodes parts with :func:`encode_part` too.
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Callable, Sequence

from .parts import DEFAULT_PART_SIZE, PartPlanner, PartsDir, ShardSpec, make_job

logger = logging.getLogger(__name__)


def encode_part(encoder, documents: Sequence, *, batch_size: int = 16,
                on_batch: Callable[[int], None] | None = None,
                part: str | None = None) -> list[tuple[str, str, dict[str, int]]]:
    """Encode one part: ``documents`` (``Document(id, text)``, corpus order) ->
    ``[(id, text, {pseudo-token: integer impact}), ...]`` in the same order.

    The whole part is sorted by text length (stable) and cut into batches of ``batch_size``:
    less padding, and batches that do not depend on anything outside the part. ``on_batch(n)``
    is called after each batch of ``n`` documents (progress). ``part`` names the part in
    error messages (e.g. its file name).

    Raises ConfigError when ``batch_size`` < 1. Any error of the model's forward pass (out of
    memory, a tokenizer error) is re-raised unchanged, with a note (``exc.add_note``, shown by
    the CLI and in tracebacks) naming the part and the ids of the documents in the failing batch.
    """
    from ..encoder import length_sorted_batches

    if batch_size < 1:
        from ..errors import ConfigError

        raise ConfigError(f"batch_size must be >= 1 (documents per forward pass); got {batch_size}")
    vectors: list[dict[str, int] | None] = [None] * len(documents)
    window = max(1, len(documents))
    for batch in length_sorted_batches(documents, lambda d: d.text, batch_size, window=window):
        if not batch:  # the window-boundary marker
            continue
        try:
            encoded = encoder.encode([d.text for _, d in batch], kind="document")
        except Exception as exc:
            # The failure surfaces far from here (in the CLI, or a Ray worker's log): say which
            # documents were being encoded while the context is known; the type is kept, so an
            # out-of-memory error still reads as one (and suggests a smaller --batch-size).
            exc.add_note(_batch_note(batch, part))
            raise
        for (i, _), vec in zip(batch, encoded):
            vectors[i] = encoder.terms(vec)
        if on_batch:
            on_batch(len(batch))
    return [(d.id, d.text, v) for d, v in zip(documents, vectors)]


def _batch_note(batch: Sequence, part: str | None, shown: int = 5) -> str:
    """``while encoding documents 'd1', 'd2' and 3 more (a batch of 5, longest 812 characters)
    of part X``: ``batch`` is ``[(position, Document), ...]``."""
    ids = [repr(d.id) for _, d in batch[:shown]]
    more = f" and {len(batch) - shown} more" if len(batch) > shown else ""
    longest = max(len(d.text) for _, d in batch)
    where = f" of part {part}" if part else ""
    return (f"while encoding documents {', '.join(ids)}{more} (a batch of {len(batch)}, longest "
            f"{longest} characters){where}")


def encode_local(encoder, source: str, output_dir: str | os.PathLike, *, shard: ShardSpec = ShardSpec(),
                 part_size: int = DEFAULT_PART_SIZE, batch_size: int = 16, allow_empty: bool = False,
                 model_name: str = "", overwrite: bool = False, restart_mismatched: bool = False,
                 progress: bool = True, meta: dict | None = None):
    """Encode ``shard`` of ``source`` into ``output_dir`` in parts; resume an unfinished output.

    - a finished output (same job) is left as it is: logged, its summary returned;
    - an unfinished one resumes: documents of done parts are read (ids checked) but not encoded;
    - ``overwrite`` starts over; an output of another model, corpus or settings raises
      ConfigError naming the difference (``restart_mismatched``: starts over instead).

    ``meta`` is recorded in the manifest and the summary's ``extra`` (then in the index).
    Returns the shard's :class:`~splare_lucene.jsonl.WriteSummary`."""
    from tqdm.auto import tqdm

    from ..allocator import fix_mmap_threshold, release_free_memory
    from ..corpus import read_documents
    from ..outputs import check_not_input, check_output_dir

    fix_mmap_threshold()  # resident memory flat over a long encode (see splare_lucene/allocator.py)

    # before the job is prepared (an --overwrite removes files): never into the corpus or model
    check_not_input(output_dir, {"--corpus": source, "--model": getattr(encoder, "model_dir", None)})
    check_output_dir(output_dir)
    job = make_job(encoder, source, model_name=model_name, shard=shard, part_size=part_size,
                   allow_empty=allow_empty, batch_size=batch_size, extra=meta)
    out = PartsDir(output_dir, job)
    documents = read_documents(source, allow_empty=allow_empty)
    # an empty source raises here, before the output directory is touched: else its "running"
    # manifest (of the empty corpus) made the rerun with the fixed corpus ask for --overwrite
    first = next(documents)
    state = out.start(overwrite=overwrite, restart_mismatched=restart_mismatched)
    if state.complete:
        return state.summary
    desc = "encode documents" + (f" ({shard.tag})" if shard.num_shards > 1 else "")
    # The bar starts at the resumed position (documents of done parts are read, not encoded);
    # tqdm computes the rate from the documents encoded in this run only.
    bar = tqdm(unit="doc", desc=desc, initial=state.done_documents, disable=not progress,
               dynamic_ncols=True, smoothing=0.05)
    planner = PartPlanner(itertools.chain([first], documents), shard, part_size, state.done)
    try:
        for part, docs in planner:
            # records are not bound to a name: a part's vectors (about 1 KB of Python objects per
            # document) are freed once written, not kept alive while the next part encodes
            out.write_part(part, encode_part(encoder, docs, batch_size=batch_size, on_batch=bar.update,
                                             part=part.file_name(shard)))
            del docs
            release_free_memory()
    finally:
        bar.close()
    summary = out.finish(planner.documents)
    logger.debug("wrote %s: %s", output_dir, summary.describe())  # the CLI prints it
    return summary
