"""Issue 11 item 3: DA-CLIP conditioning equals the official test path.

The reference is computed independently, the way the authors' ``data/util.py clip_transform``
does it: ``PIL.Image.fromarray((x * 255).astype(np.uint8))`` of the float32 LQ, then
torchvision's ``Resize(224, BICUBIC)``, ``CenterCrop(224)``, ``ToTensor`` and ``Normalize``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from builders.errors import UserError
from daclip.model import OPENAI_MEAN, OPENAI_STD, clip_crop_offsets, clip_preprocess, clip_resized_size

REPO = Path(__file__).resolve().parents[2]
TINY_DACLIP = yaml.safe_load((REPO / "daclip" / "configs" / "tiny.yaml").read_text())
# odd sizes, both orientations, square, already-224 short side, upscaling, 1-pixel crop remainders
SIZES = [(237, 391), (391, 237), (225, 225), (224, 1000), (97, 131), (300, 301), (333, 500), (225, 226)]

pytestmark = pytest.mark.usefixtures("one_thread")


def official(x_hwc_float32: np.ndarray, size: int = 224) -> torch.Tensor:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    pil = Image.fromarray((x_hwc_float32 * 255).astype(np.uint8))
    return Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size), ToTensor(),
                    Normalize(OPENAI_MEAN, OPENAI_STD)])(pil)


def lq_float(h: int, w: int, seed: int) -> np.ndarray:
    """An LQ as the official loader holds it: cv2 uint8 -> float32 / 255."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8).astype(np.float32) / 255.0


def to_batch(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("h,w", SIZES)
def test_preprocess_equals_the_official_transform(h, w):
    x = lq_float(h, w, seed=h * w)
    got = clip_preprocess(to_batch(x), 224)[0]
    assert got.shape == (3, 224, 224)
    assert (got - official(x)).abs().max().item() == 0.0


def test_sizes_and_offsets_follow_torchvision():
    # long side int(224 * long / short) (truncated), offset int(round(d / 2)) (Python rounding)
    assert clip_resized_size(237, 391) == (224, 369)  # 224 * 391 / 237 = 369.55
    assert clip_resized_size(391, 237) == (369, 224)
    assert clip_resized_size(97, 131) == (224, 302)  # 302.5 -> 302
    assert clip_crop_offsets(224, 369) == (0, 72)  # 72.5 -> 72 (round half to even)
    assert clip_crop_offsets(224, 227) == (0, 2)  # 1.5 -> 2
    assert clip_crop_offsets(227, 224) == (2, 0)


def test_truncation_of_floats_off_the_uint8_grid():
    """Floats not of the form k/255 (a resized or synthetic LQ): truncated as astype(uint8)."""
    x = np.random.default_rng(1).random((230, 250, 3), dtype=np.float32)
    got = clip_preprocess(to_batch(x), 224)[0]
    assert (got - official(x)).abs().max().item() == 0.0
    rounded = Image.fromarray(np.round(x * 255).astype(np.uint8))
    ref_round = official(np.asarray(rounded, np.float32) / 255.0)
    assert (got - ref_round).abs().max().item() > 0.01  # rounding instead would differ
    # every uint8 value survives the float32 round trip, so for decoded images truncation is exact
    k = np.arange(256, dtype=np.uint8)
    assert np.array_equal(((k.astype(np.float32) / 255.0) * 255).astype(np.uint8), k)


def test_a_batch_is_its_images_one_at_a_time():
    xs = [lq_float(237, 391, seed=s) for s in range(3)]
    batch = clip_preprocess(to_batch(*xs), 224)
    for i, x in enumerate(xs):
        assert torch.equal(batch[i], clip_preprocess(to_batch(x), 224)[0])
        assert torch.equal(batch[i], official(x))


def test_conditioner_batch_equals_single_images():
    from daclip.inference import DaclipConditioner
    from daclip.model import create_daclip

    torch.manual_seed(0)
    cond = DaclipConditioner(create_daclip(model_cfg=TINY_DACLIP))
    assert cond.amp == "none"
    xs = to_batch(*[lq_float(70, 90, seed=s) for s in range(4)])
    content, degra = cond(xs)
    assert content.shape == degra.shape == (4, 32)
    for i in range(4):
        c1, d1 = cond(xs[i:i + 1])
        torch.testing.assert_close(content[i:i + 1], c1, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(degra[i:i + 1], d1, rtol=1e-5, atol=1e-6)
    # the encoder saw exactly the official input
    ref = torch.stack([official(np.ascontiguousarray(xs[i].permute(1, 2, 0).numpy()), 64) for i in range(4)])
    with torch.no_grad():
        c_ref, d_ref = cond.model.encode_image(ref, control=True)
    torch.testing.assert_close(content, c_ref, rtol=0, atol=0)
    torch.testing.assert_close(degra, d_ref, rtol=0, atol=0)


def test_daclip_amp_is_an_option_recorded_with_the_results(tmp_path, monkeypatch):
    from benchmark.methods import create_method
    from daclip.checkpoint import save_daclip
    from daclip.inference import resolve_daclip_amp
    from daclip.model import create_daclip
    from daclip.networks import build_network

    assert resolve_daclip_amp("auto", "cuda") == "fp16"  # the official encoder's autocast
    assert resolve_daclip_amp("auto", "cpu") == "none"
    assert resolve_daclip_amp("bf16", "cpu") == "bf16"
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    torch.manual_seed(0)
    save_daclip(create_daclip(model_cfg=TINY_DACLIP), tmp_path / "dc.pt")
    torch.save(build_network("nafnet-daclip", preset="tiny").state_dict(), tmp_path / "nd.pth")
    Path(str(tmp_path / "nd.pth") + ".json").write_text(
        json.dumps({"network": "nafnet-daclip", "config": {"preset": "tiny"}, "daclip_cfg": TINY_DACLIP}))
    weights = f"{tmp_path / 'nd.pth'},{tmp_path / 'dc.pt'}"
    auto = create_method("nafnet-daclip", weights=weights)
    auto.prepare("cpu")
    bf16 = create_method("nafnet-daclip", weights=weights, daclip_amp="bf16")
    bf16.prepare("cpu")
    assert auto.settings == {"daclip_amp": "none"} and bf16.settings == {"daclip_amp": "bf16"}
    assert auto.weights_id != bf16.weights_id
    x = to_batch(lq_float(64, 64, seed=3))
    a, b = auto.conditioner(x)[0], bf16.conditioner(x)[0]
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.1, rtol=0.05)
    with pytest.raises(UserError, match="daclip_amp='fp8'"):
        create_method("nafnet-daclip", weights=weights, daclip_amp="fp8")
