"""The toolkit's outputs in Anserini's and Pyserini's own command lines (docs/anserini.md).

A real collection is indexed with the tiny model; its queries are written by `encode-queries` and
searched by Anserini's SearchCollection (Java, anserini-tsv topics) and by Pyserini's CLI
(pyserini-jsonl encoder), and both runs must equal `splare-lucene search` query for query."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from splare_lucene.cli.main import main as cli

from conftest import REPO, requires_shared_data

pytestmark = pytest.mark.java

COLLECTION = "tatoeba-xl/fra-eng"  # 1,000 French queries, 1,000 English documents
HITS = 10


def read_run(path: Path) -> dict[str, set[tuple[str, float]]]:
    """{qid: {(docid, score rounded to 1e-3)}}: sets, so that the order of tied hits is free."""
    run: dict[str, set[tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, set()).add((docid, round(float(score), 3)))
    return run


def assert_same_runs(got: Path, expected: Path) -> None:
    """Same documents for every query, with the same impact scores up to tie adjustments: the
    toolkit's runs make tied scores strictly decreasing by less than one impact unit
    (splare_lucene/ranking.py), so a tied hit may read 55870.944 in one run and 55871.0 in the
    other; untied scores are equal."""
    a, b = read_run(got), read_run(expected)
    assert a.keys() == b.keys()

    def differs(q: str) -> bool:
        x, y = dict(a[q]), dict(b[q])
        return x.keys() != y.keys() or any(abs(x[d] - y[d]) >= 1 for d in x)

    differ = [q for q in b if differs(q)]
    if differ:
        q = differ[0]
        pytest.fail(f"{len(differ)} queries differ, e.g. {q}: {sorted(a[q])} vs {sorted(b[q])}")


@pytest.fixture(scope="module")
def work(tiny_model, tmp_path_factory):
    data = requires_shared_data(COLLECTION)
    root = tmp_path_factory.mktemp("pipelines")
    assert cli(["index", "--model", str(tiny_model), "--corpus", str(data), "--index", str(root / "index"),
                "--device", "cpu"]) == 0
    assert cli(["search", "--model", str(tiny_model), "--index", str(root / "index"), "--queries", str(data),
                "--output", str(root / "splare.run"), "--k", str(HITS), "--device", "cpu"]) == 0
    for fmt, name in [("anserini-tsv", "topics.tsv"), ("pyserini-jsonl", "queries.jsonl")]:
        assert cli(["encode-queries", "--model", str(tiny_model), "--queries", str(data),
                    "--output", str(root / name), "--format", fmt, "--device", "cpu"]) == 0
    return root


def test_query_files_hold_the_vectors_splare_search_uses(work, tiny_model):
    from splare_lucene.corpus import read_queries
    from splare_lucene.search import SplareQueryEncoder

    queries = list(read_queries(str(requires_shared_data(COLLECTION))))
    encoder = SplareQueryEncoder.from_pretrained(tiny_model, device="cpu", batch_size=16)
    encoder.prime([q.text for q in queries])
    tsv = {}
    for line in (work / "topics.tsv").read_text().splitlines():
        qid, tokens = line.split("\t")
        tsv[qid] = dict(Counter(tokens.split()))
    jsonl = [json.loads(line) for line in (work / "queries.jsonl").read_text().splitlines()]
    assert [r["id"] for r in jsonl] == [q.id for q in queries] == list(tsv)
    for q, record in zip(queries, jsonl):
        expected = encoder.encode(q.text)
        assert expected and tsv[q.id] == expected and record["vector"] == expected
        assert record["contents"] == record["title"] == q.text


def test_anserini_search_collection_equals_splare_search(work):
    from splare_lucene.java import java_command

    run = work / "anserini.run"
    cmd = java_command("io.anserini.search.SearchCollection", [
        "-index", str(work / "index"), "-topics", str(work / "topics.tsv"), "-topicReader", "TsvString",
        "-output", str(run), "-impact", "-pretokenized", "-hits", str(HITS), "-threads", "1"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and run.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_same_runs(run, work / "splare.run")


def pyserini_cli(work: Path, *extra: str) -> Path:
    from splare_lucene.java import find_java

    runtime = find_java()
    if not runtime.has_vector_module:
        pytest.skip(f"Pyserini's CLI always passes --add-modules=jdk.incubator.vector, which the Java at "
                    f"{runtime.home} lacks; set JAVA_HOME to a full JDK 21+")
    run = work / f"pyserini{''.join(extra)}.run"
    env = dict(os.environ, JAVA_HOME=str(runtime.home),
               OPENAI_API_KEY=os.environ.get("OPENAI_API_KEY") or "unused-placeholder")
    queries = str(work / "queries.jsonl")  # its own topics file: Pyserini reads the text from "title"
    proc = subprocess.run([sys.executable, "-m", "pyserini.search.lucene", "--index", str(work / "index"),
                           "--topics", queries, "--encoder", queries, "--impact", "--output", str(run),
                           "--hits", str(HITS), *extra], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and run.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return run


def test_pyserini_cli_equals_splare_search(work):
    assert_same_runs(pyserini_cli(work, "--min-idf", "-1"), work / "splare.run")


def test_pyserini_cli_default_min_idf_drops_latents_in_every_document(work):
    """The pitfall docs/anserini.md warns about: the tiny model has latents present in every
    document (idf 0), which Pyserini's default --min-idf 0 removes from every query."""
    run = read_run(pyserini_cli(work))
    expected = read_run(work / "splare.run")
    assert sum(run.get(q) != hits for q, hits in expected.items()) > len(expected) // 2


