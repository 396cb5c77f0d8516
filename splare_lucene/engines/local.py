"""The local engine: one process encodes one shard of a corpus, part after part, resumably.

Each part is encoded on its own (its documents sorted by length, then batched), so a part's
vectors depend only on its documents, the model and the batch size: a run resumed after any
number of kills writes the same bytes as an uninterrupted one, and so does the Ray engine, which
encodes parts with :func:`encode_part` too.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

from .parts import DEFAULT_PART_SIZE, PartPlanner, PartsDir, ShardSpec, make_job

logger = logging.getLogger(__name__)


def encode_part(encoder, documents: Sequence, *, batch_size: int = 16,
                on_batch: Callable[[int], None] | None = None) -> list[tuple[str, str, dict[str, int]]]:
    """Encode one part: ``documents`` (``Document(id, text)``, corpus order) ->
    ``[(id, text, {pseudo-token: integer impact}), ...]`` in the same order.

    The whole part is sorted by text length (stable) and cut into batches of ``batch_size``:
    less padding, and batches that do not depend on anything outside the part. ``on_batch(n)``
    is called after each batch of ``n`` documents (progress)."""
    from ..encoder import length_sorted_batches

    vectors: list[dict[str, int] | None] = [None] * len(documents)
    window = max(1, len(documents))
    for batch in length_sorted_batches(documents, lambda d: d.text, batch_size, window=window):
        if not batch:  # the window-boundary marker
            continue
        for (i, _), vec in zip(batch, encoder.encode([d.text for _, d in batch], kind="document")):
            vectors[i] = encoder.terms(vec)
        if on_batch:
            on_batch(len(batch))
    return [(d.id, d.text, v) for d, v in zip(documents, vectors)]


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

    from ..corpus import read_documents

    job = make_job(encoder, source, model_name=model_name, shard=shard, part_size=part_size,
                   allow_empty=allow_empty, batch_size=batch_size, extra=meta)
    out = PartsDir(output_dir, job)
    state = out.start(overwrite=overwrite, restart_mismatched=restart_mismatched)
    if state.complete:
        return state.summary
    desc = "encode documents" + (f" ({shard.tag})" if shard.num_shards > 1 else "")
    # The bar starts at the resumed position (documents of done parts are read, not encoded);
    # tqdm computes the rate from the documents encoded in this run only.
    bar = tqdm(unit="doc", desc=desc, initial=state.done_documents, disable=not progress,
               dynamic_ncols=True, smoothing=0.05)
    planner = PartPlanner(read_documents(source, allow_empty=allow_empty), shard, part_size, state.done)
    try:
        for part, docs in planner:
            records = encode_part(encoder, docs, batch_size=batch_size, on_batch=bar.update)
            out.write_part(part, records)
    finally:
        bar.close()
    summary = out.finish(planner.documents)
    logger.info("wrote %s: %s", output_dir, summary.describe())
    return summary
