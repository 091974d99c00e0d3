"""DA-CLIP: a frozen open_clip CLIP plus a trainable controller (a copy of its vision tower).

The module tree (and hence the state_dict key names) follows the authors' released
``daclip_ViT-B-32.pt``:

    clip.*                                   the frozen open_clip CLIP (both towers)
    visual.*                                 the same frozen vision tower again (an alias
                                             the official class registers; the released
                                             file stores its tensors twice)
    visual_control.{conv1,class_embedding,positional_embedding,ln_pre,ln_post,proj}
    visual_control.transformer.transformer.resblocks.<i>.*   controller blocks
    visual_control.transformer.zero_modules.<i>.{weight,bias} zero-initialised Linear
    logit_scale                              trainable copy of the CLIP temperature

The controller runs its own blocks unchanged and records ``zero_module_i(x_i)`` after block
i; the frozen tower adds those records after its blocks in reversed order (frozen block 1
gets controller block L), as the official code pops them from the end of the list.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from builders.errors import UserError
from builders.tasks import DEGRADATIONS
from builders.vocabulary import DACLIP, Vocabulary

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
LOGIT_SCALE_MAX = 4.605170185988092  # ln(100): open_clip clamps the temperature here


class ControlTransformer(nn.Module):
    """The controller's block stack: the copied ``Transformer`` plus one zero Linear per block.

    Wrapping (rather than subclassing) keeps the official key layout
    ``transformer.transformer.resblocks`` / ``transformer.zero_modules``.
    """

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer
        width = transformer.width
        self.zero_modules = nn.ModuleList(nn.Linear(width, width) for _ in transformer.resblocks)
        self.reset_zero_modules()

    def reset_zero_modules(self) -> None:
        for lin in self.zero_modules:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def resblocks(self) -> nn.ModuleList:
        return self.transformer.resblocks

    @property
    def batch_first(self) -> bool:
        return getattr(self.transformer, "batch_first", True)

    @property
    def grad_checkpointing(self) -> bool:
        return self.transformer.grad_checkpointing


def _run_block(blk: nn.Module, x: torch.Tensor, use_ckpt: bool) -> torch.Tensor:
    if use_ckpt and torch.is_grad_enabled():
        return checkpoint(blk, x, use_reentrant=False)
    return blk(x)


def _pool_project(tower: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """open_clip's VisionTransformer tail: (ln_post, pool) then projection."""
    pooled, _ = tower._pool(x)
    if tower.proj is not None:
        pooled = pooled @ tower.proj
    return pooled


