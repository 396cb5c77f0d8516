"""benchmarks/dev_split.py: the dev folder and the training folder never share a query."""

import json

import pytest

from conftest import load_benchmark


def _source(root):
    root.mkdir()
    (root / "qrels").mkdir()
    with open(root / "corpus.jsonl", "w") as f:
        for a in range(6):
            for p in range(5):
                f.write(json.dumps({"_id": f"sq-{a:03d}-{p:03d}", "title": "", "text": f"passage {a} {p}"}) + "\n")
    with open(root / "queries.jsonl", "w") as f, open(root / "qrels" / "train.tsv", "w") as g:
        g.write("query-id\tcorpus-id\tscore\n")
        for a in range(6):
            for p in range(5):
                for n in range(2):
                    qid = f"sq-{a:03d}-{p:03d}-{n:02d}"
                    f.write(json.dumps({"_id": qid, "text": f"question {a} {p} {n}"}) + "\n")
                    g.write(f"{qid}\tsq-{a:03d}-{p:03d}\t1\n")
    return root


def test_train_output_drops_every_held_out_query_and_links_the_source(tmp_path):
    dev_split = load_benchmark("dev_split")
    from splare_lucene.evaluate import read_qrels
    from splare_lucene.train.distill import holdout_rank

    source = _source(tmp_path / "src")
    dev_split.main(["--source", str(source), "--output", str(tmp_path / "dev"), "--holdout", "0.5",
                    "--queries", "4", "--documents", "12", "--train-output", str(tmp_path / "train")])
    all_q = read_qrels(source / "qrels" / "train.tsv")
    train_q = read_qrels(tmp_path / "train" / "qrels" / "train.tsv")
    dev_q = read_qrels(tmp_path / "dev" / "qrels" / "dev.tsv")
    held = {q for q, judged in all_q.items() if holdout_rank(next(iter(judged))) < 0.5}
    assert 0 < len(held) < len(all_q)
    assert set(train_q) == set(all_q) - held  # every held-out query gone, every other one kept
    assert len(dev_q) == 4 and set(dev_q) <= held
    assert all(train_q[q] == all_q[q] for q in train_q)
    for name in ("corpus.jsonl", "queries.jsonl"):
        link = tmp_path / "train" / name
        assert link.is_symlink() and link.resolve() == (source / name).resolve()
    meta = json.loads((tmp_path / "train" / "train_split.json").read_text())
    assert meta["queries"] == len(train_q) and meta["held_out_queries"] == len(held)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("dev.", "train."))]  # no temporaries left


def test_an_output_folder_that_is_the_source_or_the_other_output_is_refused(tmp_path):
    dev_split = load_benchmark("dev_split")
    source = _source(tmp_path / "src")
    before = sorted(p.name for p in source.rglob("*"))
    for output, train in ((source, tmp_path / "train"), (tmp_path / "dev", source),
                          (tmp_path / "same", tmp_path / "same"), (source / "qrels", tmp_path / "train"),
                          (tmp_path, tmp_path / "train"), (tmp_path / "t" / "dev", tmp_path / "t")):
        with pytest.raises(SystemExit, match="overlap"):
            dev_split.main(["--source", str(source), "--output", str(output), "--train-output", str(train)])
    assert sorted(p.name for p in source.rglob("*")) == before
    assert not (tmp_path / "same").exists() and not (tmp_path / "t").exists()


def test_an_existing_folder_it_did_not_write_is_refused_and_its_own_output_is_replaced(tmp_path):
    dev_split = load_benchmark("dev_split")
    source = _source(tmp_path / "src")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    args = ["--source", str(source), "--holdout", "0.5", "--queries", "4", "--documents", "12"]
    with pytest.raises(SystemExit, match="not an output of this script"):
        dev_split.main(args + ["--output", str(other)])
    with pytest.raises(SystemExit, match="not an output of this script"):
        dev_split.main(args + ["--output", str(tmp_path / "dev"), "--train-output", str(other)])
    assert (other / "keep.txt").read_text() == "mine"
    dev_split.main(args + ["--output", str(tmp_path / "dev"), "--train-output", str(tmp_path / "train")])
    dev_split.main(args + ["--output", str(tmp_path / "dev"), "--train-output", str(tmp_path / "train")])
    assert (tmp_path / "dev" / "dev_split.json").is_file() and (tmp_path / "train" / "train_split.json").is_file()


def test_a_source_without_training_qrels_or_an_empty_split_is_refused_with_what_to_give(tmp_path):
    dev_split = load_benchmark("dev_split")
    with pytest.raises(SystemExit, match="no qrels/train.tsv there"):
        dev_split.main(["--source", str(tmp_path / "missing"), "--output", str(tmp_path / "dev")])
    source = _source(tmp_path / "src")
    with pytest.raises(SystemExit, match="at least 1"):
        dev_split.main(["--source", str(source), "--output", str(tmp_path / "dev"), "--queries", "0"])
    assert not (tmp_path / "dev").exists()


def test_skip_gives_a_second_split_of_other_held_out_queries(tmp_path):
    dev_split = load_benchmark("dev_split")
    from splare_lucene.evaluate import read_qrels

    source = _source(tmp_path / "src")
    common = ["--source", str(source), "--holdout", "0.5", "--queries", "4", "--documents", "12"]
    dev_split.main(common + ["--output", str(tmp_path / "dev1")])
    dev_split.main(common + ["--output", str(tmp_path / "dev2"), "--skip", "4"])
    first = set(read_qrels(tmp_path / "dev1" / "qrels" / "dev.tsv"))
    second = set(read_qrels(tmp_path / "dev2" / "qrels" / "dev.tsv"))
    assert len(first) == len(second) == 4 and not first & second
    dev_split.main(common[:-4] + ["--queries", "8", "--documents", "16", "--output", str(tmp_path / "dev8")])
    assert first | second == set(read_qrels(tmp_path / "dev8" / "qrels" / "dev.tsv"))
    with pytest.raises(SystemExit, match="--skip"):
        dev_split.main(common + ["--output", str(tmp_path / "dev3"), "--skip", "1000"])
    with pytest.raises(SystemExit, match="--skip must be"):
        dev_split.main(common + ["--output", str(tmp_path / "dev4"), "--skip", "-1"])
