"""builders.build --preset 3d|5d|cdd11 from replicas of each published layout (--from-dir)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from builders.build import main as build_main
from builders.io import centre_crop
from builders.manifest import read_manifest
from builders.protocols import get_protocol
from builders.sources import base as recipes_base

import protocol_fixtures as fx


@pytest.fixture
def cbsd68_digests(monkeypatch):
    """Register the fixture's own per-file digests in place of the published CBSD68 ones."""
    def use(digests):
        r = recipes_base.RECIPES.get("cbsd68-test")
        monkeypatch.setitem(recipes_base.RECIPES._entries, "cbsd68-test", replace(r, member_digests=digests))
    return use


def _rows(root: Path, task: str) -> list[dict]:
    df = read_manifest(root)
    return df[df["type"] == task].sort_values("name").to_dict("records")


def _build(argv: list[str]) -> int:
    return build_main([*argv, "--quiet"])


def test_3d_complete_fixture_counts_pairs_and_crop(tmp_path, cbsd68_digests, capsys):
    src = tmp_path / "downloads" / "deep" / "er"  # found anywhere below --from-dir
    pairs = fx.sots(src, n_gt=492, shared=8)  # 500 hazy over 492 GT, as published
    fx.zip_folder(fx.rain100l(tmp_path / "stage", "prenet"), src / "Rain100L.zip")  # the archive form
    cbsd68_digests(fx.cbsd68(src))
    root = tmp_path / "3d"
    assert _build(["--preset", "3d", "--from-dir", str(tmp_path / "downloads"), "--root", str(root)]) == 0
    report = json.loads((root / "build_report.json").read_text())
    assert report["protocol"]["found"] == get_protocol("3d").counts()
    assert report["protocol"]["count_mismatch"] == [] and report["protocol"]["noise"] == "seeded"
    assert "8 GT shared by several hazy images" in " ".join(report["recipes"]["sots-outdoor"]["layout"])
    assert "Rain100L copy: prenet" in " ".join(report["recipes"]["rain100l"]["layout"])
    out = capsys.readouterr().out
    assert "noise seeded; crop 16; convention promptir" in out
    # SOTS: every hazy image with the GT its prefix names; one GT serves two hazy images.
    sots = _rows(root, "sots")
    assert len(sots) == 500
    for r in sots[:40]:
        stem = Path(r["name"]).stem
        gt = fx.read(src / "SOTS" / "outdoor" / "gt" / f"{pairs[stem]}.png")
        hazy = fx.read(src / "SOTS" / "outdoor" / "hazy" / f"{stem}.jpg")
        assert np.array_equal(fx.read(root / r["gt_path"]), centre_crop(gt, 16))
        assert np.array_equal(fx.read(root / r["lq_path"]), centre_crop(hazy, 16))
        assert (r["width"], r["height"]) == (32, 16)
    shared = [r for r in sots if Path(r["name"]).stem.startswith("0001_")]
    assert len(shared) == 2 and shared[0]["gt_sha256"] == shared[1]["gt_sha256"]
    # Rain100L by the PReNet index.
    stage = tmp_path / "stage" / "Rain100L"
    for r in _rows(root, "rain100l")[::17]:
        i = int(Path(r["name"]).stem.split("-")[1])
        assert np.array_equal(fx.read(root / r["lq_path"]), centre_crop(fx.read(stage / "rainy" / f"rain-{i:03d}.png"), 16))
        assert np.array_equal(fx.read(root / r["gt_path"]), centre_crop(fx.read(stage / f"norain-{i:03d}.png"), 16))
    # CBSD68: the clean image cropped is the GT of all three sigmas; the noise is recorded.
    for task, sigma in (("cbsd68_sigma15", 15), ("cbsd68_sigma50", 50)):
        r = _rows(root, task)[5]
        clean = centre_crop(fx.read(src / "CBSD68-dataset" / "CBSD68" / "original_png" / "0005.png"), 16)
        assert np.array_equal(fx.read(root / r["gt_path"]), clean)
        params = json.loads(r["parameters"])
        assert params["noise"] == "seeded" and params["sigma"] == sigma and params["protocol"] == "3d"
        resid = fx.read(root / r["lq_path"]).astype(float) - clean
        assert abs(resid.std() - sigma) < 0.35 * sigma  # clipped Gaussian of about that sigma


