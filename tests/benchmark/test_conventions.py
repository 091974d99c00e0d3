"""Each family's metric convention against the reference library call with the reference
arguments, on real photographs (scikit-image's bundled data), to 1e-6."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark.conventions import convention_names, get_convention
from benchmark.metrics import get_metric
from builders.errors import UserError
from builders.io import centre_crop


def _pairs():
    """(restored-like output, GT): real photographs, cropped to 16 as the 3D/5D sets are, with
    noise, a blur-like shift and a tone change, and one odd-sized full image (CDD-11 style)."""
    rng = np.random.default_rng(7)
    out = []
    for name in ("astronaut", "coffee", "chelsea"):
        gt = centre_crop(getattr(data, name)(), 16)
        noisy = np.clip(gt + rng.normal(0, 9, gt.shape), 0, 255).astype(np.uint8)
        out.append((noisy, gt))
        out.append((np.roll(gt, 2, axis=1), gt))
    gt = data.rocket()[:301, :433]
    out.append(((gt * 0.8 + 20).astype(np.uint8), gt))
    return out


PAIRS = _pairs()


def _f32(a):
    # The PromptIR family and OneRestore pass float32 images in [0, 1] to scikit-image.
    return a.astype(np.float32) / 255.0


def _t(a):
    return torch.from_numpy(_f32(a)).permute(2, 0, 1)[None]


def _ref_psnr(out, gt):
    return peak_signal_noise_ratio(_f32(gt), _f32(out), data_range=1)


def _ref_ssim_uniform(out, gt):
    return structural_similarity(_f32(out), _f32(gt), data_range=1, channel_axis=-1)


def _ref_ssim_gauss(out, gt):
    return structural_similarity(_f32(out), _f32(gt), data_range=1, channel_axis=-1, gaussian_weights=True)


def _ref_instructir_psnr(out, gt):
    """InstructIR's formula in torch, in float64: its float32 result alone is rounded by ~2e-6 dB
    at 20 dB (one float32 step), more than the 1e-6 this test holds the convention to."""
    t = lambda a: torch.from_numpy(a.astype(np.float64) / 255.0)  # noqa: E731
    mse = torch.mean((t(out) - t(gt)) ** 2)
    return float(20 * torch.log10(1.0 / torch.sqrt(mse)))


def _ref_msssim(out, gt):
    from pytorch_msssim import ssim

    return float(ssim(_t(out), _t(gt), data_range=1))


def _ref_basicsr_no_border(out, gt):
    """BasicSR with crop_border 0 equals the Gaussian skimage SSIM with population covariance."""
    return structural_similarity(out.astype(np.float64), gt.astype(np.float64), data_range=255, channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _ref_psnr_255(out, gt):
    return peak_signal_noise_ratio(gt, out, data_range=255)


REFERENCE = {
    "psnr-promptir": _ref_psnr, "ssim-promptir": _ref_ssim_uniform,
    "psnr-moce-ir": _ref_psnr, "ssim-moce-ir": _ref_ssim_gauss,
    "psnr-instructir": _ref_instructir_psnr, "ssim-instructir": _ref_msssim,
    "psnr-onerestore": _ref_psnr, "ssim-onerestore": _ref_ssim_uniform,
    "psnr-maskdcpt": _ref_psnr_255, "ssim-maskdcpt": _ref_basicsr_no_border,
}


@pytest.mark.parametrize("metric", sorted(REFERENCE))
def test_convention_equals_reference_call(metric):
    m = get_metric(metric)
    for out, gt in PAIRS:
        ours, ref = m(out, gt), REFERENCE[metric](out, gt)
        assert abs(ours - ref) < 1e-6, (metric, ours, ref)


def test_unified_is_the_unchanged_basicsr_pair():
    c = get_convention("basicsr")
    assert c.metrics == ["psnr", "ssim"]
    out, gt = PAIRS[0]
    ref = structural_similarity(out[4:-4, 4:-4].astype(np.float64), gt[4:-4, 4:-4].astype(np.float64), data_range=255,
                                channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert abs(get_metric("ssim")(out, gt) - ref) < 1e-9


def test_conventions_differ_where_the_families_differ():
    out, gt = PAIRS[0]
    v = {n: get_metric(n)(out, gt) for n in ("ssim-promptir", "ssim-moce-ir", "ssim-instructir", "ssim")}
    assert len({round(x, 4) for x in v.values()}) == 4  # window, covariance and border all matter


def test_registry_names_and_unknown():
    assert set(convention_names()) == {"promptir", "moce-ir", "instructir", "onerestore", "maskdcpt", "basicsr"}
    with pytest.raises(UserError, match="unknown metric convention 'prompt'; known: promptir"):
        get_convention("prompt")
