"""Issue 17 (reliability II), the benchmark runner: each test is one finding of the issue, on real
photographs where pixels matter."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from benchmark.metrics import get_metric
from benchmark.run import main as bench_main
from builders.index import index_folder
from builders.io import read_image, save_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")


def crop(img, h, w, y=0, x=0):
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def noisy(gt, seed=0, sigma=20):
    rng = np.random.default_rng(seed)
    return np.clip(gt.astype(np.int16) + rng.normal(0, sigma, gt.shape), 0, 255).astype(np.uint8)


def official(root: Path, pairs) -> Path:
    """val/<type>/{LQ,GT}/<name> files, then --index (the repro's way)."""
    for task, name, lq, gt in pairs:
        for kind, img in (("LQ", lq), ("GT", gt)):
            save_image(root / "val" / task / kind / name, img)
    index_folder(root)
    return root


def psnr_of(run: Path, method="identity", name="p0.png") -> float:
    s = json.loads((run / "summary.json").read_text())
    vals = [r for r in s["images"] if r["name"] == name and r["method_name"] == method]
    assert len(vals) == 1
    return float(vals[0]["values"]["psnr"])


def _manifest_pointing_at(tmp_path, rel_lq: str):
    from builders.io import sha256_file
    from builders.manifest import write_manifest

    astro = skimage.data.astronaut()
    private = tmp_path / "private" / "holiday.png"
    save_image(private, crop(astro, 48, 48, 200, 200))
    ds = tmp_path / "ds"
    gt = crop(astro, 48, 48, 10, 10)
    save_image(ds / "val" / "noisy" / "GT" / "p0.png", gt)
    lq_file = ds / rel_lq if not os.path.isabs(rel_lq) else Path(rel_lq)
    write_manifest(ds, [{"id": "val/noisy/p0", "type": "noisy", "split": "val", "name": "p0.png",
                         "lq_path": rel_lq, "gt_path": "val/noisy/GT/p0.png", "source": "t", "licence": "t",
                         "width": 48, "height": 48, "parameters": "{}", "sha256": sha256_file(lq_file),
                         "gt_sha256": sha256_file(ds / "val/noisy/GT/p0.png")}])
    return ds, private


def _tiny_nafnet(path: Path) -> str:
    import torch

    from daclip.networks import build_network

    torch.manual_seed(0)
    torch.save(build_network("nafnet", preset="tiny").state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps({"network": "nafnet", "config": {"preset": "tiny"}}))
    return str(path)


def _photos(folder: Path, n: int = 3) -> list[Path]:
    astro = skimage.data.astronaut()
    paths = []
    for i in range(n):
        p = folder / f"i{i:02d}.png"
        save_image(p, (crop(astro, 40, 48, 30 * i, 40 * i) // 3).astype(np.uint8))  # dark: low-light
        paths.append(p)
    return paths


_KILL_AFTER_THIRD = """
import os, signal, sys
import builders.io as bio
real, n = bio.save_image, [0]
def save(path, img):
    n[0] += 1
    data = real(path, img)
    if n[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would, right after the third output
    return data
bio.save_image = save
from daclip.restore import main
sys.exit(main(sys.argv[1:]))
"""



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