@pytest.mark.parametrize("gt_folder", ["gt", "clear"])
def test_sots_layouts_and_shared_gt(tmp_path, gt_folder):
    pairs = fx.sots(tmp_path / "in", n_gt=3, shared=1, gt_folder=gt_folder)
    # RESIDE's zip also holds indoor/{hazy,gt}, sorting before outdoor/: never used.
    indoor = fx.sots(tmp_path / "indoor-stage", n_gt=2, shared=0, seed=5)
    (tmp_path / "indoor-stage" / "SOTS" / "outdoor").rename(tmp_path / "in" / "SOTS" / "indoor")
    assert indoor
    p = get_protocol("3d")
    proto = replace(p, tasks=(p.task("sots"),))
    root = _build_api(proto, tmp_path)
    rows = _rows(root, "sots")
    assert [Path(r["name"]).stem for r in rows] == sorted(pairs)
    for r in rows:
        gt = fx.read(tmp_path / "in" / "SOTS" / "outdoor" / gt_folder / f"{pairs[Path(r['name']).stem]}.png")
        assert np.array_equal(fx.read(root / r["gt_path"]), centre_crop(gt, 16))
    report = json.loads((root / "build_report.json").read_text())
    assert report["protocol"]["count_mismatch"] == ["sots: 4 test pairs, the protocol has 500"]


def _build_api(proto, tmp_path, noise="seeded", sub="in", out=None):
    from builders.download import DownloadConfig
    from builders.full import FullBuildConfig
    from builders.protocol_build import build_protocol

    root = tmp_path / (out or f"out-{noise}")
    dl = DownloadConfig(cache_dir=root / ".downloads", from_dir=tmp_path / sub, progress=False)
    build_protocol(proto, FullBuildConfig(root=root, download=dl, progress=False), noise=noise)
    return root


@pytest.mark.parametrize("copy", ["prenet", "relaid", "restormer"])
def test_rain100l_copies(tmp_path, copy):
    folder = fx.rain100l(tmp_path / "in" / "x", copy, n=6)
    p = get_protocol("3d")
    root = _build_api(replace(p, tasks=(p.task("rain100l"),)), tmp_path)
    rows = _rows(root, "rain100l")
    assert [r["name"] for r in rows] == [f"rain-{i:03d}.png" for i in range(1, 7)]
    for r in rows:
        i = int(r["name"][5:8])
        lq, gt = ((folder / "rainy" / f"rain-{i:03d}.png", folder / f"norain-{i:03d}.png") if copy == "prenet"
                  else (folder / "input" / f"{i}.png", folder / "target" / f"{i}.png"))
        assert np.array_equal(fx.read(root / r["lq_path"]), centre_crop(fx.read(lq), 16))
        assert np.array_equal(fx.read(root / r["gt_path"]), centre_crop(fx.read(gt), 16))
        assert json.loads(r["parameters"])["rain100l_copy"] == copy
    rec = json.loads((root / "build_report.json").read_text())["recipes"]["rain100l"]
    assert f"Rain100L copy: {copy}" in " ".join(rec["layout"])
    flagged = [q for q in rec["problems"] if q["kind"] == "other-copy"]
    assert bool(flagged) == (copy == "restormer")


def test_cdd11_clear_against_every_type(tmp_path):
    fx.zip_folder(fx.cdd11(tmp_path / "stage", n=3), (tmp_path / "in" / "hub").mkdir(parents=True) or
                  tmp_path / "in" / "hub" / "CDD-11_test.zip")
    root = _build_api(get_protocol("cdd11"), tmp_path)
    df = read_manifest(root)
    from builders.sources.cdd11 import TYPES

    assert sorted(set(df["type"])) == sorted(TYPES) and len(df) == 33
    for k, t in enumerate(TYPES, start=1):
        for r in _rows(root, t):
            gt = fx.read(root / r["gt_path"])
            assert np.array_equal(gt, fx.read(tmp_path / "stage" / "CDD-11_test" / "clear" / r["name"]))  # full image
            assert np.array_equal(fx.read(root / r["lq_path"]), (gt.astype(np.uint16) + k).astype(np.uint8))
    report = json.loads((root / "build_report.json").read_text())
    assert len(report["protocol"]["count_mismatch"]) == 11  # 3 of 200 per type: stated, not silent
    assert report["protocol"]["crop"] == 0


