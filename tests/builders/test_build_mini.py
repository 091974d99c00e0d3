"""The offline mini set: layout, manifest, determinism, idempotence, CLI errors."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from builders import manifest as mf
from builders.build import main as build_main
from builders.mini import build_mini
from builders.synth import synthesize
from builders.tasks import DEGRADATIONS


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_manifest(mini_root):
    df = pd.read_parquet(mini_root / "manifest.parquet")
    assert list(df.columns[: len(mf.COLUMNS)]) == list(mf.COLUMNS)
    assert df["id"].is_unique
    counts = df.groupby(["split", "type"]).size()
    for t in DEGRADATIONS:
        assert counts[("train", t)] == 16 and counts[("val", t)] == 5
    for row in df.itertuples():
        lq, gt = mini_root / row.lq_path, mini_root / row.gt_path
        assert row.lq_path == f"{row.split}/{row.type}/LQ/{row.name}"
        assert row.gt_path == f"{row.split}/{row.type}/GT/{row.name}"
        assert hashlib.sha256(lq.read_bytes()).hexdigest() == row.sha256
        assert hashlib.sha256(gt.read_bytes()).hexdigest() == row.gt_sha256
        with Image.open(lq) as a, Image.open(gt) as b:
            assert a.size == b.size == (row.width, row.height) == (128, 128)
            assert a.mode == b.mode == "RGB"
    # val photographs are not used for training
    src = df.groupby("split")["source"].apply(set)
    assert not (src["train"] & src["val"])


def test_lq_is_the_recorded_degradation_of_gt(mini_root):
    df = pd.read_parquet(mini_root / "manifest.parquet")
    for t in DEGRADATIONS:
        row = df[(df["type"] == t) & (df["split"] == "val")].iloc[0]
        params = json.loads(row["parameters"])
        gt = np.asarray(Image.open(mini_root / row["gt_path"]))
        again = synthesize(t, gt, params["seed"])
        assert np.array_equal(again.lq, np.asarray(Image.open(mini_root / row["lq_path"])))
        assert params["generator"] == t


def test_two_builds_are_byte_identical(mini_root, tmp_path):
    build_mini(tmp_path / "b", progress=False)
    assert _tree_digest(tmp_path / "b") == _tree_digest(mini_root)


def test_rebuild_does_no_work_and_force_rebuilds(tmp_path):
    root = tmp_path / "m"
    assert build_main(["--preset", "mini", "--root", str(root), "--tasks", "noisy,hazy", "--quiet"]) == 0
    lq = root / "val/noisy/LQ/astronaut_000.png"
    stamp = lq.stat().st_mtime_ns
    s = build_mini(root, progress=False)  # all ten types now: the two built ones are skipped
    assert s.skipped == 2 * 21 and s.generated == 8 * 21
    s = build_mini(root, progress=False)
    assert s.generated == 0 and s.skipped == 210 and lq.stat().st_mtime_ns == stamp
    # a damaged file is detected and rebuilt
    lq.write_bytes(b"broken")
    assert build_mini(root, progress=False).generated == 1
    assert build_mini(root, force=True, progress=False).generated == 210


def test_interrupted_build_keeps_finished_pairs(tmp_path, monkeypatch):
    import builders.synthset as ss

    calls = {"n": 0}
    real = ss.synthesize

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ss, "synthesize", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_mini(tmp_path, progress=False)
    assert len(mf.read_manifest(tmp_path)) == 29
    monkeypatch.setattr(ss, "synthesize", real)
    s = build_mini(tmp_path, progress=False)
    assert s.skipped == 29 and s.generated == 210 - 29
    assert len(mf.read_manifest(tmp_path)) == 210


def test_images_folder(tmp_path):
    import skimage.data

    src = tmp_path / "photos"
    src.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera"):
        img = getattr(skimage.data, name)()
        Image.fromarray(img).save(src / f"{name}.jpg", quality=95)
    (src / "notes.txt").write_text("not an image")
    rc = build_main(["--images", str(src), "--root", str(tmp_path / "out"), "--train-per-type", "2",
                     "--val-per-type", "1", "--crop", "64", "--quiet"])
    assert rc == 0
    df = mf.read_manifest(tmp_path / "out")
    assert len(df) == 30 and set(df["type"]) == set(DEGRADATIONS)
    assert set(df[df["split"] == "val"]["source"]) == {"folder:rocket.jpg"}  # every 5th (sorted)
    assert (df["width"] == 64).all()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "builders.build", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


@pytest.mark.parametrize("args,needle", [
    (["--preset", "mini", "--tasks", "foggy"], "unknown degradation type 'foggy'"),
    ([], "choose what to build"),
    (["--all", "--only", "noisy"], "--all and --only exclude each other"),
    (["--images", "/nonexistent/dir", "--root", "x"], "not a folder: /nonexistent/dir"),
    (["--preset", "mini", "--crop", "-3"], "--crop must be >= 0"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, args, needle):
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_unreadable_image_is_named(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    r = _cli("--images", str(src), "--root", str(tmp_path / "o"))
    assert r.returncode == 2 and "broken.png" in r.stderr and "Traceback" not in r.stderr
