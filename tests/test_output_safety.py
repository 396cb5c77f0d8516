"""Outputs never destroy inputs or unrelated files, and are checked before any work (issue 10
follow-up: --overwrite deleted any directory, `--output` equal to an input replaced it, and output
paths were checked only after searching, naming a `.tmp` file and leaving it behind).

Most refusals happen before a model loads: those tests make loading one fail loudly
(``no_model``), so they also show the check comes first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from splare_lucene.errors import ConfigError
from splare_lucene.outputs import (check_apart, check_not_input, check_output_dir, check_output_file,
                                   check_replaceable, safe_replace_dir)

DEMO = Path(__file__).resolve().parents[1] / "splare_lucene" / "assets" / "demo"


@pytest.fixture
def no_model(monkeypatch):
    """Loading any model fails the test: the refusal must come before it."""
    from splare_lucene import encoder

    def boom(*args, **kwargs):
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(encoder.SplareEncoder, "from_pretrained", classmethod(boom))
    monkeypatch.setattr(encoder.SplareEncoder, "from_components", classmethod(boom))


def _cli(args: list[str], capsys) -> tuple[int, str]:
    from splare_lucene.cli.main import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _demo_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "in" / "demo_copy"
    shutil.copytree(DEMO, folder)
    return folder


def _precious(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("four years of work\n")
    return path


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- the module's checks -----------------------------------------------------------------------------

def test_output_that_is_contains_or_lies_inside_an_input_is_refused(tmp_path):
    corpus = _demo_copy(tmp_path)
    queries = corpus / "queries.jsonl"
    for output, relation in [(corpus, "is the same path as"), (tmp_path / "in" / ".." / "in" / "demo_copy",
                                                                 "is the same path as"),
                             (tmp_path / "in", "contains"), (corpus / "index", "lies inside"),
                             (queries, "is the same path as")]:
        with pytest.raises(ConfigError, match=relation) as info:
            check_not_input(output, {"--corpus": str(corpus), "--queries": [queries]}, what="--index")
        assert "--index" in str(info.value) and "Pick an --index path outside every input" in str(info.value)
    check_not_input(tmp_path / "out", {"--corpus": str(corpus)})  # beside: fine
    check_not_input(tmp_path / "demo", {"--corpus": "irds:beir/scifact", "--model": "default"})  # not paths


def test_links_to_an_input_are_the_input(tmp_path):
    queries = tmp_path / "q.tsv"
    queries.write_text("q1\tmoon\n")
    (tmp_path / "sym.tsv").symlink_to(queries)
    os.link(queries, tmp_path / "hard.tsv")
    for alias in ("sym.tsv", "hard.tsv"):
        with pytest.raises(ConfigError, match="is the same path as the input --queries"):
            check_not_input(tmp_path / alias, {"--queries": str(queries)})


def test_only_what_the_toolkit_wrote_is_replaceable(tmp_path):
    (tmp_path / "empty").mkdir()
    index = tmp_path / "index"
    index.mkdir()
    (index / "splare_index.json").write_text("{}")
    (index / "segments_1").write_text("")
    encoded = tmp_path / "enc"
    encoded.mkdir()
    (encoded / "manifest.shard-00000-of-00001.json").write_text("{}")
    (encoded / "shard-00000-of-00001.part-00000.jsonl.gz").write_bytes(b"")
    (encoded / "summary.json").write_text("{}")
    check_replaceable(tmp_path / "absent", ["index"])
    check_replaceable(tmp_path / "empty", ["index"])
    check_replaceable(index, ["index"])
    check_replaceable(encoded, ["encode"])
    precious = _precious(tmp_path / "precious")
    (encoded / "notes.md").write_text("mine")  # an encode folder with a user's file is not ours
    for path, kinds in [(precious, ["index"]), (precious, ["encode"]), (encoded, ["encode"]),
                        (index, ["encode"]), (encoded, ["model"])]:
        with pytest.raises(ConfigError, match="refusing to replace") as info:
            safe_replace_dir(path, kinds)
        assert "delete it by hand" in str(info.value)
    assert "thesis.txt" in str(pytest.raises(ConfigError, safe_replace_dir, precious, ["index"]).value)
    assert (precious / "thesis.txt").is_file() and (encoded / "notes.md").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="it is a file"):
        check_replaceable(tmp_path / "file", ["index"])
    safe_replace_dir(index, ["index"])
    assert not index.exists()


def test_output_paths_that_cannot_be_written_are_refused_naming_the_path_given(tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    cases = [(tmp_path / "adir", "is a directory; give a file path"),
             (tmp_path / "afile" / "run.trec", "is a file, not a directory"),
             (Path("/proc/run.trec"), "cannot be written")]  # root ignores permission bits; /proc does not
    for path, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            check_output_file(path)
        assert str(path) in str(info.value) and ".tmp" not in str(info.value)
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        check_output_dir(tmp_path / "afile")
    with pytest.raises(ConfigError, match="cannot be written"):
        check_output_dir("/proc/new-index")
    # a path under missing directories is fine, and the check leaves nothing behind
    check_output_file(tmp_path / "new" / "deeper" / "run.trec")
    check_output_dir(tmp_path / "new2" / "index")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]


def test_two_outputs_of_one_command_must_not_overlap(tmp_path):
    for a, b in [(tmp_path / "x", tmp_path / "x"), (tmp_path / "x" / "enc", tmp_path / "x")]:
        with pytest.raises(ConfigError, match="overlap"):
            check_apart(a, b, what="--keep-jsonl", other_what="--index")
    check_apart(tmp_path / "x.jsonl", tmp_path / "x", what="--keep-jsonl", other_what="--index")


def test_write_trec_run_leaves_no_temp_file_when_it_fails(tmp_path, monkeypatch):
    from splare_lucene import ranking as search  # write_trec_run lives in ranking (JVM-free)
    from splare_lucene.types import ScoredDoc

    def broken(hits):
        raise RuntimeError("disk full")

    monkeypatch.setattr(search, "rank_hits", broken)
    with pytest.raises(RuntimeError):
        search.write_trec_run({"q1": [ScoredDoc("q1", "d1", 1.0, 1)]}, tmp_path / "run.trec")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "run.trec.tmp").write_text("a user's file with the old temp name")
    monkeypatch.undo()
    search.write_trec_run({"q1": [ScoredDoc("q1", "d1", 1.0, 1)]}, tmp_path / "run.trec")
    assert (tmp_path / "run.trec.tmp").read_text() == "a user's file with the old temp name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.trec", "run.trec.tmp"]


def test_json_vector_writer_replaces_only_an_encode_output(tmp_path):
    from splare_lucene.jsonl import JsonVectorWriter

    precious = _precious(tmp_path / "precious")
    with pytest.raises(ConfigError, match="thesis.txt"):
        with JsonVectorWriter(precious) as w:
            w.write("a", "a", {"f1": 1})
    assert (precious / "thesis.txt").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]  # its temp directory is gone
    for _ in range(2):  # its own output is replaced
        with JsonVectorWriter(tmp_path / "enc") as w:
            w.write("a", "a", {"f1": 1})
    assert (tmp_path / "enc" / "summary.json").is_file()


def test_save_pretrained_overwrite_replaces_only_a_model_directory(tmp_path, tiny_model):
    from splare_lucene.encoder import SplareEncoder

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    precious = _precious(tmp_path / "precious")
    with pytest.raises(ConfigError, match="thesis.txt"):
        encoder.save_pretrained(precious, overwrite=True)
    assert (precious / "thesis.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "precious"]  # its temp directory is gone
    out = encoder.save_pretrained(tmp_path / "model")
    encoder.save_pretrained(out, overwrite=True)  # its own model directory: replaced
    assert (out / "splare_config.json").is_file()


# -- the exact examples, through the command line -----------------------------------------------------

def test_index_overwrite_onto_its_own_corpus_is_refused_before_the_model_loads(tmp_path, tiny_model, capsys,
                                                                               no_model):
    corpus = _demo_copy(tmp_path)
    before = _tree(corpus)
    code, err = _cli(["index", "--model", tiny_model, "--corpus", corpus, "--index", corpus, "--overwrite",
                      "--device", "cpu"], capsys)
    assert code == 1
    assert f"--index {corpus} is the same path as the input --corpus {corpus}" in err
    assert _tree(corpus) == before  # corpus, queries and qrels all still there


@pytest.mark.parametrize("argv", [
    ["index", "--jsonl", "{enc}", "--index", "{out}", "--overwrite"],
    ["index", "--model", "{model}", "--corpus", "{demo}", "--index", "{out}", "--overwrite", "--device", "cpu"],
    ["encode", "--model", "{model}", "--corpus", "{demo}", "--output", "{out}", "--overwrite", "--device", "cpu"],
    ["encode", "--model", "{model}", "--corpus", "{demo}", "--output", "{out}", "--device", "cpu"],
    ["train-sae", "--backbone", "{model}", "--layer", "1", "--corpus", "{demo}", "--output", "{out}",
     "--overwrite"],
    ["assemble", "--backbone", "{model}", "--sae", "{model}", "--output", "{out}", "--overwrite"],
    ["train", "--model", "{model}", "--data", "{demo}", "--output", "{out}", "--overwrite"],
], ids=["index-jsonl", "index-corpus", "encode-overwrite", "encode", "train-sae", "assemble", "train"])
def test_overwrite_refuses_a_folder_the_toolkit_did_not_write(tmp_path, tiny_model, capsys, no_model, argv):
    enc = tmp_path / "enc"
    enc.mkdir()
    precious = _precious(tmp_path / "out" / "precious")
    fill = {"enc": enc, "out": precious, "model": tiny_model, "demo": DEMO}
    code, err = _cli([a.format(**fill) for a in argv], capsys)
    assert code == 1, err
    assert str(precious) in err and "thesis.txt" in err and "Traceback" not in err
    assert (precious / "thesis.txt").read_text() == "four years of work\n"


@pytest.mark.parametrize("keep", [False, True], ids=["work-dir", "keep-jsonl"])
def test_index_encoding_folder_must_be_an_encode_output(tmp_path, tiny_model, capsys, no_model, keep):
    """`index --corpus` encodes into `<index>.jsonl` (removed afterwards) or `--keep-jsonl`: a
    folder of the user's files there is refused before the model loads, and kept."""
    index = tmp_path / "idx"
    work = _precious(tmp_path / ("kept" if keep else "idx.jsonl"))
    argv = ["index", "--model", tiny_model, "--corpus", DEMO, "--index", index, "--device", "cpu"]
    code, err = _cli(argv + (["--keep-jsonl", work] if keep else []), capsys)
    assert code == 1 and str(work) in err and "thesis.txt" in err
    assert (work / "thesis.txt").is_file() and not index.exists()


