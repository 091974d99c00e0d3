"""The network methods: one named entry each (:class:`MethodEntry`), registered as methods.

Adding a network method is one new file plus one entry here: the network in
``daclip/networks/<name>.py`` (it registers itself with ``@register_network``; the package
imports every module in its folder), then a ``MethodEntry`` below naming its :class:`NetSpec`
(input fitting, conditioning, weights entry) and its family (:mod:`daclip.families`: Diffusion,
Direct or AirNet), which gives both its inference class and its training loss. Its weights are
found as ``<weights folder>/<name>/<name>.pth`` or ``--weights NAME=PATH``; a released file also
gets a row (source, size, sha256) in :data:`daclip.weights.WEIGHTS`. The registries' tests run
over every entry, so a new one is tested with no test edit.
"""

from __future__ import annotations

from dataclasses import dataclass

from .families import AirNet, Diffusion, Direct, Family, Instructed, RouterNoise, SceneConditioned
from .inference import Fit
from .methods import NetSpec, NetworkMethod
from .registry import register_method
from .sde import SDEConfig

_OURS_OPTIONS = ("options steps, sampler (posterior|sde|ode), seed, clip_x0 (0|1), amp (none|bf16|fp16), "
                 "daclip_amp (auto|fp16|bf16|none), tile, overlap, max_pixels, daclip_weights (or "
                 "weights='UNET,DACLIP')")
# PromptIR and AirNet: every method is scored on the same full GT pixels, so they pad by
# default; protocol=crop is their test scripts' centre crop to a multiple of 16.
_PAD_OR_CROP = "protocol pad (default: reflect-pad, crop back) or crop (upstream: centre crop to 16, rim kept)"


def _daclip_sde(network: str, **kw) -> NetSpec:
    """The DA-CLIP IR-SDE releases: max_sigma 50, posterior sampling, the UNet pads itself."""
    return NetSpec(network, Fit("none", 16), uses_daclip=True, sde=SDEConfig(max_sigma=50), sampler="posterior", **kw)


@dataclass(frozen=True)
class MethodEntry:
    """One network method of the catalogue: what it loads and runs, its family, its names."""

    spec: NetSpec
    family: type[Family]
    display: str
    description: str


