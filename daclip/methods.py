"""The neural restoration methods (registered in daclip.registry when this module is imported).

ours           IR-SDE + DA-CLIP: ConditionalUNet noise predictor, 100 posterior-sampling steps
irsde          IR-SDE: plain UNet, reverse-SDE sampling (max_sigma 10)
nafnet         NAFNet
nafnet-daclip  NAFNet conditioned on DA-CLIP embeddings (content + degradation)
nafnet-degradation  NAFNet conditioned on the DA-CLIP degradation embedding only
promptir       PromptIR
restormer      Restormer
airnet         AirNet

Weights: ``weights`` (the ``--weights name=PATH`` override) or the weights table / cache
(:mod:`daclip.weights`). Methods conditioned by DA-CLIP need a second file: pass
``weights="NET.pth,DACLIP.pt"`` or the ``daclip_weights`` option (default: the released
``daclip_ViT-B-32.pt`` from the cache). A file written by ``daclip.train_ir`` carries its
network config (and the DA-CLIP it was trained with) in ``<file>.json`` next to it, which
is used automatically. A method never
runs with random weights: missing files raise MethodUnavailable saying how to get them.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builders.errors import UserError

from .inference import DaclipConditioner, Fit, Tiling, apply_fitted, tiled_apply, to_tensor, to_uint8
from .registry import Method, MethodUnavailable, register_method
from .sde import SAMPLERS, IRSDE, SDEConfig, make_generator
from .weights import WeightsUnavailable, resolve_weights, weights_id

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class NetSpec:
    """What a method needs beyond its network: weights entry, input fitting, conditioning."""

    network: str
    fit: Fit
    uses_daclip: bool = False
    #: The DA-CLIP embeddings the network takes (keyword arguments of its forward).
    contexts: tuple[str, ...] = ("text_context", "image_context")
    #: Name of the restoring call when it is not forward (AirNet's inference path).
    call: str | None = None
    #: Diffusion methods: the SDE and the default sampler.
    sde: SDEConfig | None = None
    sampler: str = "posterior"


@dataclass
class MethodOptions:
    """Options every neural method takes (strings from the command line are converted)."""

    device: str = ""
    preset: str = ""
    daclip_weights: str = ""
    daclip_model: str = ""  # open_clip name, toolkit config (tiny) or file; default: recorded, else ViT-B-32
    tile: int = 768
    overlap: int = 64
    max_pixels: int = 1280 * 1280
    amp: str = "none"
    # diffusion only
    steps: int = 0
    sampler: str = ""
    seed: int = 0
    clip_x0: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def output_options(self) -> dict[str, Any]:
        """Options that differ from the defaults and can change restored pixels."""
        default = MethodOptions()
        skip = {"device", "daclip_weights", "daclip_model"}
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in skip and getattr(self, f.name) != getattr(default, f.name)}
        return out

    @classmethod
    def parse(cls, options: dict[str, Any]) -> "MethodOptions":
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                extra[key] = value  # network config overrides (e.g. width=8)
                continue
            kind = type(getattr(cls, key))  # the default's type: str or int
            try:
                values[key] = kind(value) if value is not None else getattr(cls, key)
            except (TypeError, ValueError):
                raise UserError(f"option {key}={value!r}: expected {kind.__name__}") from None
        if values.get("amp", "none") not in AMP_DTYPES:
            raise UserError(f"option amp={values['amp']!r}: choose from {', '.join(AMP_DTYPES)}")
        if values.get("sampler") and values["sampler"] not in SAMPLERS:
            raise UserError(f"option sampler={values['sampler']!r}: choose from {', '.join(SAMPLERS)}")
        return cls(**values, extra=extra)


def daclip_contexts(spec: NetSpec, conditioner: DaclipConditioner | None, lq: torch.Tensor) -> dict:
    """The network's DA-CLIP keyword arguments for an LQ batch: the degradation embedding
    (``text_context``) and the content embedding (``image_context``), those the spec takes."""
    if conditioner is None:
        return {}
    content, degra = conditioner(lq)
    both = {"text_context": degra, "image_context": content}
    return {k: both[k] for k in spec.contexts}


def _digest(*parts: str) -> str:
    import hashlib

    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _split_weights(weights: str | None, daclip_weights: str) -> tuple[str | None, str | None]:
    """"NET.pth,DACLIP.pt" -> both paths; a lone path is the network's."""
    if weights and "," in weights:
        net, _, dc = weights.partition(",")
        return net.strip() or None, dc.strip() or None
    return weights or None, daclip_weights or None


