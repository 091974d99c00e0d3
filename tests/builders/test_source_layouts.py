"""The real sources' other layouts and releases, the authors' validation zip, --index, published
sizes and digests, and the LQ-storage convention of the paper's noisy/JPEG test sets.

Every layout is a replica archive built in the test; every image encodes its pair index in its
colour, so a mis-pairing is caught from the pixels (builders_full_fixtures.check_pairs).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from builders_full_fixtures import (SIDE, Server, check_pairs, daclip_val_fixture, decode, image_bytes, patched_recipes,
                                    sha256, variant_fixtures, zip_bytes)

from builders import manifest as mf
from builders.build import main
from builders.io import read_image, sha256_file
from builders.tasks import DEGRADATIONS


@pytest.fixture(scope="module")
def variants():
    return variant_fixtures()


def _build_one(recipe_name: str, fx, tmp_path: Path, monkeypatch, overrides: dict | None = None,
               **download) -> tuple[Path, dict]:
    """Build one recipe from the replica's files (--from-dir, or ``download`` options), with the
    replica's digests standing in for the published ones."""
    from builders.download import DownloadConfig
    from builders.full import FullBuildConfig, build_full
    from builders.sources import get_recipe

    patched_recipes(monkeypatch, overrides or fx.overrides())
    src, root = fx.write(tmp_path / "by_hand"), tmp_path / "root"
    recipe = get_recipe(recipe_name)
    dl = DownloadConfig(cache_dir=root / ".downloads", progress=False, **(download or {"from_dir": src}))
    cfg = FullBuildConfig(root=root, tasks=recipe.tasks, progress=False, download=dl)
    report = build_full(cfg, [recipe])
    return root, report["recipes"][recipe_name]


@pytest.mark.parametrize("case,recipe,layout,variant", [
    ("srd-A-C", "srd", "train_A/ + train_C/", ""),
    ("div2k-eth", "div2k-flickr2k", "DIV2K_train_HR (2) + DIV2K_valid_HR (1)", "ETH DIV2K_train_HR.zip + DIV2K_valid_HR.zip"),
    ("div2k-tar-two-folders", "div2k-flickr2k", "DIV2K_train_HR (1) + DIV2K_valid_HR (1)", "EDSR DIV2K.tar"),
    ("cbsd68-original_png", "cbsd68", "original_png/ (GitHub clausmichele/CBSD68-dataset layout)", ""),
    ("lol-drive", "lol", "LOLdataset/our485/{low,high}", "Drive LOLdataset.zip"),
    ("live1-zip", "live1", "databaserelease2/refimgs/", "LIVE databaserelease2.zip"),
    ("snow-subset-LQ-GT", "snow100k", "snowy/LQ/ + GT/", "the author's training subset"),
    ("snow-s3-training", "snow100k", "all/{synthetic,gt}, names containing 'beautiful_smile'",
     "Snow100K-training.tar.gz (S3, reported dead)"),
    ("gopro-no-top-folder", "gopro", "GOPRO_Large.zip: train/<SEQ>/{blur,sharp}", ""),
])
def test_each_real_layout_pairs_and_is_reported(case, recipe, layout, variant, variants, tmp_path, monkeypatch):
    fx = variants[case]
    root, out = _build_one(recipe, fx, tmp_path, monkeypatch)
    assert out["error"] is None, out["error"]
    check_pairs(root, fx)
    assert not out["failed"] and not [p for p in out["problems"] if p["kind"] == "missing-folder"], out["problems"]
    assert any(layout in n for n in out["layout"]), out["layout"]
    assert out["variant"] == variant


def test_live1_reference_image_that_differs_from_the_published_one_is_not_used(variants, tmp_path, monkeypatch):
    fx = variants["live1-zip"]
    name = sorted(fx.members)[0]
    overrides = fx.overrides()
    overrides["members"][name] = [9999, "ab" * 32]  # as if LIVE's copy differed from the published one
    root, out = _build_one("live1", fx, tmp_path, monkeypatch, overrides)
    assert [p["kind"] for p in out["failed"]] == ["digest-mismatch"]
    assert out["failed"][0]["detail"] == (f"{name}: sha256 {sha256(fx.members[name])} ({len(fx.members[name])} "
                                          f"bytes), expected the published {'ab' * 32} (9999 bytes); the file is not used")
    assert sorted(mf.read_manifest(root)["name"]) == sorted(f"{Path(n).stem}.png" for n in fx.members if n != name)


