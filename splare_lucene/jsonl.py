"""Anserini JsonVectorCollection I/O: ``{"id", "contents", "vector": {token: int}}`` lines.

``encode`` writes its output in resumable parts (:mod:`splare_lucene.engines.parts`);
:class:`JsonVectorWriter` is the one-shot writer for small outputs made in one go (tests,
synthetic collections): it spreads documents round-robin over gzip shards, streams, writes into
a temporary directory renamed into place at the end (no half-written output on failure), and
keeps a summary with the ids of empty vectors (Anserini skips those silently). The readers here
read both.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import InputError
from .outputs import temp_dir_beside

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
SHARD_PATTERN = "part-{:03d}.jsonl.gz"
MAX_EMPTY_IDS = 1000  # ids listed in the summary; the count is always exact


@dataclass
class WriteSummary:
    documents: int = 0
    empty: int = 0
    empty_ids: list[str] = field(default_factory=list)
    total_nnz: int = 0
    max_nnz: int = 0
    total_weight: int = 0
    shards: int = 0
    extra: dict = field(default_factory=dict)  # model, quantization, ... (set by the caller)

    @property
    def mean_nnz(self) -> float:
        return self.total_nnz / self.documents if self.documents else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["mean_nnz"] = round(self.mean_nnz, 3)
        out["mean_weight"] = round(self.total_weight / self.total_nnz, 3) if self.total_nnz else 0.0
        return out

    def describe(self) -> str:
        text = (f"{self.documents} documents in {self.shards} files; non-zeros per document: "
                f"mean {self.mean_nnz:.1f}, max {self.max_nnz}; empty vectors: {self.empty}")
        if self.empty:
            shown = ", ".join(self.empty_ids[:10])
            text += f" (Anserini skips them; ids: {shown}{', ...' if self.empty > 10 else ''})"
        return text


def count_vector(stats, doc_id: str, vector: dict[str, int]) -> None:
    """Add one document's vector to ``stats`` (a WriteSummary or an engines.parts.PartRecord:
    anything with total_nnz, max_nnz, total_weight, empty and empty_ids); the first
    MAX_EMPTY_IDS empty documents are listed by id, all are counted."""
    nnz = len(vector)
    stats.total_nnz += nnz
    stats.max_nnz = max(stats.max_nnz, nnz)
    stats.total_weight += sum(vector.values())
    if nnz == 0:
        stats.empty += 1
        if len(stats.empty_ids) < MAX_EMPTY_IDS:
            stats.empty_ids.append(doc_id)


class JsonVectorWriter:
    """Context manager writing shards into ``output_dir`` atomically."""

    def __init__(self, output_dir: str | os.PathLike, shards: int = 1, contents: bool = True):
        if shards < 1:
            raise ValueError(f"shards must be >= 1; got {shards}")
        self.output_dir = Path(output_dir)
        self.num_shards = shards
        self.contents = contents
        self.summary = WriteSummary(shards=shards)
        self._tmp: Path | None = None
        self._files: list = []

    def __enter__(self) -> "JsonVectorWriter":
        self._tmp = temp_dir_beside(self.output_dir)
        self._files = [gzip.open(self._tmp / SHARD_PATTERN.format(i), "wt", encoding="utf-8", compresslevel=1)
                       for i in range(self.num_shards)]
        return self

    def write(self, doc_id: str, text: str, vector: dict[str, int]) -> None:
        s = self.summary
        record = {"id": doc_id, "contents": text if self.contents else "", "vector": vector}
        self._files[s.documents % self.num_shards].write(json.dumps(record, ensure_ascii=False) + "\n")
        s.documents += 1
        count_vector(s, doc_id, vector)

    def __exit__(self, exc_type, exc, tb) -> None:
        for f in self._files:
            f.close()
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        (self._tmp / SUMMARY_NAME).write_text(json.dumps(self.summary.to_dict(), indent=2) + "\n")
        from .outputs import install_dir

        try:  # replaces only an encode output or an empty folder (issue 10); callers check --overwrite
            install_dir(self._tmp, self.output_dir, ["encode"])
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        if self.summary.empty:
            logger.warning("%d documents have empty vectors; Anserini will skip them (ids in %s)",
                           self.summary.empty, self.output_dir / SUMMARY_NAME)


def shard_files(directory: str | os.PathLike) -> list[Path]:
    """The data files of an encoded directory, sorted: ``*.jsonl``, ``*.jsonl.gz`` and ``*.json``
    files other than ``summary.json`` and ``encode``'s manifests (``manifest.shard-*.json``).
    Raises InputError when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("not a directory of .jsonl(.gz) shards", path=str(directory))
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz", ".json")))
    files = [p for p in files if p.name != SUMMARY_NAME and not p.name.startswith("manifest.shard-")]
    if not files:
        raise InputError("no .jsonl or .jsonl.gz shards found", path=str(directory))
    return files


