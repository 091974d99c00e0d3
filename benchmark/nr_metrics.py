"""No-reference metrics (NIQE, BRISQUE, MUSIQ, CLIP-IQA, MANIQA) through pyiqa's own architectures.

The field scores images without ground truth with pyiqa; these metrics run pyiqa's very
network classes with its default settings of each metric (``pyiqa.default_model_configs``),
so a value equals ``pyiqa.create_metric(name)`` on the same image. What differs is who reads
the weights: pyiqa's constructors download and ``torch.load(weights_only=False)`` them; here
every file comes from the weights folder, verified (benchmark.weights) and read by the
toolkit's restricted loader (daclip.safe_load), and the networks are built without pretrained
loading and filled with ``load_state_dict``:

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from builders.errors import UserError

from .metrics import Metric, MetricUnavailable, images_to_batch, register_metric

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class NRSpec:
    name: str  # the toolkit's and pyiqa's metric name
    display: str
    higher_is_better: bool
    fmt: str
    weights: tuple[str, ...]  # benchmark.weights keys
    build: Callable[[dict], "torch.nn.Module"]
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
    from daclip.safe_load import extract_state_dict

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


class _NRMetric:
    """One no-reference metric: pyiqa's network, built from the verified weights folder."""

    def __init__(self, spec: NRSpec):
        self.spec = spec
        self.net = None
        self.device = "cpu"
        self.source: tuple = ()

    def prepare(self, weights_dir: Path, device: str) -> None:
        from .weights import WeightsProblem, file_digest, load_object, unavailable_reason

        spec = self.spec
        reason = unavailable_reason(spec.name, weights_dir)
        if reason:
            raise MetricUnavailable(reason)
        source = (tuple(file_digest(k, weights_dir) for k in spec.weights), str(device))
        if self.net is not None and self.source == source:
            return
        self.net = None
        try:
            objs = {k: load_object(k, weights_dir) for k in spec.weights}
            net = spec.build(objs)
        except (WeightsProblem, UserError) as exc:
            raise MetricUnavailable(str(exc)) from None
        self.net, self.device, self.source = net.to(device).eval(), str(device), source

    def batch(self, out: "torch.Tensor", gt: "torch.Tensor | None" = None) -> "torch.Tensor":
        """Scores of the [N,3,H,W] uint8 images ``out`` (``gt`` is not used): [N] float64."""
        import torch

        if self.net is None:
            raise MetricUnavailable(f"{self.spec.name} used before setup()")
        x = out.to(self.device, torch.float32) / 255.0
        with torch.no_grad():
            return self.net(x).reshape(-1).to(torch.float64)

    def __call__(self, out: np.ndarray, gt: np.ndarray | None = None) -> float:
        return float(self.batch(images_to_batch([out]))[0])


NR_METRICS = {s.name: _NRMetric(s) for s in SPECS}
for _s in SPECS:
    _m = NR_METRICS[_s.name]
    register_metric(Metric(_s.name, _s.display, _s.higher_is_better, _m, _s.fmt, headline=False,
                           description=_s.description, prepare=_m.prepare, batch_fn=_m.batch, network=True,
                           reference=False, min_side=_s.min_side, min_side_reason=_s.min_side_reason))