def test_training_checkpoint_beside_the_output_must_be_a_checkpoint(tmp_path, tiny_model, capsys, no_model):
    _precious(tmp_path / "ft.checkpoint")
    code, err = _cli(["train", "--model", tiny_model, "--data", DEMO, "--output", tmp_path / "ft"], capsys)
    assert code == 1 and "checkpoint directory" in err and "thesis.txt" in err


@pytest.mark.parametrize("command", ["search", "encode-queries", "encode-queries-overwrite"])
def test_output_that_is_the_queries_file_is_refused(tmp_path, tiny_model, capsys, no_model, command):
    queries = tmp_path / "in" / "q_copy.tsv"
    queries.parent.mkdir()
    queries.write_text("q1\tmoon tides\nq2\tsolar wind\n")
    if command == "search":
        argv = ["search", "--model", tiny_model, "--index", tmp_path / "idx", "--queries", queries,
                "--output", queries]
    else:
        argv = ["encode-queries", "--model", tiny_model, "--queries", queries, "--output", queries,
                "--format", "anserini-tsv"] + (["--overwrite"] if command.endswith("overwrite") else [])
    code, err = _cli(argv + ["--device", "cpu"], capsys)
    assert code == 1 and f"is the same path as the input --queries {queries}" in err
    assert queries.read_text() == "q1\tmoon tides\nq2\tsolar wind\n"