# Characters at which Anserini's -pretokenized analysis (Lucene's WhitespaceAnalyzer, i.e. Java's
# Character.isWhitespace) cuts a token: a token holding one is indexed as several terms. Not
# Python's str.isspace: Java keeps NBSP (U+00A0, U+2007, U+202F) and NEL (U+0085) inside tokens.
_JAVA_WHITESPACE = re.compile("[\t\n\x0b\x0c\r\x1c-\x1f \u1680\u2000-\u2006\u2008-\u200a"
                              "\u2028\u2029\u205f\u3000]")


@dataclass(frozen=True)
class VectorRules:
    """What the ``vector`` of a JsonVectorCollection line must hold to be indexed as written.

    Always: an object of ``token: weight``; every weight a JSON integer in ``1..MAX_IMPACT``
    (Anserini 1.7.1 casts a float weight to int, 2.7 -> 2, and drops weights below 1 without a
    word); every token non-empty, without whitespace (Anserini's pretokenized analysis would cut it
    into several terms) and at most ANSERINI_MAX_TOKEN_LENGTH UTF-16 characters (cut into pieces
    beyond). With ``prefix`` (the pseudo-token prefix of a SAE model, from the encoded folder's
    summary.json): every token is ``<prefix><latent>``, and with ``width`` ``latent < width``;
    another token could never match a query of that model. ``model`` names it in messages.
    """

    prefix: str | None = None
    width: int | None = None
    model: str = ""

    @classmethod
    def from_summary(cls, summary: dict | None) -> "VectorRules":
        """The rules an encoded folder's ``summary.json`` (or merged manifests) implies: the
        pseudo-token form when it records a SAE model (``extra.signature``), its latent count when
        it records ``extra.width`` (written since issue 10); only the generic rules otherwise (a
        foreign folder, or the vocabulary representation, whose tokens need the tokenizer)."""
        extra = (summary or {}).get("extra") or {}
        signature = extra.get("signature") or {}
        if signature.get("representation") != "sae" or not isinstance(signature.get("token_prefix"), str):
            return cls()
        width = extra.get("width")
        return cls(signature["token_prefix"], width if isinstance(width, int) and width > 0 else None,
                   str(extra.get("model") or ""))

    def describe(self) -> str:
        """``f<latent> with latent < 64; model 'tiny', as ...`` for messages."""
        bound = f" with latent < {self.width}" if self.width else ""
        model = f"; model {self.model!r}, as the folder's summary.json records" if self.model else ""
        return f"{self.prefix}<latent>{bound}{model}"


