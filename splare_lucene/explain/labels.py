"""Latent labels: top activating contexts over a corpus, and imported feature descriptions.

``build_labels`` streams documents through the encoder (document side), takes each batch's
per-token activations (:func:`.activations.token_activations`: the values max-pooled into a
document's weights) and keeps, per latent, the ``top_n`` largest (activation, token, context).
The running top-n is a (top_n, d_sae) table merged with each batch's own top-n by ``torch.topk``;
only the contexts that the table still points at are kept, so memory is O(d_sae * top_n)
whatever the corpus size (:class:`TopContexts`).

``import_neuronpedia`` maps a Neuronpedia explanation export (JSON array, ``{"explanations":
[...]}``, or JSONL / JSONL.gz batches as its S3 dataset ships them; records with ``modelId``,
``layer`` (its SAE id, e.g. ``"6-res-jb"``), ``index`` and ``description``) onto the latents.

Labels live in ``latent_labels.json`` in the model directory, written atomically; they are
optional everywhere (:func:`load_latent_labels` returns None when absent).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import CheckpointError, ConfigError, InputError
from ..types import Document
from .records import LABELS_NAME, LatentContext, LatentLabel, LatentLabels

logger = logging.getLogger(__name__)

DEFAULT_TOP_N = 8
DEFAULT_CONTEXT_WORDS = 4


def load_latent_labels(model_dir: str | os.PathLike | None, *, fingerprint: str | None = None,
                       d_sae: int | None = None) -> LatentLabels | None:
    """The labels stored in ``model_dir`` (``latent_labels.json``), or None when there are none.

    ``fingerprint`` / ``d_sae``: the loading model's; labels built for another fingerprint are
    used with a warning (an SAE shared by two models labels both), another width is refused.
    Raises CheckpointError for a malformed file (naming it and the command that rebuilds it).
    """
    if model_dir is None:
        return None
    path = Path(model_dir) / LABELS_NAME
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: malformed JSON ({exc}); rebuild it with `splare-lucene "
                              "label-latents` or delete it") from exc
    labels = LatentLabels.from_dict(obj, str(path))
    if d_sae is not None and labels.d_sae != d_sae:
        raise CheckpointError(f"{path} labels {labels.d_sae} latents, but the model has {d_sae}; rebuild "
                              "them with `splare-lucene label-latents` or delete the file")
    if fingerprint and labels.model_fingerprint and labels.model_fingerprint != fingerprint:
        logger.warning("%s was built for model %s, this model is %s: labels may not fit", path,
                       labels.model_fingerprint, fingerprint)
    return labels


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, with the usual permissions (0o666 minus the
    umask): :func:`splare_lucene.engines.parts.atomic_write_bytes` (a temporary beside it, fsync,
    rename), so a reader never sees half a file."""
    from ..engines.parts import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def save_latent_labels(labels: LatentLabels, model_dir: str | os.PathLike) -> Path:
    """Write ``latent_labels.json`` into ``model_dir`` atomically (:func:`write_text_atomic`)."""
    return write_text_atomic(Path(model_dir) / LABELS_NAME,
                             json.dumps(labels.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")


def context_window(text: str, start: int, end: int, words: int) -> tuple[str, str]:
    """``words`` whitespace-separated words of ``text`` before ``start`` and after ``end``."""
    left = text[:start].split()
    right = text[end:].split()
    lhs = " ".join(left[-words:]) if words else ""
    rhs = " ".join(right[:words]) if words else ""
    # keep the space (or its absence) between the token and its neighbours
    if lhs and start > 0 and text[start - 1].isspace():
        lhs += " "
    if rhs and end < len(text) and text[end].isspace():
        rhs = " " + rhs
    return lhs, rhs


class TopContexts:
    """The ``top_n`` largest activations of each of ``d_sae`` latents seen so far, with contexts.

    State: ``values`` (top_n, d_sae) float32 (``-inf``: empty slot) and ``refs`` (top_n, d_sae)
    int64 occurrence numbers, plus the contexts of the occurrences still referenced (at most
    top_n * d_sae). :meth:`add` merges a batch of (n_tokens, d_sae) activations with one
    stable sort over (top_n + k) rows: among equal activations, an occurrence already kept stays.
    """

    def __init__(self, d_sae: int, top_n: int):
        import torch

        if top_n < 1:
            raise ConfigError(f"top_n (contexts kept per latent) must be >= 1; got {top_n}")
        self.d_sae, self.top_n = d_sae, top_n
        self.values = torch.full((top_n, d_sae), float("-inf"))
        self.refs = torch.full((top_n, d_sae), -1, dtype=torch.long)
        self.contexts: dict[int, LatentContext] = {}
        self.occurrences = 0  # tokens seen

    def add(self, values, make_context) -> None:
        """Merge (n, d_sae) activations of ``n`` new token occurrences; ``make_context(i)`` gives
        the :class:`LatentContext` (activation left 0) of row ``i``, called only for kept rows."""
        import torch

        n = values.shape[0]
        if n == 0:
            return
        k = min(self.top_n, n)
        top, rows = torch.topk(values, k, dim=0)  # (k, d_sae) each: the batch's own top-k
        merged = torch.cat([self.values, top])  # (top_n + k, d_sae)
        merged_refs = torch.cat([self.refs, rows + self.occurrences])
        # stable: among equal values the earlier occurrence (lower row of ``merged``) stays
        best = torch.sort(merged, dim=0, descending=True, stable=True).indices[:self.top_n]
        self.values = merged.gather(0, best)
        self.refs = merged_refs.gather(0, best)
        self.refs[~(self.values > 0)] = -1  # only positive activations are kept
        self.values[self.refs < 0] = float("-inf")
        live = set(self.refs[self.refs >= 0].unique().tolist())
        for ref in live - self.contexts.keys():
            self.contexts[ref] = make_context(ref - self.occurrences)
        for ref in list(self.contexts):
            if ref not in live:
                del self.contexts[ref]
        self.occurrences += n

    def labels(self) -> dict[int, LatentLabel]:
        """{latent: LatentLabel(top=...)} for the latents with at least one positive activation."""
        out: dict[int, LatentLabel] = {}
        values, refs = self.values.t().tolist(), self.refs.t().tolist()  # (d_sae, top_n)
        for latent in range(self.d_sae):
            top = []
            for v, r in zip(values[latent], refs[latent]):
                if r < 0:
                    continue
                c = self.contexts[r]
                top.append(LatentContext(float(v), c.token, c.left, c.right, c.doc_id))
            if top:
                out[latent] = LatentLabel(latent, None, tuple(top))
        return out


def build_labels(encoder, documents: Iterable[Document], *, top_n: int = DEFAULT_TOP_N,
                 context_words: int = DEFAULT_CONTEXT_WORDS, batch_size: int = 8,
                 max_docs: int | None = None, progress: bool = True, total: int | None = None,
                 source: dict | None = None) -> LatentLabels:
    """Top-``top_n`` activating contexts of every latent over ``documents`` (document side).

    Memory: one batch's activations ((batch tokens) x d_sae float32) plus O(d_sae * top_n) kept
    entries. Time: one forward pass per document, as encoding. ``source`` is recorded (the corpus
    and settings). Raises ConfigError for ``top_n`` < 1, ``context_words`` < 0, ``batch_size`` < 1.
    """
    from tqdm.auto import tqdm

    from .activations import token_activations

    if context_words < 0:
        raise ConfigError(f"context_words must be >= 0; got {context_words}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    table = TopContexts(encoder.d_sae, top_n)
    total = min(total, max_docs) if total is not None and max_docs is not None else (total or max_docs)
    bar = tqdm(total=total, unit="doc", desc="label latents", disable=not progress, dynamic_ncols=True,
               smoothing=0.05)
    docs = tokens = 0
    batch: list[Document] = []

    def flush():
        nonlocal tokens
        import torch

        acts = token_activations(encoder, [d.text for d in batch], kind="document")
        owners: list[tuple[Document, int]] = []
        for doc, a in zip(batch, acts):
            owners.extend((doc, i) for i in range(len(a.tokens.tokens)))
        values = torch.cat([a.values for a in acts])  # (batch tokens, d_sae)
        flat = [(a.tokens, i) for a in acts for i in range(len(a.tokens.tokens))]

        def make_context(row: int) -> LatentContext:
            toks, i = flat[row]
            start, end = toks.spans[i]
            if start < 0:  # a prefix/special token: no place in the text
                return LatentContext(0.0, toks.tokens[i], "", "", owners[row][0].id)
            left, right = context_window(toks.text, start, end, context_words)
            return LatentContext(0.0, toks.tokens[i], left, right, owners[row][0].id)

        table.add(values, make_context)
        tokens += values.shape[0]
        bar.update(len(batch))

    for doc in documents:
        if max_docs is not None and docs >= max_docs:
            break
        batch.append(doc)
        docs += 1
        if len(batch) >= batch_size:
            flush()
            batch = []
    if batch:
        flush()
    bar.close()
    if docs == 0:
        raise InputError("no documents to label latents from; give a corpus with at least one document")
    settings = {"kind": "corpus", "documents": docs, "tokens": tokens, "top_n": top_n,
                "context_words": context_words, "max_length": encoder.config.document.max_length,
                **(source or {})}
    latents = table.labels()
    logger.info("labelled %d of %d latents from %d documents (%d tokens)", len(latents), encoder.d_sae,
                docs, tokens)
    return LatentLabels(encoder.d_sae, encoder.fingerprint, _now(), (settings,), latents)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# -- Neuronpedia import ------------------------------------------------------------------------

def _neuronpedia_records(path: Path) -> Iterable[tuple[int | str, dict]]:
    """(line number or "record N", object) of a Neuronpedia export: a JSON array, an object with
    an ``explanations`` array (the old API's answer), or JSONL (gzipped or not: the S3 batches)."""
    from ..textio import iter_jsonl, read_json

    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        yield from iter_jsonl(path)
        return
    obj = read_json(path)
    if isinstance(obj, dict) and isinstance(obj.get("explanations"), list):
        obj = obj["explanations"]
    if not isinstance(obj, list):
        raise InputError("a Neuronpedia export must be a JSON array of explanations, an object with an "
                         "\"explanations\" array, or JSONL (one explanation per line)", path=str(path))
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise InputError(f"record {i} is a JSON {type(rec).__name__}, not an object", path=str(path))
        yield f"record {i}", rec


def import_neuronpedia(files: Sequence[str | os.PathLike], d_sae: int, *, sae_id: str | None = None,
                       model_id: str | None = None) -> tuple[dict[int, str], dict]:
    """Neuronpedia explanations -> ({latent: description}, source record).

    Each record needs ``index`` (the feature index, int or digit string) and ``description``;
    ``layer`` (Neuronpedia's SAE id, also read from ``saeId``) and ``modelId`` are checked
    against ``sae_id`` / ``model_id`` when given (other records are skipped and counted), and
    when not given, a file mixing several SAEs is refused (which one would be meant?). Several
    descriptions of one feature: the first is kept. Raises InputError naming the file and line
    (or record) for a missing field, an index that is not an integer, or an index >= ``d_sae``
    (an export of a wider SAE: check ``--sae-id``).
    """
    descriptions: dict[int, str] = {}
    skipped = 0
    seen_saes: set[tuple[str, str]] = set()
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise InputError("no such Neuronpedia export file", path=str(path))
        for where, rec in _neuronpedia_records(path):
            line = where if isinstance(where, int) else None
            loc = "" if line is not None else f"{where}: "
            sae = rec.get("layer", rec.get("saeId"))
            model = rec.get("modelId")
            if (sae_id is not None and str(sae) != sae_id) or (model_id is not None and str(model) != model_id):
                skipped += 1
                continue
            seen_saes.add((str(model), str(sae)))
            if len(seen_saes) > 1 and sae_id is None:
                listed = ", ".join(f"{m}/{s}" for m, s in sorted(seen_saes))
                raise InputError(f"{loc}the export holds explanations of several SAEs ({listed}); pass "
                                 "--sae-id to pick the one this model uses", str(path), line)
            raw_index, desc = rec.get("index"), rec.get("description")
            if raw_index is None or desc is None:
                raise InputError(f"{loc}an explanation needs \"index\" and \"description\"; got keys "
                                 f"{sorted(rec)}", str(path), line)
            try:
                index = int(str(raw_index).strip())
            except ValueError:
                raise InputError(f"{loc}feature index {raw_index!r} is not an integer", str(path), line) from None
            if not 0 <= index < d_sae:
                raise InputError(f"{loc}feature index {index} is outside the model's SAE (d_sae = {d_sae}, "
                                 f"indices 0..{d_sae - 1}); is this the export of another SAE ({model}/{sae})? "
                                 "Pass --sae-id to pick the right one", str(path), line)
            descriptions.setdefault(index, " ".join(str(desc).split()))
    if not descriptions:
        what = f" for --sae-id {sae_id}" if sae_id else ""
        raise InputError(f"no explanations{what} in {', '.join(map(str, files))} ({skipped} records of other "
                         "SAEs skipped)")
    if skipped:
        logger.info("skipped %d explanations of other SAEs/models", skipped)
    model, sae = next(iter(seen_saes)) if len(seen_saes) == 1 else (model_id, sae_id)
    source = {"kind": "neuronpedia", "files": [str(f) for f in files], "model_id": model, "sae_id": sae,
              "descriptions": len(descriptions), "skipped": skipped}
    return descriptions, source


def merge_descriptions(existing: LatentLabels | None, descriptions: dict[int, str], source: dict,
                       d_sae: int, fingerprint: str | None) -> LatentLabels:
    """``existing`` labels (kept: their top contexts) with imported ``descriptions`` set on
    their latents; a new labels record when there were none."""
    latents = dict(existing.latents) if existing is not None else {}
    for i, desc in descriptions.items():
        old = latents.get(i)
        latents[i] = LatentLabel(i, desc, old.top if old is not None else ())
    sources = tuple(s for s in (existing.sources if existing else ()) if s.get("kind") != "neuronpedia")
    return LatentLabels(d_sae, fingerprint, _now(), sources + (source,), latents)