def read_sidecar(path: Path) -> dict:
    """Network config saved by daclip.train_ir next to its weights (``<file>.json``)."""
    side = Path(str(path) + ".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {side}: {exc}") from None
    return data if isinstance(data, dict) else {}


class NetworkMethod(Method):
    """A feed-forward restoration network (optionally DA-CLIP-conditioned)."""

    def __init__(self, spec: NetSpec, weights: str | None = None, **options):
        self.spec = spec
        self.opts = MethodOptions.parse(options)
        self.weights_path, self.daclip_path = _split_weights(weights, self.opts.daclip_weights)
        self.net: torch.nn.Module | None = None
        self.conditioner: DaclipConditioner | None = None
        self.device = torch.device("cpu")
        try:
            self.tiling = Tiling(self.opts.tile, self.opts.overlap, self.opts.max_pixels)
        except ValueError as exc:
            raise UserError(f"tiling options: {exc}") from None

    # -- loading ----------------------------------------------------------------------
    def _resolve(self, entry: str, override: str | None) -> Path:
        try:
            return resolve_weights(entry, override)
        except WeightsUnavailable as exc:
            raise MethodUnavailable(f"{self.name or entry}: {exc}") from None

    def _network_config(self, path: Path) -> dict:
        side = read_sidecar(path)
        if side.get("network") not in (None, self.spec.network):
            raise MethodUnavailable(
                f"{path} holds a {side['network']!r} network, not {self.spec.network!r}")
        cfg = dict(side.get("config") or {})
        if self.opts.preset:
            cfg = {"preset": self.opts.preset}
        cfg.update(self.opts.extra)
        return cfg

    def prepare(self, device: str = "cpu") -> None:
        from .networks.loading import load_network

        self.device = torch.device(self.opts.device or device)
        entry = self.name or self.spec.network
        path = self._resolve(entry, self.weights_path)
        self.net = load_network(self.spec.network, path, **self._network_config(path)).to(self.device).eval()
        self.num_params = sum(p.numel() for p in self.net.parameters())
        wid = weights_id(path)
        if self.spec.uses_daclip:
            from .checkpoint import load_daclip
            from .model import daclip_architecture

            side = read_sidecar(path)
            # A network trained by daclip.train_ir names the DA-CLIP it was trained with.
            dc = self.daclip_path or (side.get("daclip_weights") if Path(side.get("daclip_weights") or "").is_file()
                                      else None)
            dpath = self._resolve("daclip", dc)
            model_name, model_cfg = "custom", side.get("daclip_cfg")
            if model_cfg is None or self.opts.daclip_model:
                # The daclip_model option, else what train_clip recorded beside the file, else ViT-B-32.
                model_name, model_cfg = daclip_architecture(dpath, self.opts.daclip_model)
            model = load_daclip(str(dpath), model_name=model_name, device=str(self.device), model_cfg=model_cfg)
            self.conditioner = DaclipConditioner(model)
            self.daclip_params = sum(p.numel() for p in model.parameters())
            wid = _digest(wid, weights_id(dpath))
        # Options that change the output (steps, sampler, seed, amp, tiling, config) are part
        # of the cache key, so a re-run with other options never reuses stale outputs.
        changed = self.opts.output_options()
        self.weights_id = _digest(wid, json.dumps(changed, sort_keys=True, default=str)) if changed else wid

    # -- running ----------------------------------------------------------------------
    def _autocast(self):
        dtype = AMP_DTYPES[self.opts.amp]
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _contexts(self, lq: torch.Tensor) -> dict:
        return daclip_contexts(self.spec, self.conditioner, lq)

    def _net_fn(self, ctx: dict):
        fn = getattr(self.net, self.spec.call) if self.spec.call else self.net

        def run(x):
            with self._autocast():
                return fn(x, **ctx).float()

        return run

    def restore_tensor(self, lq: torch.Tensor) -> torch.Tensor:
        ctx = self._contexts(lq)
        run = self._net_fn(ctx)
        return tiled_apply(lambda x: apply_fitted(run, [x], self.spec.fit), [lq], self.tiling)

    @torch.no_grad()
    def restore(self, lq: np.ndarray, task: str) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("call prepare() first")
        return to_uint8(self.restore_tensor(to_tensor(lq, self.device)))


    @torch.no_grad()
    def restore_batch(self, lqs: list[np.ndarray], tasks: list[str] | None = None) -> list[np.ndarray]:
        """Restore several images, batching those of equal size (one network call per step
        for the whole group: the fast path on a GPU). Diffusion outputs then depend on the
        group (the sampler draws noise for the batch), so compare runs with the same grouping."""
        if self.net is None:
            raise RuntimeError("call prepare() first")
        out: list[np.ndarray | None] = [None] * len(lqs)
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(lqs):
            groups.setdefault(img.shape, []).append(i)
        for idx in groups.values():
            batch = torch.cat([to_tensor(lqs[i], self.device) for i in idx])
            restored = self.restore_tensor(batch)
            for j, i in enumerate(idx):
                out[i] = to_uint8(restored[j:j + 1])
        return out


