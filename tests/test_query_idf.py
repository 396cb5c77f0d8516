"""benchmarks/query_idf.py: the idf is Lucene's BM25 idf over documents holding a latent, and power
0 scores exactly as top_k_grid.py (today's scoring)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import load_benchmark


def test_bm25_idf_is_lucenes_formula_over_document_frequency():
    idf = load_benchmark("query_idf").bm25_idf
    impacts = np.array([[3, 0, 1], [2, 0, 0], [5, 0, 0], [1, 4, 0]], dtype=np.float64)  # df 4, 1, 1
    got = idf(impacts)
    n = 4
    want = [math.log(1 + (n - df + 0.5) / (df + 0.5)) for df in (4, 1, 1)]
    np.testing.assert_allclose(got, want)
    assert got[0] < got[1] and got[0] > 0  # a latent in every document still counts, least


def test_power_zero_is_the_grid_scoring():
    grid, idf_mod = load_benchmark("top_k_grid"), load_benchmark("query_idf")
    rng = np.random.default_rng(0)
    q = rng.random((3, 50), dtype=np.float32) * 2
    weights = grid.cut(q, 7)
    idf = idf_mod.bm25_idf(grid.cut_and_quantize(rng.random((6, 50), dtype=np.float32), 10, 100.0))
    np.testing.assert_array_equal(grid.quantize(weights, 100.0 * idf ** 0.0), grid.cut_and_quantize(q, 7, 100.0))
    assert (grid.quantize(weights, 100.0 * idf) != grid.cut_and_quantize(q, 7, 100.0)).any()


def test_float_list_rejects_negative_and_junk():
    mod = load_benchmark("query_idf")
    assert mod.float_list("0,0.5, 1") == [0.0, 0.5, 1.0]
    for bad in ("", "-1", "x"):
        with pytest.raises(Exception, match="numbers"):
            mod.float_list(bad)
