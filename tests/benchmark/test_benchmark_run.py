"""The benchmark runner: values, stored results, resume, report, CLI errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.metrics import get_metric
from benchmark.run import main as bench_main
from builders.tasks import DEGRADATIONS

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def run(mini_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity,classical",
                     "--metrics", "psnr,ssim", "--limit", "2", "--quiet"])
    assert rc == 0
    return out


def test_identity_values_equal_direct_computation(run, mini_root):
    per_image = pd.read_parquet(run / "per_image.parquet")
    manifest = pd.read_parquet(mini_root / "manifest.parquet").set_index("id")
    ident = per_image[per_image["method"] == "identity"]
    assert len(ident) == 10 * 2 * 2  # ten types, two images each, two metrics
    for row in ident.itertuples():
        m = manifest.loc[row.id]
        lq = np.asarray(Image.open(mini_root / m["lq_path"]))
        gt = np.asarray(Image.open(mini_root / m["gt_path"]))
        assert row.value == pytest.approx(get_metric(row.metric)(lq, gt), abs=1e-12)


def test_summary_tables_average_over_types(run):
    s = json.loads((run / "summary.json").read_text())
    assert s["tasks"] == list(DEGRADATIONS)
    assert [m["display"] for m in s["methods"]] == ["Input", "Classical (type-aware)"]
    per_image = pd.read_parquet(run / "per_image.parquet")
    psnr = per_image[(per_image["method"] == "identity") & (per_image["metric"] == "psnr")]
    per_type = psnr.groupby("type")["value"].mean()
    row = s["tables"]["psnr"]["identity"]
    for t in DEGRADATIONS:
        assert row[t] == pytest.approx(per_type[t])
    assert row["average"] == pytest.approx(per_type.mean())
    # the classical row beats the input on average (it really restores)
    assert s["tables"]["psnr"]["classical"]["average"] > row["average"] + 1
    long = pd.read_parquet(run / "per_task.parquet")
    assert set(long.columns) == {"method", "type", "metric", "value", "n"} and (long["n"] == 2).all()


def test_report_has_tables_and_examples(run):
    html = (run / "report" / "index.html").read_text()
    assert html.count('<table class="results" id="table-') == 2
    for t in DEGRADATIONS:
        assert f">{t}<" in html
    imgs = sorted((run / "report" / "assets").glob("*.png"))
    # LQ, classical output, GT per type (identity output == LQ), each as a crop and a zoom
    assert len(imgs) == 10 * 3 * 2
    assert html.count('class="zoom"') == 10 * 3
    assert 'id="overview-table"' in html and 'id="per-image"' in html and "<svg" in html
    assert 'class="best"' in html


def test_rerun_computes_nothing_and_new_method_only_adds(run, mini_root):
    before = (run / "per_image.parquet").stat().st_mtime_ns
    outs = {p: p.stat().st_mtime_ns for p in (run / "outputs").rglob("*.png")}
    assert bench_main(["--dataset", str(mini_root), "--out", str(run), "--methods", "identity,classical",
                       "--metrics", "psnr,ssim", "--limit", "2", "--quiet"]) == 0
    assert (run / "per_image.parquet").stat().st_mtime_ns == before
    assert {p: p.stat().st_mtime_ns for p in (run / "outputs").rglob("*.png")} == outs
    # a new metric on the same outputs: computed from the cached images, no restoration
    assert bench_main(["--dataset", str(mini_root), "--out", str(run), "--methods", "identity,classical",
                       "--limit", "2", "--metrics", "psnr,ssim,psnr_y", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (run / "outputs").rglob("*.png")} == outs
    v = pd.read_parquet(run / "per_image.parquet")
    assert (v["metric"] == "psnr_y").sum() == 2 * 20 and not v.duplicated(["method", "id", "metric"]).any()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "benchmark.run", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_errors(mini_root, tmp_path):
    cases = [
        (["--dataset", str(mini_root), "--methods", "identity,bogus"], "unknown method 'bogus'"),
        (["--dataset", str(mini_root), "--tasks", "foggy"], "unknown degradation type 'foggy'"),
        (["--dataset", str(tmp_path / "nope")], "no such folder"),
        (["--dataset", str(tmp_path)], "no manifest at"),
        (["--dataset", str(mini_root), "--weights", "identity=x.pt"], "uses no weights"),
        (["--dataset", str(mini_root), "--split", "test"], "no 'test' split"),
        (["--dataset", str(mini_root), "--methods", "identity", "--option", "identity:x=1"], "does not accept x"),
        (["--dataset", str(mini_root), "--methods", "identity", "--option", "classical:x=1"], "not among --methods"),
    ]
    for args, needle in cases:
        r = _cli(*args, "--out", str(tmp_path / "o"), "--quiet", cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_mismatched_pair_is_named(mini_root, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(mini_root, root)
    bad = root / "val/noisy/GT/astronaut_000.png"
    Image.fromarray(np.zeros((100, 128, 3), np.uint8)).save(bad)
    args = ("--dataset", str(root), "--tasks", "noisy", "--methods", "identity", "--out", str(tmp_path / "o"), "--quiet")
    r = _cli(*args, cwd=tmp_path)  # not in the manifest yet: refused as a changed file
    assert r.returncode == 2 and "astronaut_000.png" in r.stderr and "changed after the manifest" in r.stderr
    from builders.io import sha256_file
    from builders.manifest import read_manifest, write_manifest

    df = read_manifest(root)  # a manifest that records the wrong GT: the size check names the pair
    df.loc[df["gt_path"] == "val/noisy/GT/astronaut_000.png", "gt_sha256"] = sha256_file(bad)
    write_manifest(root, df)
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and "astronaut_000.png" in r.stderr and "128x100" in r.stderr


def test_missing_image_is_named(mini_root, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(mini_root, root)
    (root / "val/hazy/LQ/chelsea_001.png").unlink()
    r = _cli("--dataset", str(root), "--methods", "identity", "--out", str(tmp_path / "o"), "--quiet", cwd=tmp_path)
    assert r.returncode == 2 and "val/hazy/LQ/chelsea_001.png" in r.stderr
