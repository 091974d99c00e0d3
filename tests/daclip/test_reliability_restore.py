"""Issue 17 (reliability II), daclip.restore, the demo and the methods: each test is one finding of the issue, on real
photographs where pixels matter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from builders.io import read_image, save_image

from reliability_fixtures import offline, crop, _tiny_nafnet, _photos, _KILL_AFTER_THIRD  # noqa: F401 (offline: an autouse fixture)

ROOT = Path(__file__).resolve().parents[2]


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


def test_restore_resumes_after_sigkill(tmp_path):

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
    _photos(tmp_path / "in", 2)
    _photos(tmp_path / "in" / "sub", 1)
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