def test_outputs_inside_inputs_are_refused_for_every_command(tmp_path, tiny_model, capsys, no_model):
    corpus = _demo_copy(tmp_path)
    cases = [
        (["evaluate", "--model", tiny_model, "--collection", corpus, "--output", corpus / "runs"],
         "lies inside the input --collection"),
        (["evaluate", "--model", tiny_model, "--collection", corpus, "--output", tmp_path / "in"],
         "contains the input --collection"),
        (["encode", "--model", tiny_model, "--corpus", corpus / "corpus.jsonl", "--output", corpus],
         "contains the input --corpus"),
        (["index", "--model", tiny_model, "--corpus", corpus, "--index", tmp_path / "idx",
          "--keep-jsonl", corpus], "--keep-jsonl"),
        (["index", "--model", tiny_model, "--corpus", corpus, "--index", tmp_path / "idx",
          "--keep-jsonl", tmp_path / "idx"], "overlap"),
        (["assemble", "--backbone", tiny_model, "--sae", tiny_model / "sae", "--output", tiny_model, "--overwrite"],
         "is the same path as the input --backbone"),
        (["adapt", "--model", tiny_model, "--corpus", corpus, "--output", tiny_model, "--overwrite"],
         "is the same path as the input --model"),
        (["train", "--model", tiny_model, "--data", corpus, "--output", tiny_model, "--overwrite"],
         "is the same path as the input --model"),
        (["search", "--model", tiny_model, "--index", corpus, "--queries", DEMO, "--output",
          corpus / "run.trec"], "lies inside the input --index"),
    ]
    before = _tree(tiny_model)
    for argv, message in cases:
        code, err = _cli(argv + (["--device", "cpu"] if argv[0] not in ("assemble",) else []), capsys)
        assert code == 1 and message in err, (argv, err)
    assert _tree(tiny_model) == before


