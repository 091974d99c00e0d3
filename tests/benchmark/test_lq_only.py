"""Datasets without ground truth: --index DIR --lq-only, then the main path end to end with
no-reference metrics (full-reference ones skipped once, with the reason), and the report in
headless Chromium showing inputs and outputs side by side."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from PIL import Image

from benchmark.run import main as bench_main
from benchmark.summary import read_summary
from builders.build import main as build_main
from chromium_page import render  # tests/chromium_page.py


def _nr_weights(d):
    """NIQE and BRISQUE parameter files in pyiqa's formats (random numbers, fixed seed)."""
    from benchmark.weights import WEIGHTS

    rng = np.random.default_rng(1)
    a = rng.normal(size=(36, 36))
    for key in ("niqe-params", "brisque-svm"):
        WEIGHTS[key].path(d).parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(WEIGHTS["niqe-params"].path(d), {"mu_prisparam": rng.normal(size=(1, 36)),
                                                      "cov_prisparam": a @ a.T / 36 + np.eye(36)})
    g = torch.Generator().manual_seed(1)
    torch.save((torch.randn(40, generator=g, dtype=torch.float64), torch.rand(40, 36, generator=g, dtype=torch.float64)),
               WEIGHTS["brisque-svm"].path(d))
    return d


@pytest.fixture
def photos(mini_root, tmp_path):
    d = tmp_path / "photos"
    (d / "noisy").mkdir(parents=True)
    src = sorted((mini_root / "val" / "noisy" / "LQ").iterdir())
    for f in src[:2]:
        shutil.copy(f, d / "noisy" / f.name)
    shutil.copy(sorted((mini_root / "val" / "hazy" / "LQ").iterdir())[0], d / "my photo.png")  # flat: type unknown
    (d / "broken.jpg").write_bytes(b"not a jpeg")
    return d


def test_index_lq_only(photos, capsys):
    assert build_main(["--index", str(photos), "--lq-only"]) == 0
    assert "indexed 3 images without ground truth" in capsys.readouterr().out
    df = pd.read_parquet(photos / "manifest.parquet")
    assert sorted(df["type"]) == ["noisy", "noisy", "unknown"]
    assert set(df["gt_path"]) == {""} and set(df["split"]) == {"val"}
    assert df.loc[df["type"] == "unknown", "lq_path"].item() == "my photo.png"
    report = json.loads((photos / "index_report.json").read_text())
    assert [p["file"] for p in report["unreadable"]] == [str(photos / "broken.jpg")]
    assert build_main(["--lq-only"]) == 2


def test_lq_only_dataset_runs_end_to_end_and_renders(photos, tmp_path, capsys):
    assert build_main(["--index", str(photos), "--lq-only"]) == 0
    wdir = _nr_weights(tmp_path / "w")
    out = tmp_path / "run"
    assert bench_main(["--dataset", str(photos), "--out", str(out), "--methods", "classical",
                       "--metrics", "psnr,ssim,niqe,brisque", "--weights-dir", str(wdir), "--quiet"]) == 0
    err = capsys.readouterr().err
    s = read_summary(out / "summary.json")
    # the full-reference metrics: skipped once, with the reason
    assert set(s["unavailable"]) == {"psnr", "ssim"} and "no ground truth" in s["unavailable"]["psnr"]
    assert err.count("no ground truth") == 2
    assert [m["name"] for m in s["metrics"]] == ["niqe", "brisque"]
    assert [m["name"] for m in s["methods"]] == ["identity", "classical"]  # the input is scored too
    assert s["tasks"] == ["noisy", "unknown"]
    # the Input row's value is the metric of the LQ image itself
    from benchmark.nr_metrics import NR_METRICS

    NR_METRICS["niqe"].prepare(wdir, "cpu")
    lqs = [np.asarray(Image.open(f).convert("RGB")) for f in sorted((photos / "noisy").iterdir())]
    want = np.mean([NR_METRICS["niqe"](x) for x in lqs])
    assert s["tables"]["niqe"]["identity"]["noisy"] == pytest.approx(want, abs=1e-9)
    assert s["tables"]["niqe"]["classical"]["noisy"] != s["tables"]["niqe"]["identity"]["noisy"]
    # examples: input and output side by side, no ground-truth tile
    tiles = {ex["task"]: [t["label"] for t in ex["tiles"]] for ex in s["examples"]}
    assert tiles == {"noisy": ["Input (LQ)", "Classical (type-aware)"],
                     "unknown": ["Input (LQ)"]}  # classical has no restorer for a type it does not know
    assert "unknown" in s["skipped_tasks"]["classical"]
    page = out / "report" / "index.html"
    html = page.read_text()
    assert "Ground truth" not in html.split('id="examples"')[1].split("<h2")[0]
    assert "NIQE ↓" in html and "MUSIQ" not in html
    _, std, dom = render(page, tmp_path)
    assert std > 5
    cells = dom.split('id="table-niqe"')[1].split("</table>")[0]
    assert cells.count("<tr>") >= 3 and any(ch.isdigit() for ch in cells)
    ex = dom.split('id="examples"')[1]
    assert ex.count('src="assets/ex00_0') >= 2  # input and output tiles of the first example
