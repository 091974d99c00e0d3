"""Issue 11: replicas of every released checkpoint format, built here, load through the one
restricted loader and compute what their bare state dicts compute; code payloads are refused.

The replicas are tiny (daclip/configs/tiny.yaml DA-CLIP, the tiny network presets) but keep
the released containers byte for byte where it matters: the open_clip training checkpoint's
protocol-2 pickle with numpy globals under their numpy-1 names, Lightning's entries, BasicSR's
``params``/``params_ema``, plain state dicts.
"""

from __future__ import annotations

import builtins
import os
import pickle
import pickletools
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from builders.errors import UserError
from daclip.networks import build_network, load_network
from daclip.safe_load import CheckpointRefused, load_checkpoint, refused_message

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- helpers


def pickle_globals(path: Path) -> list[str]:
    """The globals named by a torch zip file's data.pkl, read with pickletools (nothing runs)."""
    with zipfile.ZipFile(path) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    return [str(arg).replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]


def as_numpy1(src: Path, dst: Path) -> Path:
    """The same torch file with the numpy-2 module names of its pickle renamed to numpy 1's.

    Protocol-2 pickles spell globals as text (GLOBAL 'numpy._core.multiarray scalar'), so
    this yields exactly what numpy 1 wrote: 'numpy.core.multiarray scalar'.
    """
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.", b"numpy.core.")
            zout.writestr(info, data)
    return dst


