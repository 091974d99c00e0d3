"""Image quality networks through pyiqa's own architectures: the no-reference metrics (NIQE,
BRISQUE, MUSIQ, CLIP-IQA, MANIQA) and the benchmark's LPIPS.

The field scores images without ground truth with pyiqa; these metrics run pyiqa's very
network classes with its default settings of each metric (``pyiqa.default_model_configs``),
so a value equals ``pyiqa.create_metric(name)`` on the same image. What differs is who reads
the weights: pyiqa's constructors download and unpickle them in full (code included); here
every file comes from the weights folder (:data:`FILES`, the one table of their names and
sources; benchmark.weights verifies them for the benchmark, daclip.weights for
``daclip.restore --metrics``) and is read by the toolkit's restricted loader
(daclip.safe_load); the networks are built without pretrained loading and filled with
``load_state_dict``:

- MUSIQ: ``MUSIQ(pretrained=False)``, then the state dict.
- MANIQA: its constructor also asks timm for ImageNet ViT weights (``pretrained=True``, a
  download); that one call is made with ``pretrained=False`` (the checkpoint holds the ViT too).
- CLIP-IQA: pyiqa's ``clip_model.load`` reads OpenAI's TorchScript ``RN50.pt``, which is code,
  not data; the same weights as open_clip's hub state dict go into pyiqa's ``build_model``.
- NIQE and BRISQUE: their constructors read a parameter file themselves (scipy.io.loadmat,
  torch.load); they are handed an in-memory stream the toolkit wrote from the verified arrays
  (``daclip.safe_load.load_mat``, ``load_checkpoint``), never the file.

Images are given as pyiqa reads them: RGB float32 in [0, 1]. Each metric's direction follows
pyiqa's ``lower_better`` (tests hold the two together).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from builders.errors import UserError
from builders.weights_folder import WeightsEntry

if TYPE_CHECKING:
    import torch


PYIQA_HUB_REPO = "chaofengc/IQA-PyTorch-Weights"  # where pyiqa's get_url_from_name points
_MAT = "MATLAB v5 .mat"


def _hub(key: str, filename: str, repo: str, used_by: tuple[str, ...], note: str, fmt: str) -> WeightsEntry:
    return WeightsEntry(key, filename, hf_repo=repo, url=f"https://huggingface.co/{repo}/resolve/main/{filename}",
                        note=note, format=fmt, used_by=used_by)


#: The files, named as in pyiqa's own default_model_urls (only MUSIQ's name carries a digest
#: prefix); in a weights folder under ``<owner>--<repo>/`` (builders.weights_folder's layout).
FILES: dict[str, WeightsEntry] = {e.name: e for e in (
    _hub("niqe-params", "niqe_modelparameters.mat", PYIQA_HUB_REPO, ("niqe",), "NIQE pristine model (pyiqa)", _MAT),
    _hub("brisque-svm", "brisque_svm_weights.pth", PYIQA_HUB_REPO, ("brisque",),
         "BRISQUE SVR support vectors (pyiqa, from piq)", "(sv_coef, sv) tensors"),
    _hub("musiq-koniq", "musiq_koniq_ckpt-e95806b9.pth", PYIQA_HUB_REPO, ("musiq",),
         "MUSIQ trained on KonIQ-10k (pyiqa)", "plain state_dict"),
    _hub("maniqa-koniq", "ckpt_koniq10k.pt", PYIQA_HUB_REPO, ("maniqa",), "MANIQA trained on KonIQ-10k (pyiqa)",
         "plain state_dict"),
    # pyiqa's CLIP loader reads OpenAI's TorchScript RN50.pt (code, not data); the same weights
    # as a plain state dict are open_clip's hub copy, which pyiqa's build_model accepts as is.
    _hub("clip-rn50-openai", "open_clip_pytorch_model.bin", "timm/resnet50_clip.openai", ("clipiqa",),
         "OpenAI CLIP RN50 as a state dict (open_clip's hub copy), for CLIP-IQA", "plain state_dict"),
)}
MAT_KEYS = {"niqe-params": ("mu_prisparam", "cov_prisparam")}  # the variables pyiqa's NIQE reads


def read_file(key: str, path: Path):
    """The verified file's contents, read by the restricted loader (UserError when refused)."""
    from .safe_load import load_checkpoint, load_mat

    if key in MAT_KEYS:
        return load_mat(path, MAT_KEYS[key], what="weights file")
    return load_checkpoint(path, what="weights file")