def vision_forward(
    tower: nn.Module,
    blocks: Sequence[nn.Module],
    image: torch.Tensor,
    *,
    batch_first: bool,
    grad_ckpt: bool = False,
    zero_modules: Sequence[nn.Module] | None = None,
    control: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run an open_clip VisionTransformer block by block.

    With ``zero_modules`` the projected hidden state after each block is recorded (the
    stream itself is unchanged); with ``control`` the recorded outputs are added to the
    stream after each block, last record first.
    """
    x = tower._embeds(image)
    if not batch_first:
        x = x.transpose(0, 1)
    records: list[torch.Tensor] = []
    n = len(blocks)
    for i, blk in enumerate(blocks):
        x = _run_block(blk, x, grad_ckpt)
        if zero_modules is not None:
            records.append(zero_modules[i](x))
        if control is not None:
            x = x + control[n - 1 - i]
    if not batch_first:
        x = x.transpose(0, 1)
    return _pool_project(tower, x), records


class DaCLIP(nn.Module):
    """Degradation-aware CLIP (frozen ``clip`` + trainable ``visual_control`` and ``logit_scale``)."""

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.clip = clip_model
        # Alias registered as in the official class, so the key set matches the released file.
        self.visual = clip_model.visual
        control = copy.deepcopy(clip_model.visual)
        control.transformer = ControlTransformer(control.transformer)
        self.visual_control = control
        self.logit_scale = nn.Parameter(clip_model.logit_scale.detach().clone())
        self.lock_clip()

    # -- construction helpers -------------------------------------------------------------
    def lock_clip(self) -> None:
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.clip.eval()

    @staticmethod
    def controller_name(clip_visual_name: str) -> str:
        """Controller parameter name for a frozen vision-tower parameter name."""
        if clip_visual_name.startswith("transformer."):
            return "transformer." + clip_visual_name
        return clip_visual_name

    @torch.no_grad()
    def init_controller(self) -> None:
        """Copy the frozen vision tower into the controller BY NAME and zero the zero modules.

        The official code zips parameter lists, which shifts ln_post into zero_modules[0]
        because of the extra parameters; matching names avoids that.
        """
        ctrl = dict(self.visual_control.named_parameters())
        for name, p in self.clip.visual.named_parameters():
            ctrl[self.controller_name(name)].copy_(p)
        ctrl_buffers = dict(self.visual_control.named_buffers())
        for name, b in self.clip.visual.named_buffers():
            key = self.controller_name(name)
            if key in ctrl_buffers:
                ctrl_buffers[key].copy_(b)
        self.visual_control.transformer.reset_zero_modules()
        self.logit_scale.copy_(self.clip.logit_scale)

    def train(self, mode: bool = True):
        super().train(mode)
        self.clip.eval()  # the frozen CLIP never switches to training behaviour
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.clip.set_grad_checkpointing(enable)
        self.visual_control.transformer.transformer.grad_checkpointing = enable

    # -- encoders ---------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        size = self.clip.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.output_dim)

    def controller_forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        ctl = self.visual_control.transformer
        return vision_forward(
            self.visual_control, ctl.resblocks, image, batch_first=ctl.batch_first,
            grad_ckpt=ctl.grad_checkpointing, zero_modules=ctl.zero_modules,
        )

    def encode_image(self, image: torch.Tensor, control: bool = False, normalize: bool = False):
        """Plain CLIP features, or with ``control`` a tuple (content, degradation) features."""
        if not control:
            return self.clip.encode_image(image, normalize=normalize)
        degra, records = self.controller_forward(image)
        tower = self.clip.visual
        content, _ = vision_forward(
            tower, tower.transformer.resblocks, image,
            batch_first=getattr(tower.transformer, "batch_first", True),
            grad_ckpt=tower.transformer.grad_checkpointing, control=records,
        )
        if normalize:
            content = F.normalize(content, dim=-1)
            degra = F.normalize(degra, dim=-1)
        return content, degra

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return self.clip.encode_text(text, normalize=normalize)

    def encode_text_dedup(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """encode_text computing each distinct row once (the ten degradation words, template captions).

        The frozen text tower takes no gradient, so sharing rows changes nothing but the cost.
        """
        uniq, inverse = torch.unique(text, dim=0, return_inverse=True)
        if uniq.shape[0] == text.shape[0]:
            return self.encode_text(text, normalize=normalize)
        return self.encode_text(uniq, normalize=normalize)[inverse]

    def forward(self, image: torch.Tensor | None = None, text: torch.Tensor | None = None) -> dict:
        """The official five outputs; ``text`` is caption tokens ++ degradation tokens."""
        caption, degradation = text.chunk(2, dim=-1) if text is not None else (None, None)
        image_features = image_degra = None
        if image is not None:
            image_features, image_degra = self.encode_image(image, control=True, normalize=True)
        text_features = self.encode_text_dedup(caption, normalize=True) if caption is not None else None
        text_degra = (self.encode_text_dedup(degradation, normalize=True)
                      if degradation is not None else None)
        return {
            "image_features": image_features,
            "text_features": text_features,
            "image_degra_features": image_degra,
            "text_degra_features": text_degra,
            "logit_scale": self.logit_scale.exp(),
        }


# -- construction ---------------------------------------------------------------------------

def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".pt", ".pth", ".bin", ".safetensors"))


def load_clip_weights(clip: nn.Module, path: str | os.PathLike) -> None:
    """Plain CLIP weights (an open_clip checkpoint file) into ``clip``, strictly.

    The file is read by the toolkit's restricted loader (never open_clip's), then the open_clip
    conventions apply: a 'state_dict' wrapper, 'module.' prefixes, resized position embeddings.
    """
    from open_clip import model as oc_model

    from .networks.loading import load_state_dict_strict
    from .safe_load import extract_state_dict, load_checkpoint

    sd = extract_state_dict(load_checkpoint(path, what="CLIP weights"), source=f"CLIP weights {path}")
    if "positional_embedding" in sd and not hasattr(clip, "positional_embedding"):
        sd = oc_model.convert_to_custom_text_state_dict(sd)
    if "logit_scale" in sd and clip.logit_scale.ndim != sd["logit_scale"].ndim:
        sd["logit_scale"] = sd["logit_scale"].reshape(clip.logit_scale.shape)
    oc_model.resize_pos_embed(sd, clip)
    if hasattr(oc_model, "resize_text_pos_embed"):
        oc_model.resize_text_pos_embed(sd, clip)
    load_state_dict_strict(clip, sd, str(path))


def build_clip(model_name: str = "ViT-B-32", pretrained: str | None = None,
               model_cfg: dict | None = None) -> nn.Module:
    """An open_clip CLIP from a built-in name (+ tag or file) or an explicit config dict.

    Weights, from a file or downloaded for a tag, are read by :func:`load_clip_weights`.
    """
    import open_clip

    if pretrained and _looks_like_path(pretrained) and not os.path.isfile(pretrained):
        raise UserError(f"pretrained CLIP weights not found: {pretrained}")
    if model_cfg is not None:
        if pretrained and not os.path.isfile(pretrained):
            raise UserError(
                f"with a custom model config, --pretrained must be a checkpoint file, got {pretrained!r}")
        clip = open_clip.CLIP(**copy.deepcopy(model_cfg))
        if pretrained:
            load_clip_weights(clip, pretrained)
        return clip
    if model_name not in open_clip.list_models():
        raise UserError(f"unknown open_clip model {model_name!r}; e.g. ViT-B-32, ViT-L-14")
    path, tag_cfg = None, {}
    if pretrained and os.path.isfile(pretrained):
        path = pretrained
    elif pretrained:
        from open_clip.pretrained import get_pretrained_cfg

        tag_cfg = get_pretrained_cfg(model_name, pretrained) or {}
        if not tag_cfg:
            raise UserError(f"{pretrained!r} is neither a file nor an open_clip tag of {model_name}; tags: "
                            f"{', '.join(open_clip.list_pretrained_tags_by_model(model_name))}")
        path = _pretrained_file(model_name, pretrained, tag_cfg)
    import logging

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(max(quiet, logging.ERROR))  # "no pretrained weights loaded": they come next
    try:
        clip = open_clip.create_model(model_name, pretrained=None, device="cpu",
                                      force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)))
    finally:
        logging.getLogger().setLevel(quiet)
    if path:
        load_clip_weights(clip, path)
    return clip


def _cached_pretrained(model_name: str, tag: str) -> str | None:
    """The local file of open_clip's pretrained ``tag`` when a download left it in a cache."""
    from open_clip import pretrained as oc

    cfg = oc.get_pretrained_cfg(model_name, tag)
    if not cfg:
        return None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        # 'org/name/' (open_clip's default file names) or 'org/name/file', as open_clip splits it.
        repo, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else [oc.HF_SAFE_WEIGHTS_NAME, oc.HF_WEIGHTS_NAME]
        for name in names:
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    if cfg.get("url"):
        local = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"]))
        if os.path.isfile(local):
            return local
    return None


