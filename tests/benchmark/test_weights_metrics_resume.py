"""LPIPS/FID/KID through stand-in weights, incremental runs, resume, torchrun, exports, report."""

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
from scipy import linalg

from benchmark.run import main as bench_main
from benchmark.set_metrics import frechet_distance
from benchmark.weights import main as weights_main
from builders.manifest import read_manifest, write_manifest

from benchmark_weights_fixtures import make_standin_weights, standin_digests
from chromium_page import chromium_or_skip, render  # tests/chromium_page.py

ROOT = Path(__file__).parents[2]
TASKS = "noisy,hazy"


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    with standin_digests(make_standin_weights(tmp_path_factory.mktemp("weights"))) as d:
        yield d


def _scipy_fid(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_equals_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 8))
    b = rng.normal(0.5, 1.3, size=(50, 8)) @ rng.normal(size=(8, 8))
    assert frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_weights_list_and_missing_metric_is_unavailable(tmp_path, capsys, mini_root):
    assert weights_main(["list", "--weights-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "missing" in listing and "alexnet-owt-7be5be79.pth" in listing and "weights-inception-2015-12-05" in listing
    out = tmp_path / "run"
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity", "--tasks", "noisy",
                       "--metrics", "psnr,lpips", "--weights-dir", str(tmp_path / "empty"), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert [m["name"] for m in s["metrics"]] == ["psnr"]
    assert "LPIPS_v0.1_alex-df73285e.pth" in s["unavailable"]["lpips"]
    assert "lpips" not in set(pd.read_parquet(out / "per_image.parquet")["metric"])
    html = (out / "report" / "index.html").read_text()
    assert "not computed" in html and "benchmark.weights fetch" in html


@pytest.fixture(scope="module")
def full_run(mini_root, wdir, tmp_path_factory):
    out = tmp_path_factory.mktemp("fullrun")
    rc = bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity,classical", "--tasks", TASKS,
                     "--metrics", "psnr,ssim,lpips,fid,kid", "--weights-dir", str(wdir), "--limit", "2", "--quiet"])
    assert rc == 0
    return out


def test_lpips_equals_direct_pyiqa(full_run, mini_root, wdir):
    import torch
    from pyiqa.archs.lpips_arch import LPIPS

    from benchmark.weights import WEIGHTS

    torch.hub.set_dir(str(wdir / "torch" / "hub"))
    net = LPIPS(net="alex", version="0.1", pretrained_model_path=str(WEIGHTS["lpips-alex-v0.1"].path(wdir))).eval()
    v = pd.read_parquet(full_run / "per_image.parquet")
    lp = v[(v["metric"] == "lpips") & (v["method"] == "identity")]
    assert len(lp) == 4
    m = read_manifest(mini_root).set_index("id")
    t = lambda p: torch.from_numpy(np.asarray(Image.open(mini_root / p), np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    for row in lp.itertuples():
        with torch.no_grad():
            ref = net(t(m.loc[row.id, "lq_path"]), t(m.loc[row.id, "gt_path"]), normalize=True).item()
        assert row.value == pytest.approx(ref, rel=1e-5, abs=1e-7)


def test_fid_per_type_equals_features_recomputed(full_run, mini_root, wdir):
    from benchmark.set_metrics import FEATURES

    FEATURES.prepare(wdir, "cpu")
    s = json.loads((full_run / "summary.json").read_text())
    items = read_manifest(mini_root)
    for task in ("noisy",):  # one type keeps the CPU cost down; the code path is the same for all
        group = items[(items["split"] == "val") & (items["type"] == task)].sort_values("name").head(2)
        gt = FEATURES([np.asarray(Image.open(mini_root / p)) for p in group["gt_path"]])
        lq = FEATURES([np.asarray(Image.open(mini_root / p)) for p in group["lq_path"]])
        assert s["tables"]["fid"]["identity"][task] == pytest.approx(_scipy_fid(lq, gt), rel=1e-5)
    for task in TASKS.split(","):
        assert np.isfinite(s["tables"]["kid"]["identity"][task]) and np.isfinite(s["tables"]["fid"]["classical"][task])
    assert s["counts"] == {"noisy": 2, "hazy": 2}
    sets = pd.read_parquet(full_run / "per_set.parquet")
    assert set(sets["n"]) == {2} and len(sets) == 2 * 2 * 2  # methods x types x (fid, kid)


def test_adding_a_method_computes_only_that_method(full_run, mini_root, wdir, monkeypatch):
    from daclip import classical
    from benchmark.methods import Identity

    calls = []
    monkeypatch.setattr(Identity, "restore", lambda self, lq, task: calls.append(("identity", task)) or lq)
    real = classical.Classical.restore
    monkeypatch.setattr(classical.Classical, "restore", lambda self, lq, task: calls.append(("classical", task)) or real(self, lq, task))
    out = full_run.parent / "incremental"
    shutil.copytree(full_run, out)
    features = sorted((out / "features").rglob("*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in features}
    # the run already has identity and classical: nothing to restore, no new features
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity,classical", "--tasks", TASKS,
                       "--metrics", "psnr,ssim,lpips,fid,kid", "--weights-dir", str(wdir), "--limit", "2", "--quiet"]) == 0
    assert calls == [] and {p: p.stat().st_mtime_ns for p in features} == stamps
    # one more image per type (limit 3) restores only that image, once per method
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity,classical", "--tasks", TASKS,
                       "--metrics", "psnr", "--weights-dir", str(wdir), "--limit", "3", "--quiet"]) == 0
    assert sorted(calls) == sorted([("identity", "noisy"), ("identity", "hazy"), ("classical", "noisy"), ("classical", "hazy")])


