"""Issue 17 (reliability II), the benchmark runner: each test is one finding of the issue, on real
photographs where pixels matter."""

import json
import os
from pathlib import Path

import pytest
import skimage.data

from benchmark.metrics import get_metric
from benchmark.run import main as bench_main
from builders.index import index_folder
from builders.io import read_image, save_image

from reliability_fixtures import offline, crop, noisy, official, psnr_of  # noqa: F401 (offline: an autouse fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_a_corrected_gt_is_scored_again(tmp_path, capsys):
    astro = skimage.data.astronaut()
    gt = crop(astro, 64, 80, 100, 150)
    lq = noisy(gt)
    ds = official(tmp_path / "ds", [("noisy", "p0.png", lq, crop(astro, 64, 80, 300, 20))])  # a wrong GT
    args = ["--dataset", str(ds), "--out", str(tmp_path / "run"), "--methods", "identity", "--metrics", "psnr", "--quiet"]
    assert bench_main(args) == 0
    save_image(ds / "val" / "noisy" / "GT" / "p0.png", gt)  # corrected, then re-indexed
    index_folder(ds)
    assert bench_main(args) == 0
    assert psnr_of(tmp_path / "run") == pytest.approx(get_metric("psnr")(lq, gt), abs=1e-9)


def test_a_changed_file_not_reindexed_is_refused_by_name(tmp_path, capsys):
    astro = skimage.data.astronaut()
    gt = crop(astro, 64, 80, 100, 150)
    ds = official(tmp_path / "ds", [("noisy", "p0.png", noisy(gt), gt)])
    args = ["--dataset", str(ds), "--out", str(tmp_path / "run"), "--methods", "identity", "--metrics", "psnr", "--quiet"]
    assert bench_main(args) == 0
    capsys.readouterr()
    lq_path = ds / "val" / "noisy" / "LQ" / "p0.png"
    save_image(lq_path, noisy(gt, seed=5))
    assert bench_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(lq_path) in err[0] and "--index" in err[0]


def test_digests_are_remembered_by_stat_and_rechecked_when_it_changes(tmp_path):
    from benchmark.runner import DIGESTS_FILE, RunConfig, verify_files
    from builders.manifest import read_manifest

    gt = crop(skimage.data.coffee(), 40, 50)
    ds = official(tmp_path / "ds", [("noisy", "p0.png", noisy(gt), gt)])
    cfg = RunConfig(dataset=ds, out=tmp_path / "run", methods=[], tasks=None, metrics=[])
    (tmp_path / "run").mkdir()
    items = read_manifest(ds)
    verify_files(cfg, items)
    cache = json.loads((tmp_path / "run" / DIGESTS_FILE).read_text())
    assert sorted(v[1] for v in cache.values()) == sorted([items["sha256"][0], items["gt_sha256"][0]])
    gt_path = ds / "val" / "noisy" / "GT" / "p0.png"
    before = os.stat(gt_path)
    save_image(gt_path, crop(skimage.data.coffee(), 40, 50, 10, 10))  # same size, new content
    from builders.errors import UserError

    with pytest.raises(UserError, match="GT/p0.png"):
        verify_files(cfg, items)
    assert os.stat(gt_path).st_mtime_ns != before.st_mtime_ns or os.stat(gt_path).st_ino != before.st_ino


def test_benchmark_refuses_an_image_over_the_limit_and_takes_it_when_raised(tmp_path, capsys):
    gt = crop(skimage.data.astronaut(), 300, 400)
    ds = official(tmp_path / "ds", [("noisy", "p0.png", noisy(gt), gt)])
    args = ["--dataset", str(ds), "--methods", "identity", "--metrics", "psnr", "--quiet"]
    assert bench_main([*args, "--out", str(tmp_path / "a"), "--max-megapixels", "0.1"]) == 2
    assert "over the limit of 0.1 megapixels" in capsys.readouterr().err
    assert bench_main([*args, "--out", str(tmp_path / "b"), "--max-megapixels", "0.2"]) == 0


def test_benchmark_default_run_on_a_dataset_holding_a_1x1_image(tmp_path, capsys):
    astro = skimage.data.astronaut()
    pairs = [("noisy", "p0.png", noisy(crop(astro, 1, 1, 200, 200)), crop(astro, 1, 1, 200, 200)),
             ("noisy", "p1.png", noisy(crop(astro, 48, 48)), crop(astro, 48, 48))]
    ds = official(tmp_path / "ds", pairs)
    assert bench_main(["--dataset", str(ds), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {r["name"] for r in s["images"] if r["method_name"] == "classical"} == {"p1.png"}  # 1x1: no metric
    out = read_image(tmp_path / "run" / "outputs" / "classical" / "val" / "noisy" / "p0.png")
    assert out.shape == (1, 1, 3)

