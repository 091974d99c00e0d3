"""The neural restoration methods (registered in daclip.registry when this module is imported).

ours           IR-SDE + DA-CLIP: ConditionalUNet noise predictor, 100 posterior-sampling steps
ours-mix       the same with the authors' robust "mix" weights (DA-CLIP-mix + Universal-IR-mix)
wild-ir        the follow-up paper's wild-ir UNet, conditioned by the ViT-L-14 DA-CLIP
irsde          IR-SDE: plain UNet, reverse-SDE sampling (max_sigma 10)
nafnet         NAFNet
nafnet-daclip  NAFNet conditioned on DA-CLIP embeddings (content + degradation)
nafnet-degradation  NAFNet conditioned on the DA-CLIP degradation embedding only
promptir       PromptIR
restormer      Restormer
airnet         AirNet
adair, moce-ir, moce-ir-s, instructir, onerestore, maskdcpt-nafnet
               the field's released all-in-one models, loading the authors' own files; the
               ``release`` option (3d, 5d, cdd11, 7d, 12d, ...) picks a method's file for a
               protocol (the classes of those with a per-image input: :mod:`daclip.zoo_methods`)

Weights: ``weights`` (the ``--weights name=PATH`` override) or the weights table / cache
(:mod:`daclip.weights`). Methods conditioned by DA-CLIP need a second file: pass
``weights="NET.pth,DACLIP.pt"`` or the ``daclip_weights`` option (default: the method's
released DA-CLIP from the cache: ``daclip_ViT-B-32.pt``, ``_mix`` or ``wild-daclip_ViT-L-14.pt``).
The DA-CLIP input follows the official test path (:func:`daclip.model.clip_preprocess`) and
the encoder runs under ``daclip_amp`` (auto: fp16 on a GPU as the official code, fp32 on the
CPU). PromptIR and AirNet pad (``protocol=pad``, the default: every method is scored on the
same full GT pixels); ``protocol=crop`` is their upstream centre crop to a multiple of 16.
Both the resolved ``daclip_amp`` and the ``protocol`` are part of the method's ``settings``
(shown in the results) and of its ``weights_id``. A file written by ``daclip.train_ir`` carries its
network config (and the DA-CLIP it was trained with) in ``<file>.json`` next to it, which
is used automatically. A method never
runs with random weights: missing files raise MethodUnavailable saying how to get them.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builders.errors import UserError
from builders.options import parse_value

from .inference import (
    DACLIP_AMP,
    DaclipConditioner,
    Fit,
    Tiling,
    apply_fitted,
    resolve_daclip_amp,
    tiled_apply,
    tiled_rows,
    to_tensor,
)
from .precision import parse_precision, precision_dtype
from .registry import Method, MethodUnavailable
from .sde import SAMPLERS, IRSDE, SDEConfig, image_seed, make_generator
from .weights import WEIGHTS, WeightsUnavailable, release_for, releases, resolve_weights, weights_id

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "eager")
GPU_TILE_BATCH = 8  # tiles x images per network call on a GPU when net_batch is 0


@dataclass(frozen=True)
class NetSpec:
    """What a method needs beyond its network: weights entry, input fitting, conditioning."""

    network: str
    fit: Fit
    uses_daclip: bool = False
    #: The DA-CLIP embeddings the network takes (keyword arguments of its forward).
    contexts: tuple[str, ...] = ("text_context", "image_context")
    #: Weights-table entry of the network (default: the method's name).
    weights: str | None = None
    #: Weights-table entry and open_clip model of the DA-CLIP that conditions it.
    daclip_weights: str = "daclip"
    daclip_model: str = "ViT-B-32"
    #: Alternative input protocols ({name: Fit}); the default one is ``fit``, named ``protocol``.
    protocols: tuple[tuple[str, Fit], ...] = ()
    protocol: str = ""
    #: Name of the restoring call when it is not forward (AirNet's inference path).
    call: str | None = None
    #: Diffusion methods: the SDE and the default sampler.
    sde: SDEConfig | None = None
    sampler: str = "posterior"
    #: Other files the method loads: (role, weights entry), e.g. InstructIR's language head.
    extra: tuple[tuple[str, str], ...] = ()
    #: How the network fits any input size itself (recorded in the settings), e.g. "reflect to 8".
    padding: str = ""
    #: Blind, or how it is told what to do (recorded in the settings).
    conditioning: str = ""


@dataclass
class MethodOptions:
    """Options every neural method takes (strings from the command line are converted)."""

    device: str = ""
    preset: str = ""
    daclip_weights: str = ""
    daclip_model: str = ""  # open_clip name, toolkit config (tiny) or file; default: recorded, else the method's
    daclip_amp: str = "auto"
    protocol: str = ""
    #: The protocol whose release to load (3d, 5d, cdd11, 7d, 12d, ...; see daclip.weights.releases).
    release: str = ""
    tile: int = 768
    overlap: int = 64
    max_pixels: int = 1280 * 1280
    amp: str = "none"
    #: 1: network and inputs in channels_last memory format (faster convolutions on GPUs).
    channels_last: int = 0
    #: torch.compile the network: none, default, reduce-overhead (CUDA graphs), max-autotune,
    #: or eager (graph capture without code generation; checks the plumbing on any machine).
    compile: str = "none"
    #: Most images (or tiles) per network call; 0: the whole size group on a GPU, one on the
    #: CPU, where batch-size-dependent kernels (MKL's one-row GEMV, oneDNN) would change the
    #: rounding: a CPU output is then bit-identical whatever the runner's --batch-size.
    net_batch: int = 0
    #: The weights folder (builders.weights_folder); empty: --weights-dir's or the variables'.
    weights_dir: str = ""
    # diffusion only
    steps: int = 0
    sampler: str = ""
    seed: int = 0
    clip_x0: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def output_options(self) -> dict[str, Any]:
        """Options that differ from the defaults and can change restored pixels."""
        default = MethodOptions()
        # daclip_amp and protocol are recorded by the method once resolved (see settings).
        skip = {"device", "daclip_weights", "daclip_model", "daclip_amp", "protocol", "weights_dir", "release"}
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
                extra[key] = parse_value(value)  # network config overrides (e.g. width=8)
                continue
            kind = type(getattr(cls, key))  # the default's type: str or int
            try:
                values[key] = kind(value) if value is not None else getattr(cls, key)
            except (TypeError, ValueError):
                raise UserError(f"option {key}={value!r}: expected {kind.__name__}") from None
        if values.get("daclip_amp", "auto") not in DACLIP_AMP:
            raise UserError(f"option daclip_amp={values['daclip_amp']!r}: choose from {', '.join(DACLIP_AMP)}")
        if "amp" in values:  # daclip.precision's names; "fp32" is "none"
            values["amp"] = parse_precision(values["amp"], "option amp", auto=False)
        if values.get("compile", "none") not in COMPILE_MODES:
            raise UserError(f"option compile={values['compile']!r}: choose from {', '.join(COMPILE_MODES)}")
        if values.get("net_batch", 0) < 0:
            raise UserError(f"option net_batch={values['net_batch']}: must be >= 0 (0: automatic)")
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

    batched = True
    #: Options only a sampling (diffusion) method uses.
    SAMPLING_OPTIONS = ("steps", "sampler", "clip_x0")
    DACLIP_OPTIONS = ("daclip_weights", "daclip_model", "daclip_amp")
    samples = False
    #: True when outputs depend on random draws (a sampler, or MoCE-IR's router noise): the
    #: ``seed`` option is then used and recorded.
    draws_noise = False
    #: Feed-forward: a large image can go through in rows of tiles (a sampler cannot: every
    #: step needs the whole current state).
    streams = True

    def __init__(self, spec: NetSpec, weights: str | None = None, *, name: str = "", **options):
        self.spec = spec
        self.uses_daclip = spec.uses_daclip
        self.opts = MethodOptions.parse(options)
        self.weights_path, self.daclip_path = _split_weights(weights, self.opts.daclip_weights)
        # An option or a weights file the method would ignore is refused by name: a run that
        # looks configured must be.
        who = f"method {name or spec.network!r}"
        unused = [k for k in options if (k in self.SAMPLING_OPTIONS and not self.samples)
                  or (k == "seed" and not self.draws_noise)
                  or (k in self.DACLIP_OPTIONS and not spec.uses_daclip)]
        if unused:
            raise UserError(f"{who} does not use option {', '.join(unused)} "
                            + ("(it has no sampler)" if not self.samples else "(it is not conditioned by DA-CLIP)"))
        if self.draws_noise:
            self.seed = self.opts.seed
        if self.daclip_path and not (spec.uses_daclip or spec.extra) and weights and "," in weights:
            raise UserError(f"{who} uses one weights file; {self.daclip_path} (after the comma) would be ignored")
        protocols = {spec.protocol: spec.fit, **dict(spec.protocols)} if spec.protocol else {}
        if self.opts.protocol and self.opts.protocol not in protocols:
            choices = ", ".join(protocols) if protocols else "none: this method has one input protocol"
            raise UserError(f"option protocol={self.opts.protocol!r}: choose from {choices}")
        self.protocol = self.opts.protocol or spec.protocol
        self.fit = protocols.get(self.protocol, spec.fit)
        #: Resolved options that change outputs (shown with the results; part of weights_id).
        self.settings: dict[str, Any] = {}
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
            return resolve_weights(entry, override, root=self.opts.weights_dir or None)
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

    def weights_entry(self, role: str = "") -> str:
        """The weights-table entry to load for ``role``: the ``release`` option's file when set."""
        default = dict(self.spec.extra).get(role, "") if role else (self.spec.weights or self.name or self.spec.network)
        if not self.opts.release:
            return default
        entry = release_for(self.name or self.spec.network, self.opts.release, role)
        if entry is not None:
            return entry.name
        if role and not releases(self.name, role):
            return default  # a file shared by every release (OneRestore's embedder)
        known = ", ".join(releases(self.name or self.spec.network)) or "none"
        raise MethodUnavailable(f"{self.name}: no release for protocol {self.opts.release!r} (releases: {known})")

    def _release_setting(self, entry: str, path: Path, override: str | None) -> str | None:
        """"file (protocol)" of the loaded release, for the settings (None for methods without releases)."""
        e = WEIGHTS.get(entry)
        if e is None or not e.method:
            return None
        if override:
            return f"{Path(override).name} (--weights)"
        return f"{e.filename} ({e.protocol})" if e.protocol else e.filename

    def prepare(self, device: str = "cpu") -> None:
        from .networks.loading import load_network

        self.device = torch.device(self.opts.device or device)
        entry = self.weights_entry()
        path = self._resolve(entry, self.weights_path)
        cfg = self._network_config(path)
        try:
            self.net = load_network(self.spec.network, path, **cfg).to(self.device).eval()
        except TypeError as exc:  # an --option the network does not take
            if not self.opts.extra:
                raise
            raise UserError(f"method {self.name!r}: option {', '.join(self.opts.extra)} is not a setting of the "
                            f"{self.spec.network} network ({exc})") from None
        self.num_params = sum(p.numel() for p in self.net.parameters())
        wid = weights_id(path)
        if self.spec.uses_daclip:
            from .checkpoint import load_daclip
            from .model import daclip_architecture

            side = read_sidecar(path)
            # A network trained by daclip.train_ir names the DA-CLIP it was trained with.
            dc = self.daclip_path or (side.get("daclip_weights") if Path(side.get("daclip_weights") or "").is_file()
                                      else None)
            dpath = self._resolve(self.spec.daclip_weights, dc)
            model_name, model_cfg = "custom", side.get("daclip_cfg")
            if model_cfg is None or self.opts.daclip_model:
                # The daclip_model option, else what train_clip recorded beside the file, else the
                # method's released DA-CLIP (ViT-B-32; ViT-L-14 for wild-ir).
                model_name, model_cfg = daclip_architecture(dpath, self.opts.daclip_model, default=self.spec.daclip_model)
            model = load_daclip(str(dpath), model_name=model_name, device=str(self.device), model_cfg=model_cfg)
            self.conditioner = DaclipConditioner(model, amp=resolve_daclip_amp(self.opts.daclip_amp, self.device))
            self.daclip_params = sum(p.numel() for p in model.parameters())
            wid = _digest(wid, weights_id(dpath))
        # Options that change the output (steps, sampler, seed, amp, tiling, config, the
        # DA-CLIP precision, the input protocol) are part of the cache key, so a re-run with
        # other options never reuses stale outputs.
        changed = self.opts.output_options()
        if self.conditioner is not None:
            changed["daclip_amp"] = self.conditioner.amp
        if self.protocol:
            changed["protocol"] = self.protocol
        release = self._release_setting(entry, path, self.weights_path)
        if release:
            changed["release"] = release
        if self.spec.padding:
            changed["padding"] = self.spec.padding
        if self.spec.conditioning:
            changed["conditioning"] = self.spec.conditioning
        loaded = getattr(self.net, "loaded_from", None) or {}
        if release and loaded.get("entries"):
            changed["container"] = " > ".join(loaded["entries"])  # which form of the file was met
        self.settings = dict(changed)
        self.weights_id = _digest(wid, json.dumps(changed, sort_keys=True, default=str)) if changed else wid

    # -- running ----------------------------------------------------------------------
    def _autocast(self):
        dtype = precision_dtype(self.opts.amp)
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _contexts(self, lq: torch.Tensor) -> dict:
        return daclip_contexts(self.spec, self.conditioner, lq)  # the whole batch in one DA-CLIP call

    def _stream_contexts(self, lq: np.ndarray) -> dict:
        """The per-image inputs of one streamed (row-tiled) image; a float copy of the whole
        image is made only when DA-CLIP needs to see it."""
        return self._contexts(to_tensor(lq, self.device)) if self.conditioner is not None else {}

    def _fast(self, fn):
        """``fn`` (the network or its restoring call) with the speed options applied."""
        if self.opts.channels_last and self.net is not None:
            self.net.to(memory_format=torch.channels_last)
        if self.opts.compile == "none":
            return fn
        if self.opts.compile == "eager":
            return torch.compile(fn, backend="eager", dynamic=False)
        mode = None if self.opts.compile == "default" else self.opts.compile
        return torch.compile(fn, mode=mode, dynamic=False)

    def _call(self):
        """The (cached) fast network call: fn(*inputs, **context) -> float32 output."""
        if getattr(self, "_fast_for", None) is not self.net:  # built once per loaded network
            self._fast_fn = self._fast(getattr(self.net, self.spec.call) if self.spec.call else self.net)
            self._fast_for = self.net
        fn = self._fast_fn
        cl = bool(self.opts.channels_last)

        def run(*xs, **ctx):
            if cl:
                xs = [x.contiguous(memory_format=torch.channels_last) if isinstance(x, torch.Tensor) and x.dim() == 4
                      else x for x in xs]
            with self._autocast():
                return fn(*xs, **ctx).float()

        return run

    def _images_per_call(self, n: int) -> int:
        if self.opts.net_batch:
            return self.opts.net_batch
        return n if self.device.type == "cuda" else 1

    def _tile_batch(self, images: int) -> int:
        limit = self.opts.net_batch or (GPU_TILE_BATCH if self.device.type == "cuda" else 1)
        return max(1, limit // max(1, images))

    def restore_tensor(self, lq: torch.Tensor, keys: list[str] | None = None) -> torch.Tensor:
        """Restore a [B,3,H,W] batch in 0..1 (``keys``: the images' ids; unused here)."""
        ctx = self._contexts(lq)
        run = self._call()
        fit = self.fit

        def whole(x, **c):
            return apply_fitted(lambda xx: run(xx, **c), [x], fit)

        return tiled_apply(whole, [lq], self.tiling, per_image=ctx, tile_batch=self._tile_batch(lq.shape[0]))

    @torch.no_grad()
    def restore(self, lq: np.ndarray, task: str) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("call prepare() first")
        return self.restore_batch([lq], [task])[0]

    @torch.no_grad()
    def restore_batch(self, lqs: list[np.ndarray], tasks: list[str] | None = None,
                      keys: list[str] | None = None) -> list[np.ndarray]:
        """Restore several images, batching those of equal size (one network call per group,
        or per ``net_batch`` images, for the whole group: the fast path on a GPU).

        ``keys`` (the images' ids) seed each image's own noise in a diffusion method, so an
        image's output never depends on what else is in its batch; without keys every image
        gets the method's ``seed``, as :meth:`restore` does.
        """
        if self.net is None:
            raise RuntimeError("call prepare() first")
        if keys is not None and len(keys) != len(lqs):
            raise ValueError(f"{len(keys)} keys for {len(lqs)} images")
        out: list[np.ndarray | None] = [None] * len(lqs)
        groups: dict[tuple, list[int]] = {}
        for i, img in enumerate(lqs):
            groups.setdefault(img.shape, []).append(i)
        for idx in groups.values():
            h, w = lqs[idx[0]].shape[:2]
            if self.streams and not self.tiling.whole(h, w) and self._images_per_call(len(idx)) == 1:
                # Too large to run whole, and one image per call: one row of tiles at a time, so
                # memory stays bounded by the uint8 image (tiled_apply would hold it in float).
                # (net_batch > 1 keeps tiled_apply: its tiles of several images share calls.)
                run, fit = self._call(), self.fit
                for i in idx:
                    ctx = self._stream_contexts(lqs[i])
                    out[i] = tiled_rows(lambda x, **c: apply_fitted(lambda xx: run(xx, **c), [x], fit), lqs[i],
                                        self.tiling, self.device, per_image=ctx, tile_batch=self._tile_batch(1))
                continue
            step = self._images_per_call(len(idx))
            for start in range(0, len(idx), step):
                part = idx[start:start + step]
                batch = torch.cat([to_tensor(lqs[i], self.device) for i in part])
                restored = self.restore_tensor(batch, None if keys is None else [keys[i] for i in part])
                # One device-to-host copy per batch (the rounding of to_uint8, image by image).
                u8 = (restored.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
                u8 = u8.permute(0, 2, 3, 1).cpu().numpy()
                for j, i in enumerate(part):
                    out[i] = u8[j]
        return out


class DiffusionMethod(NetworkMethod):
    """IR-SDE sampling with a noise-predicting UNet (tiled per network call).

    Each image draws its noise from its own generator, seeded from the ``seed`` option and
    the image's key (its id in a benchmark run), so a batch samples exactly what each of its
    images would sample alone.
    """

    #: Part of the cache key: outputs of older runs drew one noise stream per batch.
    noise_scheme = "per-image-generator"
    samples = True
    draws_noise = True
    streams = False

    def prepare(self, device: str = "cpu") -> None:
        super().prepare(device)
        self.weights_id = _digest(self.weights_id, self.noise_scheme)

    def sde(self) -> IRSDE:
        return IRSDE(self.spec.sde, steps=self.opts.steps or None)

    def generators(self, n: int, keys: list[str] | None) -> list[torch.Generator]:
        if keys is None:
            return [make_generator(self.opts.seed, self.device) for _ in range(n)]
        return [make_generator(image_seed(self.opts.seed, k), self.device) for k in keys]

    def restore_tensor(self, lq: torch.Tensor, keys: list[str] | None = None) -> torch.Tensor:
        ctx = self._contexts(lq)
        sde = self.sde()
        run = self._call()
        tile_batch = self._tile_batch(lq.shape[0])

        def noise_fn(x, t):
            return tiled_apply(lambda xx, ll, **c: run(xx, ll, t, **c), [x, lq], self.tiling,
                               per_image=ctx, tile_batch=tile_batch)

        return sde.sample(noise_fn, lq, sampler=self.opts.sampler or self.spec.sampler,
                          generator=self.generators(lq.shape[0], keys), clip_x0=bool(self.opts.clip_x0))