def test_password_protected_live1_zip_names_the_dncnn_alternative(tmp_path, capsys):
    data = bytearray(zip_bytes({"databaserelease2/refimgs/bikes.bmp": image_bytes(1, "bmp")}))
    # Set the "encrypted" flag of the member in the local and central headers, as a
    # password-protected zip has it (Python's zipfile cannot write real encryption).
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.index(sig)
        data[i + off] |= 0x1
    src = tmp_path / "by_hand"
    src.mkdir()
    (src / "databaserelease2.zip").write_bytes(bytes(data))
    rc = main(["--only", "jpeg-compressed", "--root", str(tmp_path / "r"), "--from-dir", str(src), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "databaserelease2.zip: member 'databaserelease2/refimgs/bikes.bmp' is password-protected" in err
    assert "raw.githubusercontent.com/cszn/DnCNN/e93b27812d3ff523a3a79d19e5e50d233d7a8d0a/testsets/LIVE1/<name>.bmp" in err


def test_hub_folder_download_for_reside6k(tmp_path, monkeypatch, reachable_hub):
    """RESIDE-6K's hub copy is an image-folder repo: fetched with snapshot_download(allow_patterns)."""
    import huggingface_hub

    from builders_full_fixtures import make_fixtures

    fx = make_fixtures()
    repo = tmp_path / "hub_repo"
    with zipfile.ZipFile(__import__("io").BytesIO(fx.files["RESIDE-6K.zip"])) as zf:
        zf.extractall(repo)
    (repo / "README.md").write_text("dataset card")  # outside the patterns: must not be fetched
    calls = []

    def fake_snapshot_download(repo_id, repo_type=None, local_dir=None, allow_patterns=None, **kw):
        import fnmatch
        import shutil

        calls.append((repo_id, repo_type, tuple(allow_patterns or ())))
        for p in repo.rglob("*"):
            rel = p.relative_to(repo).as_posix()
            if p.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in allow_patterns):
                (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, Path(local_dir) / rel)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    root = tmp_path / "root"
    args = ["--only", "hazy", "--root", str(root), "--quiet"]
    assert main(args) == 0
    assert calls == [("desonglll/RESIDE-6K", "dataset", ("train/*", "test/*"))]
    hazy = {k: v for k, v in fx.expected.items() if k[0] == "hazy"}
    check_pairs(root, type(fx)(expected=hazy))
    assert not (root / ".downloads" / "RESIDE-6K" / "README.md").exists()
    assert main(args) == 0 and len(calls) == 1  # the validated folder is reused


def test_folder_of_archives_from_the_hub_is_extracted(tmp_path, monkeypatch, reachable_hub):
    """RainDrop's hub copy has an unconfirmed layout; a repo holding zips (no images) is unpacked."""
    import huggingface_hub

    from builders_full_fixtures import make_fixtures

    fx = make_fixtures()

    def fake_snapshot_download(repo_id, repo_type=None, local_dir=None, allow_patterns=None, **kw):
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        (Path(local_dir) / "RainDrop.zip").write_bytes(fx.files["RainDrop.zip"])
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    root = tmp_path / "root"
    assert main(["--only", "raindrop", "--root", str(root), "--quiet"]) == 0
    check_pairs(root, type(fx)(expected={k: v for k, v in fx.expected.items() if k[0] == "raindrop"}))
    report = json.loads((root / "build_report.json").read_text())["recipes"]["raindrop"]
    assert any("a folder of archives (RainDrop.zip), extracted" in n for n in report["layout"])


def test_drive_folder_is_an_instruction_listing_what_is_expected(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://no-such-hub.invalid")
    assert main(["--only", "raindrop", "--root", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Google Drive folder 1e7R76s6vwUJxILOcAsthgDLPSnOrQ49K cannot be fetched automatically" in err
    assert ("put it in a folder as RainDrop/ (a folder) or RainDrop.zip (train/{data/<n>_rain.png, "
            "gt/<n>_clean.png} and test_a/{data,gt} (test_b unused)), then pass that folder with --from-dir") in err


def test_from_dir_lists_both_releases_when_neither_is_there(tmp_path, capsys):
    (tmp_path / "Flickr2K.tar").write_bytes(b"")
    assert main(["--only", "noisy", "--root", str(tmp_path / "r"), "--from-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert ("div2k-flickr2k needs one of these file sets, and these of their files are missing: "
            "[ETH DIV2K_train_HR.zip + DIV2K_valid_HR.zip] DIV2K_train_HR.zip + DIV2K_valid_HR.zip or "
            "[EDSR DIV2K.tar] DIV2K.tar") in err


# ------------------------------------------------------------------------ the validation zip

@pytest.mark.parametrize("top", ["daclip_val/val/", "val/", ""])
def test_preset_daclip_val_pairs_the_official_layout(top, tmp_path, monkeypatch, capsys):
    fx = daclip_val_fixture(top)
    patched_recipes(monkeypatch, fx.overrides())
    root = tmp_path / "val"
    with Server(fx.files) as srv:
        assert main(["--preset", "daclip-val", "--root", str(root), "--mirror", srv.url, "--quiet"]) == 0
    df = check_pairs(root, fx)
    assert set(df["split"]) == {"val"} and set(df["type"]) == set(DEGRADATIONS)
    report = json.loads((root / "build_report.json").read_text())["recipes"]["daclip-val"]
    assert [Path(p["file"]).name for p in report["problems"]] == ["stray.png"]
    assert f"{top}hazy/{{LQ,GT}}: 2 pairs" in "\n".join(report["layout"])
    assert report["found"]["motion-blurry/val"] == 2 and report["expected"]["motion-blurry/val"] == 1111
    out = capsys.readouterr().out
    assert "daclip-val: 20 built" in out and "layout:" in out


def test_daclip_val_comes_from_its_drive_id(tmp_path, monkeypatch):
    fx = daclip_val_fixture()
    with Server(fx.files, drive={"1JKd1tA7rMoEbI9190daJqL7i6V1L8KUd": "daclip_val.zip"}) as srv:
        root, out = _build_one("daclip-val", fx, tmp_path, monkeypatch, drive_url=srv.url + "/download")
        assert [p for p, _ in srv.log] == ["/download", "/download"]  # through Drive's confirmation page
    assert out["error"] is None and out["files"]["daclip_val.zip"]["from"] == "gdrive 1JKd1tA7rMoEbI9190daJqL7i6V1L8KUd"
    check_pairs(root, fx)


def test_preset_daclip_val_is_listed_with_its_drive_id(capsys):
    assert main(["--preset", "daclip-val", "--list"]) == 0
    out = capsys.readouterr().out
    assert "gdrive: 1JKd1tA7rMoEbI9190daJqL7i6V1L8KUd" in out and "[<top>/][val/]<type>/{LQ,GT}" in out


# --------------------------------------------------------------------------------------- --index

def _official_folder(root: Path, nested: bool) -> dict:
    """<root>/[val/]<type>/{LQ,GT}: two pairs for hazy and noisy, one for snowy; returns name -> k."""
    out, k = {}, 0
    for task, n in (("hazy", 2), ("noisy", 2), ("snowy", 1)):
        base = root / ("val" if nested else "") / task
        for i in range(n):
            k += 1
            for kind in ("LQ", "GT"):
                (base / kind).mkdir(parents=True, exist_ok=True)
                (base / kind / f"im{i}.png").write_bytes(image_bytes(k, lq=kind == "LQ"))
            out[(task, f"im{i}")] = k
    return out


@pytest.mark.parametrize("nested", [True, False])
def test_index_writes_a_manifest_in_place_without_copies(nested, tmp_path):
    root = tmp_path / "official"
    expected = _official_folder(root, nested)
    (root / "train" / "rainy" / "LQ").mkdir(parents=True)  # a train split too
    (root / "train" / "rainy" / "GT").mkdir(parents=True)
    (root / "train" / "rainy" / "LQ" / "r.png").write_bytes(image_bytes(50, lq=True))
    (root / "train" / "rainy" / "GT" / "r.png").write_bytes(image_bytes(50))
    expected[("rainy", "r")] = 50
    (root / ("val" if nested else "") / "hazy" / "LQ" / "lonely.png").write_bytes(image_bytes(60, lq=True))  # no GT
    before = {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}
    assert main(["--index", str(root)]) == 0
    df = mf.read_manifest(root)
    assert {(r.type, Path(r.name).stem): None for r in df.itertuples()}.keys() == expected.keys()
    for r in df.to_dict("records"):
        lq, gt = read_image(root / r["lq_path"]), read_image(root / r["gt_path"])
        assert decode(lq) == decode(gt) == expected[(r["type"], Path(r["name"]).stem)]
        assert r["split"] == ("train" if r["type"] == "rainy" else "val")
        assert sha256_file(root / r["lq_path"]) == r["sha256"] and (r["width"], r["height"]) == (SIDE, SIDE)
    after = {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}
    assert set(after) - set(before) == {"manifest.parquet", "index_report.json", ".daclip.lock"}  # nothing copied
    assert all(after[k] == v for k, v in before.items())
    report = json.loads((root / "index_report.json").read_text())
    assert [Path(p["file"]).name for p in report["unpaired"]] == ["lonely.png"]


def test_index_refuses_size_mismatches_with_a_report(tmp_path, capsys):
    root = tmp_path / "official"
    _official_folder(root, nested=True)
    (root / "val" / "noisy" / "GT" / "im1.png").write_bytes(image_bytes(3, size=(SIDE + 2, SIDE)))
    assert main(["--index", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --index {root}: refused, 1 pairs cannot be used as they are (e.g. "
                          f"val/noisy/im1: size-mismatch: LQ 16x16 vs GT 18x16); no manifest was written")
    assert not (root / "manifest.parquet").exists()
    assert json.loads((root / "index_report.json").read_text())["refused"][0]["id"] == "val/noisy/im1"


def test_index_keeps_a_built_manifest_unless_forced(mini_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "m"
    shutil.copytree(mini_root, root)
    assert main(["--index", str(root)]) == 2
    assert "already has a manifest written by a build (210 rows" in capsys.readouterr().err
    assert len(mf.read_manifest(root)) == 210
    assert main(["--index", str(root), "--force"]) == 0
    assert len(mf.read_manifest(root)) == 210


def test_benchmark_on_a_folder_without_manifest_says_to_index(tmp_path, capsys):
    from benchmark.run import main as bench_main

    _official_folder(tmp_path / "official", nested=True)
    rc = bench_main(["--dataset", str(tmp_path / "official"), "--methods", "identity", "--out", str(tmp_path / "o"),
                     "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"python -m builders.build --index {tmp_path / 'official'}" in err


# ---------------------------------------------------------------------- published sizes/digests

def test_list_json_shows_every_published_size_and_digest(capsys):
    assert main(["--list", "--json"]) == 0
    files = {f["name"]: f for r in json.loads(capsys.readouterr().out) for f in r["files"]}
    assert (files["lol_dataset.zip"]["size"], files["lol_dataset.zip"]["sha256"]) == (
        347171015, "419fddc48958cd0f5599939ee0248852a37ceb8bb738c9b9525e95b25a89de9a")
    assert (files["CBSD68.tar.gz"]["size"], files["CBSD68.tar.gz"]["sha256"]) == (
        19742236, "9f3189a2df750bf213308a719db520965e6d2183a91dc8d8d7661a83391f7c9e")
    assert files["DIV2K_train_HR.zip"]["md5"] == "bdc2d9338d4e574fe81bf7d158758658"
    assert files["DIV2K_valid_HR.zip"]["size"] == 448993893
    assert files["Flickr2K.tar"]["md5"] == "5d3f39443d5e9489bff8963f8f26cb03" and files["Flickr2K.tar"]["size"] is None
    live1 = [f for n, f in files.items() if n.startswith("LIVE1/")]
    masks = [files[f"{i:06d}.png"] for i in range(100)]
    assert len(live1) == 29 and all(f["size"] and len(f["sha256"]) == 64 for f in live1 + masks)
    assert files["LIVE1/bikes.bmp"]["sha256"] == "92d6ced80de60248eb0248a9b37e35ab2fd1fa4516ba249b62fb53ee60b8ff16"
    assert files["000099.png"]["size"] == 6440
    assert "c2cc14146faac85680b4cb39ece4ef9e2a7c7c24" in files["000000.png"]["candidates"][0]["where"]
    s3 = files["Snow100K-training.tar.gz"]["candidates"]
    assert all(c["dead"] for c in s3)
    assert files["RESIDE-6K"]["kind"] == "folder"


# The project's facts live in ../shared beside the repository (CI clones it there too).
REPO_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "checksums.tsv"


@pytest.mark.skipif(not REFERENCE.exists(), reason=f"the project's reference notes are not at {REFERENCE}")
def test_every_published_dataset_figure_is_in_a_recipe():
    from builders.sources import all_recipes, preset_recipes

    files = {f.name: f for r in all_recipes() + preset_recipes() for f in r.files}
    seen = 0
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, size, digest, _ = line.split("\t")
        key = name.split(" (")[0].replace("inpainting_masks/", "")
        if key.endswith((".pt", ".pth")):
            continue  # model weights: daclip.weights
        f = files[key]
        algo, value = digest.split(":")
        assert getattr(f, algo) == value and f.size == (None if size == "?" else int(size)), key
        seen += 1
    assert seen == 134


def test_a_file_that_is_not_the_published_one_is_refused_with_both_values(tmp_path, capsys):
    (tmp_path / "CBSD68.tar.gz").write_bytes(b"\x1f\x8b" + b"x" * 100)
    assert main(["--only", "noisy", "--root", str(tmp_path / "r"), "--from-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert ("--from-dir: " + str(tmp_path / "CBSD68.tar.gz") + " failed verification: CBSD68.tar.gz: size 102 bytes, "
            "expected 19742236; replace it with a good copy") in err


def test_md5_is_checked_where_only_md5_was_published(tmp_path):
    import hashlib

    from builders_full_fixtures import tar_bytes

    from builders.download import DownloadConfig, fetch
    from builders.errors import UserError
    from builders.sources import NeededFile

    data = tar_bytes({"Flickr2K/Flickr2K_HR/000001.png": b"x"}, gz=False)
    (tmp_path / "Flickr2K.tar").write_bytes(data)
    cfg = DownloadConfig(cache_dir=tmp_path / "dl", from_dir=tmp_path, progress=False)
    good = hashlib.md5(data).hexdigest()
    assert fetch(NeededFile("Flickr2K.tar", (), md5=good), cfg).sha256 == sha256(data)
    with pytest.raises(UserError, match=f"Flickr2K.tar: md5 mismatch: got {good}, expected {'0' * 32}"):
        fetch(NeededFile("Flickr2K.tar", (), md5="0" * 32), cfg)


# --------------------------------------------------------------- how the paper stores its LQ

def test_noisy_lq_is_stored_by_truncation_as_generate_lq_does():
    """scripts/generate_LQ.py: cv2.imread(..) / 255., + np.float32(randn) * 50 / 255., clipped to
    [0, 1], stored as (x * 255).astype(uint8). Recomputed here from the same normal draws."""
    from builders.synth import synthesize

    gt = np.random.default_rng(5).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    seed = 1234
    z = np.random.default_rng(seed).standard_normal(gt.shape)
    official = (np.clip(gt / 255. + np.float32(z) * 50 / 255., 0, 1) * 255).astype(np.uint8)
    ours = synthesize("noisy", gt, seed, store="truncate")
    assert np.array_equal(ours.lq, official) and ours.params["uint8_store"] == "truncate"
    rounded = synthesize("noisy", gt, seed).lq  # the mini/--images convention, unchanged
    diff = rounded.astype(int) - ours.lq.astype(int)
    assert set(np.unique(diff)) <= {0, 1} and 0.3 < (diff == 1).mean() < 0.7


def test_jpeg_lq_equals_the_official_opencv_path():
    """add_jpg_compression: cv2.imencode('.jpg', img * 255., quality 10), imdecode / 255., then
    (x * 255).astype(uint8). Pillow's libjpeg gives the same bytes; truncation changes nothing."""
    cv2 = pytest.importorskip("cv2")
    from builders.synth import synthesize

    gt = np.random.default_rng(6).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    bgr = gt[..., ::-1] / 255.
    _, enc = cv2.imencode(".jpg", bgr * 255., [int(cv2.IMWRITE_JPEG_QUALITY), 10])
    official = (np.float32(cv2.imdecode(enc, 1)) / 255. * 255).astype(np.uint8)[..., ::-1]
    ours = synthesize("jpeg-compressed", gt, 0, store="truncate")
    assert np.array_equal(ours.lq, official) and ours.params["uint8_store"] == "truncate"
    assert np.array_equal(synthesize("jpeg-compressed", gt, 0).lq, official)