class DiffusionMethod(NetworkMethod):
    """IR-SDE sampling with a noise-predicting UNet (tiled per network call)."""

    def sde(self) -> IRSDE:
        return IRSDE(self.spec.sde, steps=self.opts.steps or None)

    def restore_tensor(self, lq: torch.Tensor) -> torch.Tensor:
        ctx = self._contexts(lq)
        sde = self.sde()
        net = self.net

        def noise_fn(x, t):
            def call(xx, ll):
                with self._autocast():
                    return net(xx, ll, t, **ctx).float()

            return tiled_apply(call, [x, lq], self.tiling)

        gen = make_generator(self.opts.seed, self.device)
        out = sde.sample(noise_fn, lq, sampler=self.opts.sampler or self.spec.sampler, generator=gen,
                         clip_x0=bool(self.opts.clip_x0))
        return out


SPECS: dict[str, tuple[NetSpec, type[NetworkMethod], str, str]] = {
    "ours": (
        NetSpec("ours", Fit("none", 16), uses_daclip=True, sde=SDEConfig(max_sigma=50), sampler="posterior"),
        DiffusionMethod, "Ours (IR-SDE + DA-CLIP)",
        "DA-CLIP-conditioned IR-SDE (universal-ir.pth + daclip_ViT-B-32.pt), posterior sampling; "
        "options steps, sampler (posterior|sde|ode), seed, clip_x0 (0|1), amp (none|bf16|fp16), "
        "tile, overlap, max_pixels, daclip_weights (or weights='UNET,DACLIP')",
    ),
    "irsde": (
        NetSpec("irsde", Fit("none", 16), sde=SDEConfig(max_sigma=10), sampler="sde"),
        DiffusionMethod, "IR-SDE",
        "IR-SDE UNet without DA-CLIP, reverse-SDE sampling (max_sigma 10); options as 'ours'",
    ),
    "nafnet": (NetSpec("nafnet", Fit("zero", 16)), NetworkMethod, "NAFNet",
               "NAFNet (zero-pad to 16, crop back); option preset (sidd-w32, sidd-w64, gopro-w32, ...)"),
    "nafnet-daclip": (NetSpec("nafnet-daclip", Fit("zero", 16), uses_daclip=True), NetworkMethod,
                      "NAFNet + DA-CLIP", "NAFNet conditioned on DA-CLIP embeddings; needs DA-CLIP weights too"),
    "nafnet-degradation": (NetSpec("nafnet-degradation", Fit("zero", 16), uses_daclip=True, contexts=("text_context",)),
                           NetworkMethod, "NAFNet + Degradation",
                           "NAFNet conditioned on the DA-CLIP degradation embedding only (Table 3 ablation); "
                           "needs DA-CLIP weights too"),
    "promptir": (NetSpec("promptir", Fit("crop", 16)), NetworkMethod, "PromptIR",
                 "PromptIR (Lightning checkpoint; input cropped to a multiple of 16 as upstream, rim kept)"),
    "restormer": (NetSpec("restormer", Fit("reflect", 8)), NetworkMethod, "Restormer",
                  "Restormer (reflect-pad to 8, crop back)"),
    "airnet": (NetSpec("airnet", Fit("crop", 16), call="restore"), NetworkMethod, "AirNet",
               "AirNet (input cropped to a multiple of 16 as upstream, rim kept)"),
}


def _register(name: str, spec: NetSpec, cls: type[NetworkMethod], display: str, description: str) -> None:
    def factory(weights: str | None = None, **options) -> NetworkMethod:
        method = cls(spec, weights=weights, **options)
        method.name = name
        method.display_name = display
        return method

    factory.__name__ = f"create_{name.replace('-', '_')}"
    register_method(name, display_name=display, description=description, needs_weights=True)(factory)


for _name, (_spec, _cls, _display, _desc) in SPECS.items():
    _register(_name, _spec, _cls, _display, _desc)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images (RGB, full image) in dB; inf when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
