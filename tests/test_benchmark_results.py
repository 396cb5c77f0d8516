"""benchmarks/_results.py: every written result records the CPU it was measured on, since timings
from machines with different instruction sets (AVX2 alone, AVX-512 VNNI) are not comparable."""

from __future__ import annotations

import json

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def results_module():
    return load_benchmark("_results")


def test_cpu_is_recorded_in_both_files_unless_given(results_module, tmp_path, monkeypatch):
    monkeypatch.setattr(results_module, "cpu_description", lambda: "Test CPU (family 1, model 2); avx2")
    results_module.write_results(tmp_path / "a", {"x": 1}, "# table\n", echo=False)
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1, "cpu": "Test CPU (family 1, model 2); avx2"}
    assert (tmp_path / "a.md").read_text() == "# table\n\nCPU: Test CPU (family 1, model 2); avx2\n"
    given = {"x": 1, "cpu": "recorded by the script"}
    results_module.write_results(tmp_path / "b", given, "# table\n", echo=False)
    assert json.loads((tmp_path / "b.json").read_text())["cpu"] == "recorded by the script"
    assert (tmp_path / "b.md").read_text() == "# table\n" and given == {"x": 1, "cpu": "recorded by the script"}


def test_cpu_description_reads_the_first_processor_block(results_module, tmp_path, monkeypatch):
    cpuinfo = ("processor\t: 0\nmodel name\t: Some CPU\ncpu family\t: 25\nmodel\t\t: 17\n"
               "flags\t\t: fpu avx2 avx512f avx512_vnni sse\n\nprocessor\t: 1\nmodel name\t: Other\n")
    real_path = results_module.Path

    def fake_path(p, *a):
        return tmp_path / "cpuinfo" if str(p) == "/proc/cpuinfo" else real_path(p, *a)

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    monkeypatch.setattr(results_module, "Path", fake_path)
    assert results_module.cpu_description() == "Some CPU (family 25, model 17); avx2 avx512f avx512_vnni"