@pytest.mark.parametrize("name, bm25", [("run.trec", False), ("bm25.trec", True), ("results.json", False)])
def test_evaluate_refuses_an_input_it_would_write_over(tmp_path, tiny_model, capsys, no_model, name, bm25):
    """`evaluate --output` accumulates (an earlier run there may be a --baseline-run), but a file
    it writes is refused as an input; without --bm25, an earlier bm25.trec is only read."""
    out = tmp_path / "out"
    run = out / "demo" / name
    run.parent.mkdir(parents=True)
    run.write_text("q1 Q0 astro-01 1 5 x\n")
    argv = ["evaluate", "--model", tiny_model, "--collection", DEMO, "--baseline-run", run, "--output", out,
            "--device", "cpu"] + (["--bm25"] if bm25 else [])
    code, err = _cli(argv, capsys)
    assert code == 1 and f"the input --baseline-run {run} is a file that --output {out} gets written over" in err
    assert run.read_text() == "q1 Q0 astro-01 1 5 x\n"


def test_evaluate_may_read_a_run_from_its_own_output_folder(tmp_path):
    from splare_lucene.pipeline import _evaluate_writes

    assert not _evaluate_writes(Path("demo/bm25.trec"), bm25=False)
    assert _evaluate_writes(Path("demo/bm25.trec"), bm25=True)
    assert _evaluate_writes(Path("demo/index-abc/x"), bm25=False)


@pytest.mark.parametrize("where", ["proc", "directory", "file-as-parent"])
def test_search_output_is_checked_before_searching(tmp_path, tiny_model, capsys, no_model, where, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "afile").write_text("x")
    output = {"proc": "/proc/run.trec", "directory": "out", "file-as-parent": "afile/run.trec"}[where]
    code, err = _cli(["search", "--model", tiny_model, "--index", "idx", "--queries", DEMO, "--output", output,
                      "--device", "cpu"], capsys)
    assert code == 1 and f"--output {output}" in err and ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "out"]  # no out.tmp
    assert list((tmp_path / "out").iterdir()) == []


# -- the positive paths: rerunning over the toolkit's own outputs -------------------------------------

def test_encode_overwrite_replaces_its_own_output(tmp_path, tiny_model, capsys):
    out = tmp_path / "enc"
    argv = ["encode", "--model", tiny_model, "--corpus", DEMO, "--output", out, "--device", "cpu"]
    assert _cli(argv, capsys)[0] == 0
    first = _tree(out)
    code, err = _cli(argv + ["--overwrite"], capsys)
    assert code == 0, err
    assert set(_tree(out)) == set(first)


@pytest.mark.java
@pytest.mark.slow
def test_index_overwrite_replaces_its_own_index(tmp_path, tiny_model, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "d1", "text": "moon tides"}\n{"_id": "d2", "text": "solar wind"}\n')
    enc, index = tmp_path / "enc", tmp_path / "idx"
    assert _cli(["encode", "--model", tiny_model, "--corpus", corpus, "--output", enc, "--device", "cpu"],
                capsys)[0] == 0
    for _ in range(2):  # the second run replaces the index the first one built
        code, err = _cli(["index", "--jsonl", enc, "--index", index, "--overwrite"], capsys)
        assert code == 0, err
        assert (index / "splare_index.json").is_file()
    code, err = _cli(["index", "--model", tiny_model, "--corpus", corpus, "--index", index, "--overwrite",
                      "--device", "cpu"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "enc", "idx"]  # no temp or work dirs


def test_outputs_get_the_mode_mkdir_and_open_would_give(tmp_path, tiny_model):
    """mkdtemp/mkstemp make owner-only (0700/0600) directories and files; outputs built in them
    (a trained model, an encode, a run file) must not stay private where the umask says otherwise
    (a newcomer found `train`'s model directory at 0700)."""
    from splare_lucene import ranking
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.jsonl import JsonVectorWriter
    from splare_lucene.outputs import staged_dir
    from splare_lucene.types import ScoredDoc

    old = os.umask(0o022)
    try:
        with staged_dir(tmp_path / "staged", ["model"]) as tmp:
            (tmp / "x").write_text("x")
        SplareEncoder.from_pretrained(tiny_model, device="cpu").save_pretrained(tmp_path / "model")
        with JsonVectorWriter(tmp_path / "enc") as writer:
            writer.write("a", "a", {"f1": 1})
        ranking.write_trec_run({"q1": [ScoredDoc("q1", "d1", 1.0, 1)]}, tmp_path / "run.trec")
    finally:
        os.umask(old)
    for name in ("staged", "model", "enc"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o755, name
    assert (tmp_path / "run.trec").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_search_reads_its_queries_before_the_model_loads(tmp_path, capsys, no_model, content):
    """A newcomer waited 16 s of model loading to learn that the queries file did not exist."""
    queries = tmp_path / "queries.tsv"
    if content is not None:
        queries.write_text(content)
    code, err = _cli(["search", "--index", tmp_path / "index", "--queries", queries,
                      "--output", tmp_path / "run.trec"], capsys)
    assert code == 1
    assert str(queries) in err and "error:" in err
    assert not (tmp_path / "run.trec").exists()
