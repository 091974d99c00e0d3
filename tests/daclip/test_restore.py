"""daclip.restore: the command on files, folders and globs, the Python API, DA-CLIP types, bad inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import daclip
from builders.io import read_image, save_image
from builders.tasks import DEGRADATIONS
from daclip.restore import main, read_input
from daclip.restore_files import plan_outputs

REPO = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((REPO / "daclip" / "configs" / "tiny.yaml").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # the default --out (restored/<method>) lands here, never in the checkout


def photo(h, w, seed):
    """A smooth picture with noise (something for the restorers to do)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 80 * np.sin(x / 7 + seed), 128 + 80 * np.cos(y / 5), (x + y) % 256], axis=2)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    sizes = {"a.png": (30, 41), "b.jpg": (25, 33), "c.bmp": (40, 40)}
    for k, (name, (h, w)) in enumerate(sizes.items()):
        Image.fromarray(photo(h, w, k)).save(d / name)
    (d / "notes.txt").write_text("not an image")
    return d, sizes


def save_net(path: Path, name: str, config: dict, seed: int = 0, **side):
    from daclip.networks import build_network

    torch.manual_seed(seed)
    net = build_network(name, **config)
    with torch.no_grad():  # non-trivial weights: a zero-initialised branch would hide wiring
        for n, p in net.named_parameters():
            if ".modulation." in n or n.startswith("degra_mlp"):
                p.copy_(torch.randn(p.shape) * 0.5)
    torch.save(net.state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps({"network": name, "config": config, **side}))
    return path