@dataclass(frozen=True)
class NRSpec:
    name: str  # the toolkit's and pyiqa's metric name
    display: str
    higher_is_better: bool
    fmt: str
    weights: tuple[str, ...]  # benchmark.weights keys
    build: Callable[[dict], torch.nn.Module]
    description: str
    min_side: int = 1
    min_side_reason: str = ""


_patch_lock = threading.Lock()


@contextmanager
def _replaced(obj, name: str, value):
    """``obj.name`` is ``value`` for the block (one pyiqa module global, while a network is built)."""
    with _patch_lock:
        old = getattr(obj, name)
        setattr(obj, name, value)
        try:
            yield
        finally:
            setattr(obj, name, old)


def _load_strict(net, state: dict, what: str):
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{what} does not fit pyiqa's network: {str(exc).splitlines()[0]}") from None
    return net


def _niqe(objs: dict):
    import scipy.io
    from pyiqa.archs.niqe_arch import NIQE

    buf = io.BytesIO()
    scipy.io.savemat(buf, objs["niqe-params"])
    buf.seek(0)
    return NIQE(test_y_channel=True, pretrained_model_path=buf)


def _brisque(objs: dict):
    import torch
    from pyiqa.archs.brisque_arch import BRISQUE

    obj = objs["brisque-svm"]
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj)):
        raise UserError("the BRISQUE file does not hold the pair (sv_coef, sv) of tensors pyiqa's BRISQUE reads")
    buf = io.BytesIO()
    torch.save((obj[0], obj[1]), buf)  # plain tensors this process wrote: nothing else to unpickle
    buf.seek(0)
    return BRISQUE(test_y_channel=True, pretrained_model_path=buf)


def _state(objs: dict, key: str) -> dict:
    from .safe_load import extract_state_dict

    return extract_state_dict(objs[key], source=f"weights {key}")


def _musiq(objs: dict):
    from pyiqa.archs.musiq_arch import MUSIQ

    return _load_strict(MUSIQ(pretrained=False), _state(objs, "musiq-koniq"), "the MUSIQ file")


def _maniqa(objs: dict):
    import timm
    from pyiqa.archs import maniqa_arch

    class _NoDownload:  # timm as MANIQA's constructor sees it: no pretrained download
        @staticmethod
        def create_model(name, pretrained=False, **kw):
            return timm.create_model(name, pretrained=False, **kw)

    with _replaced(maniqa_arch, "timm", _NoDownload):
        net = maniqa_arch.MANIQA(train_dataset="koniq", scale=0.8, pretrained=False)
    return _load_strict(net, _state(objs, "maniqa-koniq"), "the MANIQA file")


def clip_from_state_dict(state: dict):
    """pyiqa's CLIP network from an OpenAI-layout state dict, as its ``load(..., 'cpu')`` builds it."""
    from pyiqa.archs.clip_model import build_model

    try:
        model = build_model(dict(state))  # it deletes a few metadata keys: a copy
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserError(f"the CLIP file does not fit pyiqa's CLIP: {str(exc).splitlines()[0]}") from None
    return model.float()


def import_clipiqa_arch():
    """pyiqa's clipiqa_arch. It imports openai-clip, whose first line is ``from pkg_resources
    import packaging`` (a version check); setuptools >= 81 no longer ships pkg_resources, so
    where it is gone that one name is provided (the ``packaging`` package it re-exported)."""
    import importlib
    import sys
    import types

    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.packaging = packaging
        sys.modules.setdefault("pkg_resources", shim)
    return importlib.import_module("pyiqa.archs.clipiqa_arch")


def _clipiqa(objs: dict):
    clipiqa_arch = import_clipiqa_arch()

    clip = clip_from_state_dict(_state(objs, "clip-rn50-openai"))
    with _replaced(clipiqa_arch, "load", lambda name, device="cpu", **kw: clip):
        return clipiqa_arch.CLIPIQA(model_type="clipiqa", backbone="RN50")


