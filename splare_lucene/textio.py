"""User text files -> lines, JSON lines and identifiers: the one place where user text is decoded.

Every reader of user text (documents, queries, qrels, runs, training examples, encoded JSONL from
elsewhere) goes through :func:`iter_lines`, so all of them follow the same rules:

* **compression**: a file that starts with the gzip magic bytes (``1f 8b``) is decompressed,
  whatever its name; a file named ``.gz`` that is not gzip is read as plain text. A truncated or
  corrupt gzip stream is an :class:`~splare_lucene.errors.InputError` naming the file and the
  last line read;
* **encoding**: strict UTF-8. A byte that is not valid UTF-8 is an InputError
  ``PATH:LINE: not valid UTF-8 (byte 0xe9 at column N)``, where N counts *characters* of the
  decoded line from 1 (the column at which the bad byte would be a character). A file that starts
  with a UTF-16/UTF-32 byte-order mark is refused with a hint to re-save it as UTF-8;
* **byte-order mark**: one leading UTF-8 BOM (``EF BB BF``, U+FEFF) is dropped;
* **line ends**: LF, CRLF and a lone CR all end a line (Python's universal newlines); the line
  end is not part of the line. No other character (U+2028, NEL, form feed) ends a line.

Decoding is incremental (one line at a time, through :class:`io.TextIOWrapper`), so memory stays
bounded by the longest line whatever the size of the file.

Identifiers (:func:`check_id`): document and query ids must be non-empty strings (or JSON
integers, turned into their decimal text) without whitespace (any character for which
``str.isspace`` holds: space, TAB, NBSP, newlines, ...), control characters (U+0000-U+001F,
U+007F-U+009F), a stray byte-order mark (U+FEFF, e.g. from concatenated files) or a lone
surrogate. TREC runs and qrels separate their columns with whitespace, so such ids cannot be
written to a run and read back. An id may be at most :data:`MAX_ID_BYTES` (32,766) bytes long in
UTF-8, Lucene's term limit (a longer one made Anserini drop the whole file holding it). Every
other character is allowed and survives the whole pipeline: commas, quotes, ``#``, ``/``,
non-ASCII letters (``doc,2`` and ``café`` are fine ids).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zlib
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
BOM = "\ufeff"

# What TextIOWrapper(errors="surrogateescape") makes of a UTF-16/32 byte-order mark.
_UTF16_BOMS = {"\udcff\udcfe": "UTF-16 (or UTF-32) little-endian", "\udcfe\udcff": "UTF-16 big-endian"}

# Characters an id may not contain: \s is Unicode whitespace (the same set as str.isspace), then
# the C0/C1 control characters, a byte-order mark and lone surrogates (from JSON "\ud800" escapes).
_BAD_ID_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ufeff\ud800-\udfff]")

# A JSON escape of a surrogate: only then can json.loads produce a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# Lucene's longest indexable term, in UTF-8 bytes (IndexWriter.MAX_TERM_LENGTH, 32766 in Lucene
# 9.9.1 as bundled by Anserini 1.7.1). Anserini stores a document id as one term of the field
# "id"; a longer id makes IndexCollection log "immense term in field=id" and abandon the rest of
# that file while exiting 0. The same limit holds for query ids, so that one rule covers both.
MAX_ID_BYTES = 32766

_FIX_UTF8 = ("re-save the file as UTF-8 (for a Latin-1/Windows-1252 file: "
             "`iconv -f cp1252 -t utf-8 FILE > FILE.utf8`)")


def _open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for binary reading, decompressed when it starts with the gzip magic."""
    try:
        with path.open("rb") as f:
            magic = f.read(2)
        return gzip.open(path, "rb") if magic == GZIP_MAGIC else path.open("rb")
    except FileNotFoundError:
        raise InputError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a text file", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path=str(path)) from None


def _undecodable(line: str, path: Path, number: int) -> InputError:
    """The error for a decoded ``line`` holding surrogate escapes (bytes that are not UTF-8)."""
    if number == 1 and line[:2] in _UTF16_BOMS:
        return InputError(f"the file is {_UTF16_BOMS[line[:2]]} (it starts with a byte-order mark), "
                          "not UTF-8; re-save it as UTF-8 (`iconv -f utf-16 -t utf-8 FILE > FILE.utf8`)",
                          str(path), number)
    column = next(i for i, ch in enumerate(line) if "\udc80" <= ch <= "\udcff")
    byte = ord(line[column]) - 0xDC00  # surrogateescape maps byte b to U+DC00 + b
    return InputError(f"not valid UTF-8 (byte 0x{byte:02x} at column {column + 1}; columns count "
                      f"characters from 1); {_FIX_UTF8}", str(path), number)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number from 1, line without its line end) for every line of a text file.

    Plain or gzip (detected by content), strict UTF-8, a leading BOM dropped, LF / CRLF / CR line
    ends (see the module docstring). Blank lines are yielded too (callers skip them).

    Raises:
        InputError: the file is missing or unreadable, a line is not valid UTF-8 (the message
            names the byte and its column), the file is UTF-16/32, or the gzip stream is
            truncated or corrupt (the message names the last line read).
    """
    path = Path(path)
    # surrogateescape: decoding never fails inside TextIOWrapper's read-ahead (whose error would
    # name a position in an 8 KiB chunk, not a line); each line is checked below instead, and an
    # undecodable byte b shows up as the lone surrogate U+DC00+b at its place in the line.
    text = io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="surrogateescape", newline=None)
    number = 0
    with text:
        try:
            for line in text:
                number += 1
                if line.endswith("\n"):  # universal newlines: \r and \r\n arrive as \n
                    line = line[:-1]
                if number == 1 and line.startswith(BOM):
                    line = line[1:]
                if not line.isascii():
                    try:
                        line.encode("utf-8")
                    except UnicodeEncodeError:
                        raise _undecodable(line, path, number) from None
                yield number, line
        # Only reading the file raises these (the consumer's errors never reach this frame).
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            where = f"after line {number}" if number else "before its first line"
            raise InputError(f"the gzip file is truncated or corrupt {where} ({exc}); "
                             "compress it again (gzip FILE) or give the uncompressed file",
                             path=str(path)) from None
        except OSError as exc:
            raise InputError(f"cannot read the file after line {number} ({exc.strerror or exc})",
                             path=str(path)) from None


def _lone_surrogate(obj: Any) -> str | None:
    """The first string in a decoded JSON value that holds a lone surrogate, else None."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return obj
        return None
    items = obj.items() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for item in items:
        for part in (item if isinstance(obj, dict) else (item,)):
            found = _lone_surrogate(part)
            if found is not None:
                return found
    return None


