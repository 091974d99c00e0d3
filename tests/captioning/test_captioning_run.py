"""The real captioning command on the mini set with a tiny random BLIP saved to a temp folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from builders.manifest import read_manifest, write_manifest
from builders.tasks import DEGRADATIONS
from captioning import run as caprun
from captioning.blip import Captioner, CaptionerConfig
from captioning.csvfile import read_csv, sanitize_caption
from captioning.store import journal_path, read_journal, read_store

REPO = Path(__file__).resolve().parents[2]
# Short captions keep the tests fast; the real default (32) is exercised by the bench smoke test.
FAST = ["--max-new-tokens", "12", "--batch-size", "16", "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from captioning.tiny import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _csv_by_relpath(root: Path) -> dict:
    """{split: [(LQ path relative to root, title)]} so runs in different folders compare."""
    out = {}
    for split in ("train", "val"):
        df = read_csv(root / f"daclip_{split}.csv")
        out[split] = [(Path(p).relative_to(root.resolve()).as_posix(), t) for p, t in zip(df.filepath, df.title)]
    return out


@pytest.fixture(scope="module")
def captioned(mini_root, tiny_blip, tmp_path_factory):
    """The one-process run on a copy of the mini set (with one worker decoding images)."""
    root = _copy(mini_root, tmp_path_factory.mktemp("cap1") / "mini")
    rc = caprun.main(["--root", str(root), "--model", str(tiny_blip), "--workers", "1", *FAST])
    assert rc == 0
    return root


def test_every_lq_once_with_valid_titles(captioned):
    root = captioned
    man = read_manifest(root)
    for split in ("train", "val"):
        text = (root / f"daclip_{split}.csv").read_text()
        assert text.startswith("filepath\ttitle\n")
        df = read_csv(root / f"daclip_{split}.csv")
        sub = man[man.split == split]
        expected = {str((root / p).resolve()): t for p, t in zip(sub.lq_path, sub.type)}
        assert len(df) == len(sub) and df.filepath.is_unique
        assert set(df.filepath) == set(expected)  # absolute LQ paths, each exactly once
        for path, title in zip(df.filepath, df.title):
            caption, word = title.split(": ")  # the official split rule
            assert word == expected[path] and word in DEGRADATIONS
            assert caption == sanitize_caption(caption) and "\t" not in caption
        # Canonical order: types in DEGRADATIONS order, then by file.
        types = [expected[p] for p in df.filepath]
        assert types == sorted(types, key=DEGRADATIONS.index)


def test_store_and_manifest_hold_the_captions(captioned):
    root = captioned
    man = read_manifest(root)
    store = read_store(root)
    assert set(store) == set(man.gt_sha256)  # one entry per distinct GT
    assert all(r.model == str(Path(r.model)) and r.caption == sanitize_caption(r.raw_caption) for r in store.values())
    assert "caption" in man.columns
    assert man.caption.tolist() == [store[s].caption for s in man.gt_sha256]
    titles = dict(read_csv(root / "daclip_train.csv").values.tolist())
    for r in man[man.split == "train"].itertuples():
        assert titles[str((root / r.lq_path).resolve())] == f"{store[r.gt_sha256].caption}: {r.type}"
    # Captions depend on the image (random model, but not a constant): the GT really is read.
    assert len({r.raw_caption for r in store.values()}) > 5


def test_captions_match_direct_generation(captioned, tiny_blip):
    # The pipeline's caption of a GT equals the model's caption of that image on its own.
    root = captioned
    man = read_manifest(root).iloc[:3]
    cap = Captioner(CaptionerConfig(model=str(tiny_blip), device="cpu", max_new_tokens=12))
    from builders.io import read_image

    raw = cap.generate(cap.preprocess([read_image(root / p).copy() for p in man.gt_path]))
    store = read_store(root)
    assert [store[s].raw_caption for s in man.gt_sha256] == raw


def test_rerun_generates_nothing(captioned, tiny_blip):
    root = captioned
    before = {n: (root / n).read_bytes() for n in ("daclip_train.csv", "daclip_val.csv", "captions.parquet")}
    opts = caprun.RunOptions(root=root, captioner=CaptionerConfig(model=str(tiny_blip), device="cpu"),
                             workers=0, progress=False)
    summary = caprun.caption_dataset(opts)
    assert summary.generated == 0 and summary.to_caption == 0
    assert summary.unique_gt == len(read_store(root))
    assert {n: (root / n).read_bytes() for n in before} == before


def test_interrupted_run_resumes(captioned, mini_root, tiny_blip, tmp_path, monkeypatch):
    root = _copy(mini_root, tmp_path / "mini")
    real = Captioner.generate
    calls = []

    def flaky(self, pv):
        calls.append(len(pv))
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third batch
        return real(self, pv)

    monkeypatch.setattr(Captioner, "generate", flaky)
    assert caprun.main(["--root", str(root), "--model", str(tiny_blip), "--workers", "0", *FAST]) == 130
    # The two finished batches are on disk; the batch in flight is lost.
    assert len(read_journal(journal_path(root, 0))) == 32
    assert not (root / "daclip_train.csv").exists()
    monkeypatch.setattr(Captioner, "generate", real)

    opts = caprun.RunOptions(root=root, captioner=CaptionerConfig(model=str(tiny_blip), device="cpu",
                                                                  max_new_tokens=12),
                             batch_size=16, workers=0, progress=False)
    summary = caprun.caption_dataset(opts)
    assert summary.generated == summary.unique_gt - 32
    assert _csv_by_relpath(root) == _csv_by_relpath(captioned)


def test_shared_gt_captioned_once_and_force(mini_root, tiny_blip, tmp_path, monkeypatch):
    # A small set where jpeg-compressed reuses the noisy GT images (as in the full dataset).
    root = _copy(mini_root, tmp_path / "mini")
    man = read_manifest(root)
    val = man[man.split == "val"]
    noisy = val[val.type == "noisy"].reset_index(drop=True)
    jpeg = val[val.type == "jpeg-compressed"].reset_index(drop=True).copy()
    jpeg["gt_path"], jpeg["gt_sha256"] = noisy["gt_path"], noisy["gt_sha256"]
    write_manifest(root, pd.concat([noisy, jpeg, val[val.type == "hazy"]]))

    def run(*extra):
        opts = caprun.RunOptions(root=root, captioner=CaptionerConfig(model=str(tiny_blip), device="cpu",
                                                                      max_new_tokens=12),
                                 batch_size=4, workers=0, progress=False, force="--force" in extra,
                                 relative="--relative" in extra)
        return caprun.caption_dataset(opts)

    s = run()
    assert s.unique_gt == 10 and s.generated == 10 and s.csv_rows == {"train": 0, "val": 15}
    df = read_csv(root / "daclip_val.csv")
    by_name = {}
    for p, t in zip(df.filepath, df.title):
        cap, word = t.split(": ")
        by_name.setdefault(Path(p).name, {})[word] = cap
    for name in noisy.name:
        assert by_name[name]["noisy"] == by_name[name]["jpeg-compressed"]
    assert run().generated == 0
    assert run("--force").generated == 10
    # --relative: paths relative to the current folder, as the official script writes them.
    monkeypatch.chdir(tmp_path)
    assert run("--relative").generated == 0
    rel = read_csv(root / "daclip_val.csv").filepath.tolist()
    assert rel[0] == "mini/val/hazy/LQ/" + Path(rel[0]).name
    assert all(not Path(p).is_absolute() and (tmp_path / p).is_file() for p in rel)


def test_missing_images_are_named(mini_root, tiny_blip, tmp_path, capsys):
    root = _copy(mini_root, tmp_path / "mini")
    man = read_manifest(root)
    write_manifest(root, man.iloc[:3])
    (root / man.gt_path[1]).unlink()
    args = ["--root", str(root), "--model", str(tiny_blip), "--workers", "0", *FAST]
    assert caprun.main(args) == 2
    assert f"image not found: {root / man.gt_path[1]}" in capsys.readouterr().err
    # With the GT back every caption is made and kept, though a missing LQ stops the CSVs.
    shutil.copy(mini_root / man.gt_path[1], root / man.gt_path[1])
    (root / man.lq_path[2]).unlink()
    assert caprun.main(args) == 2
    assert f"LQ image listed in the manifest is missing: {(root / man.lq_path[2]).resolve()}" in capsys.readouterr().err
    assert len(read_store(root)) == 3



def test_two_process_gloo_run_equals_one_process(captioned, mini_root, tiny_blip, tmp_path, free_port):
    root = _copy(mini_root, tmp_path / "mini")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", GLOO_SOCKET_IFNAME="lo",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port),
           "-m", "captioning.run", "--root", str(root), "--model", str(tiny_blip), "--workers", "0", *FAST]
    res = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _csv_by_relpath(root) == _csv_by_relpath(captioned)
    assert {k: v.caption for k, v in read_store(root).items()} == \
        {k: v.caption for k, v in read_store(captioned).items()}
    assert not (root / ".captioning").exists()  # both ranks' journals merged once and removed


def test_offline_without_weights_is_one_clear_error(mini_root, tmp_path, capsys):
    root = _copy(mini_root, tmp_path / "mini")
    rc = caprun.main(["--root", str(root), "--model", "no-such-org/blip-nowhere", "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "huggingface-cli download no-such-org/blip-nowhere" in err and "--model" in err

    (tmp_path / "empty").mkdir()
    rc = caprun.main(["--root", str(root), "--model", str(tmp_path / "empty"), "--workers", "0", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot load a BLIP captioning model from this folder" in err


def test_bad_root_and_options(tmp_path, capsys):
    assert caprun.main(["--root", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "--root" in capsys.readouterr().err
    assert caprun.main(["--root", str(tmp_path), "--quiet"]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert caprun.main(["--root", str(tmp_path), "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err


@pytest.mark.parametrize("device, message", [("gpu0", "--device 'gpu0' is not a torch device"), ("cuda:99", "--device cuda:99")])
def test_bad_device_is_a_user_error(device, message, tiny_blip):
    from builders.errors import UserError

    with pytest.raises(UserError, match=message):
        Captioner(CaptionerConfig(model=str(tiny_blip), device=device))


def test_bench_script_runs_tiny_on_cpu(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_captioning", REPO / "bench" / "bench_captioning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny", "--device", "cpu", "--n", "4", "--loop-n", "2", "--batch-sizes", "1,4",
                     "--workers", "0", "--size", "64x48"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(("official", "pipeline"))]
    assert len(lines) == 3
    assert [int(ln.split()[-5]) for ln in lines] == [1, 1, 4]  # batch column
    assert all(float(ln.split()[-2]) > 0 for ln in lines)  # images/s
