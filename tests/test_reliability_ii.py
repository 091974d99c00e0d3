"""Issue 17 (reliability II): no stale score, no file outside the dataset, bounded memory,
readable outputs. Each test is one finding of the issue, on real photographs where pixels matter."""

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

from benchmark.metrics import get_metric
from benchmark.run import main as bench_main
from builders.index import index_folder
from builders.io import read_image, save_image

ROOT = Path(__file__).parents[1]


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


# ------------------------------------------------------------------ 1. no stale score


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


# ------------------------------------------------------------------ 2. files stay inside the root


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


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_manifest_row_outside_the_root_is_refused_naming_the_row(tmp_path, capsys, kind):
    if kind == "symlink":
        ds, private = _manifest_pointing_at(tmp_path, "../private/holiday.png")
        (ds / "val" / "noisy" / "LQ").mkdir(parents=True)
        os.symlink(private, ds / "val" / "noisy" / "LQ" / "p0.png")
        from builders.io import sha256_file
        from builders.manifest import read_manifest, write_manifest

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


# ------------------------------------------------------------------ 4. files follow the umask


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


# ------------------------------------------------------------------ 3. pixel limit


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


def test_benchmark_refuses_an_image_over_the_limit_and_takes_it_when_raised(tmp_path, capsys):
    gt = crop(skimage.data.astronaut(), 300, 400)
    ds = official(tmp_path / "ds", [("noisy", "p0.png", noisy(gt), gt)])
    args = ["--dataset", str(ds), "--methods", "identity", "--metrics", "psnr", "--quiet"]
    assert bench_main([*args, "--out", str(tmp_path / "a"), "--max-megapixels", "0.1"]) == 2
    assert "over the limit of 0.1 megapixels" in capsys.readouterr().err
    assert bench_main([*args, "--out", str(tmp_path / "b"), "--max-megapixels", "0.2"]) == 0


# ------------------------------------------------------------------ 7. 1x1 images


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


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (2, 3)])
def test_classical_restores_tiny_images_for_every_type(shape):
    from builders.tasks import DEGRADATIONS
    from daclip.classical import Classical

    img = crop(skimage.data.astronaut(), *shape, 200, 200)
    for task in DEGRADATIONS:
        out = Classical().restore(img, task)
        assert out.dtype == np.uint8 and out.shape == img.shape, task


def test_classical_streams_large_images_in_tiles_with_the_whole_image_result(monkeypatch):
    """Above STREAM_PIXELS the image goes tile by tile; local filters give the same pixels."""
    from daclip import classical

    img = skimage.data.astronaut()
    whole = {t: classical.Classical().restore(img, t) for t in ("motion-blurry", "rainy", "low-light", "noisy")}
    monkeypatch.setattr(classical, "STREAM_PIXELS", 100 * 100)
    monkeypatch.setattr(classical, "TILE", 120)
    calls = []
    real = classical.to_float
    monkeypatch.setattr(classical, "to_float", lambda a: calls.append(a.shape) or real(a))
    for task, ref in whole.items():
        calls.clear()
        out = classical.Classical().restore(img, task)
        big = [s for s in calls if s[0] * s[1] > (120 + 2 * 16) ** 2]
        assert len(calls) >= 25 and len(big) == (1 if task == "noisy" else 0)  # noisy: the noise-level view
        if task == "low-light":  # the mean is summed in integers: the gamma may differ in the last bits
            assert np.abs(out.astype(int) - ref).max() <= 1 and (out == ref).mean() > 0.999
        else:
            assert np.array_equal(out, ref), task
    for task in ("hazy", "jpeg-compressed", "uncompleted"):  # global or iterative: a close approximation
        out = classical.Classical().restore(img, task)
        assert out.shape == img.shape and out.dtype == np.uint8


# ------------------------------------------------------------------ 3. networks stream large images


def _tiny_nafnet(path: Path) -> str:
    import torch

    from daclip.networks import build_network

    torch.manual_seed(0)
    torch.save(build_network("nafnet", preset="tiny").state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps({"network": "nafnet", "config": {"preset": "tiny"}}))
    return str(path)


