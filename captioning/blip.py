"""BLIP captioner: model loading (hub id, HF cache or local folder) and batched greedy generation.

The paper captions every GT image with BLIP large, greedy, at most 32 new tokens, one image
at a time. Batching gives the same greedy tokens (every sequence starts from the same [DEC]
prompt, so there is no padding) at a fraction of the cost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from builders.errors import UserError
from daclip.precision import choices as precision_choices, parse_precision, precision_dtype, resolve_precision
from builders.hub import HubUnreachable, from_pretrained as _from_pretrained
from daclip.device import check_device

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"
MAX_NEW_TOKENS = 32

DTYPES = precision_choices()  # daclip.precision's names; none (fp32) casts nothing


@dataclass(frozen=True)
class CaptionerConfig:
    model: str = DEFAULT_MODEL
    device: str | None = None  # None: this rank's GPU when there is one, else CPU
    dtype: str = "auto"  # auto: fp16 on GPU (as the paper), fp32 on CPU
    max_new_tokens: int = MAX_NEW_TOKENS


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: fp16 on a GPU (as the paper), fp32 on the CPU."""
    name = parse_precision(name, "--dtype")
    return precision_dtype(resolve_precision(name, device, gpu="fp16")) or torch.float32


def _how_to_get(model: str) -> str:
    return (
        f"BLIP weights {model!r} are not in a local folder or the Hugging Face cache and cannot be "
        f"downloaded here. On a machine with internet run `huggingface-cli download {model} "
        f"--local-dir blip-large` (or `hf download`), copy the folder here and pass --model "
        f"blip-large, or copy the HF cache (~/.cache/huggingface/hub) and keep --model {model}"
    )


def load_blip(model: str):
    """(model, processor) for a hub id, a cached hub id or a folder written by save_pretrained."""
    from transformers import AutoConfig, AutoProcessor, BlipForConditionalGeneration

    folder = Path(model).expanduser()
    is_folder = folder.is_dir()
    ref = str(folder) if is_folder else model
    if not is_folder and (model.startswith((".", "~")) or os.path.isabs(model)):
        raise UserError(f"--model {model}: no such folder")
    try:
        config = _from_pretrained(AutoConfig, ref)
        if getattr(config, "model_type", None) != "blip":
            raise UserError(f"--model {model}: a {getattr(config, 'model_type', '?')!r} model, "
                            "not a BLIP captioning model (model_type 'blip')")
        processor = _from_pretrained(AutoProcessor, ref)
        net = _from_pretrained(BlipForConditionalGeneration, ref)
    except UserError:
        raise
    except HubUnreachable as exc:
        raise UserError(f"cannot reach the Hugging Face hub ({exc}); " + _how_to_get(model)) from None
    except (OSError, ValueError, KeyError) as exc:
        if is_folder:
            raise UserError(f"--model {model}: cannot load a BLIP captioning model from this folder "
                            f"(needs config.json, weights and processor files as written by "
                            f"save_pretrained): {str(exc).splitlines()[0]}") from None
        raise UserError(_how_to_get(model)) from None
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise UserError(f"--model {model}: the processor lacks an image processor or tokenizer")
    return net, processor


class Captioner:
    """A loaded BLIP model on one device; images are preprocessed by ``image_processor``."""

    def __init__(self, cfg: CaptionerConfig, device: torch.device | None = None, loaded=None):
        """``loaded``: an already built (model, processor) pair instead of loading ``cfg.model``."""
        from daclip.dist import default_device

        self.cfg = cfg
        try:
            self.device = torch.device(check_device(str(device if device is not None else default_device(cfg.device))))
        except RuntimeError as exc:  # torch.device("nonsense")
            raise UserError(f"--device {cfg.device}: {exc}") from None
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        net, processor = loaded if loaded is not None else load_blip(cfg.model)
        self.model = net.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.image_processor = processor.image_processor
        self.model_id = cfg.model

    def preprocess(self, images) -> torch.Tensor:
        """Pixel values (float32, N x 3 x H x W) for a list of PIL images or HxWx3 arrays."""
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]

    @torch.inference_mode()
    def generate(self, pixel_values: torch.Tensor) -> list[str]:
        """Raw decoded captions, greedy, at most ``max_new_tokens`` new tokens."""
        pv = pixel_values.to(self.device, non_blocking=True).to(self.dtype)
        ids = self.model.generate(pixel_values=pv, max_new_tokens=self.cfg.max_new_tokens,
                                  do_sample=False, num_beams=1)
        return self.processor.batch_decode(ids, skip_special_tokens=True)
