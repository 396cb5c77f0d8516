"""Document ids and vectors of encoded JsonVectorCollection files, checked before indexing.

Anserini's IndexCollection indexes every line it is given and reports little of what it drops:
two encoded folders that overlap (``index --jsonl A B``) gave an index with 4 documents for 3
ids; a weight of 2.7 became 2 and one of -3 or 0.4 vanished; tokens no query can produce were
indexed; a file starting with a byte-order mark, or holding an id over Lucene's 32,766-byte term
limit, was abandoned whole, with exit status 0. :func:`scan_ids` reads every line of every file
once, before Anserini starts, and refuses all of these, naming file and line.

What a line must hold: a JSON object with a document ``id`` that obeys
:func:`splare_lucene.textio.check_id` (the rule for every id the toolkit reads: no whitespace,
control characters, U+FEFF, at most 32,766 UTF-8 bytes) and a ``vector`` that obeys
:class:`splare_lucene.jsonl.VectorRules` (integer weights >= 1; tokens Anserini indexes whole;
the model's pseudo-tokens when the folder's summary names a SAE model). Files are read as
:mod:`splare_lucene.textio` reads them (gzip detected by its magic bytes, a truncated gzip an
InputError, strict UTF-8 with the bad byte's column counted in characters from 1), except that a
leading byte-order mark is refused: Anserini's JSON reader does not skip it and drops the file.

Memory is bounded by 8 bytes per document, not by the ids' text: pass 1 keeps a 64-bit BLAKE2b
hash of each id in a numpy ``uint64`` array (800 MB for 100M documents; exactly sized when the
manifests give the count), sorts it in place and looks for equal neighbours. Only when some hash
occurs twice does pass 2 re-read the files and keep the (few) candidate ids with their first
location, to tell a true duplicate (refused, naming both files and lines) from a hash collision
(about 100M^2 / 2^65 ~ 3e-4 expected collisions at 100M documents; ignored).

Speed: a line in ``encode``'s layout (``{"id": "...", "contents": ..., "vector": {...}}``) is
not parsed as JSON: its id is cut out after the ``{"id": "`` prefix and its vector, the end of
the line, is matched by one compiled regular expression that accepts exactly the valid vectors
(tokens and weights in range, in ``json.dumps`` spacing). Any other line, and any line the
expression refuses, is parsed whole and checked field by field, which gives the precise error.

Cost (``benchmarks/id_scan.py``, on a shared 2-core machine, load average about 3): 1M documents
of 8 latents, 9.4-9.6 s with ``--ids-only`` (vectors accepted unread, as before issue 10's
follow-up) against 12.3-12.5 s checking vectors too; 200k documents of 64 latents, 3.2-3.7 s
against 7.4-7.5 s (about 25 us per 64-latent line, two thirds of it the range check of tokens and
weights). Anserini takes minutes to index as many. Peak traced memory 41 MB for 1M documents
(8 bytes per document plus about 33 MB of read buffers).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import InputError
from ..idset import id_digest
from ..jsonl import VectorRules, check_vector
from ..textio import MAX_ID_BYTES, check_id, open_binary, utf8_error

logger = logging.getLogger(__name__)

# Lines written by `encode` (json.dumps of {"id": ..., ...}) start with this prefix: the id is cut
# out without parsing the rest of the line (its vector and text, most of the bytes).
_FAST_PREFIX = b'{"id": "'
_VECTOR_KEY = b'"vector": {'
# Bytes an ASCII id may not hold (textio.check_id's rule restricted to ASCII: controls, space, DEL).
_ASCII_BAD_ID = re.compile(rb"[\x00-\x20\x7f]")
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16  # ids hashed per numpy append
_READ_BYTES = 1 << 22  # decompressed bytes read at a time (lines split in bulk: faster than readline)
PROGRESS_MIN_DOCUMENTS = 200_000  # smaller scans take seconds: no bar


@dataclass(frozen=True)
class IdScan:
    """What :func:`scan_ids` found: ``documents`` lines with an id, all unique and with valid
    vectors; ``collisions`` hash collisions between distinct ids (re-checked, harmless);
    ``seconds`` wall time."""

    documents: int
    collisions: int
    seconds: float


def decimal_up_to(n: int, *, zero: bool = True) -> str:
    """A regular expression (no anchors, no groups) matching exactly the decimal numbers
    ``0..n`` (``1..n`` without ``zero``), without leading zeros. ``n >= 1``."""
    digits = str(n)
    alternatives = ["0"] if zero else []
    if len(digits) > 1:  # every shorter number
        alternatives.append("[1-9]" + (f"[0-9]{{0,{len(digits) - 2}}}" if len(digits) > 2 else ""))
    for i, d in enumerate(digits):  # same length, first smaller digit at position i
        low = 1 if i == 0 else 0
        if int(d) > low:
            alternatives.append(digits[:i] + f"[{low}-{int(d) - 1}]" + (f"[0-9]{{{len(digits) - i - 1}}}"
                                                                        if i < len(digits) - 1 else ""))
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


def _vector_pattern(rules: VectorRules) -> re.Pattern[bytes]:
    """The end of an encode-layout line, ``"vector": {...}}``, holding only valid entries."""
    from ..quantize import MAX_IMPACT
    from ..vocab import ANSERINI_MAX_TOKEN_LENGTH

    if rules.prefix:
        latent = decimal_up_to(rules.width - 1) if rules.width else "(?:0|[1-9][0-9]{0,200})"
        token = re.escape(rules.prefix) + latent
    else:  # printable ASCII but '"' and '\\' (anything else, e.g. an escape, goes the slow way)
        token = f"[!#-\\[\\]-~]{{1,{ANSERINI_MAX_TOKEN_LENGTH}}}"
    pair = f'"{token}": {decimal_up_to(MAX_IMPACT, zero=False)}'
    # "*+" (possessive, Python 3.11+; plain "*" on 3.10): the pairs never give back what they
    # matched, since "}}" cannot be part of a pair; saves a third of the time on 64-latent lines
    repeat = "*+" if sys.version_info >= (3, 11) else "*"
    return re.compile(f'"vector": \\{{(?:{pair}(?:, {pair}){repeat})?\\}}\\}}'.encode("ascii"))


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line without its LF) of a JSONL file, gunzipped when it starts with
    the gzip magic bytes. Raises InputError for a truncated or corrupt gzip stream."""
    number = 0
    rest = b""
    with open_binary(path) as f:
        while True:
            try:
                block = f.read(_READ_BYTES)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise InputError(f"the gzip stream is truncated or corrupt ({exc}; {number} whole lines "
                                 "read before the damaged block); Anserini would index part of it or none. "
                                 "Encode that part again (or compress the file again with gzip)",
                                 path=str(path)) from None
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                yield number, line
    if rest:
        yield number + 1, rest


