"""PSNR/SSIM follow the paper's convention: equal to an independent BasicSR-formula computation."""

import numpy as np
import pytest
from scipy.ndimage import correlate

from benchmark.metrics import get_metric, parse_metrics
from builders.errors import UserError
from builders.synth import synthesize


def _photos():
    import skimage.data

    return {
        "astronaut": skimage.data.astronaut()[100:260, 120:300],
        "coffee": skimage.data.coffee()[50:230, 200:390],
        "chelsea": skimage.data.chelsea()[60:200, 100:290],
    }


def _pairs():
    out = []
    for name, gt in _photos().items():
        gt = np.ascontiguousarray(gt)
        for kind in ("noisy", "jpeg-compressed", "motion-blurry", "hazy"):
            out.append((f"{name}-{kind}", synthesize(kind, gt, 1).lq, gt))
    return out


PAIRS = _pairs()


# --- independent reference: BasicSR's formulas written out with numpy/scipy -------------------------
def ref_psnr(img, gt, border=4, y=False):
    a, b = img.astype(np.float64), gt.astype(np.float64)
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    if y:
        a, b = _ref_y(a), _ref_y(b)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _ref_y(rgb255):
    r, g, b = (rgb255[..., i] / 255.0 for i in range(3))
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _ref_ssim_channel(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)
    # like BasicSR: filter the whole image, then keep the valid region
    f = lambda x: correlate(x, win, mode="mirror")[5:-5, 5:-5]  # noqa: E731
    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return m.mean()


def ref_ssim(img, gt, border=4, y=False):
    a, b = img.astype(np.float64), gt.astype(np.float64)
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    if y:
        return _ref_ssim_channel(_ref_y(a), _ref_y(b))
    return np.mean([_ref_ssim_channel(a[..., c], b[..., c]) for c in range(3)])


@pytest.mark.parametrize("label,lq,gt", PAIRS, ids=[p[0] for p in PAIRS])
def test_psnr_ssim_equal_basicsr_on_real_photos(label, lq, gt):
    assert get_metric("psnr")(lq, gt) == pytest.approx(ref_psnr(lq, gt), abs=1e-6)
    assert get_metric("ssim")(lq, gt) == pytest.approx(ref_ssim(lq, gt), abs=1e-6)
    # Y channel: pyiqa builds its YCbCr matrix in float32, so agreement is ~1e-5 dB, not 1e-6
    assert get_metric("psnr_y")(lq, gt) == pytest.approx(ref_psnr(lq, gt, y=True), abs=1e-4)
    assert get_metric("ssim_y")(lq, gt) == pytest.approx(ref_ssim(lq, gt, y=True), abs=1e-6)


def test_identical_images():
    gt = np.ascontiguousarray(_photos()["coffee"])
    assert get_metric("psnr")(gt, gt) == float("inf")
    assert get_metric("ssim")(gt, gt) == pytest.approx(1.0, abs=1e-12)


def test_border_is_cropped():
    gt = np.full((32, 32, 3), 100, np.uint8)
    out = gt.copy()
    out[:4] = 0  # damage only the 4-pixel border
    assert get_metric("psnr")(out, gt) == float("inf")
    out[4, 4] = 90  # one interior pixel, one channel... all three channels
    mse = 3 * 10**2 / (24 * 24 * 3)
    assert get_metric("psnr")(out, gt) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)


def test_pyiqa_ssimc_differs_where_structure_is_anticorrelated():
    """Why ssim is not pyiqa's ssimc: ssimc clamps negative contrast-structure terms."""
    import pyiqa
    import torch

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    out = (255 - gt).astype(np.uint8)  # perfectly anti-correlated structure
    ours = get_metric("ssim")(out, gt)
    assert ours == pytest.approx(ref_ssim(out, gt), abs=1e-9) and ours < 0
    t = lambda x: torch.tensor(x, dtype=torch.float64).permute(2, 0, 1)[None] / 255  # noqa: E731
    ssimc = pyiqa.create_metric("ssimc", crop_border=4, device="cpu")(t(out), t(gt)).item()
    assert ssimc >= 0 and abs(ssimc - ours) > 0.01


def test_size_mismatch_and_unknown_metric():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="differ in size"):
        get_metric("psnr")(a, np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(UserError, match="unknown metric 'psnrr'"):
        parse_metrics("psnr,psnrr")
    assert parse_metrics(None) == ["psnr", "ssim", "lpips", "fid"]