def test_cbsd68_noise_seeded_is_per_image(tmp_path, cbsd68_digests):
    digests = fx.cbsd68(tmp_path / "in", n=6)
    cbsd68_digests(digests)
    p = get_protocol("3d")
    proto = replace(p, tasks=tuple(t for t in p.tasks if t.sigma))
    full = _build_api(proto, tmp_path)
    # A subset (two files removed) gives the same noisy pixels for the images it keeps.
    sub = tmp_path / "sub"
    shutil.copytree(tmp_path / "in", sub / "x")
    for k in (0, 3):
        (sub / "x" / "CBSD68-dataset" / "CBSD68" / "original_png" / f"{k:04d}.png").unlink()
    part = _build_api(proto, tmp_path, sub="sub", out="part")
    assert len(_rows(part, "cbsd68_sigma25")) == 4
    for r in _rows(part, "cbsd68_sigma25"):
        assert (part / r["lq_path"]).read_bytes() == (full / r["lq_path"]).read_bytes()


def _upstream_reference(folder: Path, blocks: list[int]) -> list[list[np.ndarray]]:
    """The upstream stream written the way PromptIR's test dataset does it: the global legacy
    generator seeded 0 once, files in sorted order, crop_img, then clip and astype(uint8)."""
    from PIL import Image

    files = sorted(folder.iterdir())
    np.random.seed(0)
    out = []
    for sigma in blocks:
        block = []
        for f in files:
            clean = np.array(Image.open(f).convert("RGB"))
            h, w = clean.shape[:2]
            ch, cw = h % 16, w % 16
            clean = clean[ch // 2:h - ch + ch // 2, cw // 2:w - cw + cw // 2, :]
            block.append(np.clip(clean + np.random.randn(*clean.shape) * sigma, 0, 255).astype(np.uint8))
        out.append(block)
    np.random.seed(None)
    return out


def test_cbsd68_noise_upstream_and_its_digest_check(tmp_path, cbsd68_digests):
    import hashlib

    cbsd68_digests(fx.cbsd68(tmp_path / "in"))
    folder = tmp_path / "in" / "CBSD68-dataset" / "CBSD68" / "original_png"
    ref = _upstream_reference(folder, [15, 25, 50])
    p = get_protocol("3d")

    def digest(images):
        return hashlib.sha256(b"".join(i.tobytes() for i in images)).hexdigest()

    tasks = tuple(t for t in p.tasks if t.sigma)
    noise = {"upstream_blocks": [15, 25, 50], "clean_digest": None,
             "upstream_digests": {t.name: digest(b) for t, b in zip(tasks, ref)}}
    root = _build_api(replace(p, tasks=tasks, noise=noise), tmp_path, noise="upstream")
    for t, block in zip(tasks, ref):
        rows = _rows(root, t.name)
        assert len(rows) == 68
        for r, want in zip(rows, block):
            assert np.array_equal(fx.read(root / r["lq_path"]), want)
            assert json.loads(r["parameters"])["noise"] == "upstream"
    # A wrong published digest stops the build of CBSD68, naming both digests.
    bad = {**noise, "upstream_digests": {**noise["upstream_digests"], "cbsd68_sigma25": "0" * 64}}
    from builders.download import DownloadConfig
    from builders.full import FullBuildConfig
    from builders.protocol_build import build_protocol

    out = tmp_path / "wrong"
    dl = DownloadConfig(cache_dir=out / ".d", from_dir=tmp_path / "in", progress=False)
    rep = build_protocol(replace(p, tasks=tasks, noise=bad), FullBuildConfig(root=out, download=dl, progress=False),
                         noise="upstream")
    err = rep["recipes"]["cbsd68-test"]["error"]
    assert "cbsd68_sigma25 stream has sha256" in err and "0" * 64 in err and digest(ref[1]) in err
    assert read_manifest(out, required=False).empty


def test_upstream_noise_refuses_a_subset(tmp_path, cbsd68_digests, capsys):
    cbsd68_digests(fx.cbsd68(tmp_path / "in", n=10))
    rc = _build(["--preset", "5d", "--noise", "upstream", "--from-dir", str(tmp_path / "in"), "--root", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "--noise upstream needs all 68 CBSD68 images" in err and "found 10" in err


def test_noise_from_files(tmp_path, cbsd68_digests):
    digests = fx.cbsd68(tmp_path / "in", n=4, noisy=(15, 25, 50))
    cbsd68_digests(digests)
    p = get_protocol("3d")
    proto = replace(p, tasks=tuple(t for t in p.tasks if t.sigma))
    root = _build_api(proto, tmp_path, noise="from-files")
    for r in _rows(root, "cbsd68_sigma50"):
        src = tmp_path / "in" / "CBSD68-dataset" / "CBSD68" / "noisy50" / r["name"]
        assert np.array_equal(fx.read(root / r["lq_path"]), centre_crop(fx.read(src), 16))
        params = json.loads(r["parameters"])
        assert params["noise"] == "from-files" and params["lq_digest"] == "published"
    # A pre-noised file that is not the published one stops CBSD68.
    cbsd68_digests({**digests, "noisy25/0002.png": (1, "e" * 64)})
    rep = _build_api(proto, tmp_path, noise="from-files", out="bad")
    err = json.loads((rep / "build_report.json").read_text())["recipes"]["cbsd68-test"]["error"]
    assert "noisy25/0002.png has sha256" in err and "e" * 64 in err


def test_clean_digest_mismatch_is_a_failing_pair(tmp_path, cbsd68_digests):
    digests = fx.cbsd68(tmp_path / "in", n=3)
    digests["0001.png"] = (digests["0001.png"][0], "f" * 64)
    cbsd68_digests(digests)
    p = get_protocol("3d")
    root = _build_api(replace(p, tasks=(p.task("cbsd68_sigma15"),)), tmp_path)
    rep = json.loads((root / "build_report.json").read_text())["recipes"]["cbsd68-test"]
    assert [f["kind"] for f in rep["failed"]] == ["digest-mismatch"] and "0001.png" in rep["failed"][0]["detail"]
    assert sorted(_rows(root, "cbsd68_sigma15")[i]["name"] for i in range(2)) == ["0000.png", "0002.png"]


def test_bad_input_lines(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _build(["--preset", "4d"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown --preset '4d'; choose from: mini, daclip-val, 3d, 5d, cdd11"
    assert _build(["--preset", "cdd11", "--from-dir", str(tmp_path / "empty"), "--root", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CDD-11_test.zip or CDD-11_test/ or CDD-11/" in err[0] and "not found in" in err[0]


def test_with_train_builds_known_training_sources(tmp_path, capsys):
    fx.cdd11(tmp_path / "in" / "a", n=2)
    train = fx.cdd11(tmp_path / "in" / "b", n=2, seed=9)
    train.rename(tmp_path / "in" / "b" / "CDD-11_train")
    assert _build(["--preset", "cdd11", "--with-train", "--from-dir", str(tmp_path / "in"), "--root", str(tmp_path / "o")]) == 1
    df = read_manifest(tmp_path / "o")
    assert (df["split"] == "train").sum() == 22 and (df["split"] == "val").sum() == 22
    r = df[(df["split"] == "train") & (df["type"] == "low_haze")].iloc[0]
    assert np.array_equal(fx.read(tmp_path / "o" / r["gt_path"]),
                          fx.read(tmp_path / "in" / "b" / "CDD-11_train" / "clear" / r["name"]))
    out = capsys.readouterr().out
    assert "cdd11-train: 22 built" in out


def test_preset_help_names_each_buildable_protocol(monkeypatch):
    """The --preset help comes from the protocol registry: a protocol added as a YAML file is listed."""
    import builders.build as build
    from builders.protocols import get_protocol

    text = " ".join(build.build_parser().format_help().split())
    assert "3d, 5d, cdd11: a benchmark protocol's test set" in text and "protocols (--preset 3d|5d|cdd11)" in text
    assert get_protocol("daclip10").preset == "daclip-val"  # built by its own preset, so not listed
    monkeypatch.setattr(build, "_buildable_protocols", lambda: ["3d", "5d", "cdd11", "7d"])
    text = " ".join(build.build_parser().format_help().split())
    assert "3d, 5d, cdd11, 7d: a benchmark" in text and "--preset 3d|5d|cdd11|7d" in text
