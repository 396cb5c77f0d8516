"""The wheel holds every shipped asset (default model, demo collection) and setuptools builds it
without the 'package would be ignored' warning (issue 11: data folders were found as packages
that setup.cfg did not list)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_holds_every_asset_and_builds_without_package_warnings(tmp_path):
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    src = tmp_path / "src"
    for name in tracked:  # the tracked files only, as a clean clone has them
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    log = build.stdout + build.stderr
    assert "is absent from the `packages` configuration" not in log
    [wheel] = (tmp_path / "dist").glob("splare_lucene-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = [n for n in tracked if n.startswith("splare_lucene/assets/")]
    assert assets and not [n for n in assets if n not in names]
    modules = [n for n in tracked if n.startswith("splare_lucene/") and n.endswith(".py")]
    assert not [n for n in modules if n not in names]
