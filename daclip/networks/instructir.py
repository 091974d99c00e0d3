"""InstructIR (Conde et al., ECCV 2024) with the parameter names of mv-lab/InstructIR.

Instruction-driven, not blind: an instruction string goes through the sentence encoder
``TaylorAI/bge-micro-v2`` (attention-mask mean pooling, L2-normalised, 384-d), then the released
language head (``fc1`` + L2 normalisation, 256-d; ``fc2``'s 7-way task prediction is not used
for restoration), then conditions the image network: ``net(x, txtembd)``.

The released 7D model is two plain state dicts: ``im_instructir-7d.pt`` (network
``instructir``, NAFNet width 32, enc [2,2,4,8], middle 4, dec [2,2,2,2], text dim 256, from
``configs/eval5d.yml``; ``create_model``'s own defaults, middle 12 and text dim 768, are not the
release) and ``lm_instructir-7d.pt`` (network ``instructir-lm``, ``LMHead(384, 256, 7)``).
The image network zero-pads to a multiple of 16 and crops back, as upstream: no outer padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading import resolve_preset
from .nafnet import NAFBlock
from .registry import register_network

TEXT_ENCODER = "TaylorAI/bge-micro-v2"


class ICB(nn.Module):
    """Instruction condition block: scale/shift, gate channels by the text, NAFBlock, residual."""

    def __init__(self, feature_dim: int, text_dim: int):
        super().__init__()
        self.fc = nn.Linear(text_dim, feature_dim)
        self.block = NAFBlock(feature_dim)
        self.beta = nn.Parameter(torch.zeros(1, feature_dim, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, feature_dim, 1, 1))

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc(text))[:, :, None, None]
        return self.block((x * self.gamma + self.beta) * gate) + x


@dataclass(frozen=True)
class InstructIRConfig:
    img_channel: int = 3
    width: int = 32
    middle_blk_num: int = 4
    enc_blk_nums: tuple[int, ...] = (2, 2, 4, 8)
    dec_blk_nums: tuple[int, ...] = (2, 2, 2, 2)
    txtdim: int = 256


INSTRUCTIR_CONFIGS: dict[str, InstructIRConfig] = {
    "default": InstructIRConfig(),
    "tiny": InstructIRConfig(width=8, middle_blk_num=1, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1), txtdim=256),
}


class InstructIR(nn.Module):
    """NAFNet with an ICB after every encoder and decoder level; ``forward(inp, txtembd)``."""

    def __init__(self, img_channel=3, width=32, middle_blk_num=4, enc_blk_nums=(2, 2, 4, 8),
                 dec_blk_nums=(2, 2, 2, 2), txtdim=256):
        super().__init__()
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.decoders = nn.ModuleList(), nn.ModuleList()
        self.ups, self.downs = nn.ModuleList(), nn.ModuleList()
        self.enc_cond, self.dec_cond = nn.ModuleList(), nn.ModuleList()
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.enc_cond.append(ICB(chan, txtdim))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.dec_cond.append(ICB(chan, txtdim))
        self.padder_size = 2 ** len(self.encoders)

    def forward(self, inp: torch.Tensor, txtembd: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        m = self.padder_size
        inp = F.pad(inp, (0, (m - w % m) % m, 0, (m - h % m) % m))  # zeros, as upstream's check_image_size
        x = self.intro(inp)
        skips = []
        for enc, cond, down in zip(self.encoders, self.enc_cond, self.downs):
            x = cond(enc(x), txtembd)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for dec, up, skip, cond in zip(self.decoders, self.ups, reversed(skips), self.dec_cond):
            x = cond(dec(up(x) + skip), txtembd)
        return (self.ending(x) + inp)[..., :h, :w]


class LMHead(nn.Module):
    """The released language head: ``forward(x) -> (embedding, task logits)``."""

    def __init__(self, embedding_dim: int = 384, hidden_dim: int = 256, num_classes: int = 7):
        super().__init__()
        self.fc1 = nn.Linear(embedding_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embd = F.normalize(self.fc1(x), p=2, dim=1)
        return embd, self.fc2(embd)


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding: the mean of the token embeddings the attention mask keeps."""
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    return (token_embeddings * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class InstructionEncoder:
    """Instruction strings -> 384-d sentence embeddings (bge-micro-v2, mean-pooled, L2-normalised).

    Loaded through transformers, cache first; offline (HF_HUB_OFFLINE) only the cache is read,
    and an unreachable hub fails in a second or two with one line.
    """

    def __init__(self, model: str = TEXT_ENCODER, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        from builders.hub import from_pretrained

        self.model_name = model
        self.tokenizer = from_pretrained(AutoTokenizer, model)
        self.model = from_pretrained(AutoModel, model).to(device).eval()
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        inputs = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        out = self.model(**inputs)
        return F.normalize(mean_pool(out[0], inputs["attention_mask"]), p=2, dim=1)


@register_network("instructir")
def build_instructir(preset: str = "default", **overrides) -> InstructIR:
    """InstructIR image network from a preset (default = the released 7D model, tiny) plus overrides."""
    cfg = resolve_preset(INSTRUCTIR_CONFIGS, preset, "instructir", overrides)
    return InstructIR(**asdict(cfg))


@register_network("instructir-lm")
def build_instructir_lm(preset: str = "default", embedding_dim: int = 384, hidden_dim: int = 256,
                        num_classes: int = 7) -> LMHead:
    """InstructIR's language head (the released ``LMHead(384, 256, 7)``; one preset)."""
    if preset != "default":
        from builders.errors import UserError

        raise UserError(f"unknown instructir-lm preset {preset!r}; known: default")
    return LMHead(embedding_dim, hidden_dim, num_classes)
