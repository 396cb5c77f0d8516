"""Checks made when a model is built from a backbone and an SAE (``assemble``,
``SplareEncoder.from_components``): the SAE's hook site, and the query top-k against Lucene's
clause limit."""

from __future__ import annotations

import json

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.errors import CheckpointError

from conftest import make_sae_dir


@pytest.fixture(scope="module")
def mlp_out_sae(tmp_path_factory):
    """A toolkit-format SAE for the tiny backbone that records an MLP-output site."""
    directory = make_sae_dir(tmp_path_factory.mktemp("sae") / "mlp", d_in=32)
    config = json.loads((directory / "sae_config.json").read_text())
    (directory / "sae_config.json").write_text(json.dumps({**config, "hook_site": "mlp_out"}))
    return directory


def test_from_components_refuses_a_non_residual_sae(tiny_backbone, mlp_out_sae):
    from splare_lucene.encoder import SplareEncoder

    with pytest.raises(CheckpointError, match=r"trained on 'mlp_out' \(the output of block L's MLP"
                                              r".*allow_any_site=True"):
        SplareEncoder.from_components(str(tiny_backbone), mlp_out_sae, device="cpu")
    encoder = SplareEncoder.from_components(str(tiny_backbone), mlp_out_sae, device="cpu",
                                            allow_any_site=True)
    assert encoder.sae.config.hook_site == "mlp_out" and encoder.config.layer == 2


def test_assemble_refuses_a_non_residual_sae_unless_allowed(tiny_backbone, mlp_out_sae, tmp_path, capsys):
    args = ["assemble", "--backbone", str(tiny_backbone), "--sae", str(mlp_out_sae)]
    assert cli(args + ["--output", str(tmp_path / "refused")]) == 1
    err = capsys.readouterr().err
    assert "trained on 'mlp_out'" in err and "--allow-any-site" in err
    assert not (tmp_path / "refused").exists()
    assert cli(args + ["--output", str(tmp_path / "model"), "--allow-any-site"]) == 0
    saved = json.loads((tmp_path / "model" / "sae" / "sae_config.json").read_text())
    assert saved["hook_site"] == "mlp_out"  # the model keeps saying where its SAE came from


def test_assemble_warns_about_the_query_top_k(tiny_backbone, tiny_sae, tmp_path, caplog):
    """0 (no cut) and values over Lucene's 1,024 clauses warn, saying how to cut; 40 and 1024 do not."""
    cases = {0: "0 (no cut)", 2000: "2000, above Lucene's default limit", 40: None, 1024: None}
    for top_k, warned in cases.items():
        caplog.clear()
        with caplog.at_level("WARNING", logger="splare_lucene.cli.assemble"):
            assert cli(["assemble", "--backbone", str(tiny_backbone), "--sae", str(tiny_sae),
                        "--output", str(tmp_path / f"m{top_k}"), "--query-top-k", str(top_k)]) == 0
        messages = [r.getMessage() for r in caplog.records if r.name == "splare_lucene.cli.assemble"]
        if warned is None:
            assert messages == [], top_k
        else:
            assert len(messages) == 1 and f"query top-k is {warned}" in messages[0]
            assert "--query-top-k 40" in messages[0] and "1024" in messages[0]