SPECS: dict[str, MethodEntry] = {
    "ours": MethodEntry(
        _daclip_sde("ours"),
        Diffusion, "Ours (IR-SDE + DA-CLIP)",
        f"DA-CLIP-conditioned IR-SDE (universal-ir.pth + daclip_ViT-B-32.pt), posterior sampling; {_OURS_OPTIONS}",
    ),
    "ours-mix": MethodEntry(
        _daclip_sde("ours", weights="ours-mix", daclip_weights="daclip-mix"),
        Diffusion, "Ours-mix (IR-SDE + DA-CLIP-mix)",
        "the authors' robust 'mix' release (universal-ir-mix.pth + daclip_ViT-B-32_mix.pt, trained with added "
        f"blur, blur+rain and inpainting mixtures); {_OURS_OPTIONS}",
    ),
    "wild-ir": MethodEntry(
        _daclip_sde("wild-ir", daclip_weights="daclip-wild", daclip_model="ViT-L-14"),
        Diffusion, "Wild-IR (IR-SDE + DA-CLIP ViT-L-14)",
        "the follow-up paper's wild-ir.pth (context 768, no degradation prompt, learned 0.5x down/up-sampling) "
        f"conditioned by wild-daclip_ViT-L-14.pt; {_OURS_OPTIONS}",
    ),
    "irsde": MethodEntry(
        NetSpec("irsde", Fit("none", 16), sde=SDEConfig(max_sigma=10), sampler="sde"),
        Diffusion, "IR-SDE",
        "IR-SDE UNet without DA-CLIP, reverse-SDE sampling (max_sigma 10); options as 'ours'",
    ),
    "nafnet": MethodEntry(NetSpec("nafnet", Fit("zero", 16)), Direct, "NAFNet",
               "NAFNet (zero-pad to 16, crop back); option preset (sidd-w32, sidd-w64, gopro-w32, gopro-w64: "
               "the GoPro presets are NAFNetLocal 'TLC' as upstream tests them)"),
    "nafnet-daclip": MethodEntry(NetSpec("nafnet-daclip", Fit("zero", 16), uses_daclip=True), Direct,
                      "NAFNet + DA-CLIP", "NAFNet conditioned on DA-CLIP embeddings; needs DA-CLIP weights too"),
    "nafnet-degradation": MethodEntry(NetSpec("nafnet-degradation", Fit("zero", 16), uses_daclip=True, contexts=("text_context",)),
                           Direct, "NAFNet + Degradation",
                           "NAFNet conditioned on the DA-CLIP degradation embedding only (Table 3 ablation); "
                           "needs DA-CLIP weights too"),
    "promptir": MethodEntry(NetSpec("promptir", Fit("reflect", 8), protocol="pad", protocols=(("crop", Fit("crop", 16)),)),
                 Direct, "PromptIR",
                 f"PromptIR (Lightning checkpoint); {_PAD_OR_CROP} (pad: to a multiple of 8, as its demo.py)"),
    "restormer": MethodEntry(NetSpec("restormer", Fit("reflect", 8)), Direct, "Restormer",
                  "Restormer (reflect-pad to 8, crop back)"),
    "airnet": MethodEntry(NetSpec("airnet", Fit("reflect", 16), call="restore", protocol="pad",
                       protocols=(("crop", Fit("crop", 16)),)), AirNet, "AirNet",
               f"AirNet; {_PAD_OR_CROP} (pad: to a multiple of 16)"),
    # The field's released all-in-one models: each network fits the input size itself, only as
    # much as its architecture needs (no outer padding); the ``release`` option picks the file
    # of a protocol (daclip.weights.release_for).
    "adair": MethodEntry(NetSpec("adair", Fit("none", 1), weights="adair-5d", padding="reflect to 8 inside the network",
                                 conditioning="blind"), Direct, "AdaIR",
                         "AdaIR (adair5d.ckpt; release=3d for adair3d.ckpt), blind"),
    "moce-ir": MethodEntry(NetSpec("moce-ir", Fit("none", 1), weights="moce-ir-5d",
                                   padding="reflect to 8 inside the network", conditioning="blind"), RouterNoise,
                           "MoCE-IR", "MoCE-IR (last.ckpt of AIO5; release=3d|cdd11), blind; eval-time router noise "
                                      "kept, seeded per image (option seed)"),
    "moce-ir-s": MethodEntry(NetSpec("moce-ir-s", Fit("none", 1), weights="moce-ir-s-5d",
                                     padding="reflect to 8 inside the network", conditioning="blind"), RouterNoise,
                             "MoCE-IR-S", "MoCE-IR-S (dim 32; release=3d|5d|cdd11), as moce-ir"),
    "instructir": MethodEntry(NetSpec("instructir", Fit("none", 1), weights="instructir-7d",
                                      extra=(("lm", "instructir-lm-7d"),),
                                      padding="zero to 16 inside the network (upstream)", conditioning="instructed"),
                              Instructed, "InstructIR",
                              "InstructIR 7D (im_ + lm_instructir-7d.pt, weights='IM,LM'), instruction-driven: a fixed "
                              "instruction per type, or option prompt='...'; text encoder TaylorAI/bge-micro-v2 "
                              "(HF cache)"),
    "onerestore": MethodEntry(NetSpec("onerestore", Fit("none", 1), weights="onerestore-cdd11",
                                      extra=(("embedder", "onerestore-embedder"),), padding="none (any size)",
                                      conditioning="blind"), SceneConditioned, "OneRestore",
                              "OneRestore (onerestore_cdd-11.tar + embedder_model.tar, weights='NET,EMBEDDER'; "
                              "release=real|lol|reside-ots|rain1200|snow100k), blind via the embedder, or option "
                              "scene=TYPE"),
    "maskdcpt-nafnet": MethodEntry(NetSpec("maskdcpt-nafnet", Fit("none", 1), weights="maskdcpt-nafnet-5d",
                                           padding="reflect to 16 inside the network (BasicSR's test)",
                                           conditioning="blind"), Direct, "MaskDCPT (NAFNet)",
                                   "MaskDCPT's NAFNet (nafnet_maskdcpt_5d.pth; release=12d), BasicSR params_ema "
                                   "first, blind"),
}


def _register(name: str, entry: MethodEntry) -> None:
    def factory(weights: str | None = None, **options) -> NetworkMethod:
        method = entry.family.method(entry.spec, weights=weights, name=name, **options)
        method.name = name
        method.display_name = entry.display
        return method

    factory.__name__ = f"create_{name.replace('-', '_')}"
    register_method(name, display_name=entry.display, description=entry.description, needs_weights=True)(factory)


for _name, _entry in SPECS.items():
    _register(_name, _entry)
