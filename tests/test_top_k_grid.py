"""benchmarks/top_k_grid.py scores cells exactly as the toolkit indexes and searches: its vectorised
cut + quantization equals pooling.top_k followed by quantize.quantize, row by row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from splare_lucene.pooling import top_k
from splare_lucene.quantize import quantize
from splare_lucene.types import SparseVector

from conftest import load_benchmark


def _grid_module():
    return load_benchmark("top_k_grid")


@pytest.mark.parametrize("k", [0, 1, 7, 40, 64])
def test_cut_and_quantize_equals_top_k_then_quantize(k):
    rng = np.random.default_rng(k)
    pooled = rng.random((5, 64), dtype=np.float32) * 3.0
    pooled[pooled < 1.0] = 0.0  # sparse rows, some with fewer than k non-zeros
    pooled[0, :3] = [0.004, 0.005, 0.0049999]  # below, at and just under the rounding boundary (scale 100)
    got = _grid_module().cut_and_quantize(pooled, k, 100.0)
    cut = top_k(torch.from_numpy(pooled), k).numpy()
    for row, want_row in zip(got, cut):
        nz = np.flatnonzero(want_row)
        want = quantize(SparseVector(nz.astype(np.int64), want_row[nz]), 100.0)
        expect = np.zeros(pooled.shape[1])
        expect[want.indices] = want.weights
        np.testing.assert_array_equal(row, expect)


def test_int_list_rejects_negative_and_junk():
    grid = _grid_module()
    assert grid.int_list("40,0, 100") == [40, 0, 100]
    for bad in ("", "-1", "40,x"):
        with pytest.raises(Exception, match="integers"):
            grid.int_list(bad)


def test_title_transform_is_the_title_variant_of_case_robustness_and_training():
    from splare_lucene.train.augment import CASE_VARIANTS

    title = _grid_module().TRANSFORMS["title"]
    assert title("what's the NACA airfoil") == "What's The NACA Airfoil" == CASE_VARIANTS["title"]("what's the NACA airfoil")
