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


def test_a_model_with_a_non_residual_sae_warns_at_every_load(tiny_backbone, mlp_out_sae, tiny_model,
                                                              tmp_path, caplog):
    from splare_lucene.encoder import SplareEncoder

    model = SplareEncoder.from_components(str(tiny_backbone), mlp_out_sae, device="cpu",
                                          allow_any_site=True).save_pretrained(tmp_path / "model")
    with caplog.at_level("WARNING", logger="splare_lucene.encoder"):
        SplareEncoder.from_pretrained(model, device="cpu")
        SplareEncoder.from_pretrained(tiny_model, device="cpu")  # a residual SAE: no warning
    warnings = [r.getMessage() for r in caplog.records if r.name == "splare_lucene.encoder"]
    assert len(warnings) == 1 and "trained on 'mlp_out'" in warnings[0] and "--allow-any-site" in warnings[0]


def test_assemble_warns_about_the_query_top_k(tiny_backbone, tiny_sae, tmp_path, caplog):
    """With an SAE wider than Lucene's 1,024 clauses, a query top-k of 0 (no cut) or over 1,024
    warns, saying how to cut; 40 and 1024 do not. A 64-latent SAE never gives more than 64 query
    terms, so it never warns."""
    wide = make_sae_dir(tmp_path / "wide-sae", d_in=32, d_sae=2048, k=8)
    cases = [(wide, 0, "0 (no cut)"), (wide, 2000, "2000, above Lucene's default limit"), (wide, 40, None),
             (wide, 1024, None), (tiny_sae, 0, None), (tiny_sae, 2000, None)]
    for n, (sae, top_k, warned) in enumerate(cases):
        caplog.clear()
        with caplog.at_level("WARNING", logger="splare_lucene.cli.common"):
            assert cli(["assemble", "--backbone", str(tiny_backbone), "--sae", str(sae),
                        "--output", str(tmp_path / f"m{n}"), "--query-top-k", str(top_k)]) == 0
        messages = [r.getMessage() for r in caplog.records if r.name == "splare_lucene.cli.common"]
        if warned is None:
            assert messages == [], (sae.name, top_k)
        else:
            assert len(messages) == 1 and f"query top-k is {warned}" in messages[0]
            assert "Pass --query-top-k to cut queries: 40 is the paper's" in messages[0] and "1024" in messages[0]