def _pretrained_file(model_name: str, tag: str, tag_cfg: dict) -> str:
    """The local file of open_clip's pretrained ``tag``: a cached download, else a new download;
    when the hub cannot be reached, one UserError at once (open_clip's hub client would retry
    for a minute and repeat the same failure)."""
    from open_clip.pretrained import download_pretrained

    from builders.hub import hub_unreachable

    cached = _cached_pretrained(model_name, tag)
    if cached:
        return cached
    reason = hub_unreachable()
    if reason:
        raise UserError(f"pretrained CLIP {model_name}/{tag} is not in the local cache and the Hugging Face hub "
                        f"cannot be reached ({reason}); download it on a machine with internet and pass the file "
                        "with --pretrained PATH, or use --pretrained none")
    try:
        return download_pretrained(tag_cfg)
    except Exception as exc:  # noqa: BLE001 - hub/network errors come in many types
        raise UserError(f"cannot download pretrained CLIP {model_name}/{tag}: {exc}. Pass the weights file "
                        "path instead of the tag.") from None


def create_daclip(model_name: str = "ViT-B-32", pretrained: str | None = None, *,
                  device: str | torch.device = "cpu", model_cfg: dict | None = None) -> DaCLIP:
    """Build CLIP, wrap it, copy the controller from the vision tower by name, freeze CLIP."""
    model = DaCLIP(build_clip(model_name, pretrained, model_cfg))
    model.init_controller()
    return model.to(device)


