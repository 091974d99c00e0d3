"""Hostile and careless use of the dataset builders (issue 12 and the builder rough edges of 14):
nothing deleted, nothing lost, nothing silently wrong, and one ``error:`` line instead of a
traceback. Each test is one of the issues' probes; all but the 1x1/8x8 one failed at c97e5ab."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders_full_fixtures import BOMB_SIZE, Server, decode, image_bytes, sha256, zip_bomb, zip_bytes
from PIL import Image

from builders import manifest as mf
from builders.build import main
from builders.io import read_image, sha256_file

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SMALL = ["--train-per-type", "1", "--val-per-type", "1", "--crop", "32", "--quiet"]


def _cli(*args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "builders.build", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, **kw)


def _run(capsys, *args) -> tuple[int, str]:
    """builders.build in this process (fast); returns the exit code and what it printed on stderr."""
    capsys.readouterr()
    rc = main(list(args))
    return rc, capsys.readouterr().err


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_ds_built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small") / "ds"
    assert main(["--preset", "mini", "--root", str(root), "--tasks", "noisy,hazy", *SMALL]) == 0
    return root


@pytest.fixture
def small_ds(small_ds_built, tmp_path) -> Path:
    """A copy of its own for each test: a probe that destroys it must not break the next one."""
    import shutil

    return Path(shutil.copytree(small_ds_built, tmp_path / "own" / "ds", ignore=shutil.ignore_patterns(".daclip.lock")))


@pytest.fixture
def held_root(tmp_path, lock_holder):
    """A dataset root whose writer lock another process holds (a build in progress)."""
    root = tmp_path / "busy"
    return root, lock_holder(root, "dataset root").pid


# ------------------------------------------------------------------ 1. --export-hf never deletes

def test_export_into_a_non_empty_folder_is_refused_and_keeps_it(small_ds, tmp_path, monkeypatch, capsys):
    mywork = tmp_path / "mywork"
    mywork.mkdir()
    (mywork / "thesis.tex").write_text("months of work")
    monkeypatch.chdir(tmp_path)
    rc, err = _run(capsys, "--export-hf", "mywork", "--root", str(small_ds))
    assert rc == 2
    assert _error_line(err) == ("error: --export-hf mywork: the folder is not empty; nothing is ever "
                                "overwritten, give a new or empty folder")
    assert (mywork / "thesis.tex").read_text() == "months of work"


def test_export_onto_the_dataset_root_or_a_parent_is_refused(small_ds, tmp_path, monkeypatch, capsys):
    before = mf.read_manifest(small_ds)
    work = tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    (tmp_path / "work" / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    for target in (str(small_ds), str(small_ds / ".."), ".."):
        rc, err = _run(capsys, "--export-hf", target, "--root", str(small_ds))
        assert rc == 2, target
        line = _error_line(err)
        assert ("is the dataset root" in line and "or a folder above it" in line) or "not empty" in line, line
    pd.testing.assert_frame_equal(mf.read_manifest(small_ds), before)
    assert (tmp_path / "work" / "keep.txt").exists() and work.is_dir()


def test_export_onto_a_file_is_refused_before_any_work(small_ds, tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    rc, err = _run(capsys, "--export-hf", "afile", "--root", str(small_ds))
    assert rc == 2
    assert _error_line(err) == "error: --export-hf afile: exists and is not a folder; give a new folder name"
    assert (tmp_path / "afile").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "own") == ["afile"]  # no .afile.exporting left


def test_export_keeps_the_caption_column_and_fills_an_empty_folder(small_ds, tmp_path):
    from datasets import load_from_disk

    root = small_ds
    df = mf.read_manifest(root)
    mf.write_manifest(root, df.assign(caption=[f"a photo {i}" for i in range(len(df))]))
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["--export-hf", str(out), "--root", str(root), "--quiet"]) == 0
    dd = load_from_disk(str(out))
    got = {r["id"]: r["caption"] for split in dd for r in dd[split]}
    want = dict(zip(mf.read_manifest(root)["id"], mf.read_manifest(root)["caption"]))
    assert got == want
    assert not [p for p in tmp_path.iterdir() if ".exporting" in p.name]


# ------------------------------------------------------------------ 3. concurrent writers

def test_a_build_on_a_root_another_writer_holds_is_refused_naming_it(held_root, capsys):
    root, pid = held_root
    rc, err = _run(capsys, "--preset", "mini", "--root", str(root), *SMALL)
    assert rc == 2
    line = _error_line(err)
    assert line.startswith(f"error: dataset root {root} is in use by pid {pid} on ")
    assert line.endswith("; wait for it to finish or use another folder")
    assert not (root / "manifest.parquet").exists()


def test_two_builds_at_once_lose_no_rows(tmp_path):
    """Two builds of different types on one root, started together: whatever each reports as
    done is in the manifest (before: 105 of 210 rows survived, both exiting 0)."""
    root = tmp_path / "ds"
    common = ["--preset", "mini", "--root", str(root), "--train-per-type", "3", "--val-per-type", "1", "--quiet"]
    a = subprocess.Popen([sys.executable, "-m", "builders.build", *common, "--tasks", "noisy,hazy,rainy,snowy,low-light"],
                         env=ENV, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([sys.executable, "-m", "builders.build", *common, "--tasks", "raindrop,shadowed,uncompleted,"
                          "jpeg-compressed,motion-blurry"], env=ENV, stderr=subprocess.PIPE, text=True)
    results = [(p, p.communicate()[1]) for p in (a, b)]
    df = mf.read_manifest(root)
    for p, err in results:
        if p.returncode == 0:
            continue
        assert p.returncode == 2 and "is in use by pid" in _error_line(err)
    done = sum(20 for p, _ in results if p.returncode == 0)
    assert len(df) == done and done >= 20
    for r in df.to_dict("records"):
        assert sha256_file(root / r["lq_path"]) == r["sha256"]


def test_captioning_refuses_while_a_build_writes_the_root(held_root, small_ds, tmp_path, capsys):
    """With a working (tiny) captioner: before, it captioned and rewrote the manifest under the
    running build, which then overwrote the caption column or lost its own new rows."""
    import shutil

    from captioning.run import main as caption_main
    from captioning.tiny import build_tiny_blip

    root, pid = held_root
    for p in small_ds.iterdir():
        if p.name != ".daclip.lock":
            (shutil.copytree if p.is_dir() else shutil.copy)(p, root / p.name)
    model = build_tiny_blip(tmp_path / "tiny-blip")
    capsys.readouterr()
    assert caption_main(["--root", str(root), "--model", str(model), "--workers", "0", "--max-new-tokens", "4",
                         "--quiet"]) == 2
    assert _error_line(capsys.readouterr().err).startswith(f"error: dataset root {root} is in use by pid {pid} on ")
    assert not (root / "daclip_train.csv").exists()


# ---------------------------------------------------------------- 4. silently wrong data

def _flat_png(path: Path, k: int, size=(40, 30)) -> None:
    path.write_bytes(image_bytes(k, path.suffix[1:].replace("jpeg", "jpg"), size=size))


def test_images_whose_names_collide_keep_their_own_pixels(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    names = {"a b.png": 1, "a_b.png": 2, "a+b.png": 3, "x.png": 4, "x.jpg": 5}
    for n, k in names.items():
        _flat_png(src / n, k)
    root = tmp_path / "out"
    assert main(["--images", str(src), "--root", str(root), "--train-per-type", "4", "--val-per-type", "1",
                 "--crop", "16", "--quiet"]) == 0
    df = mf.read_manifest(root)
    assert len(df) == 50 and df["id"].is_unique
    for r in df.to_dict("records"):
        src_name = r["source"].removeprefix("folder:")
        assert decode(read_image(root / r["gt_path"])) == names[src_name], (r["id"], src_name)
    assert len({n.rsplit("_", 1)[0] for n in df["name"]}) == 5  # five distinct output stems


def test_16_bit_png_is_not_an_all_white_gt(tmp_path):
    grey = (np.arange(24 * 24, dtype=np.uint32).reshape(24, 24) * 113 % 65536).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")  # mode I;16
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    img = read_image(tmp_path / "g16.png")
    assert np.array_equal(img, np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, 2))
    src = tmp_path / "photos"
    src.mkdir()
    (src / "g16.png").write_bytes((tmp_path / "g16.png").read_bytes())
    assert main(["--images", str(src), "--root", str(tmp_path / "o"), "--tasks", "noisy", "--short-side", "0",
                 "--crop", "0", "--train-per-type", "0", "--val-per-type", "1", "--quiet"]) == 0
    row = mf.read_manifest(tmp_path / "o").iloc[0]
    assert np.array_equal(read_image(tmp_path / "o" / row["gt_path"]), img)


def _save(mode_img: Image.Image, path: Path, **kw) -> Path:
    mode_img.save(path, **kw)
    return path


def test_every_pixel_mode_is_converted_or_refused_by_name(tmp_path):
    from builders.errors import UserError

    rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    opaque = base.convert("RGBA")
    assert np.array_equal(read_image(_save(opaque, tmp_path / "rgba.png")), rgb)
    la = base.convert("LA")
    assert np.array_equal(read_image(_save(la, tmp_path / "la.png")),
                          np.repeat(np.asarray(base.convert("L"))[..., None], 3, 2))
    p = base.convert("P")
    assert np.array_equal(read_image(_save(p, tmp_path / "p.png")), np.asarray(p.convert("RGB")))
    one = base.convert("1")
    assert set(np.unique(read_image(_save(one, tmp_path / "1.png")))) <= {0, 255}
    cmyk = base.convert("CMYK")
    assert np.abs(read_image(_save(cmyk, tmp_path / "c.jpg", quality=100)).astype(int) - rgb).mean() < 12
    i32 = Image.fromarray((np.arange(72, dtype=np.int32).reshape(8, 9) * 1000))
    f32 = Image.fromarray(np.linspace(0, 1, 72, dtype=np.float32).reshape(8, 9))
    for img, name, why in ((i32, "i.tif", "pixel mode I (32-bit integer)"), (f32, "f.tif", "pixel mode F (32-bit float)")):
        with pytest.raises(UserError, match=rf"{name}: {re.escape(why)} has no agreed 0..255 range"):
            read_image(_save(img, tmp_path / name))
    clear = opaque.copy()
    clear.putpixel((0, 0), (1, 2, 3, 0))
    with pytest.raises(UserError, match=r"t\.png: it has transparent pixels \(mode RGBA\)"):
        read_image(_save(clear, tmp_path / "t.png"))
    r = _cli("--images", str(tmp_path), "--root", str(tmp_path / "o"))
    assert r.returncode == 2 and "f.tif" in _error_line(r.stderr)  # the first refused file, named


# ---------------------------------------------------------- 5. downloads, extraction, interrupts

def _fetch(tmp_path, f, **kw):
    from builders.download import DownloadConfig, fetch

    return fetch(f, DownloadConfig(cache_dir=tmp_path / "dl", progress=False, backoff_s=0.01, chunk=1024,
                                   retries=0, **kw))


def test_a_truncated_download_without_length_is_not_recorded_as_good(tmp_path):
    from builders.errors import UserError
    from builders.sources import NeededFile

    archive = zip_bytes({f"d/{i}.png": np.random.default_rng(i).bytes(4000) for i in range(10)})
    f = NeededFile("RainTrainH.zip", ())  # no size or digest published, as for most real archives
    with Server({"RainTrainH.zip": archive}, cut_without_length={"RainTrainH.zip"}) as srv:
        with pytest.raises(UserError, match=r"RainTrainH\.zip: damaged or truncated zip archive"):
            _fetch(tmp_path, f, mirror=srv.url)
        assert not list((tmp_path / "dl").iterdir())  # neither kept nor stamped
        srv.cut.clear()  # the mirror is fixed: the next run fetches the whole file
        assert _fetch(tmp_path, f, mirror=srv.url).path.read_bytes() == archive


@pytest.mark.parametrize("ctype", ["text/html", "application/octet-stream"])
def test_an_html_page_instead_of_the_file_is_refused(ctype, tmp_path):
    from builders.errors import UserError
    from builders.sources import NeededFile

    page = b"<!DOCTYPE html><html><body>Quota exceeded. Sign in to continue.</body></html>"
    with Server({"lol_dataset.zip": page}, html_ctype=ctype) as srv:
        with pytest.raises(UserError, match=r"lol_dataset\.zip: .*web page"):
            _fetch(tmp_path, NeededFile("lol_dataset.zip", ()), mirror=srv.url)
    assert not list((tmp_path / "dl").iterdir())


def test_a_bad_cached_download_is_fetched_again(fx_rain, tmp_path, capsys):
    """A cached archive stamped as verified by an older release of the builder, but truncated:
    it is re-checked, deleted and fetched again (before: every re-run failed on it, --force too)."""
    root = tmp_path / "root"
    cache = root / ".downloads"
    cache.mkdir(parents=True)
    good = fx_rain["RainTrainH.zip"]
    bad = good[: len(good) // 2]
    (cache / "RainTrainH.zip").write_bytes(bad)
    st = (cache / "RainTrainH.zip").stat()
    (cache / ".RainTrainH.zip.verified.json").write_text(json.dumps(
        {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "expected_size": None, "expected_sha256": None,
         "sha256": sha256(bad)}))
    with Server(fx_rain) as srv:
        rc = main(["--only", "rainy", "--root", str(root), "--mirror", srv.url, "--quiet", "--force"])
    assert rc == 0, capsys.readouterr().err
    assert (cache / "RainTrainH.zip").read_bytes() == good
    assert len(mf.read_manifest(root)) == 3


@pytest.fixture
def fx_rain():
    out = {}
    for archive, folder, nums in (("RainTrainH.zip", "RainTrainH", ["1", "2"]), ("Rain100H.zip", "Rain100H", ["001"])):
        m = {}
        for i, n in enumerate(nums):
            m[f"{folder}/rain-{n}.png"] = image_bytes(10 + i, lq=True)
            m[f"{folder}/norain-{n}.png"] = image_bytes(10 + i)
        m[f"{folder}/pad.bin"] = np.random.default_rng(3).bytes(20_000)  # large enough to cut
        out[archive] = zip_bytes(m)
    return out


def test_a_damaged_archive_found_at_extraction_is_deleted_for_a_fresh_fetch(fx_rain, tmp_path, capsys):
    root = tmp_path / "root"
    broken = bytearray(fx_rain["RainTrainH.zip"])
    i = broken.index(b"PK\x03\x04", 10)  # corrupt the data of the second member: CRC error
    broken[i + 40:i + 60] = b"\xff" * 20
    files = {**fx_rain, "RainTrainH.zip": bytes(broken)}
    with Server(files) as srv:
        assert main(["--only", "rainy", "--root", str(root), "--mirror", srv.url, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "RainTrainH.zip: damaged or truncated archive" in err and "was deleted, run again to fetch it anew" in err
        assert not (root / ".downloads" / "RainTrainH.zip").exists()
        srv.files["RainTrainH.zip"] = fx_rain["RainTrainH.zip"]
        assert main(["--only", "rainy", "--root", str(root), "--mirror", srv.url, "--quiet"]) == 0


def test_a_zip_bomb_stops_before_writing(tmp_path, capsys):
    """3 MB that inflate to 3 GiB: refused from the declared sizes, naming the member and the
    options that raise the limits; nothing is written."""
    bomb = zip_bomb("RainTrainH/zeros.bin")
    assert len(bomb) < 3_200_000 and zipfile.ZipFile(io.BytesIO(bomb)).infolist()[0].file_size == BOMB_SIZE
    src = tmp_path / "by_hand"
    src.mkdir()
    (src / "RainTrainH.zip").write_bytes(bomb)
    (src / "Rain100H.zip").write_bytes(zip_bytes({"Rain100H/rain-1.png": image_bytes(1, lq=True),
                                                  "Rain100H/norain-1.png": image_bytes(1)}))
    root = tmp_path / "root"
    t0 = time.monotonic()
    assert main(["--only", "rainy", "--root", str(root), "--from-dir", str(src), "--quiet"]) == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert ("RainTrainH.zip: member 'RainTrainH/zeros.bin' brings the extracted size to 3.0 GiB, over the limit "
            "of 297.7 MiB (--max-extract-size 500.0 GiB, --max-extract-ratio 100 x the archive's 3.0 MiB)") in err
    extracted = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert extracted < 1_000_000
    # The limits are options: a lower absolute limit is named the same way.
    assert main(["--only", "rainy", "--root", str(root), "--from-dir", str(src), "--quiet",
                 "--max-extract-size", "1M", "--max-extract-ratio", "1e6"]) == 2
    assert "over the limit of 1.0 MiB (--max-extract-size 1.0 MiB" in capsys.readouterr().err


def test_extraction_limits_have_help():
    from builders.build import build_parser

    text = build_parser().format_help()
    assert "--max-extract-size SIZE" in text and "--max-extract-ratio R" in text


def test_ctrl_c_while_the_manifest_is_written_keeps_it(tmp_path, monkeypatch):
    """SIGINT arrives in the middle of writing the manifest (the final flush): the write
    completes, then the interrupt ends the command with 130 and the rows are all there."""
    import builders.manifest as manifest_mod

    real = manifest_mod.atomic_write_bytes
    sent = {"n": 0}

    def interrupted(path, data):
        if sent["n"] == 0:
            sent["n"] += 1
            signal.raise_signal(signal.SIGINT)  # delivered to this (the main) thread, mid-write
        return real(path, data)

    monkeypatch.setattr(manifest_mod, "atomic_write_bytes", interrupted)
    root = tmp_path / "ds"
    # Ctrl-C as at a terminal, with Python's default handler: a test run started in the
    # background (`nohup pytest &`) inherits SIGINT ignored, and an ignored Ctrl-C stays ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rc = main(["--preset", "mini", "--root", str(root), "--tasks", "noisy", *SMALL])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert rc == 130
    df = mf.read_manifest(root)
    assert len(df) == 2 and sorted(df["name"]) == sorted(p.name for p in root.glob("*/noisy/LQ/*.png"))


# The build, killed by an injected failure point: right after its third manifest flush (one every
# 10 finished pairs here), the process SIGKILLs itself. No timing decides where it stops.
_KILLED_AFTER_THIRD_FLUSH = """
import os, signal, sys
import builders.manifest as mf
import builders.synthset as synthset
from builders.build import main

