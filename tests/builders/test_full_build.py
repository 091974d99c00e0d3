"""The full-dataset builders on tiny archives in each source's real layout, served from a
loopback HTTP server (``--mirror``) or a folder (``--from-dir``)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders_full_fixtures import (Server, build_cmd, check_pairs, decode, make_fixtures, patched_recipes, sha256,
                                    tar_bytes, zip_bytes)

from builders import manifest as mf
from builders.build import main
from builders.download import DownloadConfig, drive_confirm_target, fetch
from builders.errors import UserError
from builders.extract import UnsafeArchive, safe_extract
from builders.io import read_image, sha256_file
from builders.sources import Candidate, NeededFile, all_recipes
from builders.tasks import DEGRADATIONS


@pytest.fixture(scope="module")
def fx():
    return make_fixtures()


@pytest.fixture(scope="module", autouse=True)
def replica_digests(fx):
    """The recipes expect the published sizes and digests of the real files; while these tests
    build from replicas, the replicas' own figures stand in for them."""
    with pytest.MonkeyPatch.context() as mp:
        patched_recipes(mp, fx.overrides())
        yield


@pytest.fixture(scope="module")
def overrides_file(fx, tmp_path_factory) -> Path:
    """The same stand-in figures for builds run in a subprocess (builders_full_fixtures.build_cmd)."""
    path = tmp_path_factory.mktemp("overrides") / "overrides.json"
    path.write_text(json.dumps(fx.overrides()))
    return path


@pytest.fixture(scope="module")
def fixture_dir(fx, tmp_path_factory):
    return fx.write(tmp_path_factory.mktemp("by_hand"))


@pytest.fixture(scope="module")
def mirror_build(fx, tmp_path_factory, replica_digests):
    """--all --mirror with 2 workers; GOPRO_Large.zip is cut mid-transfer the first time."""
    root = tmp_path_factory.mktemp("full") / "universal"
    with Server(fx.files, drop_once={"GOPRO_Large.zip"}) as srv:
        rc = main(["--all", "--root", str(root), "--mirror", srv.url, "--workers", "2", "--quiet"])
        first_log = list(srv.log)
        # Re-run: nothing downloaded again, nothing rebuilt, no duplicate rows.
        before = _tree_hashes(root)
        srv.log.clear()
        rc2 = main(["--all", "--root", str(root), "--mirror", srv.url, "--workers", "1", "--quiet"])
        second_log = list(srv.log)
    return {"root": root, "rc": rc, "rc2": rc2, "log": first_log, "log2": second_log,
            "before": before, "after": _tree_hashes(root)}


def _tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.glob("*/*/*/*.png"))} | {"manifest": sha256_file(root / "manifest.parquet")}


def test_list_names_every_source_and_file(capsys):
    assert main(["--list", "--json"]) == 0
    recipes = json.loads(capsys.readouterr().out)
    assert {t for r in recipes for t in r["types"]} == set(DEGRADATIONS)
    names = {f["name"] for r in recipes for f in r["files"]}
    assert {"GOPRO_Large.zip", "RESIDE-6K", "DIV2K.tar", "DIV2K_train_HR.zip", "DIV2K_valid_HR.zip", "Flickr2K.tar",
            "databaserelease2.zip", "LIVE1/bikes.bmp", "lol_dataset.zip", "LOLdataset.zip", "CBSD68.tar.gz",
            "RainDrop", "RainTrainH.zip", "Rain100H.zip", "SRD_Train.zip", "SRD_Test.zip", "Snow100K-subset",
            "Snow100K-training.tar.gz", "Snow100K-testset.tar.gz", "celeba_hq_256.zip", "000000.png", "000099.png",
            "daclip_val.zip"} <= names
    assert all(r["licence"] and r["files"] and all(f["candidates"] for f in r["files"]) for r in recipes)
    paper = {(e["type"], e["split"]): e["count"] for r in recipes if not r["preset"] for e in r["expected"]}
    assert paper[("uncompleted", "train")] == 29900 and paper[("motion-blurry", "val")] == 1111
    assert main(["--list", "--only", "snowy"]) == 0
    text = capsys.readouterr().out
    assert "Snow100K-testset.tar.gz" in text and "GOPRO" not in text