def test_existing_output_is_refused_before_loading_the_model(tmp_path, capsys):
    out = tmp_path / "q.tsv"
    out.write_text("keep me\n")
    rc = cli(["encode-queries", "--model", str(tmp_path / "no-such-model"), "--queries", "x.tsv",
              "--output", str(out), "--format", "anserini-tsv"])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err and out.read_text() == "keep me\n"


class FakeEncoder:
    """encode_stream/terms with fixed vectors per text: the writer's logic without a model."""

    def __init__(self, vectors: dict[str, dict[str, int]]):
        self.vectors = vectors
        self.encoded: list[str] = []

    def encode_stream(self, texts, **kwargs):
        for text in texts:
            self.encoded.append(text)
            yield text, text

    def terms(self, text):
        return self.vectors[text]


def test_writer_formats_empty_vectors_and_duplicate_texts(tmp_path):
    from splare_lucene.query_files import write_query_file
    from splare_lucene.types import Query

    enc = FakeEncoder({"a b": {"f3": 2, "f10": 1}, "nothing": {}})
    queries = [Query("q1", "a b"), Query("q2", "nothing"), Query("q3", "a b")]
    summary = write_query_file(enc, queries, tmp_path / "t.tsv", "anserini-tsv", progress=False)
    assert (tmp_path / "t.tsv").read_text() == "q1\tf3 f3 f10\nq3\tf3 f3 f10\n"
    assert summary.empty_ids == ["q2"] and summary.written == 2 and "left out: q2" in summary.describe("t")
    assert enc.encoded == ["a b", "nothing"]  # one forward pass per distinct text

    write_query_file(enc, queries, tmp_path / "q.jsonl", "pyserini-jsonl", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(r["id"], r["contents"], r["vector"]) for r in lines] == [
        ("q1", "a b", {"f3": 2, "f10": 1}), ("q2", "nothing", {}), ("q3", "a b", {"f3": 2, "f10": 1})]
    assert not list(tmp_path.glob("*.tmp"))


def test_writer_refuses_what_the_consumers_cannot_read(tmp_path):
    from splare_lucene.errors import ConfigError, InputError
    from splare_lucene.query_files import write_query_file
    from splare_lucene.types import Query

    enc = FakeEncoder({"a": {"f1": 1}, "a ": {"f2": 1}})
    with pytest.raises(InputError, match="surrounding whitespace"):  # one CachedDataQueryEncoder key
        write_query_file(enc, [Query("1", "a"), Query("2", "a ")], tmp_path / "q.jsonl", "pyserini-jsonl")
    with pytest.raises(InputError, match="tabs"):
        write_query_file(enc, [Query("1\t2", "a")], tmp_path / "q.tsv", "anserini-tsv")
    with pytest.raises(ConfigError, match=r"one of \['anserini-tsv', 'pyserini-jsonl'\]; got 'trec'"):
        write_query_file(enc, [Query("1", "a")], tmp_path / "q.trec", "trec")
    (tmp_path / "q.tsv").write_text("")
    with pytest.raises(ConfigError, match="--overwrite"):
        write_query_file(enc, [Query("1", "a")], tmp_path / "q.tsv", "anserini-tsv")


def run_example(name: str, tiny_model: Path, output: Path) -> str:
    data = requires_shared_data(COLLECTION)
    proc = subprocess.run([sys.executable, str(REPO / "examples" / name), "--model", str(tiny_model),
                           "--collection", str(data), "--output", str(output)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_example_anserini_cli(tiny_model, tmp_path):
    out = run_example("anserini_cli.py", tiny_model, tmp_path / "work")
    command = next(line for line in out.splitlines() if "io.anserini.search.SearchCollection" in line)
    for flag in ("-impact", "-pretokenized", "-topicReader TsvString", str(tmp_path / "work" / "topics.tsv")):
        assert flag in command
    run_lines = [line.split() for line in out.splitlines() if line.startswith("q-")]
    assert len(run_lines) == 12  # --show default
    assert all(len(parts) == 6 and parts[1] == "Q0" and parts[2].startswith("e-") for parts in run_lines)
    assert len((tmp_path / "work" / "run.trec").read_text().splitlines()) == 1000 * HITS


def test_example_python_api(tiny_model, tmp_path):
    out = run_example("python_api.py", tiny_model, tmp_path / "work")
    assert "LuceneImpactSearcher" in out
    hits = [line.split() for line in out.splitlines() if line.lstrip().startswith("1. e-")]
    assert len(hits) >= 3  # ranked hits for the first queries
    assert "batch_search: 1000 queries" in out