def test_killed_run_resumes_without_duplicates(mini_root, tmp_path, monkeypatch):
    from daclip import classical

    real = classical.Classical.restore
    n = {"calls": 0}

    def dying(self, lq, task):
        n["calls"] += 1
        if n["calls"] == 7:
            raise KeyboardInterrupt
        return real(self, lq, task)

    monkeypatch.setattr(classical.Classical, "restore", dying)
    args = ["--dataset", str(mini_root), "--out", str(tmp_path), "--methods", "identity,classical", "--tasks", TASKS,
            "--metrics", "psnr,ssim", "--quiet"]
    assert bench_main(args) == 130
    v = pd.read_parquet(tmp_path / "per_image.parquet")
    assert len(v[v["method"] == "classical"]) == 6 * 2  # six finished images, two metrics
    n["calls"] = -100
    assert bench_main(args) == 0
    assert n["calls"] == -100 + 4  # only the four missing images were restored
    v = pd.read_parquet(tmp_path / "per_image.parquet")
    assert len(v) == 2 * 10 * 2 and not v.duplicated(["method", "weights_id", "id", "metric"]).any()



def test_torchrun_two_ranks_equal_one_process(mini_root, tmp_path, free_port):
    args = ["--dataset", str(mini_root), "--methods", "identity,classical", "--tasks", TASKS, "--metrics", "psnr,ssim",
            "--limit", "3", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                        "127.0.0.1", "--master_port", str(free_port), "-m", "benchmark.run", *args, "--out",
                        str(tmp_path / "two")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert bench_main([*args, "--out", str(tmp_path / "one")]) == 0
    key = ["method", "id", "metric"]
    one = pd.read_parquet(tmp_path / "one/per_image.parquet").sort_values(key).reset_index(drop=True)
    two = pd.read_parquet(tmp_path / "two/per_image.parquet").sort_values(key).reset_index(drop=True)
    assert len(one) == 2 * 6 * 2
    pd.testing.assert_frame_equal(one, two)
    assert not list((tmp_path / "two").glob("*.rank*.parquet"))  # parts merged and removed


def test_markdown_and_latex_exports(full_run):
    s = json.loads((full_run / "summary.json").read_text())
    md = (full_run / "tables.md").read_text()
    tex = (full_run / "tables.tex").read_text()
    best = max(s["tables"]["psnr"][m]["average"] for m in ("identity", "classical"))
    assert f"**{best:.2f}**" in md
    assert f"\\textbf{{{best:.2f}}}" in tex
    assert "| Method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | FID ↓ | KID ↓ |" in md
    assert r"\begin{tabular}" in tex and "Classical (type-aware)" in tex


def _evil_dataset(mini_root, root):
    """A copy of two val pairs, one renamed to a file name containing <script>."""
    df = read_manifest(mini_root)
    rows = df[(df["split"] == "val") & (df["type"] == "noisy")].head(2).to_dict("records")
    evil = "evil<script>alert(1)<_script>.png"
    out = []
    for i, r in enumerate(rows):
        name = evil if i == 0 else r["name"]
        for col in ("lq_path", "gt_path"):
            dest = root / Path(r[col]).parent / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(mini_root / r[col], dest)
            r[col] = (Path(r[col]).parent / name).as_posix()
        r["name"], r["id"] = name, f"val/noisy/{Path(name).stem}"
        out.append(r)
    write_manifest(root, out)
    return evil


def test_report_in_headless_chromium_escapes_names(mini_root, tmp_path):
    chromium_or_skip()
    ds = tmp_path / "ds"
    evil = _evil_dataset(mini_root, ds)
    out = tmp_path / "run"
    assert bench_main(["--dataset", str(ds), "--out", str(out), "--methods", "identity,classical", "--tasks", "noisy",
                       "--metrics", "psnr,ssim", "--quiet"]) == 0
    page = out / "report" / "index.html"
    html = page.read_text()
    assert "evil&lt;script&gt;alert(1)&lt;_script&gt;.png" in html and evil not in html
    size, std, dom = render(page, tmp_path)
    assert size == (1280, 2000) and std > 5  # not a blank page
    assert dom.count("<script") == 1  # only the page's own sorter; the name stayed text
    assert "evil&lt;script&gt;" in dom
    psnr_cells = dom.split('id="table-psnr"')[1].split("</table>")[0]
    assert psnr_cells.count("<td") >= 2 * 2 and any(ch.isdigit() for ch in psnr_cells)


def test_weights_fetch_through_mirror_then_metrics_run(wdir, mini_root, tmp_path):
    """`benchmark.weights fetch` fills an empty folder from a (loopback) mirror; LPIPS then runs."""
    from builders_full_fixtures import Server

    from benchmark.weights import WEIGHTS

    used = [w for w in WEIGHTS.values() if set(w.used_by) & {"lpips", "fid", "kid"}]  # the stand-ins made here
    files = {w.filename: w.path(wdir).read_bytes() for w in used}
    target = tmp_path / "fetched"
    with Server(files, drop_once={"alexnet-owt-7be5be79.pth"}) as srv:  # one transfer breaks midway: resumed
        assert weights_main(["fetch", "--metrics", "lpips,fid,kid", "--weights-dir", str(target),
                             "--mirror", srv.url]) == 0
    for w in used:
        assert w.path(target).read_bytes() == files[w.filename]
    out = tmp_path / "run"
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity", "--tasks", "noisy",
                       "--metrics", "lpips", "--weights-dir", str(target), "--limit", "1", "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert not s["unavailable"] and s["tables"]["lpips"]["identity"]["noisy"] > 0