@pytest.mark.usefixtures("one_thread")
def test_nafnet_streams_rows_of_tiles_with_the_pixels_of_tiled_apply(tmp_path, monkeypatch):
    import torch

    from daclip import inference
    from daclip.inference import Tiling, apply_fitted, tiled_apply, to_tensor
    from daclip.registry import create_method

    img = crop(skimage.data.astronaut(), 150, 170, 50, 60)
    m = create_method("nafnet", weights=_tiny_nafnet(tmp_path / "n.pth"), tile=48, overlap=16, max_pixels=0)
    m.prepare("cpu")
    run, fit = m._call(), m.fit
    with torch.no_grad():
        ref = tiled_apply(lambda x: apply_fitted(run, [x], fit), [to_tensor(img)], Tiling(48, 16, 0))
    ref = inference.to_uint8(ref)
    seen = []
    real = inference.to_tensor
    monkeypatch.setattr(inference, "to_tensor", lambda a, d="cpu": seen.append(a.shape) or real(a, d))
    out = m.restore(img, "noisy")
    assert np.array_equal(out, ref)
    assert seen and max(s[0] * s[1] for s in seen) <= 48 * 48  # never the whole image in float


def test_an_option_or_weights_file_a_method_does_not_use_is_refused_by_name(tmp_path, capsys):
    from daclip.restore import main as restore_main

    w = _tiny_nafnet(tmp_path / "n.pth")
    src = tmp_path / "in.png"
    save_image(src, crop(skimage.data.astronaut(), 32, 32))
    base = [str(src), "--method", "nafnet", "--device", "cpu", "--quiet"]
    assert restore_main([*base, "--weights", w, "--option", "steps=5", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "steps" in err[0] and "nafnet" in err[0]
    other = tmp_path / "other.pt"
    other.write_bytes(b"x")
    assert restore_main([*base, "--weights", f"{w},{other}", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(other) in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------------ 5-8. daclip.restore


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


def test_restore_resumes_after_sigkill(tmp_path):
    from daclip.restore import main as restore_main

    _photos(tmp_path / "in", 5)
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), "--method", "classical", "--task", "low-light", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _KILL_AFTER_THIRD, *args], env=env, capture_output=True, text=True)
    assert proc.returncode == -9
    assert len(list(out.glob("*.png"))) == 3
    proc = subprocess.run([sys.executable, "-m", "daclip.restore", *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 of 5 outputs already" in proc.stderr  # the third was begun, not recorded: redone
    record = json.loads((out / "restore.json").read_text())["outputs"]
    assert sorted(record) == [f"i{i:02d}.png" for i in range(5)]
    import daclip

    for i in range(5):
        want = daclip.restore(tmp_path / "in" / f"i{i:02d}.png", method="classical", task="low-light").image
        assert np.array_equal(read_image(out / f"i{i:02d}.png"), want)
    assert not (out / ".restore.journal").exists()


def test_restore_never_takes_its_own_outputs_as_inputs(tmp_path, monkeypatch, capsys):
    from daclip.restore import main as restore_main

    photos = tmp_path / "photos"
    _photos(photos, 2)
    monkeypatch.chdir(photos)
    for _ in range(3):
        assert restore_main([".", "-r", "--method", "classical", "--task", "low-light", "--quiet"]) == 0
    made = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png"))
    assert made == ["i00.png", "i01.png", "restored/classical/i00.png", "restored/classical/i01.png"]
    # an earlier run's output folder under another name is not searched either
    assert restore_main([".", "-r", "--method", "classical", "--task", "noisy", "--out", "den", "--quiet"]) == 0
    assert sorted(p.relative_to(photos / "den").as_posix() for p in (photos / "den").rglob("*.png")) == \
        ["i00.png", "i01.png"]
    capsys.readouterr()
    assert restore_main([str(photos), "--method", "classical", "--task", "low-light", "--out", str(photos)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the input folder" in err[0]
    assert not list(photos.glob("*_png*.png"))


def test_restore_walks_a_symlink_loop_once(tmp_path):
    photos = _photos(tmp_path / "in", 2) + _photos(tmp_path / "in" / "sub", 1)
    (tmp_path / "in" / "sub" / "i00.png").rename(tmp_path / "in" / "sub" / "s00.png")
    os.symlink(".", tmp_path / "in" / "self")  # two loops: glob's ** would branch twice per level
    os.symlink("..", tmp_path / "in" / "sub" / "back")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The timeout only stops a hang (the walk takes a second once each folder is visited once).
    proc = subprocess.run([sys.executable, "-m", "daclip.restore", str(tmp_path / "in" / "**" / "*.png"),
                           "--recursive", "--method", "classical", "--task", "low-light", "--out",
                           str(tmp_path / "out"), "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["i00.png", "i01.png", "s00.png"]


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_restore_refuses_multi_frame_files(tmp_path, capsys, fmt):
    from daclip.restore import main as restore_main

    astro = skimage.data.astronaut()
    frames = [Image.fromarray(crop(astro, 40, 40, 50 * i, 50 * i)) for i in range(3)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    assert restore_main([str(path), "--method", "classical", "--task", "noisy", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "3 frames" in err[0] and str(path) in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_restore_catches_a_truncated_file_before_writing_anything(tmp_path, capsys, fmt):
    from daclip.restore import main as restore_main

    _photos(tmp_path / "in", 2)
    import io

    buf = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(buf, format=fmt)
    (tmp_path / "in" / f"z.{fmt.lower()}").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    code = restore_main([str(tmp_path / "in"), "--method", "classical", "--task", "noisy", "--out",
                         str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"z.{fmt.lower()}" in err[0] and "truncated" in err[0].lower()
    assert not (tmp_path / "o").exists()


def test_restore_a_1x1_image_with_every_classical_type(tmp_path):
    from builders.tasks import DEGRADATIONS
    from daclip.restore import main as restore_main

    src = tmp_path / "dot.png"
    save_image(src, crop(skimage.data.astronaut(), 1, 1, 200, 200))
    for task in DEGRADATIONS:
        out = tmp_path / task
        assert restore_main([str(src), "--method", "classical", "--task", task, "--out", str(out), "--quiet"]) == 0
        assert read_image(out / "dot.png").shape == (1, 1, 3)


def test_restore_pixel_limit_refuses_from_the_header_and_can_be_raised(tmp_path, capsys):
    from daclip.restore import main as restore_main

    src = tmp_path / "big.png"
    save_image(src, crop(skimage.data.astronaut(), 300, 400))
    args = [str(src), "--method", "classical", "--task", "low-light", "--quiet"]
    assert restore_main([*args, "--out", str(tmp_path / "a"), "--max-megapixels", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "big.png is 400x300" in err[0] and "--max-megapixels" in err[0]
    assert not (tmp_path / "a").exists()
    assert restore_main([*args, "--out", str(tmp_path / "b"), "--max-megapixels", "0.12"]) == 0


def test_demo_refuses_an_oversized_upload_with_a_message(tmp_path):
    from builders.errors import UserError
    from daclip.app import DemoConfig, restore_for_demo

    src = tmp_path / "upload.png"
    save_image(src, crop(skimage.data.astronaut(), 300, 400))
    with pytest.raises(UserError, match="upload.png is 400x300"):
        restore_for_demo(DemoConfig(device="cpu", max_pixels=100_000), str(src), "classical", "noisy")
    out, _ = restore_for_demo(DemoConfig(device="cpu"), str(src), "classical", "noisy")
    import daclip

    assert np.array_equal(out, daclip.restore(src, method="classical", task="noisy").image)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["nafnet", "promptir", "restormer", "airnet", "irsde"])
def test_a_1x1_image_works_in_every_network_method(tmp_path, name):
    import torch

    from daclip.networks import build_network
    from daclip.registry import create_method

    torch.manual_seed(0)
    path = tmp_path / f"{name}.pth"
    torch.save(build_network(name, preset="tiny").state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps({"network": name, "config": {"preset": "tiny"}}))
    m = create_method(name, weights=str(path), **({"steps": 2} if name == "irsde" else {}))
    m.prepare("cpu")
    out = m.restore(crop(skimage.data.astronaut(), 1, 1, 200, 200), "noisy")
    assert out.shape == (1, 1, 3) and out.dtype == np.uint8
