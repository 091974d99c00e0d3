"""The 5D protocol's GoPro and LOL-v1 test sets from each published copy, and the 3D/5D training
sets (--with-train: RainTrainL, BSD400 + WED, RESIDE OTS), from replicas built here."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from builders.build import main as build_main
from builders.io import centre_crop
from builders.manifest import read_manifest
from builders.protocols import get_protocol
from builders.sources import base as recipes_base
from builders.sources.lol import EVAL15_NAMES

import protocol_fixtures as fx


def _rows(root: Path, task: str, split: str = "val") -> list[dict]:
    df = read_manifest(root)
    return df[(df["type"] == task) & (df["split"] == split)].sort_values("name").to_dict("records")


def _build(proto, tmp_path: Path, with_train: bool = False, sub: str = "in") -> tuple[Path, dict]:
    from builders.download import DownloadConfig
    from builders.full import FullBuildConfig
    from builders.protocol_build import build_protocol

    root = tmp_path / "out"
    dl = DownloadConfig(cache_dir=root / ".downloads", from_dir=tmp_path / sub, progress=False)
    report = build_protocol(proto, FullBuildConfig(root=root, download=dl, progress=False), with_train=with_train)
    return root, report


def _only(name: str, task: str, train: tuple[str, ...] = ()):
    p = get_protocol(name)
    return replace(p, tasks=(p.task(task),), train=tuple(t for t in p.train if t["source"] in train))


# ------------------------------------------------------------------------------------- GoPro

@pytest.mark.parametrize("copy", ["GOPRO_Large", "restormer", "adair", "hyphen"])
def test_gopro_test_copies(tmp_path, copy):
    src = tmp_path / "in" / "downloads"
    if copy == "GOPRO_Large":
        folder = fx.gopro_large(tmp_path / "stage")
        fx.zip_folder(folder, (src.mkdir(parents=True) or src) / "GOPRO_Large.zip")  # the archive form
        want = {f"{s}_{k:06d}": (folder / "test" / s / "blur" / f"{k:06d}.png", folder / "test" / s / "sharp" / f"{k:06d}.png")
                for s in fx.GOPRO_SEQS for k in (1, 2)}
        line = "GoPro copy: GOPRO_Large: GOPRO_Large/test/<SEQ>/{blur,sharp}/<frame>.png (2 sequences)"
    elif copy == "adair":
        want = fx.gopro_flat(src / "data" / "test" / "deblur" / "gopro")
        line = "GoPro copy: flat input/target: ."  # the gopro/ folder itself is the one accepted
    elif copy == "restormer":
        # Restormer's test/ folder holds HIDE beside GoPro, in the same layout: never used.
        want = fx.gopro_flat(tmp_path / "stage" / "test" / "GoPro")
        fx.gopro_flat(tmp_path / "stage" / "test" / "HIDE", seed=9)
        fx.zip_folder(tmp_path / "stage" / "test", (src.mkdir(parents=True) or src) / "test.zip")
        line = ("GoPro copy: flat input/target: test/GoPro/{input,target}/<SEQ>_<frame>.png "
                "(Restormer's test zip layout")
    else:
        want = fx.gopro_flat(src / "GoPro", sep="-")
        line = "GoPro copy: flat input/target: ./{input,target}/<SEQ>_<frame>.png"
    root, report = _build(_only("5d", "gopro"), tmp_path)
    rows = _rows(root, "gopro")
    assert [r["name"] for r in rows] == [f"{n}.png" for n in sorted(want)]
    for r in rows:
        lq, gt = want[Path(r["name"]).stem]
        assert np.array_equal(fx.read(root / r["lq_path"]), centre_crop(fx.read(lq), 16))
        assert np.array_equal(fx.read(root / r["gt_path"]), centre_crop(fx.read(gt), 16))
    rec = report["recipes"]["gopro-test"]
    layout = " ".join(rec["layout"])
    assert line in layout, layout
    assert ("; 8 files named <SEQ>-<frame>, built as <SEQ>_<frame>" in layout) == (copy == "hyphen")  # 4 LQ + 4 GT
    assert rec["problems"] == [] and report["protocol"]["count_mismatch"] == ["gopro: 4 test pairs, the protocol has 1111"]
    params = json.loads(rows[0]["parameters"])
    assert params["gopro_copy"] == ("GOPRO_Large" if copy == "GOPRO_Large" else "flat input/target")
    if copy == "GOPRO_Large":
        assert params["lq_variant"] == "blur (not blur_gamma)"
        assert not any("train" in p.parts or "blur_gamma" in p.parts for p in (root / ".extracted").rglob("*.png"))


def test_gopro_hyphen_and_underscore_forms_of_one_frame_are_one_pair(tmp_path):
    folder = tmp_path / "in" / "GoPro"
    want = fx.gopro_flat(folder, sep="-", frames=1)
    # The target folder of this copy uses the underscore form: still the same pairs.
    for f in sorted((folder / "target").iterdir()):
        f.rename(f.with_name(f.name.replace("-", "_")))
    # One frame in both forms in input/: one output name, so the second is reported, not built.
    dup = fx.save(folder / "input" / "GOPR0384_11_00_000001.png", fx.img(np.random.default_rng(1)))
    fx.save(folder / "input" / "GOPR0384-bad.png", fx.img(np.random.default_rng(2)))
    root, report = _build(_only("5d", "gopro"), tmp_path)
    rows = _rows(root, "gopro")
    assert [r["name"] for r in rows] == ["GOPR0384_11_00_000001.png", "GOPR0862_11_00_000001.png"]
    lq, _ = want["GOPR0384_11_00_000001"]
    assert lq.name == "GOPR0384_11_00-000001.png"
    problems = {(Path(p["file"]).name, p["kind"]) for p in report["recipes"]["gopro-test"]["problems"]}
    assert problems == {(dup.name, "duplicate-name"), ("GOPR0384-bad.png", "unpaired")}
    assert np.array_equal(fx.read(root / rows[0]["lq_path"]), centre_crop(fx.read(lq), 16))  # the first one met


def test_gopro_flat_copy_is_never_taken_from_hide_or_a_training_folder(tmp_path):
    from builders.pairing import pair_source

    # Without the rule, HIDE/ and Train/ (sorting before gopro/ and test/) would be chosen.
    want = fx.gopro_flat(tmp_path / "a" / "test" / "gopro")
    fx.gopro_flat(tmp_path / "a" / "test" / "HIDE", seed=9)
    res = pair_source("gopro-test", {"GoPro": tmp_path / "a"})
    assert sorted(p.name for p in res.pairs) == sorted(want) and {p.lq for p in res.pairs} == {v[0] for v in want.values()}
    want = fx.gopro_flat(tmp_path / "b" / "GOPRO" / "test", lq="blur", gt="sharp")
    fx.gopro_flat(tmp_path / "b" / "GOPRO" / "Train", lq="blur", gt="sharp", seed=9)
    res = pair_source("gopro-test", {"GoPro": tmp_path / "b"})
    assert {p.lq for p in res.pairs} == {v[0] for v in want.values()}
    assert res.layout == ["GoPro copy: flat blur/sharp: GOPRO/test/{blur,sharp}/<SEQ>_<frame>.png "
                          "(flat blur/sharp folders [unconfirmed])"]


# --------------------------------------------------------------------------------------- LOL

@pytest.mark.parametrize("copy", ["LOLdataset", "hub"])
def test_lol_eval15_copies(tmp_path, copy):
    lq_dir, gt_dir = fx.lol(tmp_path / "in" / "x", copy, EVAL15_NAMES)
    root, report = _build(_only("5d", "lol"), tmp_path)
    rows = _rows(root, "lol")
    assert sorted(r["name"] for r in rows) == sorted(f"{n}.png" for n in EVAL15_NAMES) and len(rows) == 15
    for r in rows:
        assert np.array_equal(fx.read(root / r["lq_path"]), centre_crop(fx.read(lq_dir / r["name"]), 16))
        assert np.array_equal(fx.read(root / r["gt_path"]), centre_crop(fx.read(gt_dir / r["name"]), 16))
    rec = report["recipes"]["lol-eval15"]
    line = ("LOL-v1 copy: LOLdataset eval15: eval15/{low,high}: 15 pairs" if copy == "LOLdataset"
            else "LOL-v1 copy: hub laxury/LLIE-LoL-v1 Test: Test/{input,target}: 15 pairs")
    assert line in rec["layout"], rec["layout"]
    assert rec["variant"] == ("Drive LOLdataset.zip" if copy == "LOLdataset" else "hub laxury/LLIE-LoL-v1")
    assert rec["problems"] == [] and report["protocol"]["count_mismatch"] == []


def test_lol_copy_with_other_names_is_flagged(tmp_path):
    fx.lol(tmp_path / "in", "hub", ("1", "2", "22"))
    _, report = _build(_only("5d", "lol"), tmp_path)
    rec = report["recipes"]["lol-eval15"]
    assert [p["kind"] for p in rec["problems"]] == ["other-copy"] and "not eval15's (2):" in rec["problems"][0]["detail"]
    assert report["protocol"]["count_mismatch"] == ["lol: 3 test pairs, the protocol has 15"]


# ------------------------------------------------------------------------ names and errors

def test_missing_sources_are_one_line_naming_every_accepted_name(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert build_main(["--preset", "5d", "--from-dir", str(tmp_path / "empty"), "--root", str(tmp_path / "o"),
                       "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 5 source(s) could not be built")
    assert "gopro-test: --from-dir: GoPro.zip or GoPro/ or GOPRO_Large.zip or GOPRO_Large/ or test.zip" in err[0]
    assert ("[hub lol_dataset.zip] lol_dataset.zip or lol_dataset/" in err[0]
            and "[Drive LOLdataset.zip] LOLdataset.zip or LOLdataset/" in err[0]
            and "[hub laxury/LLIE-LoL-v1] LLIE-LoL-v1.zip or LLIE-LoL-v1/" in err[0])


def test_list_names_every_accepted_copy_and_training_source(capsys):
    assert build_main(["--preset", "5d", "--list", "--with-train"]) == 0
    out = capsys.readouterr().out
    for text in ("gopro-test: ", "file:    GoPro (a folder, or its .zip)", "GOPRO_Large.zip, GOPRO_Large, test.zip",
                 "gdrive: 1k6DTSHu4saUgrGTYkkZXTptILyG9RRll", "gdrive: 1y_wQ5G5B65HS_mdIjxKYTcnRys_AGh5v",
                 "lol-eval15: ", "file:    LLIE-LoL-v1 (a folder, or its .zip)", "hf-folder: laxury/LLIE-LoL-v1",
                 "also accepted below --from-dir: lol_dataset", "also accepted below --from-dir: LOLdataset",
                 "raintrainl: ", "file:    RainTrainL (a folder, or its .zip)",
                 "gdrive-folder: 1-_Tw-LHJF4vh8fpogKgZx1EQ9MhsJI_f", "[download by hand]",
                 "bsd400-wed: ", "gdrive: 1idKFDkAHJGAFDn1OyXZxsTbOSBx9GS8N", "gdrive: 19_mCE_GXfmE5yYsm-HEzuZQqmwMjPpJr",
                 "reside-ots: ", "file:    OTS (a folder, or its .zip)", "gopro: ", "lol: "):
        assert text in out, text


@pytest.mark.parametrize("name", ["3d", "5d"])
def test_every_training_source_has_a_recipe(name):
    from builders.protocol_build import _recipe_names

    p = get_protocol(name)
    assert {t["source"] for t in p.train} <= _recipe_names()


# ------------------------------------------------------------------------- training sets

def test_raintrainl_pairs_by_index_and_reports_an_unpaired_file(tmp_path):
    fx.rain100l(tmp_path / "in", "prenet", n=2)
    rng = np.random.default_rng(7)
    train = tmp_path / "in" / "RainTrainL"
    for i in range(1, 5):  # unpadded, as published
        fx.save(train / f"rain-{i}.png", fx.img(rng))
        fx.save(train / f"norain-{i}.png", fx.img(rng))
    fx.save(train / "rain-9.png", fx.img(rng))
    root, report = _build(_only("3d", "rain100l", ("raintrainl",)), tmp_path, with_train=True)
    rows = _rows(root, "rain100l", "train")
    assert [r["name"] for r in rows] == [f"rain-{i}.png" for i in range(1, 5)]
    for r in rows:
        i = int(r["name"][5:-4])
        # Training images stay whole (the crop is the test geometry).
        assert np.array_equal(fx.read(root / r["lq_path"]), fx.read(train / f"rain-{i}.png"))
        assert np.array_equal(fx.read(root / r["gt_path"]), fx.read(train / f"norain-{i}.png"))
    rec = report["recipes"]["raintrainl"]
    assert [(Path(p["file"]).name, p["detail"]) for p in rec["problems"]] == [("rain-9.png", "LQ without GT")]
    assert rec["found"] == {"rain100l/train": 4} and rec["expected"] == {"rain100l/train": 200}
    assert "RainTrainL: 5 rain-N + 4 norain-N in one flat folder" in rec["layout"]
    assert len(_rows(root, "rain100l")) == 2  # the test set beside it


def test_bsd400_wed_noise_is_seeded_per_image_and_recorded(tmp_path, monkeypatch):
    digests = fx.cbsd68(tmp_path / "in", n=2)
    r = recipes_base.RECIPES.get("cbsd68-test")
    monkeypatch.setitem(recipes_base.RECIPES._entries, "cbsd68-test", replace(r, member_digests=digests))
    rng = np.random.default_rng(8)
    clean = {"bsd400_101": fx.save(tmp_path / "in" / "BSD400" / "101.png", fx.img(rng)),
             "bsd400_102": fx.save(tmp_path / "in" / "BSD400" / "102.png", fx.img(rng))}
    for k in (1, 2, 3):
        clean[f"wed_{k:05d}"] = fx.save(tmp_path / "in" / "WaterlooED" / f"{k:05d}.bmp", fx.img(rng))
    dup = fx.save(tmp_path / "in" / "WaterlooED" / "extra" / "00001.png", fx.img(rng))  # a second wed_00001
    root, report = _build(_only("5d", "cbsd68_sigma25", ("bsd400-wed",)), tmp_path, with_train=True)
    rows = _rows(root, "cbsd68_sigma25", "train")
    assert [Path(r["name"]).stem for r in rows] == sorted(clean)
    from builders.synth import seed_for

    for r in rows:
        stem = Path(r["name"]).stem
        gt = fx.read(clean[stem])
        assert np.array_equal(fx.read(root / r["gt_path"]), gt)  # whole, uncropped
        params = json.loads(r["parameters"])
        assert params["seed"] == ["protocol-train-noise", "5d", stem, 25] and params["sigma"] == 25
        assert params["noise"] == "seeded" and "defines no training noise" in params["train_noise"]
        z = np.random.default_rng(seed_for("protocol-train-noise", "5d", stem, 25)).standard_normal(gt.shape)
        want = np.floor(np.minimum(np.maximum(gt.astype(np.float64) + 25.0 * z, 0.0), 255.0))  # clip, truncate
        assert np.array_equal(fx.read(root / r["lq_path"]), want.astype(np.uint8))
    rec = report["recipes"]["bsd400-wed"]
    assert [(Path(p["file"]).name, p["kind"]) for p in rec["problems"]] == [(dup.name, "duplicate-name")]
    assert "BSD400: 2 images" in rec["layout"] and "WaterlooED: 4 images (protocols.md: 4744)" in rec["layout"]
    # A re-run draws nothing again: every pair is up to date.
    _, again = _build(_only("5d", "cbsd68_sigma25", ("bsd400-wed",)), tmp_path, with_train=True)
    assert again["recipes"]["bsd400-wed"]["skipped"] == 5 and again["recipes"]["bsd400-wed"]["built"] == 0


def test_bsd400_wed_in_3d_gives_one_pair_per_test_sigma(tmp_path, monkeypatch):
    digests = fx.cbsd68(tmp_path / "in", n=1)
    r = recipes_base.RECIPES.get("cbsd68-test")
    monkeypatch.setitem(recipes_base.RECIPES._entries, "cbsd68-test", replace(r, member_digests=digests))
    fx.save(tmp_path / "in" / "BSD400" / "7.png", fx.img(np.random.default_rng(3)))
    fx.save(tmp_path / "in" / "WED" / "00001.bmp", fx.img(np.random.default_rng(4)))
    p = get_protocol("3d")
    proto = replace(p, tasks=tuple(t for t in p.tasks if t.sigma), train=tuple(t for t in p.train if t["source"] == "bsd400-wed"))
    root, _ = _build(proto, tmp_path, with_train=True)
    df = read_manifest(root)
    train = df[df["split"] == "train"]
    assert sorted(zip(train["type"], train["name"])) == sorted(
        (f"cbsd68_sigma{s}", n) for s in (15, 25, 50) for n in ("bsd400_7.png", "wed_00001.png"))
    sig = {t: json.loads(x)["sigma"] for t, x in zip(train["type"], train["parameters"])}
    assert sig == {"cbsd68_sigma15": 15, "cbsd68_sigma25": 25, "cbsd68_sigma50": 50}


def test_reside_ots_pairs_by_prefix_and_reports_unpaired_files(tmp_path):
    fx.sots(tmp_path / "in", n_gt=1, shared=0)
    rng = np.random.default_rng(10)
    ots = tmp_path / "in" / "OTS"
    gts = {g: fx.save(ots / "original" / f"{g}.png", fx.img(rng)) for g in ("0025", "3068", "9999")}
    hazy = {"0025_0.8_0.1": "part1", "0025_0.8_0.2": "part1", "3068_0.9_0.1": "part2", "4444_0.8_0.1": "part2"}
    for stem, part in hazy.items():
        fx.save(ots / "synthetic" / part / f"{stem}.jpg", fx.img(rng), quality=95)
    root, report = _build(_only("5d", "sots", ("reside-ots",)), tmp_path, with_train=True)
    rows = _rows(root, "sots", "train")
    assert [Path(r["name"]).stem for r in rows] == ["0025_0.8_0.1", "0025_0.8_0.2", "3068_0.9_0.1"]
    for r in rows:
        stem = Path(r["name"]).stem
        assert np.array_equal(fx.read(root / r["gt_path"]), fx.read(gts[stem.split("_")[0]]))
        assert np.array_equal(fx.read(root / r["lq_path"]), fx.read(ots / "synthetic" / hazy[stem] / f"{stem}.jpg"))
    rec = report["recipes"]["reside-ots"]
    assert sorted((Path(p["file"]).name, p["detail"]) for p in rec["problems"]) == [
        ("4444_0.8_0.1.jpg", "hazy image without a GT of its prefix before the first '_'"),
        ("9999.png", "GT that no hazy image names")]
    assert "./{original, synthetic/part1, synthetic/part2}: 3 hazy over 2 GT" in rec["layout"]
    assert rec["expected"] == {"sots/train": 72135} and rec["found"] == {"sots/train": 3}


def test_a_training_entry_naming_an_unknown_task_is_refused(tmp_path):
    from builders.protocols import _load

    text = (Path(__file__).resolve().parents[2] / "builders" / "protocols" / "5d.yaml").read_text()
    (tmp_path / "5d.yaml").write_text(text.replace("tasks: [cbsd68_sigma25]", "tasks: [cbsd68_sigma15]"))
    with pytest.raises(ValueError, match=r"5d.yaml: training source bsd400-wed names unknown tasks \['cbsd68_sigma15'\]"):
        _load(tmp_path / "5d.yaml")
