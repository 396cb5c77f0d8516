"""benchmarks/joint_cut.py: the joint of two dev splits per cell, the cheapest cell near the best,
and rule 2 (a candidate must match the reference on both splits)."""

from __future__ import annotations

import json

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def joint_cut():
    return load_benchmark("joint_cut")


def _grid(collection: str, values: dict[str, dict[str, float]]) -> dict:
    return {"collection": collection, "candidates": {
        name: {"model": name, "fingerprint": name, "own": "150/400",
               "cells": {"none": {c: {"metrics": {"nDCG@10": v}} for c, v in cells.items()}}}
        for name, cells in values.items()}}


def test_joint_choice_and_rule(joint_cut, tmp_path):
    english = _grid("squad-dev", {"ref": {"150/400": 0.80, "100/600": 0.84, "40/400": 0.70, "150/all": 0.1},
                                  "good": {"150/400": 0.82, "100/600": 0.90, "40/400": 0.60},
                                  "lopsided": {"150/400": 0.95, "100/600": 0.95, "40/400": 0.95}})
    nld = _grid("nld-eng", {"ref": {"150/400": 0.30, "100/600": 0.28, "40/400": 0.25},
                            "good": {"150/400": 0.34, "100/600": 0.32, "40/400": 0.2},
                            "lopsided": {"150/400": 0.10, "100/600": 0.10, "40/400": 0.10}})
    ita = _grid("ita-eng", {"ref": {"150/400": 0.40, "100/600": 0.38, "40/400": 0.30},
                            "good": {"150/400": 0.42, "100/600": 0.40, "40/400": 0.3},
                            "lopsided": {"150/400": 0.10, "100/600": 0.10, "40/400": 0.10}})
    paths = []
    for name, grid in (("en", english), ("nld", nld), ("ita", ita)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(grid))
    assert joint_cut.main(["--english", str(paths[0]), "--cross-lingual", str(paths[1]), str(paths[2]),
                           "--reference", "ref", "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    s = result["summary"]
    # joint of good: 150/400 (0.82 + 0.38)/2 = 0.60, 100/600 (0.90 + 0.36)/2 = 0.63: 100/600 is the
    # best and the cheaper of the two (60,000 = 60,000 but higher joint)
    assert s["good"]["cell"] == "100/600" and s["good"]["joint"] == pytest.approx(0.63)
    assert result["tables"]["good"].keys() == {"40/400", "150/400", "100/600"}  # "all" skipped
    # the reference is compared at its own cell, 150/400: English 0.80, cross-lingual 0.35
    assert s["good"]["passes"] is True
    assert s["lopsided"]["passes"] is False  # English far better, cross-lingual worse
    assert result["taken"] == "good"
    with pytest.raises(SystemExit, match="not in every grid"):
        joint_cut.main(["--english", str(paths[0]), "--cross-lingual", str(paths[1]),
                        "--reference", "missing", "--out", str(tmp_path / "o2")])


def test_english_results_of_several_runs_are_merged_and_a_repeated_name_refused(joint_cut):
    a = _grid("squad-dev", {"ref": {"150/400": 0.8}})
    b = _grid("squad-dev", {"new": {"150/400": 0.9}})
    assert set(joint_cut.merged([a, b])["candidates"]) == {"ref", "new"}
    with pytest.raises(SystemExit, match="in two results on squad-dev"):
        joint_cut.merged([a, a])


def test_cross_lingual_runs_on_one_split_count_as_one_split(joint_cut):
    """An earlier run's grid and a new candidate's grid on nld-eng are one split, not two."""
    old_nld = _grid("nld-eng", {"ref": {"150/400": 0.3}})
    new_nld = _grid("nld-eng", {"new": {"150/400": 0.5}})
    ita = _grid("ita-eng", {"ref": {"150/400": 0.4}, "new": {"150/400": 0.2}})
    cross = joint_cut.by_collection([old_nld, ita, new_nld])
    assert [g["collection"] for g in cross] == ["nld-eng", "ita-eng"]
    assert set(cross[0]["candidates"]) == {"ref", "new"}
    english = _grid("squad-dev", {"ref": {"150/400": 0.8}, "new": {"150/400": 0.8}})
    assert joint_cut.joint_table(english, cross, "new")["150/400"]["cross_lingual"] == pytest.approx(0.35)
