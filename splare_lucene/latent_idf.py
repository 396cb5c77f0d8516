"""Query latents weighted by their idf over a reference set of documents, stored with the model.

A SPLARE score is the dot product of query and document latent impacts (PAPER.md); a latent that
fires on most documents adds to almost every score (docs/explain.md, "A hub document, and why").
BM25 discounts a term by its idf; a model with ``query_idf_power = p > 0`` discounts each query
latent the same way before its weight is quantized::

    impact = round_half_up(weight x quantization_scale x idf(latent) ** p)
    idf(latent) = ln(1 + (N - df + 0.5) / (df + 0.5))

Lucene's ``BM25Similarity.idf`` (Robertson/Sparck Jones with 1 added inside the log, so that it
stays > 0 for a latent in every document). N and df are counted once, over a reference set of
documents encoded by the model itself (``splare-lucene configure --query-idf-corpus DIR``), with
df = documents whose quantized impact for the latent is > 0 after the model's document top-k:
the counts live in ``latent_df.json`` in the model directory, so every search path (the toolkit's
searcher, Pyserini's ``LuceneImpactSearcher``, Seismic, ``encode-queries`` files for Anserini)
applies the same weights with no index at hand. Documents are indexed unchanged; only the query
side is weighted, after its top-k (the top-k picks latents by the model's own weights).

Why stored counts rather than the searched index's own df: on the dev splits of issue 12 the
stored counts (4,000 SQuAD paragraphs) helped cross-lingual retrieval more than each
collection's own df did (benchmarks/results/query_idf_round8.md).

The counts are tied to the encoding that produced them: another adapter, document top-k, length,
normalisation or scale gives other impacts, so ``configure`` recounts or refuses those changes,
and ``train`` leaves the weighting out of the model it writes.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import CheckpointError, ConfigError

LATENT_DF_NAME = "latent_df.json"  # in the model directory, beside splare_config.json
# fields of latent_df.json that record when, from where and by what the counts were made, not the
# counts or their encoding: left out of the model fingerprint, so that a recount hashes alike
_RECORD_ONLY = ("created", "source", "model_fingerprint")


def fingerprint_bytes(path: str | os.PathLike) -> bytes:
    """What the model fingerprint hashes of a ``latent_df.json``: its fields without
    ``_RECORD_ONLY``, as sorted JSON; a malformed file as it is (loading it is refused anyway)."""
    data = Path(path).read_bytes()
    try:
        obj = json.loads(data)
        return json.dumps({k: v for k, v in obj.items() if k not in _RECORD_ONLY}, sort_keys=True).encode()
    except (ValueError, AttributeError):
        return data


def bm25_idf(df, n_documents: int):
    """(latents,) document frequencies -> (latents,) float64 ``ln(1 + (N - df + 0.5) / (df + 0.5))``.

    Lucene's ``BM25Similarity.idf`` (org.apache.lucene.search.similarities, Lucene 9), the idf
    Anserini's BM25 uses. Raises ConfigError when ``n_documents`` < 1 or a df is outside [0, N].
    """
    import numpy as np

    df = np.asarray(df, dtype=np.float64)
    if n_documents < 1:
        raise ConfigError(f"idf needs at least one document; got N = {n_documents}")
    if df.size and (df.min() < 0 or df.max() > n_documents):
        raise ConfigError(f"document frequencies must lie in [0, {n_documents}]; got {df.min():g} to {df.max():g}")
    return np.log1p((n_documents - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class LatentDocumentFrequency:
    """How many of ``documents`` reference documents hold each latent (impact > 0 after the cut).

    ``df``: one count per latent (length d_sae); ``document_top_k``, ``document_max_length``,
    ``document_prefix``, ``quantization_scale`` and ``text_normalization``: the encoding the counts
    were made with (a model whose settings differ would weight by counts of other vectors);
    ``source``: the documents (a folder, for the record); ``model_fingerprint``: the model that
    encoded them (before the weighting was added).
    """

    documents: int
    df: tuple[int, ...]
    document_top_k: int
    document_max_length: int
    quantization_scale: float
    text_normalization: str
    document_prefix: str = ""
    source: str = ""
    model_fingerprint: str = ""
    created: str = ""

    def __post_init__(self):
        if self.documents < 1:
            raise ConfigError(f"latent document frequencies need at least one document; got {self.documents}")
        if not self.df or any((not isinstance(v, int)) or v < 0 or v > self.documents for v in self.df):
            raise ConfigError(f"df must be one integer in [0, {self.documents}] per latent")

    @property
    def d_sae(self) -> int:
        return len(self.df)

    def idf(self):
        """(d_sae,) float64 idf (:func:`bm25_idf`)."""
        return bm25_idf(self.df, self.documents)

    def query_weights(self, power: float):
        """(d_sae,) float32 ``idf ** power``: what a query's pooled weights are multiplied by."""
        import numpy as np

        return (self.idf() ** float(power)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"format": "splare-latent-df", "version": 1, "documents": self.documents,
                "document_top_k": self.document_top_k, "document_max_length": self.document_max_length,
                "quantization_scale": self.quantization_scale,
                "text_normalization": self.text_normalization, "document_prefix": self.document_prefix,
                "source": self.source,
                "model_fingerprint": self.model_fingerprint, "created": self.created,
                "idf": "ln(1 + (N - df + 0.5) / (df + 0.5)) (Lucene BM25Similarity.idf)", "df": list(self.df)}

    @classmethod
    def from_dict(cls, obj, where: str) -> "LatentDocumentFrequency":
        if not isinstance(obj, dict) or obj.get("format") != "splare-latent-df" or obj.get("version") != 1:
            raise CheckpointError(f"{where}: not a latent document-frequency file (format splare-latent-df, "
                                  "version 1); recount it with `splare-lucene configure --query-idf-corpus DIR`")
        try:
            return cls(documents=int(obj["documents"]), df=tuple(obj["df"]),
                       document_top_k=int(obj["document_top_k"]),
                       document_max_length=int(obj["document_max_length"]),
                       quantization_scale=float(obj["quantization_scale"]),
                       text_normalization=str(obj["text_normalization"]),
                       document_prefix=str(obj.get("document_prefix", "")), source=str(obj.get("source", "")),
                       model_fingerprint=str(obj.get("model_fingerprint", "")), created=str(obj.get("created", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: malformed ({exc!r}); recount it with `splare-lucene configure "
                                  "--query-idf-corpus DIR`") from exc

    def save(self, model_dir: str | os.PathLike) -> Path:
        """Write ``latent_df.json`` into ``model_dir`` atomically."""
        from .explain.labels import write_text_atomic

        return write_text_atomic(Path(model_dir) / LATENT_DF_NAME,
                                 json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "LatentDocumentFrequency":
        path = Path(model_dir) / LATENT_DF_NAME
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"{model_dir}: its config weights query latents by idf (query_idf_power > 0) "
                                  f"but {LATENT_DF_NAME} is missing; count it with `splare-lucene configure "
                                  "--model DIR --output NEW --query-idf-corpus DOCS`, or set "
                                  "--query-idf-power 0") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: malformed JSON ({exc}); recount it with `splare-lucene configure "
                                  "--query-idf-corpus DIR`") from exc
        return cls.from_dict(obj, str(path))

    def check_fits(self, config, d_sae: int | None, where: str) -> None:
        """Raise CheckpointError when these counts were not made with ``config``'s document encoding
        (or, ``d_sae`` given, for another vector width)."""
        mismatches = [f"{name} {mine!r} (the model: {theirs!r})" for name, mine, theirs in (
            ("width", self.d_sae, self.d_sae if d_sae is None else d_sae), ("document_top_k", self.document_top_k, config.document.top_k),
            ("document_max_length", self.document_max_length, config.document.max_length),
            ("document_prefix", self.document_prefix, config.document.prefix),
            ("quantization_scale", self.quantization_scale, config.quantization_scale),
            ("text_normalization", self.text_normalization, config.text_normalization)) if mine != theirs]
        if mismatches:
            raise CheckpointError(f"{where}: its latent document frequencies were counted with "
                                  + ", ".join(mismatches) + "; recount them with `splare-lucene configure "
                                  "--query-idf-corpus DIR` (or set --query-idf-power 0)")


def count_document_frequency(encoder, texts: Iterable[str], *, source: str = "", batch_size: int = 16,
                             total: int | None = None, progress: bool = True) -> LatentDocumentFrequency:
    """Encode ``texts`` as documents with ``encoder`` (its own top-k and quantization) and count,
    per latent, the documents whose impact is > 0. Memory: one (d_sae,) int64 counter.

    Raises ConfigError when ``texts`` is empty.
    """
    import numpy as np

    counts = np.zeros(int(encoder.d_sae), dtype=np.int64)
    n = 0
    for _, vector in encoder.encode_stream(texts, kind="document", batch_size=batch_size,
                                           text_of=lambda t: t, progress=progress, total=total):
        counts[np.asarray(encoder.quantize(vector).indices)] += 1  # quantize keeps impacts >= 1 only
        n += 1
    if n == 0:
        raise ConfigError(f"no documents to count latent frequencies over{f' in {source}' if source else ''}")
    config = encoder.config
    return LatentDocumentFrequency(
        documents=n, df=tuple(int(c) for c in counts), document_top_k=config.document.top_k,
        document_max_length=config.document.max_length, document_prefix=config.document.prefix,
        quantization_scale=config.quantization_scale, text_normalization=config.text_normalization,
        source=source, model_fingerprint=encoder.fingerprint or "",
        created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

