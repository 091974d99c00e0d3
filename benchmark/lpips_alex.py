"""LPIPS v0.1 with the AlexNet backbone, built empty and filled from verified state dicts.

Kept apart from :mod:`benchmark.metrics` so that a PSNR/SSIM run never imports torch.
"""

from __future__ import annotations

import torch


class LpipsAlex(torch.nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018), as pyiqa and the lpips package
    compute it; module names follow pyiqa's so its weight files load by key.

    The networks are built empty and filled from state dicts that the caller read (the
    restricted loader): no library loads or unpickles a weights file.
    """

    CHANNELS = (64, 192, 384, 256, 256)
    SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # AlexNet.features up to each ReLU

    def __init__(self):
        super().__init__()
        from torchvision.models import alexnet

        features = alexnet(weights=None).features
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.net = torch.nn.Module()
        for n, (lo, hi) in enumerate(self.SLICES, start=1):
            sl = torch.nn.Sequential()
            for i in range(lo, hi):
                sl.add_module(str(i), features[i])
            setattr(self.net, f"slice{n}", sl)
        for k, c in enumerate(self.CHANNELS):
            # index 0 is the (test-time inert) dropout of the original; the 1x1 conv is "model.1"
            lin = torch.nn.Module()
            lin.model = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Conv2d(c, 1, 1, bias=False))
            setattr(self, f"lin{k}", lin)
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, alexnet_sd: dict, lpips_sd: dict, source: str = "LPIPS weights") -> None:
        """AlexNet ImageNet weights (torchvision keys) and the LPIPS linear layers, strictly."""
        from daclip.networks.loading import load_state_dict_strict

        feats = {k[len("features."):]: v for k, v in alexnet_sd.items() if k.startswith("features.")}
        slice_of = {i: n for n, (lo, hi) in enumerate(self.SLICES, start=1) for i in range(lo, hi)}
        state = {f"net.slice{slice_of[int(k.split('.')[0])]}.{k}": v for k, v in feats.items()
                 if k.split(".")[0].isdigit() and int(k.split(".")[0]) in slice_of}
        # pyiqa's file holds lin<k>.model.1.weight (and, saved from the whole module, lins.<k>.*
        # duplicates and the backbone): the same keys, loaded the way pyiqa does.
        lins = {k: v for k, v in lpips_sd.items() if k.startswith(("lin0.", "lin1.", "lin2.", "lin3.", "lin4."))}
        backbone = {k: v for k, v in lpips_sd.items() if k.startswith("net.slice")}
        state.update(backbone)
        state.update(lins)
        load_state_dict_strict(self, state, source)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Distance per image of [B,3,H,W] images in 0..1 (scaled to -1..1 first)."""
        a, b = (self._scaled(2 * t - 1) for t in (x, ref))
        total = 0
        for k in range(len(self.CHANNELS)):
            sl = getattr(self.net, f"slice{k + 1}")
            a, b = sl(a), sl(b)
            d = (self._unit(a) - self._unit(b)) ** 2
            total = total + getattr(self, f"lin{k}").model(d).mean(dim=(2, 3), keepdim=True)
        return total.flatten()

    def _scaled(self, t: torch.Tensor) -> torch.Tensor:
        return (t - self.shift) / self.scale

    @staticmethod
    def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