def test_mirror_build_pairs_counts_manifest(mirror_build, fx):
    root = mirror_build["root"]
    assert mirror_build["rc"] == 1  # one failing pair (LOL size mismatch) is reported, not hidden
    df = check_pairs(root, fx)
    counts = df.groupby(["type", "split"]).size().to_dict()
    assert counts == fx.counts()
    assert list(df.columns[: len(mf.COLUMNS)]) == list(mf.COLUMNS)
    gopro = df[df["type"] == "motion-blurry"]
    assert set(gopro["name"]) == {"GOPR0372_07_00_000001.png", "GOPR0372_07_00_000002.png",
                                  "GOPR0374_11_00_000001.png", "GOPR0384_11_00_000001.png", "GOPR0384_11_00_000002.png"}
    assert all(json.loads(p)["lq_variant"].startswith("blur ") for p in gopro["parameters"])
    srd = df[df["type"] == "shadowed"].set_index("name")
    assert json.loads(srd.loc["_MG_10.png", "parameters"])["gt_source"].endswith("shadow_free/_MG_10_no_shadow.jpg")
    # The report names the failing pair and the unpaired file.
    report = json.loads((root / "build_report.json").read_text())
    assert [p["id"] for p in report["recipes"]["lol"]["failed"]] == sorted(fx.failing)
    assert "size-mismatch" in report["recipes"]["lol"]["failed"][0]["kind"]
    assert [Path(p["file"]).name for p in report["recipes"]["raindrop"]["problems"]] == sorted(fx.unpaired)
    assert report["recipes"]["gopro"]["files"]["GOPRO_Large.zip"]["sha256"] == sha256(fx.files["GOPRO_Large.zip"])
    # Which release and which inner layout each source met is in the report.
    rec = report["recipes"]
    assert rec["div2k-flickr2k"]["variant"] == "EDSR DIV2K.tar"  # the mirror has no ETH zips
    assert any("DIV2K_train_HR holds 3 images, 0801-0900 among them" in n and "no DIV2K_valid_HR" in n
               for n in rec["div2k-flickr2k"]["layout"])
    assert not rec["div2k-flickr2k"]["problems"]  # the missing valid folder is not reported missing
    assert rec["lol"]["variant"] == "hub lol_dataset.zip" and rec["live1"]["variant"].startswith("DnCNN")
    assert any("hub deepinv/CBSD68 layout" in n for n in rec["cbsd68"]["layout"])
    assert any("shadow_free/ (GT names <name>_free)" in n for n in rec["srd"]["layout"])
    assert rec["snow100k"]["variant"] == "the author's training subset"
    # Filtered archive members were never extracted.
    assert not list((root / ".extracted").rglob("blur_gamma")) and not list((root / ".extracted").rglob("*x2.png"))


def test_interrupted_download_resumes_with_range(mirror_build, fx):
    gopro = [rng for path, rng in mirror_build["log"] if path == "/GOPRO_Large.zip"]
    assert len(gopro) == 2 and gopro[0] is None and gopro[1].startswith("bytes=")
    assert int(gopro[1][6:-1]) > 0


def test_rerun_is_idempotent(mirror_build):
    assert mirror_build["rc2"] == 1
    assert mirror_build["log2"] == []  # verified downloads are reused
    assert mirror_build["before"] == mirror_build["after"]


def test_status_counts_against_paper(mirror_build, capsys):
    assert main(["--status", "--root", str(mirror_build["root"])]) == 0
    out = capsys.readouterr().out
    lines = {l.split()[0]: l.split()[1:] for l in out.splitlines()}
    assert lines["uncompleted"] == ["2/29900", "-", "100/100"]
    assert lines["motion-blurry"][0] == "3/2103"
    assert "'-' fewer pairs than the paper, '+' more" in out  # the marks are explained


