"""Each synthetic degradation is deterministic under a seed and does what it claims."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import convolve

from builders.synth import seed_for, synth_names, synthesize
from builders.tasks import DEGRADATIONS


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[40:168, 180:308])  # 128x128 face crop


def test_every_type_has_a_generator():
    assert sorted(synth_names()) == sorted(DEGRADATIONS)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_deterministic_and_seed_dependent(photo, name):
    a, b = synthesize(name, photo, 7), synthesize(name, photo, 7)
    assert a.lq.dtype == np.uint8 and a.lq.shape == photo.shape
    assert a.lq.tobytes() == b.lq.tobytes() and a.params == b.params
    assert a.params["generator"] == name and a.params["seed"] == 7
    if name != "jpeg-compressed":  # JPEG has no randomness
        assert synthesize(name, photo, 8).lq.tobytes() != a.lq.tobytes()


def test_seed_for_is_stable():
    # Fixed value: a change would silently change every built dataset.
    assert seed_for(0, "degrade", "val", "noisy", "x.png") == seed_for(0, "degrade", "val", "noisy", "x.png")
    assert seed_for(1, "a") != seed_for(1, "b")
    assert 0 <= seed_for("anything") < 2**63


def test_noisy_is_sigma_50_gaussian(photo):
    grey = np.full((256, 256, 3), 128, np.uint8)  # mid-grey: clipping is rare at sigma 50
    out = synthesize("noisy", grey, 3)
    assert out.params["sigma"] == 50
    assert abs(out.aux["noise"].std() - 50) < 0.5  # residual before clipping
    residual = out.lq.astype(float) - 128
    assert abs(residual.std() - 50) < 1.5 and abs(residual.mean()) < 0.5
    # per channel, independent: channel residuals are uncorrelated
    c = np.corrcoef(residual.reshape(-1, 3).T)
    assert np.all(np.abs(c[np.triu_indices(3, 1)]) < 0.05)
    # on a real photo the LQ is the clipped, rounded sum
    out = synthesize("noisy", photo, 3)
    expected = np.clip(np.round(photo + out.aux["noise"]), 0, 255)
    assert np.array_equal(out.lq, expected.astype(np.uint8))


def _libjpeg_tables(quality):
    """The IJG standard tables (Annex K) scaled as libjpeg's jpeg_quality_scaling does."""
    luma = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
            14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
            49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
    chroma = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
              47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [[min(max((v * scale + 50) // 100, 1), 255) for v in t] for t in (luma, chroma)]


def _natural_order(zigzag_table):
    # Pillow reports tables in zig-zag order; the standard tables above are in natural order.
    zz = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
          21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
          60, 61, 54, 47, 55, 62, 63]
    out = [0] * 64
    for i, pos in enumerate(zz):
        out[pos] = zigzag_table[i]
    return out


def test_jpeg_uses_quality_10_tables(photo):
    out = synthesize("jpeg-compressed", photo, 0)
    assert out.params["quality"] == 10
    with Image.open(io.BytesIO(out.aux["jpeg"])) as im:
        assert im.format == "JPEG"
        tables = im.quantization
        decoded = np.asarray(im.convert("RGB"))
    expected = _libjpeg_tables(10)
    got = [list(tables[0]), list(tables[1])]
    assert got == expected or [_natural_order(t) for t in got] == expected
    assert np.array_equal(decoded, out.lq)
    assert expected[0][0] == 80  # 16 * 500 / 100: quality 10 is coarse


def test_uncompleted_holes_white_exactly_where_mask_is_zero(photo):
    out = synthesize("uncompleted", photo, 5)
    mask = out.aux["mask"]
    holes = mask == 0
    assert set(np.unique(mask)) <= {0, 255}
    assert 0.01 < holes.mean() < 0.6
    assert np.all(out.lq[holes] == 255)
    assert np.array_equal(out.lq[~holes], photo[~holes])
    assert out.params["hole_fraction"] == pytest.approx(holes.mean(), abs=1e-6)


def test_motion_blur_is_convolution_with_recorded_kernel(photo):
    out = synthesize("motion-blurry", photo, 11)
    k = out.aux["kernel"]
    assert k.shape[0] == k.shape[1] == out.params["kernel_size"] and k.shape[0] % 2 == 1
    assert k.sum() == pytest.approx(1.0) and (k >= 0).all()
    assert (k > 0).sum() > 3  # a trajectory, not a point
    ref = np.stack([convolve(photo[..., c] / 255.0, k, mode="reflect") for c in range(3)], -1)
    assert np.abs(out.lq / 255.0 - ref).max() <= 0.5 / 255 + 1e-9
    # blur removes high frequencies: less gradient energy
    g = lambda x: np.abs(np.diff(x.astype(float), axis=1)).mean()  # noqa: E731
    assert g(out.lq) < g(photo)


def test_hazy_pulls_contrast_toward_airlight(photo):
    out = synthesize("hazy", photo, 2)
    a = np.array(out.params["airlight"])
    t = out.aux["transmission"]
    assert (t > 0).all() and (t <= 1).all()
    j, i = photo / 255.0, out.lq / 255.0
    # I - A = t (J - A): every pixel moves toward A
    assert np.all(np.abs(i - a) <= np.abs(j - a) + 0.5 / 255 + 1e-9)
    assert np.allclose(i, j * t[..., None] + a * (1 - t[..., None]), atol=0.5 / 255 + 1e-9)
    assert i.std() < j.std()


def test_low_light_is_darker_and_noisier(photo):
    out = synthesize("low-light", photo, 4)
    assert out.lq.mean() < 0.35 * photo.mean()
    p = out.params
    assert 0 < p["exposure"] < 1 and p["gamma"] > 1
    dark = out.aux["clean_dark"]
    assert np.allclose(dark, p["exposure"] * (photo / 255.0) ** p["gamma"])
    resid = out.lq / 255.0 - dark
    # signal-dependent noise: brighter dark pixels are noisier
    lo, hi = dark < np.quantile(dark, 0.2), dark > np.quantile(dark, 0.8)
    assert resid[hi].std() > resid[lo].std()


def _streak_angle_deg(layer, radius):
    """Principal axis of the layer's autocorrelation peak, degrees from vertical (x right, y down)."""
    f = np.fft.fft2(layer - layer.mean())
    ac = np.fft.fftshift(np.real(np.fft.ifft2(np.abs(f) ** 2)))
    cy, cx = np.array(ac.shape) // 2
    win = ac[cy - radius:cy + radius + 1, cx - radius:cx + radius + 1]
    w = np.clip(win - 0.3 * win.max(), 0, None)
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    cov = np.cov(np.stack([xs.ravel(), ys.ravel()]), aweights=w.ravel())
    vals, vecs = np.linalg.eigh(cov)
    dx, dy = vecs[:, -1]
    ang = np.rad2deg(np.arctan2(dx, dy))
    return (ang + 90) % 180 - 90  # a line has no head: fold into [-90, 90)


def test_rainy_streaks_brighten_along_recorded_angle(photo):
    out = synthesize("rainy", photo, 9)
    assert np.all(out.lq.astype(int) >= photo.astype(int) - 0)  # screen blend only brightens
    est = _streak_angle_deg(out.aux["streaks"], out.params["length"])
    assert abs(est - out.params["angle_deg"]) < 5


def test_raindrop_changes_only_inside_drops(photo):
    out = synthesize("raindrop", photo, 12)
    alpha = out.aux["alpha"]
    assert len(out.params["drops"]) >= 5
    assert np.array_equal(out.lq[alpha == 0], photo[alpha == 0])
    inside = alpha > 0.9
    assert np.abs(out.lq[inside].astype(int) - photo[inside]).mean() > 5


def test_snowy_has_flakes_at_several_sizes_and_only_brightens(photo):
    out = synthesize("snowy", photo, 13)
    radii = [layer["radius"] for layer in out.params["layers"]]
    assert len(set(radii)) >= 3
    assert np.all(out.lq.astype(int) >= photo.astype(int))
    assert (out.aux["alpha"] > 0.5).mean() > 0.005


def test_shadowed_darkens_masked_region_with_colour_shift(photo):
    out = synthesize("shadowed", photo, 14)
    mask, factor = out.aux["mask"], np.array(out.params["factor"])
    assert np.array_equal(out.lq[mask == 0], photo[mask == 0])
    full = mask > 0.999
    assert full.mean() > 0.05
    ratio = out.lq[full].astype(float).sum(0) / photo[full].astype(float).sum(0)
    assert np.allclose(ratio, factor, atol=0.02)
    assert factor[2] > factor[0]  # bluish: red darkened most
