"""The CLI without a model: --help is fast and light, and early errors exit 1 with a message.

Each test runs a fresh interpreter, so that what the CLI imports can be checked in sys.modules.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["encode", "index", "search", "encode-queries", "train-sae", "assemble", "configure"]
HEAVY = ["torch", "transformers", "jnius", "jnius_config", "pyserini"]


def python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def cli(*argv: str, cwd: Path = ROOT) -> tuple[int, str, list[str]]:
    """Run splare_lucene.cli.main.main(argv) in a fresh interpreter: (exit code, stderr, heavy
    modules imported)."""
    script = (
        "import json, sys\n"
        "from splare_lucene.cli.main import main\n"
        f"rc = main({list(argv)!r})\n"
        f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    proc = python("-c", script, cwd=cwd)
    assert proc.stdout.strip(), proc.stderr
    rc, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    return rc, proc.stderr, heavy


def test_help_lists_every_command():
    proc = python("-m", "splare_lucene.cli.main", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: splare-lucene")
    for command in COMMANDS:
        assert re.search(rf"\n    {re.escape(command)}\s", proc.stdout)  # long names wrap


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command):
    proc = python("-m", "splare_lucene.cli.main", command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: splare-lucene {command}")


def test_building_the_parser_imports_nothing_heavy():
    script = (
        "import sys\n"
        "import splare_lucene, splare_lucene.cli.main\n"
        "splare_lucene.cli.main.build_parser()\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = python("-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_no_command_prints_help_and_exits_2():
    proc = python("-m", "splare_lucene.cli.main")
    assert proc.returncode == 2
    assert "COMMAND" in proc.stdout


def test_argparse_rejects_two_query_sources():
    proc = python("-m", "splare_lucene.cli.main", "search", "--index", "i", "--queries", "q.tsv",
                  "--query", "hello")
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr


def test_search_queries_without_output(tmp_path):
    (tmp_path / "q.tsv").write_text("1\thello\n")
    proc = python("-m", "splare_lucene.cli.main", "search", "--index", str(tmp_path / "idx"), "--queries",
                  str(tmp_path / "q.tsv"))
    assert proc.returncode == 2  # refused while parsing, as a bad option value, before anything loads
    assert proc.stderr.splitlines() == [
        "splare-lucene search: error: argument --queries: needs --output RUN_FILE (where the TREC run goes) "
        "(see `splare-lucene search --help`)"]


def test_index_jsonl_missing_dir(tmp_path):
    missing = tmp_path / "no-shards"
    index = tmp_path / "idx"
    rc, stderr, heavy = cli("index", "--model", "default", "--jsonl", str(missing), "--index", str(index))
    assert rc == 1
    assert "splare-lucene index: error:" in stderr
    assert f"--jsonl {missing} is not a directory" in stderr
    assert heavy == []  # neither a model nor the JVM
    assert not index.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary index folder either


def test_index_existing_index_needs_overwrite(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    index = tmp_path / "idx"
    index.mkdir()
    (index / "keep.txt").write_text("x")
    rc, stderr, heavy = cli("index", "--jsonl", str(shards), "--index", str(index))
    assert rc == 1
    assert "already exists" in stderr and "--overwrite" in stderr
    assert (index / "keep.txt").read_text() == "x"
    assert heavy == []


def test_index_no_raw_needs_jsonl(tmp_path):
    rc, stderr, heavy = cli("index", "--corpus", str(tmp_path / "c.jsonl"), "--index",
                            str(tmp_path / "idx"), "--no-raw")
    assert rc == 1
    assert "--no-raw" in stderr and "`encode`" in stderr
    assert heavy == []


RUNTIME_COMMANDS = ["encode", "index", "search", "evaluate", "encode-queries", "train", "adapt"]


def test_runtime_dtype_defaults_to_auto():
    from splare_lucene.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in RUNTIME_COMMANDS:
        dtype = next(a for a in sub.choices[command]._actions if a.dest == "dtype")
        assert dtype.default == "auto" and "auto" in dtype.choices, command


def test_train_recipe_is_validated_and_documented():
    proc = python("-m", "splare_lucene.cli.main", "train", "--help")
    assert proc.returncode == 0 and "--recipe {default,paper}" in proc.stdout
    assert "--effective-batch-size" in proc.stdout
    proc = python("-m", "splare_lucene.cli.main", "train", "--data", "d", "--output", "o", "--recipe", "papr")
    assert proc.returncode == 2 and "invalid choice: 'papr'" in proc.stderr


def test_verbose_is_accepted_before_or_after_the_command_and_listed_in_its_help():
    from splare_lucene.cli.main import build_parser, command_parsers

    parser = build_parser()
    base = ["--model", "m", "--output", "o"]
    assert parser.parse_args(["-v", "configure", *base]).verbose is True
    assert parser.parse_args(["configure", *base, "--verbose"]).verbose is True
    assert parser.parse_args(["configure", *base]).verbose is False
    for name, sub in command_parsers(parser).items():
        assert "--verbose" in sub.format_help(), name