def get_tokenizer(model: DaCLIP | None = None, context_length: int = 77):
    """open_clip's BPE tokenizer (its vocabulary ships in the wheel, so this works offline)."""
    from open_clip.tokenizer import SimpleTokenizer

    if model is not None:
        context_length = int(model.clip.context_length)
    return SimpleTokenizer(context_length=context_length)


# -- preprocessing and classification -------------------------------------------------------

def normalize_openai(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def clip_resized_size(h: int, w: int, size: int = 224) -> tuple[int, int]:
    """(height, width) after torchvision's ``Resize(size)``: short side ``size``, long side
    ``int(size * long / short)`` (truncated)."""
    if w <= h:
        return int(size * h / w), size
    return size, int(size * w / h)


def clip_crop_offsets(h: int, w: int, size: int = 224) -> tuple[int, int]:
    """(top, left) of torchvision's ``CenterCrop(size)``: ``int(round(d / 2))`` (Python rounding)."""
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def _resize_crop_uint8(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    pil = Image.fromarray(image)
    h, w = image.shape[:2]
    nh, nw = clip_resized_size(h, w, size)
    pil = pil.resize((nw, nh), Image.BICUBIC)  # PIL bicubic, antialiased, as torchvision's PIL path
    top, left = clip_crop_offsets(nh, nw, size)
    return np.asarray(pil.crop((left, top, left + size, top + size)))


def clip_preprocess(images: torch.Tensor, image_size: int = 224) -> torch.Tensor:
    """[B,3,H,W] LQ images in 0..1 -> DA-CLIP input, exactly as the official test path.

    The authors' ``data/util.py clip_transform``: ``PIL.Image.fromarray((x * 255).astype(uint8))``
    of the float32 LQ (truncation, not rounding), torchvision ``Resize(224, BICUBIC)`` and
    ``CenterCrop(224)`` on that PIL image, ``ToTensor``, OpenAI mean/std. A batch is the stack
    of its images done one at a time (each through PIL), so batching never changes a context.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected [B,3,H,W] images, got {tuple(images.shape)}")
    # float32 multiply, then truncation toward zero: numpy's astype(uint8) on 0..255 values.
    u8 = (images.detach().float() * 255).clamp_(0, 255).to(torch.uint8)
    u8 = u8.permute(0, 2, 3, 1).cpu().numpy()
    crops = np.stack([_resize_crop_uint8(img, image_size) for img in u8])
    x = torch.from_numpy(crops).to(images.device).permute(0, 3, 1, 2).float().div(255)
    return normalize_openai(x)


@torch.no_grad()
def degradation_text_features(model: DaCLIP, tokenizer=None,
                              words: Sequence[str] = DEGRADATIONS) -> torch.Tensor:
    """L2-normalised text features of the degradation words, [len(words), D]."""
    tokenizer = tokenizer or get_tokenizer(model)
    device = next(model.parameters()).device
    tokens = tokenizer(list(words)).to(device)
    return model.encode_text(tokens, normalize=True).float()


@torch.no_grad()
def classify(model: DaCLIP, images: torch.Tensor, text_features: torch.Tensor | None = None,
             *, control: bool = True, tokenizer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Degradation type of preprocessed images: softmax(100 * feature . word features).

    ``control=True`` uses DA-CLIP's degradation features, ``control=False`` plain CLIP
    image features (zero-shot baseline). Returns (pred_idx [B], probs [B, n_words]).
    """
    if text_features is None:
        text_features = degradation_text_features(model, tokenizer)
    if control:
        _, feats = model.encode_image(images, control=True, normalize=True)
    else:
        feats = model.encode_image(images, control=False, normalize=True)
    probs = (100.0 * feats.float() @ text_features.float().T).softmax(dim=-1)
    return probs.argmax(dim=-1), probs


def load_model_cfg(spec: str | None) -> dict | None:
    """An open_clip model config: a name from daclip/configs ('tiny'), a YAML/JSON file, or None."""
    if not spec:
        return None
    import json
    from pathlib import Path

    import yaml

    path = Path(spec)
    if not path.is_file():
        path = Path(__file__).parent / "configs" / f"{spec}.yaml"
    if not path.is_file():
        raise UserError(f"model config {spec!r} is neither a file nor one of daclip/configs/*.yaml")
    try:
        text = path.read_text(encoding="utf-8")
        cfg = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read model config {path}: {exc}") from None
    if not isinstance(cfg, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg):
        raise UserError(f"model config {path} needs embed_dim, vision_cfg and text_cfg")
    return cfg


TRAIN_CONFIG_NAME = "config.json"  # written by daclip.train_clip beside its checkpoints


def _is_open_clip_name(name: str) -> bool:
    import open_clip

    return name in open_clip.list_models()


def checkpoint_vocabulary(checkpoint: str | os.PathLike | None) -> Vocabulary:
    """The degradation vocabulary a DA-CLIP checkpoint classifies over: the one
    ``daclip.train_clip`` recorded in config.json beside it, else the ten DA-CLIP words (the
    released weights)."""
    import json
    from pathlib import Path

    if checkpoint is None:
        return DACLIP
    side = Path(checkpoint).parent / TRAIN_CONFIG_NAME
    if not side.is_file():
        return DACLIP
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {side} (the training config beside {checkpoint}): {exc}") from None
    if not isinstance(recorded, dict) or "vocabulary" not in recorded:
        return DACLIP
    return Vocabulary.from_json(recorded["vocabulary"], str(side))


def daclip_architecture(checkpoint: str | os.PathLike | None = None, model: str = "",
                        default: str = "ViT-B-32") -> tuple[str, dict | None]:
    """(open_clip model name, custom config or None) of a DA-CLIP checkpoint.

    ``model`` is an open_clip name (ViT-B-32, ViT-L-14), the name of one of the toolkit's
    configs (daclip/configs/*.yaml, e.g. ``tiny``) or a YAML/JSON config file. Left empty, it
    is what ``daclip.train_clip`` recorded in config.json beside the checkpoint (a DA-CLIP
    trained with ``--model-cfg``), else ``default`` (the released weights' model).
    """
    from pathlib import Path

    if model:
        if _is_open_clip_name(model):
            return model, None
        configs = sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.yaml"))
        if Path(model).is_file() or model in configs:
            return "custom", load_model_cfg(model)
        raise UserError(f"unknown DA-CLIP model {model!r}: neither an open_clip model (e.g. ViT-B-32, ViT-L-14), "
                        f"a toolkit config ({', '.join(configs)}) nor a YAML/JSON config file")
    if checkpoint is not None:
        import json

        side = Path(checkpoint).parent / TRAIN_CONFIG_NAME
        if side.is_file():
            try:
                recorded = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot read {side} (the training config beside {checkpoint}): {exc}") from None
            if isinstance(recorded, dict):
                cfg = recorded.get("open_clip_cfg")
                if isinstance(cfg, dict):
                    return "custom", cfg
                spec = recorded.get("model_cfg")
                if isinstance(spec, str) and spec:
                    # A relative file name is taken relative to the run folder when it is there.
                    local = side.parent / spec
                    return "custom", load_model_cfg(str(local) if local.is_file() else spec)
                name = recorded.get("model")
                if isinstance(name, str) and name:
                    return name, None
    return default, None
