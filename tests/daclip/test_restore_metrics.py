"""daclip.restore --metrics: no-reference scores of each input and output, printed and recorded."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import scipy.io
import torch

from daclip.restore import main as restore_main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """NIQE and BRISQUE files (random numbers in pyiqa's formats) in the weights cache."""
    from daclip.iqa import FILES
    from daclip.weights import cached_path

    root = tmp_path / "cache"
    rng = np.random.default_rng(2)
    a = rng.normal(size=(36, 36))
    niqe, brisque = cached_path(FILES["niqe-params"], root), cached_path(FILES["brisque-svm"], root)
    niqe.parent.mkdir(parents=True)
    scipy.io.savemat(niqe, {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T / 36 + np.eye(36)})
    g = torch.Generator().manual_seed(2)
    torch.save((torch.randn(30, generator=g, dtype=torch.float64), torch.rand(30, 36, generator=g, dtype=torch.float64)),
               brisque)
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(root))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    return root


def test_restore_prints_and_records_metrics(mini_root, tmp_path, cache, capsys):
    from builders.io import read_image
    from daclip.iqa import FILES, NRScorer
    from daclip.weights import cached_path

    photos = tmp_path / "photos"
    photos.mkdir()
    for f in sorted((mini_root / "val" / "noisy" / "LQ").iterdir())[:2]:
        shutil.copy(f, photos / f.name)
    out = tmp_path / "out"
    args = [str(photos), "--method", "classical", "--task", "noisy", "--out", str(out), "--device", "cpu", "--quiet"]
    assert restore_main([*args, "--metrics", "niqe"]) == 0
    text = capsys.readouterr().out
    assert "brisque" not in (out / "restore.csv").read_text()
    mtimes = {f.name: f.stat().st_mtime_ns for f in out.glob("*.png")}
    # a metric more: nothing is restored again, only the new scores are computed
    assert restore_main([*args, "--metrics", "niqe,brisque"]) == 0
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("*.png")} == mtimes
    rows = list(csv.DictReader((out / "restore.csv").open()))
    assert len(rows) == 2
    niqe = NRScorer("niqe")
    niqe.prepare({"niqe-params": cached_path(FILES["niqe-params"], cache)}, "cpu")
    for r in rows:
        lq, res = read_image(r["input"]), read_image(out / r["output"])
        assert float(r["niqe_input"]) == pytest.approx(niqe(lq), rel=1e-5)
        assert float(r["niqe_output"]) == pytest.approx(niqe(res), rel=1e-5)
        assert r["brisque_input"] and r["brisque_output"]
        assert f"niqe {float(r['niqe_input']):.4g} -> {float(r['niqe_output']):.4g} (lower is better)" in text
    before = (out / "restore.csv").read_text()
    assert restore_main([*args, "--metrics", "niqe,brisque"]) == 0  # all there: nothing computed
    assert (out / "restore.csv").read_text() == before


def test_restore_metrics_errors(tmp_path, cache, capsys, mini_root):
    img = sorted((mini_root / "val" / "noisy" / "LQ").iterdir())[0]
    base = [str(img), "--method", "classical", "--task", "noisy", "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert restore_main([*base, "--metrics", "bogus"]) == 2
    assert "unknown no-reference metric 'bogus'" in capsys.readouterr().err
    assert restore_main([*base, "--metrics", "musiq"]) == 2  # not in the cache, offline
    err = capsys.readouterr().err
    assert err.startswith("error: --metrics musiq") and "musiq_koniq_ckpt-e95806b9.pth" in err
    assert not (tmp_path / "o").exists()
