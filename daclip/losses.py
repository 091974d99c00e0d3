"""DA-CLIP training losses: two symmetric InfoNCE terms (content, degradation).

Under torch.distributed every rank gathers the features of all ranks WITH gradient
(:func:`gather_with_grad`) and computes the loss of the whole global batch, so the value
equals the single-process loss; DDP's gradient averaging then yields the single-process
gradient (each rank's loss already sums the contribution of all ranks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _dist_world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums every rank's gradient of the gathered tensor
    and hands each rank its own slice (what torch.distributed.nn.functional.all_gather did;
    that one is deprecated and warns). all_reduce + slice instead of reduce_scatter, which
    the gloo backend lacks. Every rank passes a tensor of the same shape."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of all ranks along dim 0; gradients flow back to every rank."""
    if _dist_world() == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    if _dist_world() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(_dist_world())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def infonce(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; row i of ``image`` pairs with row i of ``text``."""
    logits = logit_scale * image.float() @ text.float().T
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def label_aware_infonce(image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor,
                        logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same label is a positive.

    The ten degradation words repeat many times in a batch; the plain loss treats those
    repeats as negatives. Here the target of each row is uniform over its same-label
    columns.
    """
    logits = logit_scale * image.float() @ text.float().T
    pos = (labels[:, None] == labels[None, :]).float()
    target = pos / pos.sum(dim=1, keepdim=True)
    loss_i = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(target * logits.T.log_softmax(dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i + loss_t)


@dataclass
class LossOutput:
    total: torch.Tensor
    content: torch.Tensor
    degradation: torch.Tensor


class DaClipLoss(nn.Module):
    """content InfoNCE + degradation InfoNCE (or its label-aware variant), unweighted sum."""

    def __init__(self, label_aware: bool = False, content_weight: float = 1.0, distributed: bool = True):
        super().__init__()
        self.label_aware = label_aware
        self.content_weight = content_weight
        # False for code that runs on one rank only (e.g. validation on the main rank).
        self.distributed = distributed

    def forward(self, outputs: dict, labels: torch.Tensor | None = None) -> LossOutput:
        gather = gather_with_grad if self.distributed else (lambda x: x)
        img = gather(outputs["image_features"])
        txt = gather(outputs["text_features"])
        img_d = gather(outputs["image_degra_features"])
        txt_d = gather(outputs["text_degra_features"])
        scale = outputs["logit_scale"].float()
        content = infonce(img, txt, scale)
        if self.label_aware:
            if labels is None:
                raise ValueError("the label-aware degradation loss needs labels")
            labels = gather_no_grad(labels) if self.distributed else labels
            degra = label_aware_infonce(img_d, txt_d, labels, scale)
        else:
            degra = infonce(img_d, txt_d, scale)
        return LossOutput(self.content_weight * content + degra, content.detach(), degra.detach())
