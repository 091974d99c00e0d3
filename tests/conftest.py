import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders.hub import OFFLINE_ENVS

# Test modules of one folder use helpers of another (test_train_ir.make_train_set): every test
# folder is importable, whatever order pytest collects them in.
_TESTS = Path(__file__).resolve().parent
for _folder in sorted(p for p in _TESTS.iterdir() if p.is_dir() and p.name not in ("fixtures", "__pycache__")):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

# Tests must never reach a hub; the code paths under test load local files only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    """A built mini set (ten types, train + val), shared read-only by the whole session."""
    from builders.mini import build_mini

    root = tmp_path_factory.mktemp("mini")
    build_mini(root, progress=False)
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread on the shared two-core test machine."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a torchrun rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_daclip(tmp_path_factory):
    """A random DA-CLIP of the toolkit's tiny config (daclip/configs/tiny.yaml) saved in the released
    layout, with no config.json beside it (load it with model_cfg / --daclip-model tiny)."""
    import torch

    from daclip.checkpoint import save_daclip
    from daclip.model import create_daclip, load_model_cfg

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("daclip") / "daclip_tiny.pt"
    save_daclip(create_daclip(model_cfg=load_model_cfg("tiny")), path)
    return path


_HOLD_LOCK = """
import shutil, sys, time
from pathlib import Path
from builders.lock import FolderLock
with FolderLock(sys.argv[1], sys.argv[2]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
    if len(sys.argv) > 5:  # what the holder leaves behind when it is done (a finished download)
        Path(sys.argv[5]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sys.argv[4], sys.argv[5])
"""


@pytest.fixture
def lock_holder():
    """``lock_holder(folder, what, seconds=60, copy=(src, dst))``: another process holding the
    folder's writer lock (it has taken it when this returns its Popen); killed after the test."""
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def start(folder, what: str = "folder", seconds: float = 60.0, copy=None) -> subprocess.Popen:
        args = [sys.executable, "-c", _HOLD_LOCK, str(folder), what, str(seconds), *map(str, copy or ())]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def reachable_hub(monkeypatch):
    """A hub endpoint that answers a TCP connect (a loopback listener; the hub client itself is
    mocked by the test), with HF_HUB_OFFLINE unset, so the downloader's reachability check passes."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    for var in OFFLINE_ENVS:  # every download switch off
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
    yield
    listener.close()
