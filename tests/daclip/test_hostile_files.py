"""Issue 12 items 2, 7 and 8: hostile or broken checkpoint files never run code and end as a
reason (a metric reported unavailable) or as one ``error:`` line with exit code 2.

Each payload would create a marker file if it ran; every test asserts that it did not. The
refusal text is built independently here (``refused_message``) and compared whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from benchmark_weights_fixtures import make_standin_weights, standin_digests

pytestmark = pytest.mark.usefixtures("one_thread")


def refused_message(path: Path, names: list[str]) -> str:
    # imported here, so that on code without the restricted loader each probe fails on its
    # behaviour (code run, traceback, exit code), not on an import
    from daclip.safe_load import refused_message as message

    return message(path, names)


class Payload:
    """Pickles as a call of os.system (posix.system): ``touch MARKER`` if ever unpickled freely."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def hostile_state_dict(path: Path, marker: Path) -> Path:
    """A file that looks like a state dict, with a payload among its entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # never write through a link to a shared stand-in
    torch.save({"weight": torch.ones(1), "__payload__": Payload(marker)}, path)
    return path


def weights_folder(tmp_path: Path, standins: Path) -> Path:
    """A weights folder of links to the (large) stand-ins: cheap to make, each test its own."""
    from benchmark.weights import WEIGHTS

    wdir = tmp_path / "weights"
    for w in WEIGHTS.values():
        w.path(wdir).parent.mkdir(parents=True, exist_ok=True)
        w.path(wdir).symlink_to(w.path(standins))
    return wdir


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    return make_standin_weights(tmp_path_factory.mktemp("standin-weights"))


@pytest.fixture()
def small_set(tmp_path):
    from test_methods import make_dataset

    make_dataset(tmp_path / "data", types=("noisy",))
    return tmp_path / "data"


def _run(small_set, wdir, out, metrics):
    from benchmark.run import main

    assert main(["--dataset", str(small_set), "--methods", "identity", "--tasks", "noisy", "--metrics", metrics,
                 "--weights-dir", str(wdir), "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------- item 2: metric weights


@pytest.mark.parametrize("key", ["alexnet-imagenet", "lpips-alex-v0.1"])
def test_hostile_lpips_weights_never_run(tmp_path, standins, small_set, key):
    """A hostile alexnet-owt-7be5be79.pth or LPIPS_v0.1_alex-df73285e.pth in --weights-dir."""
    from benchmark.weights import WEIGHTS

    with standin_digests(standins):  # a clean folder first: LPIPS is built and kept in memory
        assert "lpips" not in _run(small_set, standins, tmp_path / "run0", "psnr,lpips")["unavailable"]
    wdir = weights_folder(tmp_path, standins)
    marker = tmp_path / "code-ran"
    path = hostile_state_dict(WEIGHTS[key].path(wdir), marker)
    # The digest (its hub name's sha256 prefix) fails first: the file is never even unpickled.
    # (The other file, a stand-in, is trusted for the test.)
    import benchmark.weights as bw

    released = bw.WEIGHTS[key]
    with standin_digests(wdir):
        bw.WEIGHTS[key] = released
        s = _run(small_set, wdir, tmp_path / "run1", "psnr,lpips")
    assert not marker.exists()
    reason = s["unavailable"]["lpips"]
    assert reason.startswith(f"{path}: sha256 ") and "does not match the released file" in reason
    assert [m["name"] for m in s["metrics"]] == ["psnr"]
    # Even a file whose digest is trusted is refused by the loader, naming the global (and the
    # network built from the clean folder is not reused for another folder's files).
    with standin_digests(wdir):
        s = _run(small_set, wdir, tmp_path / "run2", "psnr,lpips")
    assert not marker.exists()
    assert s["unavailable"]["lpips"] == refused_message(path, ["posix.system"])


def test_hostile_or_corrupt_fid_weights_give_a_reason(tmp_path, standins, small_set):
    from benchmark.weights import WEIGHTS

    wdir = weights_folder(tmp_path, standins)
    marker = tmp_path / "code-ran"
    path = WEIGHTS["inception-v3-compat"].path(wdir)
    hostile_state_dict(path, marker)
    with standin_digests(wdir):
        s = _run(small_set, wdir, tmp_path / "run1", "psnr,fid")
    assert not marker.exists()
    assert s["unavailable"]["fid"] == refused_message(path, ["posix.system"])
    torch.save({"w": torch.ones(10_000)}, path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated download
    s = _run(small_set, wdir, tmp_path / "run2", "psnr,fid")
    assert s["unavailable"]["fid"].startswith(f"{path}: sha256 ")
    with standin_digests(wdir):
        s = _run(small_set, wdir, tmp_path / "run3", "psnr,fid")
    assert s["unavailable"]["fid"].startswith(f"{path}: not a readable weights file (")
    assert "Traceback" not in s["unavailable"]["fid"] and "weights_only" not in s["unavailable"]["fid"]


def test_weights_fetch_holds_the_folder_lock(tmp_path):
    """A second writer of the weights folder is refused with one line naming the holder."""
    import subprocess
    import sys

    from builders.lock import FolderLock

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with FolderLock(tmp_path, "weights folder"):
        r = subprocess.run([sys.executable, "-m", "benchmark.weights", "fetch", "--weights-dir", str(tmp_path),
                            "--mirror", "http://127.0.0.1:9"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "weights folder" in err[0]
    assert f"pid {os.getpid()}" in err[0]


# ---------------------------------------------------------------- item 7: training resume / pretrained


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    from test_train_ir import make_train_set

    return make_train_set(tmp_path_factory.mktemp("trainset"), n=1, size=32)


TRAIN_IR = ["--method", "nafnet", "--preset", "tiny", "--patch", "32", "--batch", "2", "--workers", "0", "--quiet",
            "--val-limit", "1", "--threads", "1", "--iters", "1", "--val-every", "0", "--resume"]


def test_train_ir_resume_with_a_hostile_last_pt(tmp_path, train_set, capsys):
    from daclip.train_ir import main

    out = tmp_path / "run"
    marker = tmp_path / "code-ran"
    last = hostile_state_dict(out / "last.pt", marker)
    assert main(["--root", str(train_set), "--out", str(out), *TRAIN_IR]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {refused_message(last, ['posix.system'])}"]
    assert not marker.exists()


def test_train_ir_resume_with_a_garbage_last_pt(tmp_path, train_set, capsys):
    from daclip.train_ir import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"\x00garbage, not a checkpoint")
    assert main(["--root", str(train_set), "--out", str(out), *TRAIN_IR]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out / 'last.pt'}: not a readable training checkpoint (not a PyTorch file: "
                   "neither a zip archive nor a pickle)"]
    torch.save({"weights": torch.ones(2)}, out / "last.pt")  # a readable file of something else
    assert main(["--root", str(train_set), "--out", str(out), *TRAIN_IR]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out / 'last.pt'} is not a daclip.train_ir checkpoint")


@pytest.mark.parametrize("flag", ["--pretrained", "--resume"])
def test_train_clip_with_a_hostile_file(tmp_path, mini_root, capsys, flag):
    from daclip.train_clip import main

    marker = tmp_path / "code-ran"
    bad = hostile_state_dict(tmp_path / "open_clip_pytorch_model.bin", marker)
    args = ["--root", str(mini_root), "--model-cfg", "tiny", "--captions", "none", "--out", str(tmp_path / "out"),
            "--epochs", "1", flag, str(bad)]
    if flag == "--resume":
        args += ["--pretrained", "none"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {refused_message(bad, ['posix.system'])}"]
    assert not marker.exists()


@pytest.mark.parametrize("trainer", ["train_ir", "train_clip"])
def test_a_second_training_into_one_folder_stops_naming_the_first(tmp_path, train_set, mini_root, capsys, trainer,
                                                                 lock_holder):
    """Two trainings into one --out would overwrite each other's checkpoints: the second is refused."""
    out = tmp_path / "run"
    holder = lock_holder(out, "training output folder")
    if trainer == "train_ir":
        from daclip.train_ir import main

        args = ["--root", str(train_set), "--out", str(out), *TRAIN_IR[:-1]]
    else:
        from daclip.train_clip import main

        args = ["--root", str(mini_root), "--model-cfg", "tiny", "--captions", "none", "--out", str(out),
                "--epochs", "1", "--pretrained", "none"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: training output folder {out} is in use by pid {holder.pid}")
    assert sorted(p.name for p in out.iterdir()) == [".daclip.lock"]  # nothing of the refused run was written
