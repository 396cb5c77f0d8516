"""encode's Ray-only options are refused without --engine ray, before anything loads."""

from __future__ import annotations

import pytest

from splare_lucene.cli.main import main


@pytest.mark.parametrize("flags", [["--num-workers", "2"], ["--gpus-per-worker", "1"],
                                   ["--cpus-per-worker", "2"], ["--ray-address", "auto"]])
def test_ray_options_need_the_ray_engine(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as info:
        main(["encode", "--corpus", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out"), *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flags[0]}: applies to --engine ray only" in err and "add --engine ray" in err
    assert not (tmp_path / "out").exists()
