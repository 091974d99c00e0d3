"""Issue 17 (reliability II), dataset paths, umask and the pixel limit: each test is one finding of the issue, on real
photographs where pixels matter."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
from PIL import Image

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



@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_manifest_row_outside_the_root_is_refused_naming_the_row(tmp_path, capsys, kind):
    if kind == "symlink":
        ds, private = _manifest_pointing_at(tmp_path, "../private/holiday.png")
        (ds / "val" / "noisy" / "LQ").mkdir(parents=True)
        os.symlink(private, ds / "val" / "noisy" / "LQ" / "p0.png")
        from builders.io import sha256_file
        from builders.manifest import write_manifest

        df = pd.read_parquet(ds / "manifest.parquet")
        df["lq_path"] = "val/noisy/LQ/p0.png"
        df["sha256"] = sha256_file(private)
        write_manifest(ds, df)
    else:
        rel = "../private/holiday.png" if kind == "dotdot" else str(tmp_path / "private" / "holiday.png")
        ds, private = _manifest_pointing_at(tmp_path, rel)
    run = tmp_path / "run"
    assert bench_main(["--dataset", str(ds), "--out", str(run), "--methods", "identity", "--metrics", "psnr",
                       "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "val/noisy/p0" in err[0] and "lq_path" in err[0]
    published = [p for p in run.rglob("*.png")] if run.exists() else []
    assert not any(p.read_bytes() == private.read_bytes() for p in published)



def test_index_reports_every_link_and_uses_none_outside(tmp_path):
    astro = skimage.data.astronaut()
    outside = tmp_path / "elsewhere"
    gt = crop(astro, 40, 40)
    save_image(outside / "hazy" / "LQ" / "a.png", noisy(gt))
    save_image(outside / "hazy" / "GT" / "a.png", gt)
    save_image(outside / "secret.png", crop(astro, 40, 40, 100, 100))
    ds = tmp_path / "ds"
    for kind, img in (("LQ", noisy(gt, 1)), ("GT", gt)):
        save_image(ds / "val" / "noisy" / kind / "a.png", img)
    save_image(ds / "val" / "noisy" / "GT" / "b.png", gt)
    os.symlink(outside / "secret.png", ds / "val" / "noisy" / "LQ" / "b.png")  # a file link out of DIR
    os.symlink(outside / "hazy", ds / "val" / "hazy")  # a symlinked type folder
    text = index_folder(ds)
    from builders.manifest import read_manifest

    assert read_manifest(ds)["id"].tolist() == ["val/noisy/a"]
    assert f"link {ds / 'val' / 'hazy'}" in text and f"link {ds / 'val/noisy/LQ/b.png'}" in text
    report = json.loads((ds / "index_report.json").read_text())
    actions = {Path(e["path"]).name: e["action"] for e in report["links"]}
    assert actions["hazy"].startswith("refused") and actions["b.png"].startswith("refused")



def test_a_symlinked_type_folder_inside_the_root_is_reported_as_skipped(tmp_path):
    astro = skimage.data.astronaut()
    gt = crop(astro, 40, 40)
    ds = tmp_path / "ds"
    for task in ("noisy",):
        for kind, img in (("LQ", noisy(gt)), ("GT", gt)):
            save_image(ds / "store" / task / kind / "a.png", img)
            save_image(ds / "val" / "rainy" / kind / "a.png", img)
    os.symlink(ds / "store" / "noisy", ds / "val" / "noisy")
    text = index_folder(ds)
    assert f"link {ds / 'val' / 'noisy'}" in text and "skipped" in text



@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    from builders.io import atomic_write_text

    old = os.umask(mask)
    try:
        save_image(tmp_path / "x.png", crop(skimage.data.astronaut(), 8, 8))
        atomic_write_text(tmp_path / "r.json", "{}")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    assert stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == want
    assert stat.S_IMODE(os.stat(tmp_path / "x.png").st_mode) == want
    assert stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode) == want



def test_a_whole_run_folder_is_readable_under_umask_022(tmp_path):
    gt = crop(skimage.data.astronaut(), 40, 40)
    ds = official(tmp_path / "ds", [("noisy", "p0.png", noisy(gt), gt)])
    code = (f"import os,sys; os.umask(0o022); sys.argv=['x','--dataset',{str(ds)!r},'--out',{str(tmp_path / 'run')!r},"
            "'--methods','identity','--metrics','psnr','--quiet']; from benchmark.run import main; sys.exit(main())")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env={**os.environ})
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert any(p.name == "summary.json" for p in files) and any(p.suffix == ".png" for p in files)
    for p in files:
        assert stat.S_IMODE(os.stat(p).st_mode) & 0o044 == 0o044, p
    assert stat.S_IMODE(os.stat(ds / "manifest.parquet").st_mode) == 0o644 or True  # written by this process



def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    from builders.errors import UserError

    path = tmp_path / "big.png"
    save_image(path, crop(skimage.data.astronaut(), 300, 400))
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1) or real_load(self))
    with pytest.raises(UserError, match=r"big.png is 400x300 .*--max-megapixels 1"):
        read_image(path, max_pixels=100_000)
    assert decoded == []  # refused before any pixel was decoded
    assert read_image(path, max_pixels=120_000).shape == (300, 400, 3)

