"""Issue 18: each decision that several commands made differently is made in one place.

Every test here is a case where the copies used to disagree: the weights folder with only
DACLIP_WEIGHTS_DIR set, a typed network option, and .webp files / x.png beside x.jpg in the
three commands that read folders of images.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from builders import manifest as mf
from builders.errors import UserError
from builders.io import read_image, save_image, sha256_file
from builders.naming import IMAGE_SUFFIXES, unique_stems
from builders.options import parse_options, parse_value

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")


def photo(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def only_weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights-dir"
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(folder))
    monkeypatch.delenv("DACLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    return folder


# -- the weights folder ------------------------------------------------------------------------

def test_only_daclip_weights_dir_set_methods_and_metrics_use_one_folder(only_weights_dir, capsys):
    from benchmark.weights import main as weights_main, unavailable_reason
    from builders.weights_folder import weights_dir
    import daclip.methods  # noqa: F401  (registers the neural methods)
    from daclip.registry import create_method
    from daclip.registry import MethodUnavailable

    assert weights_dir() == only_weights_dir
    # The metric: its missing file is looked for in that folder.
    assert str(only_weights_dir / "torch" / "hub" / "pyiqa") in unavailable_reason("lpips", weights_dir())
    # The method: its released file too (offline: the error says where it would be).
    with pytest.raises(MethodUnavailable, match=str(only_weights_dir / "weblzw--daclip-uir-ViT-B-32-irsde")):
        create_method("ours").prepare("cpu")
    assert weights_main(["list", "--methods", "ours"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"weights folder: {only_weights_dir}"
    from benchmark.weights import WEIGHTS

    # every metric file (LPIPS, FID and the no-reference metrics') + 2 method files
    assert all(str(only_weights_dir) in line for line in out[1:]) and len(out) == 1 + len(WEIGHTS) + 2
    assert len(WEIGHTS) == 8


def test_weights_list_in_a_fresh_process_shows_the_folder(only_weights_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DACLIP_WEIGHTS", None)
    r = subprocess.run([sys.executable, "-m", "benchmark.weights", "list"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"weights folder: {only_weights_dir}"


def test_weights_dir_wins_over_daclip_weights(tmp_path, monkeypatch):
    from builders.weights_folder import weights_dir

    monkeypatch.setenv("DACLIP_WEIGHTS", str(tmp_path / "b"))
    assert weights_dir() == tmp_path / "b"
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "a"))
    assert weights_dir() == tmp_path / "a"  # read at call time, in this order
    assert weights_dir(tmp_path / "c") == tmp_path / "c"


# -- KEY=VALUE options -------------------------------------------------------------------------

def test_option_values_are_typed_once():
    assert parse_options(["width=16", "ratio=0.5", "preset=tiny", "flag=true", "dims=[1, 2]", "x=yes"]) == {
        "width": 16, "ratio": 0.5, "preset": "tiny", "flag": True, "dims": [1, 2], "x": "yes"}
    assert parse_value("2024-01-01") == "2024-01-01" and parse_value("") == ""
    with pytest.raises(UserError, match="--net-option expects KEY=VALUE, got 'width'"):
        parse_options(["width"], "--net-option")


def _nafnet_weights(path: Path, **cfg) -> Path:
    from daclip.networks import build_network

    torch.manual_seed(0)
    torch.save(build_network("nafnet", preset="tiny", **cfg).state_dict(), path)
    return path


def test_restore_option_width_16_builds_a_width_16_network(tmp_path, monkeypatch):
    import daclip

    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    weights = _nafnet_weights(tmp_path / "naf16.pth", width=16)
    save_image(tmp_path / "x.png", photo(24, 24, 1))
    r = daclip.Restorer("nafnet", weights=str(weights), options=parse_options(["preset=tiny", "width=16"]))
    assert r.method.net.intro.out_channels == 16
    assert r(tmp_path / "x.png").image.shape == (24, 24, 3)


@pytest.mark.parametrize("value,message", [("abc", "option width='abc': expected int"),
                                           ("8", "size mismatch|Missing|Unexpected|shape")])
def test_restore_option_width_wrong_is_one_error_line(tmp_path, value, message):
    weights = _nafnet_weights(tmp_path / "naf16.pth", width=16)
    save_image(tmp_path / "x.png", photo(24, 24, 1))
    r = subprocess.run([sys.executable, "-m", "daclip.restore", str(tmp_path / "x.png"), "--method", "nafnet",
                        "--weights", str(weights), "--option", "preset=tiny", "--option", f"width={value}",
                        "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO), "DACLIP_OFFLINE": "1"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    if value == "abc":
        assert message in r.stderr


# -- image suffixes and colliding names -----------------------------------------------------------

def test_one_naming_rule():
    assert unique_stems(["x.png", "x.jpg", "y.webp"]) == ["x_png", "x_jpg", "y"]
    assert unique_stems(["X.PNG", "x.png"]) == ["X_png", "x_png_2"]
    # A plain name that is free is never taken by a renamed one.
    assert unique_stems(["x.png", "x.jpg", "x_png.bmp"]) == ["x_png_2", "x_jpg", "x_png"]
    assert unique_stems(["a b.png", "a_b.jpg", "c+d.png"], safe=True) == ["a_b_png", "a_b_jpg", "c_d"]
    assert unique_stems(["val/n/x.png", "val/m/x.jpg"]) == ["val/n/x", "val/m/x"]  # other folders: no clash
    assert {".webp", ".ppm", ".png", ".jpg"} <= set(IMAGE_SUFFIXES)


@pytest.fixture
def three_photos(tmp_path):
    """x.png beside x.jpg, and a .webp: the cases the three commands used to treat apart."""
    d = tmp_path / "photos"
    d.mkdir()
    imgs = {"x.png": photo(40, 48, 1), "x.jpg": photo(40, 48, 2), "y.webp": photo(40, 48, 3)}
    for name, img in imgs.items():
        Image.fromarray(img).save(d / name, **({"lossless": True} if name.endswith(".webp") else {}))
    return d, {name: read_image(d / name) for name in imgs}


def test_build_images_takes_webp_and_both_x(three_photos, tmp_path):
    from builders.build import main as build_main

    d, _ = three_photos
    assert build_main(["--images", str(d), "--root", str(tmp_path / "ds"), "--train-per-type", "3",
                       "--val-per-type", "0", "--crop", "32", "--tasks", "noisy", "--quiet"]) == 0
    df = mf.read_manifest(tmp_path / "ds")
    assert set(df["source"]) == {"folder:x.png", "folder:x.jpg", "folder:y.webp"}
    stems = {name.rsplit("_", 1)[0] for name in df["name"]}
    assert stems == {"x_png", "x_jpg", "y"}


def test_restore_takes_webp_and_both_x(three_photos, tmp_path):
    from daclip.restore import main as restore_main

    d, imgs = three_photos
    out = tmp_path / "restored"
    assert restore_main([str(d), "--method", "classical", "--task", "noisy", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["x_jpg.png", "x_png.png", "y.png"]


def test_benchmark_run_takes_webp_and_both_x(three_photos, tmp_path):
    from benchmark.run import main as bench_main

    d, imgs = three_photos
    root = tmp_path / "ds"
    rows = []
    for name, img in imgs.items():
        for kind in ("LQ", "GT"):
            (root / "val" / "noisy" / kind).mkdir(parents=True, exist_ok=True)
            (root / "val" / "noisy" / kind / name).write_bytes((d / name).read_bytes())
        rows.append({"id": f"val/noisy/{name.replace('.', '-')}", "type": "noisy", "split": "val", "name": name,
                     "lq_path": f"val/noisy/LQ/{name}", "gt_path": f"val/noisy/GT/{name}", "source": "test",
                     "licence": "test", "width": 48, "height": 40, "parameters": "{}",
                     "sha256": sha256_file(d / name), "gt_sha256": sha256_file(d / name)})
    mf.write_manifest(root, rows)
    run = tmp_path / "run"
    assert bench_main(["--dataset", str(root), "--methods", "identity", "--metrics", "psnr", "--out", str(run),
                       "--quiet"]) == 0
    o = pd.read_parquet(run / "outputs.parquet").set_index("id")["output_path"]
    assert sorted(Path(p).name for p in o) == ["x_jpg.png", "x_png.png", "y.png"]
    for name, img in imgs.items():  # identity: each output is its own input, none overwritten
        assert np.array_equal(read_image(run / o[f"val/noisy/{name.replace('.', '-')}"]), img)


# -- Table 1, once -----------------------------------------------------------------------------

def test_table1_is_stored_once_and_the_recipes_add_up_to_it():
    from builders.full_report import paper_counts
    from builders.sources import all_recipes, get_recipe
    from builders.tasks import DEGRADATIONS, table1
    from reports.paper import paper_data

    assert "table1" not in paper_data()
    summed: dict = {}
    for r in all_recipes():
        for k, n in r.expected.items():
            summed[k] = summed.get(k, 0) + n
    assert summed == paper_counts()
    assert {t: n for (t, s), n in get_recipe("daclip-val").expected.items()} == table1()["test"]
    assert sum(table1()["test"][t] for t in DEGRADATIONS) == 3490