synthset.FLUSH_EVERY_ROWS = 10
real, flushes = mf.write_manifest, []

def write_then_die(root, rows):
    out = real(root, rows)
    flushes.append(len(rows))
    if len(flushes) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return out

mf.write_manifest = write_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_synthetic_build_keeps_every_flushed_row(tmp_path, mini_root):
    """SIGKILL during a mini build: the manifest on disk is always a complete earlier state,
    and the re-run ends equal to a clean build's rows."""
    root = tmp_path / "m"
    tasks = ["noisy", "hazy", "rainy", "snowy", "low-light", "shadowed"]
    args = ["--preset", "mini", "--root", str(root), "--quiet", "--tasks", ",".join(tasks)]
    proc = subprocess.run([sys.executable, "-c", _KILLED_AFTER_THIRD_FLUSH, *args], env=ENV, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    df = mf.read_manifest(root)
    assert 0 < len(df) <= 30  # three flushes of at most 10 new rows each, of 126
    for r in df.to_dict("records"):
        assert sha256_file(root / r["lq_path"]) == r["sha256"] and sha256_file(root / r["gt_path"]) == r["gt_sha256"]
    cmd = [sys.executable, "-m", "builders.build", *args]
    assert subprocess.run(cmd, env=ENV, check=False).returncode == 0
    full = mf.read_manifest(mini_root)
    pd.testing.assert_frame_equal(mf.read_manifest(root), full[full["type"].isin(tasks)].reset_index(drop=True))


# ---------------------------------------------------------------------------- 6. tiny images

def test_1x1_and_8x8_sources_build_at_their_own_size(tmp_path):
    """Decision: the builder takes any size; with --short-side 0 --crop 0 every type keeps the
    source's size (metrics that need a larger image skip it, with a reason: benchmark's part)."""
    src = tmp_path / "photos"
    src.mkdir()
    _flat_png(src / "dot.png", 7, size=(1, 1))
    _flat_png(src / "tile.png", 9, size=(8, 8))
    root = tmp_path / "o"
    assert main(["--images", str(src), "--root", str(root), "--short-side", "0", "--crop", "0",
                 "--train-per-type", "2", "--val-per-type", "0", "--quiet"]) == 0
    df = mf.read_manifest(root)
    assert len(df) == 20
    for r in df.to_dict("records"):
        side = 1 if r["source"] == "folder:dot.png" else 8
        lq, gt = read_image(root / r["lq_path"]), read_image(root / r["gt_path"])
        assert lq.shape == gt.shape == (side, side, 3) and (r["width"], r["height"]) == (side, side)
        assert decode(gt) == (7 if side == 1 else 9)


# ------------------------------------------------------------------------ 7./8. one error line

def test_root_that_is_a_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    for args in (["--preset", "mini", *SMALL], ["--all", "--from-dir", str(tmp_path)], ["--status"]):
        rc, err = _run(capsys, *args, "--root", "afile")
        assert rc == 2, args
        line = _error_line(err)
        assert "afile is a file" in line, line
    rc, err = _run(capsys, "--index", "afile")
    assert rc == 2 and _error_line(err) == "error: --index afile: not a folder"
    assert (tmp_path / "afile").read_text() == "x"


def _build_from(capsys, tmp_path, archive: bytes, name: str = "Rain100H.zip") -> tuple[int, str]:
    src = tmp_path / "by_hand"
    src.mkdir(exist_ok=True)
    (src / "RainTrainH.zip").write_bytes(zip_bytes({"RainTrainH/rain-1.png": image_bytes(1, lq=True),
                                                    "RainTrainH/norain-1.png": image_bytes(1)}))
    (src / name).write_bytes(archive)
    return _run(capsys, "--only", "rainy", "--root", str(tmp_path / "root"), "--from-dir", str(src), "--quiet")


def _zip_raw(entries: list[tuple[str, bytes]]) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name"
        for n, d in entries:
            zf.writestr(n, d)
    return buf.getvalue()


def test_member_that_is_a_file_and_a_folder_is_one_error_line(tmp_path, capsys):
    rc, err = _build_from(capsys, tmp_path, _zip_raw([("Rain100H/x", b"a file"), ("Rain100H/x/rain-1.png", image_bytes(1))]))
    assert rc == 2
    assert ("Rain100H.zip: 'Rain100H/x' is both a file and a folder in the archive (member "
            "'Rain100H/x/rain-1.png'); it cannot be extracted") in _error_line(err)


def test_member_with_a_300_character_name_is_one_error_line(tmp_path, capsys):
    long = "Rain100H/" + "n" * 300 + ".png"
    rc, err = _build_from(capsys, tmp_path, _zip_raw([(long, image_bytes(1))]))
    assert rc == 2
    assert "Rain100H.zip: member name too long for the file system (over 255 bytes" in _error_line(err)


def test_really_truncated_zip_says_so(tmp_path, capsys):
    good = _zip_raw([("Rain100H/rain-1.png", np.random.default_rng(0).bytes(5000))])
    rc, err = _build_from(capsys, tmp_path, good[: len(good) // 3])
    assert rc == 2
    line = _error_line(err)
    assert "Rain100H.zip: damaged or truncated zip archive" in line and "not a zip or tar archive" not in line


def test_duplicate_archive_members_are_refused(tmp_path, capsys):
    rc, err = _build_from(capsys, tmp_path, _zip_raw([("Rain100H/rain-1.png", image_bytes(1, lq=True)),
                                            ("Rain100H/norain-1.png", image_bytes(1)),
                                            ("Rain100H/rain-1.png", image_bytes(2, lq=True))]))
    assert rc == 2
    assert ("Rain100H.zip: member 'Rain100H/rain-1.png' appears twice in the archive; which copy is meant is "
            "ambiguous, so the archive is refused") in _error_line(err)
    assert not (tmp_path / "root" / "val").exists()


# ------------------------------------------------------------------------ issue 14 rough edges

def test_output_into_a_closed_pipe_ends_quietly():
    """`builders.build --list | head -1`: the reader goes away; no BrokenPipeError traceback."""
    r_fd, w_fd = os.pipe()
    os.close(r_fd)  # the reader is gone before the first write
    try:
        p = subprocess.run([sys.executable, "-m", "builders.build", "--list"], stdout=w_fd, stderr=subprocess.PIPE,
                           env=ENV, text=True)
    finally:
        os.close(w_fd)
    assert p.stderr == "" and p.returncode == 141


def test_status_of_a_missing_root_says_there_is_no_dataset(tmp_path, capsys):
    rc, err = _run(capsys, "--status", "--root", str(tmp_path / "nope"))
    assert rc == 2
    assert _error_line(err).startswith(f"error: --status: {tmp_path / 'nope'} does not exist (no manifest.parquet)")
    (tmp_path / "empty").mkdir()
    rc, err = _run(capsys, "--status", "--root", str(tmp_path / "empty"))
    assert rc == 2 and "has no dataset (no manifest.parquet)" in _error_line(err)
