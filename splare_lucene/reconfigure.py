"""A copy of a model directory with other inference settings: top-k, lengths, quantization scale,
text normalisation, query idf weighting (its counts made here: :mod:`splare_lucene.latent_idf`).
The weights (backbone reference, SAE, adapters) are copied unchanged.

This is how a cut chosen by ``benchmarks/top_k_grid.py`` (or any setting measured on a dev split)
becomes a model: ``splare-lucene configure --model M --output DIR --query-top-k 150``. The new
directory has its own fingerprint (the config is hashed), so its indexes are never confused with
the original's.

Latent labels (``latent_labels.json``) follow the copy: they come from per-token activations,
which top-k, lengths and quantization do not touch, so they are re-stamped with the new
fingerprint. A change of ``text_normalization`` changes the texts the model reads, hence the
activations: the labels are copied as they are (``explain`` then warns that they were built for
another model) and a warning says to run ``label-latents``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

from .config import QUERY_SIDE_FIELDS, SplareConfig
from .errors import ConfigError

logger = logging.getLogger(__name__)

# option name -> (config side or None, field)
SETTINGS = {
    "query_top_k": ("query", "top_k"),
    "doc_top_k": ("document", "top_k"),
    "query_max_length": ("query", "max_length"),
    "doc_max_length": ("document", "max_length"),
    "quantization_scale": (None, "quantization_scale"),
    "text_normalization": (None, "text_normalization"),
    "query_idf_power": (None, "query_idf_power"),
}
# settings that change the document vectors, hence the latent document frequencies (latent_df.json)
_DOCUMENT_SIDE = tuple(key for key, (side, field) in SETTINGS.items() if (side or field) not in QUERY_SIDE_FIELDS)


def setting(config: SplareConfig, key: str):
    """The value of setting ``key`` (a key of :data:`SETTINGS`) in ``config``."""
    side, field = SETTINGS[key]
    return getattr(getattr(config, side) if side else config, field)


def changed_config(config: SplareConfig, **changes) -> SplareConfig:
    """``config`` with ``changes`` (keys of :data:`SETTINGS`; None = keep) applied.

    Raises:
        ConfigError: an unknown key, or a value the config refuses (an unknown
            ``text_normalization``, a negative top-k: :class:`SplareConfig` and :class:`TextSide`
            check their own fields).
    """
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown settings {unknown}; known: {sorted(SETTINGS)}")
    sides = {"query": config.query, "document": config.document}
    top: dict = {}
    for key, value in changes.items():
        if value is None:
            continue
        side, field = SETTINGS[key]
        if side is None:
            top[field] = value
        else:
            sides[side] = dataclasses.replace(sides[side], **{field: value})
    return config.replace(query=sides["query"], document=sides["document"], **top)


def reconfigure(model: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
                idf_corpus: str | os.PathLike | None = None, idf_max_docs: int | None = None,
                device: str = "auto", batch_size: int = 16, progress: bool = True,
                **changes) -> tuple[Path, SplareConfig, SplareConfig]:
    """Write a copy of ``model`` (a directory, 'default' or a hub id) to ``output`` with
    ``changes`` (see :func:`changed_config`) in its config.

    Query idf weighting (:mod:`splare_lucene.latent_idf`): with ``idf_corpus`` (a corpus the
    toolkit reads: BEIR folder, JSONL/TSV file) the copy's latent document frequencies are counted
    over its first ``idf_max_docs`` documents (all when None), encoded by the copy on ``device``
    (``latent_df.json``; needs ``query_idf_power`` > 0 in the result). Without it, a copy that
    keeps ``query_idf_power`` > 0 keeps the model's counts, which must still fit the copy's
    document encoding; ``query_idf_power`` 0 drops them.

    The copy is built in a temporary directory beside ``output`` and renamed into place, so a
    failure leaves no half-written model. Returns (output directory, old config, new config).

    Raises:
        ConfigError: nothing would change; ``output`` is the model, lies inside it or holds it;
            ``output`` exists without ``overwrite`` (or is not a model directory); a bad setting;
            ``idf_corpus`` without ``query_idf_power`` > 0, or a weighted copy whose counts no
            longer fit (another document top-k, length, scale or normalisation) without one.
        CheckpointError: ``model`` is not a model directory.
        InputError: ``idf_corpus`` cannot be read.
    """
    from .latent_idf import LATENT_DF_NAME, LatentDocumentFrequency, count_document_frequency

    from .encoder import model_fingerprint, resolve_model_dir
    from .explain.labels import load_latent_labels, save_latent_labels
    from .explain.records import LABELS_NAME
    from .outputs import check_not_input, check_output_dir, check_replaceable, staged_dir

    source = resolve_model_dir(model)
    old = SplareConfig.load(source)
    new = changed_config(old, **changes)
    if idf_max_docs is not None and idf_corpus is None:
        raise ConfigError("--query-idf-max-docs limits --query-idf-corpus; give the corpus too")
    if idf_max_docs is not None and idf_max_docs < 1:
        raise ConfigError(f"--query-idf-max-docs must be >= 1 (documents to count over); got {idf_max_docs}")
    if new == old and idf_corpus is None:
        raise ConfigError("nothing to change: give at least one setting that differs from the model's "
                          "(e.g. --query-top-k, --doc-top-k, --text-normalization)")
    if idf_corpus is not None and not new.query_idf_power:
        raise ConfigError("--query-idf-corpus counts latent document frequencies for query idf weighting: "
                          "give --query-idf-power too (> 0; the default model uses 1)")
    document_changed = [key for key in _DOCUMENT_SIDE if setting(old, key) != setting(new, key)]
    if new.query_idf_power and idf_corpus is None:
        if not old.query_idf_power:
            raise ConfigError("--query-idf-power > 0 weights query latents by idf over reference documents: "
                              "give them with --query-idf-corpus DIR (e.g. paragraphs of the training "
                              "data; the default model counts 4,000 SQuAD paragraphs)")
        if document_changed:
            raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in document_changed)} changes the "
                              f"document vectors that {LATENT_DF_NAME} was counted from: recount with "
                              "--query-idf-corpus DIR, or drop the weighting with --query-idf-power 0")
    target = Path(output)
    check_not_input(target, {"--model": str(source)})  # the model itself, inside it, or holding it
    if os.path.lexists(target):
        if not overwrite:
            raise ConfigError(f"--output {output} already exists; pass --overwrite to replace it")
        check_replaceable(target, ["model"], what="--output")
    check_output_dir(target, what="--output")
    first_docs = None
    if idf_corpus is not None:  # a corpus that cannot be read fails here, before any model loads
        import itertools

        from .corpus import read_documents

        docs = itertools.islice(read_documents(str(idf_corpus)), idf_max_docs)
        first_docs = itertools.chain([next(docs)], docs)
    with staged_dir(target, ["model"], what="--output") as tmp:
        shutil.copytree(source, tmp, symlinks=False, dirs_exist_ok=True)
        if not new.query_idf_power or idf_corpus is not None:
            (tmp / LATENT_DF_NAME).unlink(missing_ok=True)
        if first_docs is not None:  # counted by the copy itself, read without the weighting
            from .encoder import SplareEncoder

            new.replace(query_idf_power=0.0).save(tmp)
            encoder = SplareEncoder.from_pretrained(tmp, device=device)
            texts = (d.text for d in first_docs)
            counts = count_document_frequency(encoder, texts, source=str(idf_corpus), batch_size=batch_size,
                                              total=idf_max_docs, progress=progress)
            counts.save(tmp)
            del encoder
        new.save(tmp)
        if new.query_idf_power:  # refuses counts that do not fit, before the copy is installed
            LatentDocumentFrequency.load(tmp).check_fits(new, model_width(tmp, new), str(target))
        labels = load_latent_labels(tmp)  # None when the model has none
        if labels is not None:
            if new.text_normalization == old.text_normalization:
                save_latent_labels(dataclasses.replace(labels, model_fingerprint=model_fingerprint(tmp, new)), tmp)
            else:
                logger.warning(
                    "%s was built from text read with text_normalization %r; this copy reads %r, so "
                    "its activations differ: rebuild the labels with `splare-lucene label-latents "
                    "--model %s` (explain warns until then)", LABELS_NAME, old.text_normalization,
                    new.text_normalization, output)
    if old.adapter and new.text_normalization != old.text_normalization:
        augmentation = _case_augmentation(source)
        if augmentation:  # a share of the texts re-cased (lower among them), the rest as given
            logger.info(
                "%s was trained with case augmentation %g (train_report.json): its adapter saw "
                "text as given and lower-cased, so reading with %r stays within its training",
                model, augmentation, new.text_normalization)
        else:
            logger.warning(
                "%s reads text with text_normalization %r and this copy with %r: unless its adapter "
                "was trained on text read the new way (train_report.json), measure the copy on a dev "
                "split before use (docs/training.md: for an adapter trained on text as given, reading "
                "lower-cased cost up to 0.04 nDCG@10 at 40/400).", model, old.text_normalization,
                new.text_normalization)
    return target, old, new


def _case_augmentation(model_dir: Path) -> float:
    """The ``train --case-augmentation`` probability recorded in ``model_dir/train_report.json``;
    0.0 when the directory has no report or the report predates the setting."""
    import json

    try:
        report = json.loads((model_dir / "train_report.json").read_text())
    except (OSError, ValueError):
        return 0.0
    return float(report.get("config", {}).get("case_augmentation") or 0.0)


def model_width(model_dir: Path, config: SplareConfig) -> int | None:
    """The model's vector width (SAE latents) from its SAE config, without loading weights; None
    for a vocabulary-head model (its width is the tokenizer's, known once it loads)."""
    from .sae.config import SAEConfig
    from .sae.formats import NATIVE_CONFIG

    if config.representation != "sae":
        return None
    return int(SAEConfig.load(model_dir / config.sae / NATIVE_CONFIG).d_sae)