def parse_json_line(line: str, path: str | os.PathLike, number: int) -> Any:
    """One JSON value from one line; errors name the file, the line and the column.

    Raises:
        InputError: malformed JSON (an integer too long for Python included), JSON nested too
            deeply, or a string holding a lone surrogate
            escape such as ``"\\ud800"`` (not a character: it cannot be written as UTF-8 later).
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})", str(path), number) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", str(path), number) from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        raise InputError(f"malformed JSON ({exc})", str(path), number) from None
    if _SURROGATE_ESCAPE.search(line):
        bad = _lone_surrogate(obj)
        if bad is not None:
            raise InputError(f"a JSON string holds a lone surrogate escape (not a character): {bad!r:.80}; "
                             "fix the text that wrote it", str(path), number)
    return obj


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a (gzipped) JSONL file.

    Raises:
        InputError: as :func:`iter_lines` and :func:`parse_json_line`, or a line that is valid
            JSON but not an object; each names the file and line.
    """
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        obj = parse_json_line(line, path, number)
        if not isinstance(obj, dict):
            raise InputError(f"each line must be a JSON object; got a JSON {type(obj).__name__}",
                             str(path), number)
        yield number, obj


def read_json(path: str | os.PathLike) -> Any:
    """A whole (small) JSON file: strict UTF-8, a leading BOM dropped.

    Raises:
        InputError: the file is missing, not UTF-8 or not JSON (with the line and column).
    """
    path = Path(path)
    text = "\n".join(line for _, line in iter_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})", str(path), exc.lineno) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", path=str(path)) from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        raise InputError(f"malformed JSON ({exc})", path=str(path)) from None


def json_kind(value: object) -> str:
    """How JSON calls the type of a decoded value, for messages: "an array", "null", ..."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number with a fraction", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), f"a {type(value).__name__}")


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """``path`` opened for binary reading, gunzipped when it starts with the gzip magic bytes
    (whatever its name), as every reader here does. Raises InputError (missing, a folder,
    unreadable). For readers that split lines themselves (engines/ids.py, for speed)."""
    return _open_binary(Path(path))


def utf8_error(line: bytes, path: str | os.PathLike, number: int) -> InputError:
    """The InputError for a ``line`` of raw bytes that is not valid UTF-8, worded and counted as
    :func:`iter_lines` does (the byte, its column in characters from 1, the fix)."""
    return _undecodable(line.decode("utf-8", "surrogateescape"), Path(path), number)


def check_id(value: object, path: str | os.PathLike | None = None, line: int | None = None,
             what: str = "id") -> str:
    """``value`` as an identifier, or an InputError naming the file, the line and the id.

    Accepted: a non-empty string without whitespace, control characters, U+FEFF or lone
    surrogates and at most MAX_ID_BYTES (32,766) bytes in UTF-8 (see the module docstring), or an
    integer (JSON ``7`` -> ``"7"``). Refused: floats
    (``1e3`` would become ``"1000.0"``), booleans, null, lists and objects, which ``str()`` would
    silently turn into ids no qrels can match.
    """
    where = None if path is None else str(path)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{what} must be a string (or an integer); got {json_kind(value)} {value!r:.60}",
                         where, line)
    text = str(value)
    if not text:
        raise InputError(f"empty {what}", where, line)
    if len(text) > MAX_ID_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InputError(f"{what} {text[:40]!r}... is {len(text.encode('utf-8', 'surrogatepass')):,} bytes "
                         f"long in UTF-8; ids may be at most {MAX_ID_BYTES:,} bytes, the longest term "
                         "Lucene indexes (Anserini would drop the whole file holding it). Give the "
                         "record a shorter id, e.g. a hash of this one", where, line)
    bad = _BAD_ID_CHAR.search(text)
    if bad is not None:
        char = bad.group()
        name = "whitespace" if char.isspace() else "a control character" if char <= "\x9f" else \
            "a byte-order mark (U+FEFF)" if char == BOM else "a lone surrogate"
        raise InputError(f"{what} {text!r} contains {name} ({char!r} at position {bad.start() + 1}); "
                         "ids may not contain whitespace or control characters, because TREC runs "
                         "and qrels separate columns by whitespace. Rename it, e.g. with '_' for spaces",
                         where, line)
    return text