def test_folder_with_a_weight_free_method(folder, tmp_path, capsys):
    d, sizes = folder
    out = tmp_path / "out"
    assert main([str(d), "--method", "classical", "--task", "noisy", "--out", str(out), "--quiet"]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["a.png", "b.png", "c.png"]  # one per image, named after it; notes.txt ignored
    for name, (h, w) in sizes.items():
        got = read_image(out / (Path(name).stem + ".png"))
        assert got.shape == (h, w, 3)
        # The same pixels as the Python API (which reads the file the same way).
        assert np.array_equal(got, daclip.restore(d / name, method="classical", task="noisy").image)
    # ... and as the method itself on the decoded input: NL-means for "noisy".
    from daclip.classical import Classical

    assert np.array_equal(read_image(out / "a.png"), Classical().restore(read_image(d / "a.png"), "noisy"))
    rows = (out / "restore.csv").read_text().splitlines()
    assert rows[0].startswith("output,input,method,task") and len(rows) == 4
    # A re-run skips what exists; --force redoes it.
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    capsys.readouterr()
    assert main([str(d), "--method", "classical", "--task", "noisy", "--out", str(out), "--quiet"]) == 0
    assert "3 of 3 outputs already" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == before
    # Another task is another output: redone, not skipped.
    assert main([str(d / "a.png"), "--method", "classical", "--task", "hazy", "--out", str(out), "--quiet"]) == 0
    assert not np.array_equal(read_image(out / "a.png"), daclip.restore(d / "a.png", method="classical",
                                                                          task="noisy").image)
    assert main([str(d), "--method", "classical", "--task", "hazy", "--out", str(out), "--quiet", "--force"]) == 0
    assert all(p.stat().st_mtime_ns != before[p.name] for p in out.glob("*.png"))


def test_globs_collisions_and_default_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    Image.fromarray(photo(20, 20, 1)).save("in/x.png")
    Image.fromarray(photo(20, 22, 2)).save("in/x.jpg")
    Image.fromarray(photo(18, 20, 3)).save("in/y.png")
    assert main(["in/*.png", "in/*.jpg", "in/x.png", "--method", "classical", "--task", "rainy", "--quiet"]) == 0
    out = tmp_path / "restored" / "classical"
    assert sorted(p.name for p in out.glob("*.png")) == ["x_jpg.png", "x_png.png", "y.png"]
    assert read_image(out / "x_jpg.png").shape == (20, 22, 3) and read_image(out / "x_png.png").shape == (20, 20, 3)
    err = capsys.readouterr().err
    assert "x_jpg.png" in err and "x_png.png" in err  # the renaming is said, never silent
    assert plan_outputs([(Path("a/X.PNG"), "X.PNG"), (Path("b/x.png"), "x.png")])[1].output == "x_png_2.png"


def test_tiny_trained_network_on_a_folder_equals_the_api(folder, tmp_path):
    d, sizes = folder
    weights = save_net(tmp_path / "naf.pth", "nafnet", {"preset": "tiny"})
    out = tmp_path / "out"
    # Tiles of 16 pixels: the large-image path runs too.
    opts = ["--option", "tile=16", "--option", "overlap=4", "--option", "max_pixels=0"]
    assert main([str(d), "--method", "nafnet", "--weights", str(weights), "--out", str(out), "--device", "cpu",
                 "--quiet", *opts]) == 0
    for name, (h, w) in sizes.items():
        got = read_image(out / (Path(name).stem + ".png"))
        assert got.shape == (h, w, 3)
        api = daclip.restore(str(d / name), method="nafnet", weights=str(weights), device="cpu",
                             options={"tile": 16, "overlap": 4, "max_pixels": 0})
        assert np.array_equal(got, api.image) and api.degradation is None


def test_daclip_method_predicts_and_records_the_type(folder, tmp_path, tiny_daclip, capsys):
    from daclip.checkpoint import load_daclip
    from daclip.inference import to_tensor
    from daclip.model import classify, clip_preprocess

    d, sizes = folder
    weights = save_net(tmp_path / "nd.pth", "nafnet-degradation", {"preset": "tiny", "context_dim": 32},
                       daclip_cfg=TINY)
    out = tmp_path / "out"
    assert main([str(d), "--method", "nafnet-degradation", "--weights", f"{weights},{tiny_daclip}",
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    model = load_daclip(tiny_daclip, model_cfg=TINY)
    record = json.loads((out / "restore.json").read_text())["outputs"]
    csv_rows = {r.split(",")[0]: r.split(",") for r in (out / "restore.csv").read_text().splitlines()[1:]}
    for name in sizes:
        img = read_image(d / name)
        idx, probs = classify(model, clip_preprocess(to_tensor(img), image_size=model.image_size))
        want = DEGRADATIONS[int(idx)]
        entry = record[Path(name).stem + ".png"]
        assert entry["degradation"] == want
        assert entry["probability"] == pytest.approx(float(probs[0, int(idx)]), abs=1e-6)
        assert csv_rows[Path(name).stem + ".png"][4] == want
        assert f"{name}: {want}" in printed
    # The API returns the same pixels and the same type.
    api = daclip.restore(d / "a.png", method="nafnet-degradation", weights=str(weights), daclip=str(tiny_daclip),
                         device="cpu")
    assert np.array_equal(api.image, read_image(out / "a.png"))
    assert api.degradation == record["a.png"]["degradation"]
    assert sum(api.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_classical_takes_the_type_predicted_by_daclip(folder, tmp_path, tiny_daclip):
    d, _ = folder
    # A DA-CLIP of the toolkit's tiny config, named by --daclip-model (no config.json beside it).
    r = daclip.restore(d / "b.jpg", method="classical", daclip=str(tiny_daclip), daclip_model="tiny", device="cpu")
    assert r.degradation is not None
    same = daclip.restore(d / "b.jpg", method="classical", task=r.degradation)
    assert np.array_equal(r.image, same.image)


def test_read_input_exif_and_16_bit(tmp_path):
    img = photo(10, 16, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(img).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    assert read_input(tmp_path / "rot.jpg").shape == (16, 10, 3)
    grey = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    got = read_input(tmp_path / "g16.png")
    assert got.shape == (8, 8, 3)
    assert np.array_equal(got[..., 0], (grey >> 8).astype(np.uint8))  # the high byte, as cv2 and the dataset reader
    rgba = np.dstack([photo(8, 8, 1), np.full((8, 8), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(read_input(tmp_path / "alpha.png"), rgba[..., :3])  # a user's photo: alpha dropped


@pytest.mark.parametrize("args,message", [
    (["{d}/nothing.png", "--method", "classical", "--task", "noisy"], "no such file or folder"),
    (["{d}/bad.png", "--method", "classical", "--task", "noisy"], "cannot read image"),
    (["{d}/empty", "--method", "classical", "--task", "noisy"], "no images in this folder"),
    (["{d}/*.gif", "--method", "classical", "--task", "noisy"], "matches no image files"),
    (["{d}/ok.png", "--method", "classical"], "--task TYPE"),
    (["{d}/ok.png", "--method", "classical", "--task", "foggy"], "no classical restorer for type foggy"),
    (["{d}/ok.png", "--method", "classical", "--task", "fog gy"], "type name 'fog gy' is refused"),
    (["{d}/ok.png", "--method", "bogus"], "unknown method 'bogus'"),
    (["{d}/ok.png", "--method", "nafnet"], "--weights OUT/ema.pth"),
    (["{d}/ok.png", "--method", "classical", "--task", "noisy", "--weights", "x.pth"], "uses no weights"),
    (["{d}/ok.png", "--method", "classical", "--task", "noisy", "--option", "tile"], "KEY=VALUE"),
    (["{d}/ok.png", "--method", "classical", "--task", "noisy", "--out", "{d}"], "would overwrite"),
    (["{d}/ok.png", "--method", "classical", "--task", "noisy", "--out", "{d}/ok.png"], "is a file"),
    (["{d}/ok.png", "--method", "classical", "--task", "noisy", "--device", "bogus"], "--device 'bogus' is not a torch device"),
    (["{d}/ok.png", "--method", "classical", "--task", "noisy", "--device", "cuda:7"], "--device cuda:7"),
])
def test_bad_inputs_give_one_error_line(tmp_path, args, message, capsys):
    d = tmp_path
    (d / "bad.png").write_bytes(b"not a png at all")
    (d / "empty").mkdir()
    save_image(d / "ok.png", photo(12, 12, 0))
    assert main([*[a.format(d=d) for a in args], "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (d / "restored").exists()  # nothing written for a command that fails its checks


def test_a_foreign_file_is_not_overwritten(tmp_path, capsys):
    save_image(tmp_path / "in" / "p.png", photo(12, 12, 0))
    out = tmp_path / "out"
    save_image(out / "p.png", np.zeros((5, 5, 3), np.uint8))  # the user's own file, not ours
    assert main([str(tmp_path / "in"), "--method", "classical", "--task", "noisy", "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert read_image(out / "p.png").shape == (5, 5, 3)
    assert main([str(tmp_path / "in"), "--method", "classical", "--task", "noisy", "--out", str(out), "--quiet",
                 "--force"]) == 0
    assert read_image(out / "p.png").shape == (12, 12, 3)


def test_command_line_in_a_fresh_process_imports_no_runner(tmp_path):
    """The command in its own interpreter: it restores, and the library (registry, restore, demo,
    training) never imports benchmark, captioning or reports."""
    save_image(tmp_path / "ok.png", photo(12, 14, 0))
    code = ("import sys; from daclip.restore import main; import daclip.app, daclip.train_ir; "
            "rc = main(['ok.png', '--method', 'classical', '--task', 'snowy', '--quiet']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('benchmark', 'captioning', 'reports'))); "
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "DACLIP_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert read_image(tmp_path / "restored" / "classical" / "ok.png").shape == (12, 14, 3)
