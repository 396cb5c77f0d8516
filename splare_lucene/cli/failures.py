"""What the command line prints when a command fails: one line, with its context, never a raw
traceback (unless asked for with ``--debug`` or ``SPLARE_LUCENE_DEBUG=1``).

``splare-lucene COMMAND: error: MESSAGE``, exit status 1. The toolkit's own errors
(:class:`~splare_lucene.errors.SplareError`) already say what and where; everything else is
mapped by kind here:

==================================  ============================================================
kind                                message
==================================  ============================================================
UnicodeDecodeError                  the file being read (found in the traceback), the byte, a fix
UnicodeEncodeError                  the encoding that failed, PYTHONIOENCODING=utf-8
tokenizer failures                  loading (which tokenizer directory) or encoding (non-str text)
jnius.JavaException                 the Java exception's first line, the ``--index`` it concerns
JVM start failures                  the JVM's own message, SPLARE_JAVA_HEAP / JAVA_HOME to check
OSError (ENOSPC, EDQUOT)            which output to move to a larger disk
FileNotFound/Permission/IsADir...   the file name and what to do
MemoryError, torch OutOfMemory      --batch-size / --max-length (the values in force)
anything else                       ``unexpected TypeName: message (rerun with --debug ...)``
==================================  ============================================================

Notes added to an exception where its context is known (``exc.add_note``, e.g. the documents of
the batch that failed in ``engines.local.encode_part``) are appended to the line.

torch and jnius are never imported here: their exception classes are matched by module and
name, so a failure in a light command costs no heavy import.
"""

from __future__ import annotations

import argparse
import errno
import io
import os
import sys
import tempfile
import traceback
from collections.abc import Mapping
from typing import TextIO

from ..errors import ConfigError, SplareError

DEBUG_ENV = "SPLARE_LUCENE_DEBUG"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

# Options naming files a command writes / reads, as (attribute, flag), for messages.
_OUTPUT_OPTIONS = (("output", "--output"), ("index", "--index"), ("keep_jsonl", "--keep-jsonl"))
_INPUT_OPTIONS = (("corpus", "--corpus"), ("queries", "--queries"), ("qrels", "--qrels"),
                  ("data", "--data"), ("collection", "--collection"), ("jsonl", "--jsonl"),
                  ("queries_from", "--queries-from"), ("baseline_run", "--baseline-run"))
# Options that bound memory per forward pass, as (attribute, flag).
_MEMORY_OPTIONS = (("batch_size", "--batch-size"), ("batch_tokens", "--batch-tokens"),
                   ("max_length", "--max-length"), ("query_max_length", "--query-max-length"),
                   ("doc_max_length", "--doc-max-length"))

DEBUG_HINT = "rerun with --debug for the traceback"