def lpips_alex(alexnet_sd: dict, lpips_sd: dict):
    """pyiqa's LPIPS v0.1 (AlexNet) network, filled from two verified state dicts: torchvision's
    AlexNet (``features.*`` keys) and the LPIPS linear layers (``lin<k>.model.1.weight``).

    pyiqa's AlexNet wrapper calls ``torchvision.models.alexnet(weights='IMAGENET1K_V1')`` (a
    download) whatever its ``pretrained`` says; that one call is made with ``weights=None``.
    """
    import torchvision
    from pyiqa.archs import lpips_arch

    class _NoDownload:  # torchvision.models as the AlexNet wrapper sees it
        @staticmethod
        def alexnet(weights=None, **kw):
            return torchvision.models.alexnet(weights=None, **kw)

    with _replaced(lpips_arch, "models", _NoDownload):
        net = lpips_arch.LPIPS(pretrained=False, net="alex", version="0.1", pnet_rand=True)
    slices = {i: n for n, (lo, hi) in enumerate(((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)), start=1)
              for i in range(lo, hi)}
    state = {}
    for k, v in alexnet_sd.items():  # features.<i>.<param> -> net.slice<n>.<i>.<param>
        parts = k.split(".")
        if parts[0] == "features" and parts[1].isdigit() and int(parts[1]) in slices:
            state[f"net.slice{slices[int(parts[1])]}.{'.'.join(parts[1:])}"] = v
    for k, v in lpips_sd.items():  # pyiqa's file: lin<k>.* (and, saved whole, lins.<k>.* and net.*)
        if k.startswith(("lin0.", "lin1.", "lin2.", "lin3.", "lin4.", "net.slice")):
            state[k] = v
    for k in range(5):
        if f"lin{k}.model.1.weight" in state:
            state[f"lins.{k}.model.1.weight"] = state[f"lin{k}.model.1.weight"]  # the same module, listed twice
    own = net.state_dict()
    missing = sorted(k for k in own if k not in state and not k.startswith("scaling_layer."))
    if missing:
        raise UserError(f"the LPIPS weights lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    own.update({k: v for k, v in state.items() if k in own})
    _load_strict(net, own, "the LPIPS weights")
    return net.requires_grad_(False).eval()


SPECS = (
    NRSpec("niqe", "NIQE", False, ".3f", ("niqe-params",), _niqe, "no reference; Y channel; pyiqa",
           96, "its 96x96 blocks"),
    NRSpec("brisque", "BRISQUE", False, ".2f", ("brisque-svm",), _brisque, "no reference; Y channel; pyiqa",
           16, "its 7x7 window at half scale"),
    NRSpec("musiq", "MUSIQ", True, ".2f", ("musiq-koniq",), _musiq, "no reference; KonIQ-10k; pyiqa", 32,
           "its 32x32 patches"),
    NRSpec("clipiqa", "CLIP-IQA", True, ".3f", ("clip-rn50-openai",), _clipiqa, "no reference; CLIP RN50; pyiqa",
           32, "the RN50 stem"),
    NRSpec("maniqa", "MANIQA", True, ".3f", ("maniqa-koniq",), _maniqa, "no reference; KonIQ-10k; pyiqa"),
)


SPEC_BY_NAME = {s.name: s for s in SPECS}


class NRScorer:
    """One no-reference metric: pyiqa's network, built from files the caller verified."""

    def __init__(self, name: str):
        self.spec = SPEC_BY_NAME[name]
        self.net = None
        self.device = "cpu"
        self.source: tuple = ()

    def prepare(self, paths: dict[str, Path], device: str, source: tuple = ()) -> None:
        """Build from ``paths`` (weights key -> verified file); ``source`` (e.g. the digests)
        says when the network built last can be kept. UserError when a file is refused."""
        if self.net is not None and source and self.source == (source, str(device)):
            return
        self.net = None
        objs = {k: read_file(k, Path(paths[k])) for k in self.spec.weights}
        net = self.spec.build(objs)
        self.net, self.device, self.source = net.to(device).eval(), str(device), (source, str(device))

    def batch(self, out: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of the [N,3,H,W] uint8 images ``out`` (``gt`` is not used): [N] float64."""
        import torch

        if self.net is None:
            raise RuntimeError(f"{self.spec.name} used before prepare()")
        x = out.to(self.device, torch.float32) / 255.0
        with torch.no_grad():
            return self.net(x).reshape(-1).to(torch.float64)

    def __call__(self, img: np.ndarray) -> float:
        import torch

        t = torch.from_numpy(np.array(img, dtype=np.uint8, order="C")).permute(2, 0, 1)[None]  # a copy: writable
        return float(self.batch(t)[0])


def parse_names(text: str) -> list[str]:
    """``musiq,niqe`` -> the names, checked (UserError naming the known ones)."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in SPEC_BY_NAME]
    if bad or not names:
        raise UserError(f"--metrics: unknown no-reference metric {', '.join(map(repr, bad)) or '(none given)'}; "
                        f"choose from {', '.join(SPEC_BY_NAME)}")
    return names