def check_vector(vector: object, rules: VectorRules, path: str | os.PathLike, line: int,
                 doc_id: str) -> dict[str, int]:
    """``vector`` checked against ``rules`` (see :class:`VectorRules`); returned unchanged.

    Raises:
        InputError: naming the file, line, document id, the token and weight at fault, what
            Anserini would have done with it and how to fix it.
    """
    from .quantize import MAX_IMPACT
    from .textio import json_kind
    from .vocab import ANSERINI_MAX_TOKEN_LENGTH

    where = str(path)
    if not isinstance(vector, dict):
        raise InputError(f"document {doc_id!r}: \"vector\" must be a JSON object of token: weight; got "
                         f"{json_kind(vector)} {vector!r:.60}", where, line)
    pattern = re.compile(rf"{re.escape(rules.prefix)}(0|[1-9][0-9]*)") if rules.prefix else None
    for token, weight in vector.items():
        if isinstance(weight, bool) or not isinstance(weight, int):
            fix = (f"write it as {int(weight)}" if isinstance(weight, float) and weight.is_integer()
                   else "quantize the weights to integer impacts first: impact = round(weight * scale) "
                        "with the scale recorded with the model (splare_lucene.quantize.quantize), "
                        "dropping those that round to 0")
            raise InputError(f"document {doc_id!r}: weight {weight!r} of token {token!r} is not an integer "
                             "(Anserini casts a weight to int, 2.7 -> 2 and 0.4 -> dropped, so the index "
                             f"would not hold what the file says); {fix}", where, line)
        if not 1 <= weight <= MAX_IMPACT:
            why = ("Anserini drops weights below 1, so the term would be missing from the document; "
                   "drop the entry, or quantize so that every kept weight is >= 1") if weight < 1 else \
                f"Lucene stores a weight as a term frequency, at most {MAX_IMPACT}; use a smaller scale"
            raise InputError(f"document {doc_id!r}: weight {weight} of token {token!r} is outside "
                             f"1..{MAX_IMPACT}: {why}", where, line)
        bad = _JAVA_WHITESPACE.search(token)
        if not token or bad or len(token.encode("utf-16-le", "surrogatepass")) > 2 * ANSERINI_MAX_TOKEN_LENGTH:
            why = ("is empty" if not token else
                   f"contains whitespace ({bad.group()!r}): Anserini's pretokenized analysis splits it "
                   "into several terms" if bad else
                   f"is longer than {ANSERINI_MAX_TOKEN_LENGTH} characters: Anserini cuts it into pieces")
            raise InputError(f"document {doc_id!r}: token {token[:60]!r} {why}, so no query could match "
                             "it; give every term as one token without spaces", where, line)
        if pattern is not None:
            match = pattern.fullmatch(token)
            if match is None or (rules.width is not None and int(match.group(1)) >= rules.width):
                raise InputError(f"document {doc_id!r}: token {token[:60]!r} is not a pseudo-token of the "
                                 f"model that encoded this folder ({rules.describe()}): no query of that "
                                 "model can match it. Index only vectors that model wrote, or encode the "
                                 "documents again with `splare-lucene encode`", where, line)
    return vector


def read_vectors(directory: str | os.PathLike) -> Iterator[tuple[str, dict[str, int]]]:
    """(id, {token: weight}) for every line of every shard, validated.

    Shards are read by :func:`splare_lucene.textio.iter_jsonl` (gzip, strict UTF-8, BOM and CR
    dropped), ids checked by :func:`~splare_lucene.textio.check_id` (no whitespace: such an id
    would break the TREC runs of the index built from these files) and vectors by
    :func:`check_vector` with the rules of the folder's summary.json (:class:`VectorRules`).

    Raises:
        InputError: naming the shard file and line.
    """
    from .textio import check_id, iter_jsonl

    rules = VectorRules.from_summary(read_summary(directory))
    for path in shard_files(directory):
        for number, obj in iter_jsonl(path):
            if "id" not in obj or not isinstance(obj.get("vector"), dict):
                raise InputError("expected keys 'id' and 'vector' (an object of token: weight)",
                                 str(path), number)
            doc_id = check_id(obj["id"], path, number)
            yield doc_id, check_vector(obj["vector"], rules, path, number, doc_id)


def index_meta(summary: dict, **extra) -> dict:
    """What an index built from these shards records: the encoder's metadata (model, quantization,
    ...), ``extra``, and the encoding counts (without the list of empty ids)."""
    encoding = {k: v for k, v in summary.items() if k not in ("extra", "empty_ids")}
    return {**summary.get("extra", {}), **extra, "encoding": encoding}


def read_summary(directory: str | os.PathLike) -> dict | None:
    """``summary.json`` of an encoded directory, or None when there is none.

    Raises:
        InputError: the file is not UTF-8 JSON holding an object (naming the file and line).
    """
    from .textio import json_kind, read_json

    path = Path(directory) / SUMMARY_NAME
    if not path.is_file():
        return None
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise InputError(f"expected a JSON object; got {json_kind(summary)}", path=str(path))
    return summary