def debug_requested(flag: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to print tracebacks: the ``--debug`` flag, or ``SPLARE_LUCENE_DEBUG`` set to one of
    1/true/yes/on (0/false/no/off or empty: off). Raises ConfigError for any other value."""
    environ = os.environ if environ is None else environ
    value = environ.get(DEBUG_ENV, "")
    normalized = value.strip().lower()
    if normalized not in _TRUE + _FALSE:
        raise ConfigError(f"environment variable {DEBUG_ENV}={value!r} is not a switch; set it to 1 "
                          "(print tracebacks of failures) or 0, or unset it")
    return flag or normalized in _TRUE


def report(exc: BaseException, command: str, args: argparse.Namespace | None = None, *,
           debug: bool = False, stream: TextIO | None = None) -> int:
    """Print ``exc`` as ``splare-lucene COMMAND: error: ...`` (after its full traceback, chained
    causes included, when ``debug``) on ``stream`` (default stderr); returns the exit status, 1."""
    stream = sys.stderr if stream is None else stream
    if debug:
        traceback.print_exception(exc, file=stream)
    if isinstance(exc, BrokenPipeError):
        # The reader of stdout went away (`... | head`): point stdout at /dev/null so that the
        # interpreter's final flush does not raise a second BrokenPipeError at exit (as the Python
        # docs' "Note on SIGPIPE" recommends).
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    # one line, whatever the message: a library's (the hub's, Java's) may hold line breaks
    line = " ".join(part.strip() for part in describe(exc, args).splitlines() if part.strip())
    print(f"splare-lucene {command}: error: {line}", file=stream)
    return 1


def describe(exc: BaseException, args: argparse.Namespace | None = None) -> str:
    """One line saying what failed, where, and what to do; ``exc``'s notes (``add_note``) are
    appended in parentheses."""
    message = _describe(exc, args if args is not None else argparse.Namespace())
    notes = [n for n in getattr(exc, "__notes__", []) if isinstance(n, str) and n.strip()]
    if notes:
        message += " (" + "; ".join(" ".join(n.split()) for n in notes) + ")"
    return message


# -- the kinds ------------------------------------------------------------------------------------


def _describe(exc: BaseException, args: argparse.Namespace) -> str:
    if isinstance(exc, SplareError):
        return str(exc)
    if _is_class(exc, "jnius", "JavaException"):
        return _java(exc, args)
    if _jvm_start_failure(exc):
        return (f"the Java virtual machine could not start: {_first_line(exc)}. Check "
                "SPLARE_JAVA_HEAP (a heap size such as 8g or 512m, or unset) and JAVA_HOME (a Java "
                "21+ home, or unset); the JVM starts once per process, so rerun the command")
    if isinstance(exc, UnicodeDecodeError):
        return _decode(exc, args)
    if isinstance(exc, UnicodeEncodeError):
        return (f"cannot write text as {exc.encoding} ({exc.reason}: {exc.object[exc.start:exc.end]!r}); "
                "set PYTHONIOENCODING=utf-8 or a UTF-8 locale (e.g. LANG=C.UTF-8)")
    tokenizer = _tokenizer_failure(exc)
    if tokenizer is not None:
        return tokenizer
    if isinstance(exc, MemoryError) or _is_class(exc, "torch", "OutOfMemoryError"):
        return _memory(exc, args)
    if isinstance(exc, OSError):
        return _os_error(exc, args)
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return f"unexpected {name}: {_first_line(exc)} ({DEBUG_HINT}; please report it)"


def _java(exc: BaseException, args: argparse.Namespace) -> str:
    # pyjnius's message is the Java exception's toString, then its stack trace (not shown)
    first = _first_line(exc, mark_more=False).removeprefix("JVM exception occurred: ").rstrip(".")
    index = getattr(args, "index", None)
    if "OutOfMemoryError" in first:
        return (f"Java ran out of memory: {first}; give it a larger heap with SPLARE_JAVA_HEAP "
                f"(e.g. SPLARE_JAVA_HEAP=8g), or lower --threads")
    index_trouble = any(word in first for word in ("IndexNotFound", "IndexFormat", "CorruptIndex",
                                                  "NoSuchFile", "segments", "EOFException"))
    if index and index_trouble:
        return (f"Lucene cannot read index {index}: {first}. Is it an index built by `splare-lucene "
                "index`? Rebuild it (`splare-lucene index ... --overwrite`)")
    where = f" (index {index})" if index else ""
    return f"Java error{where}: {first} ({DEBUG_HINT} and the Java stack)"


def _jvm_start_failure(exc: BaseException) -> bool:
    """pyjnius's JVM start failures: ``SystemError: JVM failed to start: -6`` (bad options) and
    ``RuntimeError: Unable to find libjvm.so`` (a JAVA_HOME that is no JDK)."""
    text = str(exc)
    return ((isinstance(exc, SystemError) and "JVM failed to start" in text)
            or (isinstance(exc, RuntimeError) and "libjvm" in text))


def _decode(exc: UnicodeDecodeError, args: argparse.Namespace) -> str:
    byte = exc.object[exc.start:exc.start + 1]
    what = f"byte 0x{byte.hex()}" if byte else "a truncated character"
    name = _file_in_traceback(exc)
    fix = "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`)"
    if name:
        return f"{name}: not valid UTF-8 ({what}: {exc.reason}); {fix}"
    inputs = _given(args, _INPUT_OPTIONS)
    return (f"an input is not valid UTF-8 ({what}: {exc.reason}; inputs: {inputs or 'unknown'}); "
            f"{fix}")


def _tokenizer_failure(exc: BaseException) -> str | None:
    """A failure inside transformers' tokenizer code or the tokenizers library, else None."""
    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    in_tokenizer = [f for f in frames
                    if os.path.basename(f.f_code.co_filename).startswith("tokenization_")
                    or f"{os.sep}tokenizers{os.sep}" in f.f_code.co_filename]
    if not in_tokenizer and not type(exc).__module__.startswith("tokenizers"):
        return None
    loading = any(f.f_code.co_name in ("from_pretrained", "_from_pretrained") for f in in_tokenizer)
    source = None
    for f in in_tokenizer:
        source = f.f_locals.get("pretrained_model_name_or_path") or getattr(f.f_locals.get("self"),
                                                                            "name_or_path", None)
        if source:
            break
    where = f" of {source}" if source else ""
    if loading:
        return (f"cannot load the tokenizer{where}: {type(exc).__name__}: {_first_line(exc)}; its "
                "tokenizer files (tokenizer.json, tokenizer_config.json) are damaged or of another "
                "version: restore them from the model's source")
    return (f"the tokenizer{where} failed: {type(exc).__name__}: {_first_line(exc)} (every text "
            f"must be a string; {DEBUG_HINT})")


def _memory(exc: BaseException, args: argparse.Namespace) -> str:
    where = "GPU" if _is_class(exc, "torch", "OutOfMemoryError") else "host"
    knobs = [f"{flag} (now {getattr(args, attr)})" for attr, flag in _MEMORY_OPTIONS
             if getattr(args, attr, None) is not None]
    if not any(getattr(args, attr, None) is not None for attr, _ in _MEMORY_OPTIONS if "length" in attr):
        # encode/index/search take their lengths from the model directory
        knobs.append("the model's maximum lengths (`assemble --doc-max-length/--query-max-length`)")
    detail = f" ({_first_line(exc)})" if str(exc).strip() else ""
    return f"out of {where} memory{detail}; lower " + " or ".join(knobs)


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    target = "" if exc.filename is None else os.fsdecode(exc.filename)
    if target and exc.filename2 is not None:  # rename/copy: both ends
        target += f" -> {os.fsdecode(exc.filename2)}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        outputs = _given(args, _OUTPUT_OPTIONS)
        where = f" writing {target}" if target else ""
        move = f"move the output ({outputs}) to a disk with room" if outputs else "write to a disk with room"
        return (f"no space left on device{where}; free space there, or {move} (temporary files "
                f"go to {tempfile.gettempdir()}: set TMPDIR to move them)")
    if isinstance(exc, BrokenPipeError):
        return "the output pipe was closed before everything was written (broken pipe)"
    if isinstance(exc, FileNotFoundError):
        return f"{target or 'a file'}: no such file or directory; check the path"
    if isinstance(exc, PermissionError):
        return (f"{target or 'a file'}: permission denied; pick a path you may read/write, or fix its "
                "permissions")
    if isinstance(exc, IsADirectoryError):
        return f"{target or 'a path'}: is a directory, where a file was expected"
    if isinstance(exc, NotADirectoryError):
        return f"{target or 'a path'}: is not a directory (a file is in the way)"
    reason = exc.strerror or _first_line(exc)
    return f"{target}: {reason}" if target else f"{type(exc).__name__}: {reason} ({DEBUG_HINT})"


# -- helpers --------------------------------------------------------------------------------------


def _is_class(exc: BaseException, module: str, name: str) -> bool:
    """Whether ``exc`` is an instance of a class ``name`` from package ``module`` (matched by
    name, so that torch and jnius are not imported to check)."""
    return any(cls.__name__ == name and (cls.__module__ == module or cls.__module__.startswith(module + "."))
               for cls in type(exc).__mro__)


def _first_line(exc: BaseException, mark_more: bool = True) -> str:
    """The first non-empty line of ``exc``'s message (its type name when empty), followed by
    `` ...`` when lines follow and ``mark_more``."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0] + (" ..." if len(lines) > 1 and mark_more else "")


def _given(args: argparse.Namespace, options) -> str:
    """``--output run.txt, --index idx`` for the options of ``options`` given in ``args``."""
    parts = []
    for attr, flag in options:
        value = getattr(args, attr, None)
        if value:
            value = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            parts.append(f"{flag} {value}")
    return ", ".join(parts)


def _file_in_traceback(exc: BaseException) -> str | None:
    """The file being read when ``exc`` was raised, from the traceback's local variables: the
    innermost open file object (a text wrapper, a gzip or binary file), else the innermost local
    called ``path`` or ``filename``. This is the fallback for code that does not name the file
    itself (the toolkit's readers raise InputError with file and line)."""
    frames = [frame for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__)))]
    for frame in frames:
        for value in frame.f_locals.values():
            if isinstance(value, io.IOBase):
                name = getattr(value, "name", None)
                if isinstance(name, (str, bytes, os.PathLike)) and not os.fsdecode(name).startswith("<"):
                    return os.fsdecode(name)
    for frame in frames:
        for key in ("path", "filename"):
            value = frame.f_locals.get(key)
            if isinstance(value, (str, os.PathLike)) and str(value):
                return os.fspath(value)
    return None