def randomise(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def tiny_daclip(seed: int = 0):
    from daclip.model import create_daclip, load_model_cfg

    torch.manual_seed(seed)
    return randomise(create_daclip(model_cfg=load_model_cfg("tiny")), seed + 1).eval()


def adamw_state(params, lr) -> dict:
    """A real AdamW state after one step, with the learning rate the trainer assigned."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05)
    sum((p.float() ** 2).sum() for p in params).backward()
    opt.step()
    for group in opt.param_groups:
        group["lr"] = lr
    for p in params:
        p.grad = None
    return opt.state_dict()


# ---------------------------------------------------------------- (a) the open_clip training checkpoint


def test_open_clip_training_checkpoint_with_numpy1_globals(tmp_path):
    from daclip.checkpoint import daclip_state_dict, load_daclip
    from daclip.model import load_model_cfg

    model = tiny_daclip()
    sd = daclip_state_dict(model)
    # open_clip's cosine_lr computes the learning rate with np.cos: a numpy float64.
    lr = np.float64(0.5 * (1 + np.cos(np.pi * 3 / 30)) * 3e-5)
    ckpt = {"epoch": 30, "name": "daclip_ViT-B-32_b784x4_lr3e-5_e30",
            "state_dict": OrderedDict((f"module.{k}", v) for k, v in sd.items()),
            "optimizer": adamw_state(model.trainable_parameters(), lr),
            "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                       "_growth_tracker": 7}}
    torch.save(ckpt, tmp_path / "numpy2.pt", pickle_protocol=2)
    released = as_numpy1(tmp_path / "numpy2.pt", tmp_path / "daclip_ViT-B-32.pt")
    names = pickle_globals(released)
    assert "numpy.core.multiarray.scalar" in names and "numpy.dtype" in names
    assert not any(n.startswith("numpy._core") for n in names)
    # The reported failure: plain weights_only refuses the released file as is.
    with pytest.raises(pickle.UnpicklingError, match="numpy.core.multiarray.scalar"):
        torch.load(released, weights_only=True)

    obj = load_checkpoint(released)
    got_lr = obj["optimizer"]["param_groups"][0]["lr"]
    assert type(got_lr) is np.float64 and got_lr == lr
    cfg = load_model_cfg("tiny")
    loaded = load_daclip(released, model_cfg=cfg).eval()
    torch.save(sd, tmp_path / "bare.pt")
    bare = load_daclip(tmp_path / "bare.pt", model_cfg=cfg).eval()
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b, c = (m.encode_image(images, control=True) for m in (loaded, bare, model))
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y) and torch.equal(x, z)


# ---------------------------------------------------------------- (b) the Lightning checkpoint


def _progress(n: int) -> dict:
    return {"total": {"ready": n, "completed": n, "started": n, "processed": n},
            "current": {"ready": n, "completed": n, "started": n, "processed": n}}


def lightning_checkpoint(net: torch.nn.Module) -> dict:
    """What Lightning 2.0.1 (PromptIR's env.yml) writes for PromptIR's published train.py: its
    ModelCheckpoint, AdamW and LinearWarmupCosineAnnealingLR, DDP (plain 'net.' state_dict)."""
    steps = 298000
    fit = {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": steps},
           "epoch_loop.batch_progress": {**_progress(2000), "is_last_batch": True},
           "epoch_loop.scheduler_progress": _progress(150),
           "epoch_loop.automatic_optimization.state_dict": {},
           "epoch_loop.automatic_optimization.optim_progress": {
               "optimizer": {"step": _progress(steps), "zero_grad": _progress(steps)}},
           "epoch_loop.manual_optimization.state_dict": {},
           "epoch_loop.manual_optimization.optim_step_progress": _progress(0),
           "epoch_loop.val_loop.state_dict": {}, "epoch_loop.val_loop.batch_progress": {**_progress(0),
                                                                                       "is_last_batch": False},
           "epoch_progress": _progress(150)}
    key = ("ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
           "'train_time_interval': None}")
    return {
        "epoch": 149, "global_step": steps, "pytorch-lightning_version": "2.0.1",
        "state_dict": OrderedDict((f"net.{k}", v) for k, v in net.state_dict().items()),
        "loops": {"fit_loop": fit, "validate_loop": {"state_dict": {}, "batch_progress": _progress(0)},
                  "test_loop": {"state_dict": {}, "batch_progress": _progress(0)},
                  "predict_loop": {"state_dict": {}, "batch_progress": _progress(0)}},
        "callbacks": {key: {"monitor": None, "best_model_score": None,
                            "best_model_path": "/ckpt/epoch=149-step=298000.ckpt", "current_score": None,
                            "dirpath": "/ckpt", "best_k_models": {}, "kth_best_model_path": "",
                            "kth_value": torch.tensor(float("inf"), dtype=torch.float64), "last_model_path": ""}},
        "optimizer_states": [adamw_state(list(net.parameters()), 1.2e-6)],
        "lr_schedulers": [{"warmup_epochs": 15, "max_epochs": 150, "warmup_start_lr": 0.0, "eta_min": 0.0,
                           "base_lrs": [0.0002], "last_epoch": 149, "verbose": False, "_step_count": 150,
                           "_get_lr_called_within_step": False, "_last_lr": [1.2e-06]}],
    }


def _fake_module(name: str, **attrs) -> list[str]:
    """Register module ``name`` (and its parents) in sys.modules; returns the names added."""
    added = []
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            sys.modules[mod_name] = types.ModuleType(mod_name)
            added.append(mod_name)
    for k, v in attrs.items():
        v.__module__, v.__qualname__ = name, k
        setattr(sys.modules[name], k, v)
    return added


@pytest.mark.parametrize("hparams_module", [None, "pytorch_lightning.utilities.parsing",
                                            "lightning.fabric.utilities.data"])
def test_lightning_checkpoint_loads(tmp_path, hparams_module):
    src = randomise(build_network("promptir", preset="tiny"), 4).eval()
    ckpt = lightning_checkpoint(src)
    added = []
    if hparams_module:
        # Lightning 1.x pickled its AttributeDict with the hyper-parameters; it is not installed
        # at load time (as on a machine without Lightning).
        class AttributeDict(dict):
            def __getattr__(self, key):
                return self[key]

        added = _fake_module(hparams_module, AttributeDict=AttributeDict)
        ckpt["hparams_name"] = "kwargs"
        ckpt["hyper_parameters"] = AttributeDict(lr=2e-4, epochs=150)
    try:
        torch.save(ckpt, tmp_path / "model.ckpt")
    finally:
        for name in added:
            del sys.modules[name]
    if hparams_module:
        assert f"{hparams_module}.AttributeDict" in pickle_globals(tmp_path / "model.ckpt")
        obj = load_checkpoint(tmp_path / "model.ckpt")
        assert type(obj["hyper_parameters"]) is dict and obj["hyper_parameters"] == {"lr": 2e-4, "epochs": 150}
    loaded = load_network("promptir", tmp_path / "model.ckpt", preset="tiny")
    bare = load_network("promptir", src.state_dict(), preset="tiny")
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), bare(x)) and torch.equal(loaded(x), src(x))


# ---------------------------------------------------------------- (c) BasicSR and (d) plain dicts


def test_basicsr_params_and_params_ema(tmp_path):
    a, b = randomise(build_network("nafnet", preset="tiny"), 1), randomise(build_network("nafnet", preset="tiny"), 2)
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, tmp_path / "NAFNet.pth")
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        # upstream's test scripts evaluate 'params'; key='params_ema' picks the EMA weights
        assert torch.equal(load_network("nafnet", tmp_path / "NAFNet.pth", preset="tiny")(x), a.eval()(x))
        assert torch.equal(load_network("nafnet", tmp_path / "NAFNet.pth", preset="tiny", key="params_ema")(x),
                           b.eval()(x))


@pytest.mark.parametrize("name", ["ours", "wild-ir", "irsde", "irsde-denoising", "airnet"])
def test_plain_state_dicts(tmp_path, name):
    src = randomise(build_network(name, preset="tiny"), 3).eval()
    torch.save(OrderedDict(src.state_dict()), tmp_path / "w.pth")
    loaded = load_network(name, tmp_path / "w.pth", preset="tiny")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 20, 24, generator=g)
    with torch.no_grad():
        if name == "airnet":
            got, want = loaded.restore(x), src.restore(x)
        elif name == "irsde-denoising":
            got, want = loaded(x, 7), src(x, 7)
        else:
            lq = torch.rand(1, 3, 20, 24, generator=g)
            ctx = {"image_context": torch.randn(1, 32, generator=g)} if name in ("ours", "wild-ir") else {}
            if name == "ours":
                ctx["text_context"] = torch.randn(1, 32, generator=g)
            got, want = loaded(x, lq, 7, **ctx), src(x, lq, 7, **ctx)
    assert torch.equal(got, want)


# ---------------------------------------------------------------- code payloads are refused


def _payloads(marker: Path) -> dict[str, tuple]:
    """Globals whose call would create ``marker``: what a hostile checkpoint smuggles in."""
    return {
        "posix.system": (os.system, (f"touch {marker}",)),  # os.system pickles as posix.system
        "builtins.eval": (builtins.eval, (f"open({str(marker)!r}, 'w')",)),
        "builtins.exec": (builtins.exec, (f"open({str(marker)!r}, 'w')",)),
        "subprocess.Popen": (subprocess.Popen, (["touch", str(marker)],)),
    }


class _Payload:
    def __init__(self, reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


@pytest.mark.parametrize("kind", ["zip", "legacy", "raw-pickle"])
@pytest.mark.parametrize("global_name", ["posix.system", "builtins.eval", "builtins.exec", "subprocess.Popen"])
def test_code_payloads_are_refused_by_name(tmp_path, kind, global_name):
    marker = tmp_path / "code-ran"
    obj = {"state_dict": {"w": torch.ones(2)}, "callbacks": {"x": _Payload(_payloads(marker)[global_name])}}
    path = tmp_path / "hostile.pth"
    if kind == "zip":
        torch.save(obj, path)
    elif kind == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:  # pickle.dump of plain data: no torch storages (whose plain pickling is refused too)
        obj["state_dict"] = {"w": [1.0, 1.0]}
        path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(CheckpointRefused) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert msg == refused_message(path, [global_name])
    assert str(path) in msg and global_name in msg and "refused" in msg
    assert "weights_only" not in msg
    assert not marker.exists()


def test_every_checkpoint_reader_refuses_a_payload(tmp_path):
    """Method networks, DA-CLIP, CLIP weights, embedding caches and metric weights: one loader."""
    from daclip.checkpoint import load_daclip
    from daclip.embed import load_embeddings
    from daclip.model import build_clip, load_model_cfg

    marker = tmp_path / "code-ran"
    path = tmp_path / "hostile.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Payload((os.system, (f"touch {marker}",)))}, path)
    expected = refused_message(path, ["posix.system"])
    readers = [
        lambda: load_network("nafnet", path, preset="tiny"),
        lambda: load_daclip(path, model_cfg=load_model_cfg("tiny")),
        lambda: build_clip(model_cfg=load_model_cfg("tiny"), pretrained=str(path)),
        lambda: load_embeddings(path),
    ]
    for read in readers:
        with pytest.raises(UserError) as exc:
            read()
        assert str(exc.value) == expected
    assert not marker.exists()


def test_unreadable_files_are_named(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(UserError, match=r"junk.pth: not a readable checkpoint \(not a PyTorch file"):
        load_checkpoint(junk)
    torch.save({"w": torch.ones(1000)}, tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cut.pth: not a readable checkpoint") as exc:
        load_checkpoint(tmp_path / "cut.pth")
    assert "weights_only" not in str(exc.value)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(UserError, match="empty.pth: not a readable checkpoint"):
        load_checkpoint(tmp_path / "empty.pth")
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_no_reader_bypasses_the_restricted_loader():
    """Every torch.load in the toolkit is the one in daclip/safe_load.py, with weights_only=True."""
    root = Path(__file__).resolve().parents[2]
    calls = []
    for pkg in ("builders", "daclip", "benchmark", "captioning", "reports"):
        for py in (root / pkg).rglob("*.py"):
            text = py.read_text()
            if "torch.load(" in text or "weights_only=False" in text:
                calls.append(py.relative_to(root).as_posix())
    assert calls == ["daclip/safe_load.py"]
    assert "weights_only=False)" not in (root / "daclip" / "safe_load.py").read_text()


def test_safetensors_clip_weights_load_without_pickle(tmp_path):
    from safetensors.torch import save_file

    from daclip.model import build_clip, load_model_cfg

    cfg = load_model_cfg("tiny")
    torch.manual_seed(0)
    src = randomise(build_clip(model_cfg=cfg), 2)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "open_clip_model.safetensors")
    clip = build_clip(model_cfg=cfg, pretrained=str(tmp_path / "open_clip_model.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), clip.state_dict().values()))
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(UserError, match="bad.safetensors: not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.safetensors")