def test_from_dir_builds_the_same_without_network(fx, fixture_dir, mirror_build, tmp_path, monkeypatch):
    import requests

    def no_network(*a, **k):
        raise AssertionError("network used with --from-dir")

    monkeypatch.setattr(requests.Session, "request", no_network)
    root = tmp_path / "root"
    assert main(["--all", "--root", str(root), "--from-dir", str(fixture_dir), "--quiet"]) == 1
    ours, theirs = mf.read_manifest(root), mf.read_manifest(mirror_build["root"])
    pd.testing.assert_frame_equal(ours, theirs)
    assert not (root / ".downloads").exists()


def test_from_dir_missing_file_is_named(fixture_dir, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "RainTrainH.zip").write_bytes((fixture_dir / "RainTrainH.zip").read_bytes())
    rc = main(["--only", "rainy", "--root", str(tmp_path / "r"), "--from-dir", str(partial), "--quiet"])
    assert rc == 2
    assert "Rain100H.zip not found" in capsys.readouterr().err


def test_interrupted_build_resumes_to_the_same_result(fx, fixture_dir, mirror_build, tmp_path, monkeypatch):
    from builders import pair_convert

    real_convert, calls = pair_convert.convert, {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real_convert(*a, **k)

    root = tmp_path / "root"
    monkeypatch.setattr(pair_convert, "convert", flaky)
    args = ["--only", "low-light,rainy,uncompleted", "--root", str(root), "--from-dir", str(fixture_dir), "--quiet"]
    assert main(args) == 130
    assert len(mf.read_manifest(root)) == 4  # finished pairs were flushed (5 done, 1 of them failing)
    monkeypatch.setattr(pair_convert, "convert", real_convert)
    assert main(args) == 1
    ours = mf.read_manifest(root)
    theirs = mf.read_manifest(mirror_build["root"])
    theirs = theirs[theirs["type"].isin(["low-light", "rainy", "uncompleted"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)


def test_killed_build_reruns_to_the_same_result(fx, fixture_dir, mirror_build, tmp_path, overrides_file):
    """SIGKILL (no cleanup at all) in the middle of converting, then a re-run."""
    import os
    import signal
    import subprocess
    import time

    root = tmp_path / "root"
    cmd = build_cmd(overrides_file, "--only", "uncompleted", "--root", str(root), "--from-dir", str(fixture_dir),
                    "--quiet")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lq_dir = root / "val" / "uncompleted" / "LQ"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if lq_dir.is_dir() and len(list(lq_dir.iterdir())) >= 10:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    ours = mf.read_manifest(root)
    theirs = mf.read_manifest(mirror_build["root"])
    theirs = theirs[theirs["type"] == "uncompleted"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs)
    assert sorted(p.name for p in lq_dir.iterdir()) == sorted(ours[ours["split"] == "val"]["name"])


def test_ctrl_c_with_workers_keeps_every_finished_pair(fixture_dir, mirror_build, tmp_path, overrides_file):
    """SIGINT to the whole process group (as a terminal's Ctrl-C) with 2 workers."""
    import os
    import signal
    import subprocess
    import time

    root = tmp_path / "root"
    cmd = build_cmd(overrides_file, "--only", "uncompleted", "--root", str(root), "--from-dir", str(fixture_dir),
                    "--workers", "2", "--quiet")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    lq_dir = root / "val" / "uncompleted" / "LQ"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if lq_dir.is_dir() and len(list(lq_dir.iterdir())) >= 10:
            os.killpg(proc.pid, signal.SIGINT)
            break
        time.sleep(0.01)
    _, err = proc.communicate()
    assert proc.returncode in (130, 0)  # 0 only if the build won the race
    if proc.returncode == 130:
        assert b"interrupted" in err and b"Traceback" not in err
        # Every pair whose files were written is in the manifest: nothing finished is lost.
        rows = mf.read_manifest(root)
        assert sorted(rows[rows["split"] == "val"]["name"]) == sorted(p.name for p in lq_dir.iterdir())
    assert subprocess.run(cmd, env=env, capture_output=True, check=False).returncode == 0
    theirs = mf.read_manifest(mirror_build["root"])
    pd.testing.assert_frame_equal(mf.read_manifest(root), theirs[theirs["type"] == "uncompleted"].reset_index(drop=True))


def test_changed_source_replaces_rows_without_duplicates(fx, fixture_dir, tmp_path, monkeypatch):
    from builders_full_fixtures import image_bytes

    root = tmp_path / "root"
    args = ["--only", "rainy", "--root", str(root), "--quiet", "--from-dir"]
    assert main(args + [str(fixture_dir)]) == 0
    assert len(mf.read_manifest(root)) == 3
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "Rain100H.zip").write_bytes(fx.files["Rain100H.zip"])
    # A new release of the training archive: pair 2 gone, pair 1 with new content.
    new = zip_bytes({"RainTrainH/rain-1.png": image_bytes(150, lq=True), "RainTrainH/norain-1.png": image_bytes(150)})
    (changed / "RainTrainH.zip").write_bytes(new)
    patched_recipes(monkeypatch, {"files": {"RainTrainH.zip": [len(new), sha256(new)]}})
    assert main(args + [str(changed)]) == 0
    df = mf.read_manifest(root)
    assert sorted(df["id"]) == ["train/rainy/rain-1", "val/rainy/rain-001"]
    assert decode(read_image(root / "train/rainy/GT/rain-1.png")) == 150


def test_hf_export_round_trip(mirror_build, tmp_path):
    from datasets import load_from_disk

    out = tmp_path / "hf"
    assert main(["--export-hf", str(out), "--root", str(mirror_build["root"]), "--quiet"]) == 0
    dd = load_from_disk(str(out))
    df = mf.read_manifest(mirror_build["root"])
    assert {k: len(v) for k, v in dd.items()} == df.groupby("split").size().to_dict()
    row = dd["val"][0]
    ref = df.set_index("id").loc[row["id"]]
    assert np.array_equal(np.asarray(row["lq"].convert("RGB")), read_image(mirror_build["root"] / ref["lq_path"]))
    assert np.array_equal(np.asarray(row["gt"].convert("RGB")), read_image(mirror_build["root"] / ref["gt_path"]))
    assert row["licence"] == ref["licence"] and row["type"] == ref["type"]


# ---------------------------------------------------------------------------------- downloading

def _cfg(tmp_path, **kw) -> DownloadConfig:
    return DownloadConfig(cache_dir=tmp_path / "dl", progress=False, backoff_s=0.01, chunk=1024, **kw)


def test_resume_of_a_part_left_by_a_killed_run(tmp_path):
    data = np.random.default_rng(1).bytes(50_000)
    f = NeededFile("blob.bin", (), size=len(data), sha256=sha256(data))
    with Server({"blob.bin": data}) as srv:
        cfg = _cfg(tmp_path, mirror=srv.url)
        part = cfg.cache_dir / "blob.bin.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[:20_000])
        (cfg.cache_dir / "blob.bin.part.from").write_text(f"url {srv.url}/blob.bin")
        got = fetch(f, cfg)
        assert srv.log == [("/blob.bin", "bytes=20000-")]
    assert got.path.read_bytes() == data and not part.exists()


def test_failed_transfer_keeps_its_part_for_the_next_run(tmp_path):
    data = np.random.default_rng(3).bytes(40_000)
    f = NeededFile("blob.bin", ())  # size and sha256 unknown, as for most real archives
    with Server({"blob.bin": data}, drop_once={"blob.bin"}) as srv:
        with pytest.raises(UserError, match="blob.bin.*gave up after 0 retries"):
            fetch(f, _cfg(tmp_path, mirror=srv.url, retries=0))
        have = (tmp_path / "dl" / "blob.bin.part").stat().st_size
        assert 0 < have < len(data)
        got = fetch(f, _cfg(tmp_path, mirror=srv.url))  # the next run resumes
        assert srv.log[-1] == ("/blob.bin", f"bytes={have}-")
    assert got.path.read_bytes() == data


def test_sha256_mismatch_is_rejected_and_named(tmp_path):
    data = b"not the real archive" * 100
    f = NeededFile("LOLdataset.zip", (), sha256="0" * 64)
    with Server({"LOLdataset.zip": data}) as srv:
        with pytest.raises(UserError, match=r"LOLdataset\.zip.*sha256 mismatch: got " + sha256(data)):
            fetch(f, _cfg(tmp_path, mirror=srv.url))
    assert list((tmp_path / "dl").iterdir()) == []  # the failing file is not kept, not even as a part


def test_size_mismatch_from_dir_is_rejected(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"abc")
    with pytest.raises(UserError, match=r"x\.zip.*size 3 bytes, expected 4"):
        fetch(NeededFile("x.zip", (), size=4), _cfg(tmp_path, from_dir=tmp_path))


def test_google_drive_virus_scan_confirmation(tmp_path):
    data = np.random.default_rng(2).bytes(30_000)
    with Server({"big.bin": data}, drive={"FILEID": "big.bin"}) as srv:
        cfg = _cfg(tmp_path, drive_url=srv.url + "/download")
        got = fetch(NeededFile("big.bin", (Candidate("gdrive", "FILEID"),), sha256=sha256(data)), cfg)
        assert got.path.read_bytes() == data
        assert [p for p, _ in srv.log] == ["/download", "/download"]
        with pytest.raises(UserError, match="could not obtain other.zip.*HTTP 404"):
            fetch(NeededFile("other.zip", (Candidate("gdrive", "NOPE"),)), cfg)


def test_drive_form_parser_reads_hidden_fields():
    html = ('<form id="download-form" action="https://drive.usercontent.google.com/download" method="get">'
            '<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="t">'
            '<input type="hidden" name="uuid" value="9f"></form>')
    url, params = drive_confirm_target(html, "https://drive.google.com/uc?id=abc")
    assert url == "https://drive.usercontent.google.com/download"
    assert params == {"id": "abc", "confirm": "t", "uuid": "9f"}
    assert drive_confirm_target("<p>Quota exceeded</p>", "https://x/") is None


def test_hugging_face_candidate_uses_hf_hub_download(tmp_path, monkeypatch, reachable_hub):
    import huggingface_hub

    data, calls = tar_bytes({"CBSD68/0/0000.png": b"x"}, gz=True), []
    src = tmp_path / "hub_copy"
    src.write_bytes(data)

    def fake_hf_hub_download(repo_id, filename, **kw):
        calls.append((repo_id, filename, kw["repo_type"]))
        return str(src)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download)
    f = NeededFile("CBSD68.tar.gz", (Candidate("hf", "deepinv/CBSD68:CBSD68.tar.gz"),), sha256=sha256(data))
    assert fetch(f, _cfg(tmp_path)).path.read_bytes() == data
    assert calls == [("deepinv/CBSD68", "CBSD68.tar.gz", "dataset")]


def test_hugging_face_offline_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the endpoint itself does not resolve
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://no-such-hub.invalid")
    f = NeededFile("nothing.zip", (Candidate("hf", "nobody/nothing:nothing.zip"),))
    with pytest.raises(UserError, match=r"could not obtain nothing\.zip: \[hf nobody/nothing:nothing\.zip\] "
                                        r"nothing\.zip: cannot resolve no-such-hub\.invalid"):
        fetch(f, _cfg(tmp_path))


def test_unknown_host_fails_fast_without_retries(tmp_path, monkeypatch):
    import builders.download as download

    sleeps = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    f = NeededFile("x.zip", (Candidate("url", "http://no-such-host.invalid/x.zip"),))
    with pytest.raises(UserError, match=r"could not obtain x\.zip.*cannot resolve the host"):
        fetch(f, _cfg(tmp_path, retries=3))
    assert sleeps == []


def test_next_candidate_is_tried_after_a_404(tmp_path):
    data = tar_bytes({"a.txt": b"payload" * 50}, gz=False)
    with Server({"good/f.tar": data}) as srv:
        f = NeededFile("f.tar", (Candidate("url", srv.url + "/missing/f.tar"), Candidate("url", srv.url + "/good/f.tar")))
        assert fetch(f, _cfg(tmp_path)).path.read_bytes() == data


# ---------------------------------------------------------------------------------- extraction

def _zip_with(name: str, data: bytes = b"evil", mode: int | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
        zf.writestr("ok/a.txt", b"fine")
    return buf.getvalue()


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ok = tarfile.TarInfo("ok/a.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        tf.addfile(member, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _tar_member(name, type_=tarfile.REGTYPE, linkname="", size=0):
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.size = type_, linkname, size
    return m


MALICIOUS = {
    "zip-dotdot": ("a.zip", lambda: _zip_with("../evil.txt"), "'..'"),
    "zip-deep-dotdot": ("a.zip", lambda: _zip_with("ok/../../evil.txt"), "'..'"),
    "zip-absolute": ("a.zip", lambda: _zip_with("/tmp/evil.txt"), "absolute"),
    "zip-symlink": ("a.zip", lambda: _zip_with("link", b"/etc/passwd", 0o120777), "symlink"),
    "tar-dotdot": ("a.tar.gz", lambda: _tar_with(_tar_member("../evil.txt", size=4), b"evil"), "'..'"),
    "tar-absolute": ("a.tar.gz", lambda: _tar_with(_tar_member("/tmp/evil.txt", size=4), b"evil"), "absolute"),
    "tar-symlink": ("a.tar.gz", lambda: _tar_with(_tar_member("link", tarfile.SYMTYPE, "/etc")), "link"),
    "tar-hardlink": ("a.tar.gz", lambda: _tar_with(_tar_member("hard", tarfile.LNKTYPE, "ok/a.txt")), "link"),
    "tar-device": ("a.tar.gz", lambda: _tar_with(_tar_member("dev", tarfile.CHRTYPE)), "device"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives_are_refused(case, tmp_path):
    name, make, why = MALICIOUS[case]
    archive = tmp_path / name
    archive.write_bytes(make())
    dest = tmp_path / "root" / "out"
    with pytest.raises(UnsafeArchive, match=why) as err:
        safe_extract(archive, dest)
    assert name in str(err.value)
    assert [p.name for p in tmp_path.rglob("*")] == [name]  # validated before anything is written


@pytest.mark.parametrize("name", ["GOPRO_Large.zip", "CBSD68.tar.gz"])
def test_damaged_archive_is_a_clear_error(fx, name, tmp_path):
    archive = tmp_path / name
    data = fx.files[name]
    archive.write_bytes(data[: len(data) // 2])  # a download cut in the middle
    with pytest.raises(UserError, match=f"{name}: damaged or truncated"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.extracting").exists()


def test_malicious_archive_refused_through_the_cli(fx, tmp_path, capsys, monkeypatch):
    files = dict(fx.files)
    files["lol_dataset.zip"] = zip_bytes({"our485/low/1.png": b"x", "../../escaped.png": b"evil"})
    # The malicious archive matches what the recipe expects: only the member check can stop it.
    patched_recipes(monkeypatch, {"files": {"lol_dataset.zip": [len(files["lol_dataset.zip"]),
                                                                sha256(files["lol_dataset.zip"])]}})
    root = tmp_path / "deep" / "root"
    with Server(files) as srv:
        rc = main(["--only", "low-light", "--root", str(root), "--mirror", srv.url, "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "lol_dataset.zip" in err and "../../escaped.png" in err
    assert not list(tmp_path.rglob("escaped.png"))
    assert not list(root.glob("*/low-light"))


def test_extraction_keeps_filtered_members_only(tmp_path):
    archive = tmp_path / "d.tar"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for n in ("DIV2K/DIV2K_train_HR/0001.png", "DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png",
                  "__MACOSX/DIV2K/DIV2K_train_HR/._0001.png"):
            info = tarfile.TarInfo(n)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    archive.write_bytes(buf.getvalue())
    keep = next(r for r in all_recipes() if r.name == "div2k-flickr2k").keep_member
    out = safe_extract(archive, tmp_path / "x", keep=keep)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == ["DIV2K/DIV2K_train_HR/0001.png"]


def test_cli_rejects_bad_options(capsys, tmp_path):
    assert main(["--all", "--preset", "mini"]) == 2
    assert main(["--only", "foggy", "--root", str(tmp_path)]) == 2
    assert "unknown degradation type 'foggy'" in capsys.readouterr().err
    assert main(["--all", "--root", str(tmp_path), "--workers", "0"]) == 2
    assert main(["--all", "--root", str(tmp_path), "--from-dir", str(tmp_path / "nope")]) == 2
    assert "--from-dir: not a folder" in capsys.readouterr().err