def _iter_ids(path: Path, rules: VectorRules = VectorRules(),
              vector_pattern: re.Pattern[bytes] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, UTF-8 bytes of the id) of every non-blank line of one JsonVectorCollection
    file, each line checked (module docstring).

    Raises InputError (file:line) for a leading byte-order mark, a line that is not valid UTF-8
    (byte and character column) or not a JSON object with an ``id`` and a ``vector``, an id that
    :func:`~splare_lucene.textio.check_id` refuses, and a vector that
    :func:`~splare_lucene.jsonl.check_vector` refuses."""
    fast_vector = vector_pattern or _vector_pattern(rules)
    for number, line in _lines(path):
        if line.endswith(b"\r"):
            line = line[:-1]  # CRLF: JSON ignores the CR, as Anserini's reader does
        if number == 1 and line.startswith(_BOM):
            raise InputError("the file starts with a UTF-8 byte-order mark, which Anserini's JSON reader "
                             "does not skip (it drops the whole file); remove it, e.g. "
                             "`sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`", str(path), number)
        if line.startswith(_FAST_PREFIX):
            end = line.find(b'"', len(_FAST_PREFIX))
            raw = line[len(_FAST_PREFIX):end] if end > 0 else b"\\"
            vector_at = line.rfind(_VECTOR_KEY)
            if (b"\\" not in raw and vector_at > end and fast_vector.fullmatch(line, vector_at)
                    and _utf8(line)):
                if not (raw.isascii() and 0 < len(raw) <= MAX_ID_BYTES and not _ASCII_BAD_ID.search(raw)):
                    # a non-ASCII id (fine if check_id says so), or a bad one: check_id raises
                    check_id(raw.decode("utf-8"), path, number, what="document id")
                yield number, raw
                continue
        # everything else, and every line the fast path doubts: parsed and checked field by field
        if not line.strip():
            continue
        if not _utf8(line):
            raise utf8_error(line, path, number)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", str(path), number) from None
        except (RecursionError, ValueError) as exc:
            raise InputError(f"not valid JSON ({type(exc).__name__})", str(path), number) from None
        if not isinstance(obj, dict) or "id" not in obj or "vector" not in obj:
            raise InputError("expected a JSON object with an \"id\" and a \"vector\" (JsonVectorCollection: "
                             "{\"id\", \"contents\", \"vector\"})", str(path), number)
        doc_id = check_id(obj["id"], path, number, what="document id")
        check_vector(obj["vector"], rules, path, number, doc_id)
        yield number, doc_id.encode("utf-8")


def _utf8(line: bytes) -> bool:
    """Whether ``line`` is valid UTF-8 (ASCII checked first: the common, fastest case)."""
    if line.isascii():
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _Hashes:
    """A growing ``uint64`` array (doubling; exact when the count is known up front)."""

    def __init__(self, capacity: int):
        import numpy as np

        self.array = np.empty(max(1, capacity), dtype=np.uint64)
        self.size = 0

    def extend(self, digests: list[bytes]) -> None:
        import numpy as np

        values = np.frombuffer(b"".join(digests), dtype="<u8")  # little-endian, as in _locate_duplicates
        need = self.size + values.shape[0]
        if need > self.array.shape[0]:
            grown = np.empty(max(need, 2 * self.array.shape[0]), dtype=np.uint64)
            grown[:self.size] = self.array[:self.size]
            self.array = grown
        self.array[self.size:need] = values
        self.size = need


def scan_ids(files: Sequence[str | Path], *, expected: int | None = None, progress: bool = True,
             rules: VectorRules = VectorRules()) -> IdScan:
    """Check the ids and vectors of every line of ``files`` (JsonVectorCollection
    ``.jsonl``/``.jsonl.gz``) before indexing them together.

    Raises InputError: for an id seen twice (within one file or across files), naming the id,
    both files and lines, and the fix; for an id :func:`~splare_lucene.textio.check_id` refuses
    (whitespace, control characters, over 32,766 UTF-8 bytes, ...), a vector ``rules`` refuse
    (:class:`~splare_lucene.jsonl.VectorRules`: weights not integers >= 1, tokens Anserini would
    split or no query of the model can produce), a line that is not a JSON object with an ``id``
    and a ``vector``, a leading byte-order mark, bytes that are not UTF-8 and a truncated gzip
    (each with file and line). ``rules``: default, the checks that need no model (a foreign
    folder); :meth:`VectorRules.from_summary` for an encoded folder. ``expected``: the document count when known
    (sizes the hash array exactly). Shows a tqdm bar on large inputs when ``progress``; logs the
    time taken. Memory: 8 bytes per document (module docstring).
    """
    import numpy as np
    from tqdm.auto import tqdm

    start = time.perf_counter()
    paths = [Path(f) for f in files]
    pattern = _vector_pattern(rules)
    hashes = _Hashes(expected or _CHUNK)
    show = progress and (expected is None or expected >= PROGRESS_MIN_DOCUMENTS)
    with tqdm(total=expected, unit="doc", unit_scale=True, desc="checking ids", disable=not show,
              mininterval=1.0) as bar:
        for path in paths:
            pending: list[bytes] = []
            for _, doc_id in _iter_ids(path, rules, pattern):
                pending.append(id_digest(doc_id))
                if len(pending) >= _CHUNK:
                    hashes.extend(pending)
                    bar.update(len(pending))
                    pending = []
            if pending:
                hashes.extend(pending)
                bar.update(len(pending))
    documents = hashes.size
    values = hashes.array[:documents]
    values.sort()  # in place: no second copy of the array
    repeated = np.unique(values[1:][values[1:] == values[:-1]])
    del hashes, values
    collisions = 0
    if repeated.size:
        collisions = _locate_duplicates(paths, {int(v) for v in repeated}, rules)
        logger.info("%d 64-bit id hash collisions between distinct ids (re-checked: not duplicates)",
                    collisions)
    seconds = time.perf_counter() - start
    logger.info("checked the ids of %d documents in %d files: all unique, vectors valid (%.1f s)", documents,
                len(paths), seconds)
    return IdScan(documents, collisions, seconds)


def _locate_duplicates(paths: Sequence[Path], candidates: set[int], rules: VectorRules = VectorRules()) -> int:
    """Pass 2: re-read ``paths`` keeping only ids whose hash is in ``candidates``; raise
    InputError at the first true duplicate; return the number of hash collisions otherwise."""
    first: dict[bytes, tuple[Path, int]] = {}
    for path in paths:
        for number, doc_id in _iter_ids(path, rules):
            if int.from_bytes(id_digest(doc_id), "little") not in candidates:
                continue
            if doc_id in first:
                other, other_line = first[doc_id]
                raise InputError(
                    f"document id {doc_id.decode('utf-8')!r} appears twice: {other}:{other_line} and "
                    f"{path}:{number}. "
                    "An index must hold each document once (Anserini would index both and runs would "
                    "list the document twice). Are two of the --jsonl folders overlapping outputs of "
                    "one corpus? Drop the folder that repeats the other (the outputs of `splare-lucene "
                    "encode --num-shards N --shard-id I` never overlap), or remove the repeated "
                    "document from the corpus and encode it again")
            first[doc_id] = (path, number)
    # no duplicate: every candidate hash was shared by two or more distinct ids
    return len(first) - len(candidates)
