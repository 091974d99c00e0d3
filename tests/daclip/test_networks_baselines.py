"""Baseline restoration networks (NAFNet, NAFNet + DA-CLIP, PromptIR, Restormer, AirNet) and the
checkpoint loader.

Full-size models are only built on the meta device (keys, shapes, parameter counts); forward
passes use the tiny presets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from builders.errors import UserError
from daclip.networks import build_network, load_network, network_names
from daclip.networks.loading import load_weights, pad_multiple, strip_prefixes
from daclip.networks.nafnet_daclip import init_from_nafnet

FIXTURES = Path(__file__).parents[1] / "fixtures"
BASELINES = ["nafnet", "nafnet-daclip", "promptir", "restormer", "airnet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def meta_model(name: str, preset: str):
    with torch.device("meta"):
        return build_network(name, preset=preset)


def tiny(name: str, seed: int = 0, **cfg):
    torch.manual_seed(seed)
    return build_network(name, preset="tiny", **cfg).eval()


def run(model, x, name=None):
    with torch.no_grad():
        return model(x)


def randomise(model, seed: int = 1):
    """Replace every parameter by noise: zero-initialised branches would hide wiring bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


# ---------------------------------------------------------------- structure of the released models


@pytest.mark.parametrize(
    "name,preset,millions",
    [
        ("nafnet", "sidd-w32", 29.2),  # baselines-and-metrics.md
        ("nafnet", "gopro-w32", 17.1),
        ("restormer", "default", 26.13),
        ("promptir", "default", 35.59),
        ("airnet", "default", 8.93),
    ],
)
def test_parameter_counts_match_published(name, preset, millions):
    n = sum(p.numel() for p in meta_model(name, preset).parameters())
    decimals = len(str(millions).split(".")[1])
    assert round(n / 1e6, decimals) == millions


@pytest.mark.parametrize("name", BASELINES)
def test_full_size_keys_and_shapes_equal_fixture(name):
    fixture = json.loads((FIXTURES / f"keys_{name}.json").read_text())
    assert fixture["network"] == name
    for preset, entry in fixture["presets"].items():
        model = meta_model(name, preset)
        got = {k: list(v.shape) for k, v in model.state_dict().items()}
        want = entry["keys"]
        assert sorted(set(want) - set(got)) == []
        assert sorted(set(got) - set(want)) == []
        assert {k: got[k] for k in want if got[k] != want[k]} == {}
        assert sum(p.numel() for p in model.parameters()) == entry["num_params"]


# Key -> shape pairs worked out by hand from the upstream architecture files (independent of
# the fixtures, which the module itself generates).
UPSTREAM_SPOT_CHECKS = {
    ("nafnet", "sidd-w32"): {
        "intro.weight": [32, 3, 3, 3],
        "downs.0.weight": [64, 32, 2, 2],
        "encoders.3.7.conv2.weight": [512, 1, 3, 3],  # level 3: 256 ch, dw expand 2
        "middle_blks.11.sca.1.weight": [512, 512, 1, 1],  # 512 ch, dw 1024, gated to 512
        "middle_blks.0.conv4.weight": [1024, 512, 1, 1],
        "ups.0.0.weight": [1024, 512, 1, 1],
        "decoders.3.1.beta": [1, 32, 1, 1],
        "decoders.0.1.norm2.weight": [256],
        "ending.weight": [3, 32, 3, 3],
    },
    ("nafnet", "gopro-w64"): {"encoders.3.27.conv5.weight": [512, 512, 1, 1], "middle_blks.0.gamma": [1, 1024, 1, 1]},
    ("restormer", "default"): {
        "patch_embed.proj.weight": [48, 3, 3, 3],
        "encoder_level1.0.norm1.body.bias": [48],
        "encoder_level1.0.ffn.project_in.weight": [254, 48, 1, 1],  # int(48 * 2.66) * 2
        "latent.7.attn.temperature": [8, 1, 1],
        "latent.7.attn.qkv_dwconv.weight": [1152, 1, 3, 3],
        "down1_2.body.0.weight": [24, 48, 3, 3],
        "up2_1.body.0.weight": [192, 96, 3, 3],
        "reduce_chan_level3.weight": [192, 384, 1, 1],
        "refinement.3.ffn.project_out.weight": [96, 255, 1, 1],  # int(96 * 2.66)
        "output.weight": [3, 96, 3, 3],
    },
    ("promptir", "default"): {
        "prompt1.prompt_param": [1, 5, 64, 64, 64],
        "prompt3.prompt_param": [1, 5, 320, 16, 16],
        "prompt3.linear_layer.weight": [5, 384],
        "chnl_reduce3.weight": [256, 320, 1, 1],
        "reduce_noise_channel_3.weight": [192, 448, 1, 1],
        "noise_level3.attn.qkv.weight": [2112, 704, 1, 1],
        "noise_level3.attn.temperature": [4, 1, 1],
        "reduce_noise_level3.weight": [192, 704, 1, 1],
        "up4_3.body.0.weight": [384, 192, 3, 3],
        "reduce_chan_level3.weight": [192, 288, 1, 1],
        "noise_level2.norm1.body.weight": [320],
        "reduce_noise_level2.weight": [192, 320, 1, 1],
        "noise_level1.ffn.project_out.weight": [160, 425, 1, 1],  # int(160 * 2.66)
        "reduce_noise_level1.weight": [96, 160, 1, 1],
    },
    ("airnet", "default"): {
        "R.head.0.weight": [64, 3, 3, 3],
        "R.body.0.body.0.dgm1.dcn.weight": [64, 64, 3, 3],
        "R.body.0.body.0.dgm1.dcn.conv_offset_mask.weight": [27, 128, 3, 3],
        "R.body.4.body.4.dgm2.sft.conv_beta.2.weight": [64, 64, 1, 1],
        "R.body.0.body.5.weight": [64, 64, 3, 3],
        "R.body.5.bias": [64],
        "R.tail.0.weight": [3, 64, 3, 3],
        "E.E.encoder_q.E_pre.backbone.1.running_var": [64],
        "E.E.encoder_q.E.1.shortcut.0.weight": [256, 128, 1, 1],
        "E.E.encoder_k.mlp.2.weight": [256, 256],
        "E.E.queue": [256, 1280],
        "E.E.queue_ptr": [1],
    },
}


@pytest.mark.parametrize("name,preset", list(UPSTREAM_SPOT_CHECKS))
def test_keys_match_upstream_spot_checks(name, preset):
    sd = meta_model(name, preset).state_dict()
    assert {k: list(sd[k].shape) if k in sd else None for k in UPSTREAM_SPOT_CHECKS[name, preset]} == \
        UPSTREAM_SPOT_CHECKS[name, preset]
    # DCN in AirNet has no bias; NAFNet's up-projection has none either.
    if name == "airnet":
        assert "R.body.0.body.0.dgm1.dcn.bias" not in sd
    if name == "nafnet":
        assert "ups.0.0.bias" not in sd


def test_registry_lists_baselines_and_rejects_bad_config():
    assert set(BASELINES) <= set(network_names())
    with pytest.raises(UserError, match="unknown nafnet preset 'w33'.*sidd-w32"):
        build_network("nafnet", preset="w33")
    with pytest.raises(UserError, match="unknown restormer option.*depth"):
        build_network("restormer", preset="tiny", depth=3)
    # Lists from YAML become tuples.
    m = build_network("nafnet", preset="tiny", enc_blk_nums=[1, 1, 1], dec_blk_nums=[1, 1, 1])
    assert pad_multiple(m) == 8


# ---------------------------------------------------------------- forward passes at tiny widths


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("hw", [(17, 23), (9, 5)])
def test_forward_any_size_keeps_shape(name, hw):
    model = randomise(tiny(name))
    x = torch.rand(2, 3, *hw)
    y = run(model, x, name)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # Images are independent: batch item 1 alone gives the same result (no batch mixing).
    torch.testing.assert_close(run(model, x[1:], name), y[1:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,mode", [("nafnet", "constant"), ("restormer", "reflect"), ("promptir", "reflect")])
def test_internal_padding_is_the_documented_one(name, mode):
    """Odd sizes equal the explicitly padded multiple-size input, cropped back."""
    model = randomise(tiny(name))
    m = pad_multiple(model)
    assert m == (4 if name == "nafnet" else 8)
    x = torch.rand(1, 3, 13, 19)
    padded = F.pad(x, (0, (-19) % m, 0, (-13) % m), mode=mode)
    torch.testing.assert_close(run(model, x, name), run(model, padded, name)[..., :13, :19], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", BASELINES)
def test_bf16_autocast_training_step_reaches_every_trainable_parameter(name):
    """What train_ir does (bf16 autocast); no trainable parameter is left without a gradient (DDP)."""
    model = tiny(name).train()
    x, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if name == "airnet":
            loss, _ = model.training_loss(x, x.flip(-1), gt)
        elif name == "nafnet-daclip":
            loss = F.l1_loss(model(x, torch.randn(2, 32), torch.randn(2, 32)).float(), gt)
        else:
            loss = F.l1_loss(model(x).float(), gt)
    loss.backward()
    assert torch.isfinite(loss)
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def test_airnet_deform_conv_layout_matches_mmcv_convention():
    """offset = first 2/3 of conv_offset_mask channels as (dy, dx) per tap, mask = sigmoid(last 1/3)."""
    from daclip.networks.airnet import DCNLayer

    torch.manual_seed(0)
    dcn = DCNLayer(4, 5, 3, padding=1)
    x, inter = torch.rand(1, 4, 8, 10), torch.rand(1, 4, 8, 10)
    # Fresh layer: zero offsets, mask sigmoid(0) = 0.5 -> half a plain convolution.
    torch.testing.assert_close(dcn(x, inter), 0.5 * F.conv2d(x, dcn.weight, padding=1), atol=1e-5, rtol=1e-5)
    # dx = +1 at every tap, mask ~1: the convolution of the image shifted left by one pixel.
    with torch.no_grad():
        dcn.conv_offset_mask.bias[1:18:2] = 1.0
        dcn.conv_offset_mask.bias[18:] = 30.0
    shifted = F.pad(x[..., 1:], (0, 1))
    # Column 0 differs by construction (its left tap reads x[:, :, :, 0], not padding).
    out = dcn(x, inter)[..., 1:]
    torch.testing.assert_close(out, F.conv2d(shifted, dcn.weight, padding=1)[..., 1:], atol=1e-4, rtol=1e-4)


def test_airnet_training_forward_moco():
    model = tiny("airnet").train()
    x_q, x_k = torch.rand(4, 3, 24, 24), torch.rand(4, 3, 24, 24)
    k_before = model.E.E.encoder_k.mlp[0].weight.clone()
    with torch.no_grad():
        model.E.E.encoder_q.mlp[0].weight.add_(1.0)
    restored, logits, labels = model(x_q, x_k)
    assert restored.shape == x_q.shape
    assert logits.shape == (4, 1 + 32) and labels.tolist() == [0, 0, 0, 0]
    assert int(model.E.E.queue_ptr) == 4
    # Momentum update: key encoder moved 0.1% of the way towards the query encoder.
    torch.testing.assert_close(model.E.E.encoder_k.mlp[0].weight, k_before + 1e-3, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in model.E.E.encoder_k.parameters())
    # Upstream objective: CE alone while the encoder warms up, then L1 + 0.1 * CE.
    gt = torch.rand(4, 3, 24, 24)
    torch.manual_seed(1)
    warm, none = model.training_loss(x_q, x_k)
    assert none is None and warm.item() > 0
    loss, restored = model.training_loss(x_q, x_k, gt)
    loss.backward()
    assert model.R.head[0].weight.grad is not None and model.E.E.encoder_q.mlp[2].weight.grad is not None
    assert loss.item() > F.l1_loss(restored, gt).item()
    # Eval path needs only the query view and equals restore().
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x_q, x_q), model.restore(x_q))


def test_nafnet_daclip_starts_as_nafnet_and_uses_contexts():
    torch.manual_seed(0)
    naf = randomise(tiny("nafnet"))
    model = tiny("nafnet-daclip")
    left = init_from_nafnet(model, naf.state_dict())
    assert left and all(("modulation" in k) or ("middle_attn" in k) or ("degra_mlp" in k) for k in left)
    x = torch.rand(2, 3, 15, 17)
    text, image = torch.randn(2, 32), torch.randn(2, 32)
    with torch.no_grad():
        base = naf(x)
        torch.testing.assert_close(model(x), base)
        # Zero-initialised conditioning: exactly NAFNet until trained.
        torch.testing.assert_close(model(x, text_context=text, image_context=image), base)
    # Gradients reach the zero-initialised conditioning layers.
    model.train()
    model(x, text_context=text, image_context=image).square().mean().backward()
    assert model.encoders[0][0].modulation.weight.grad.abs().sum() > 0
    assert model.middle_attn[0].proj.weight.grad.abs().sum() > 0
    # Once non-zero, each context changes the output; token sequences are accepted too.
    randomise(model, seed=3).eval()
    with torch.no_grad():  # conditioning weights of order one, so their effect is plain to see
        for n, p in model.named_parameters():
            if n.startswith(("degra_mlp", "middle_attn")) or ".modulation." in n:
                p.mul_(10)
    with torch.no_grad():
        y_none = model(x)
        y_text = model(x, text_context=text)
        y_both = model(x, text_context=text, image_context=image)
        y_tokens = model(x, text_context=text, image_context=image[:, None, :].expand(2, 4, 32))
    assert (y_text - y_none).abs().max() > 1e-3
    assert (y_both - y_text).abs().max() > 1e-3
    # Four identical tokens attend exactly like one.
    torch.testing.assert_close(y_tokens, y_both, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- checkpoint loader round trips


def _released_format(name: str, sd: dict) -> dict:
    """Wrap a state_dict the way the authors' released files do."""
    if name in ("nafnet", "restormer"):
        return {"params": sd}  # BasicSR
    if name == "promptir":  # Lightning
        return {"epoch": 149, "global_step": 1000, "pytorch-lightning_version": "2.0.0",
                "state_dict": {f"net.{k}": v for k, v in sd.items()},
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}], "lr_schedulers": []}
    return dict(sd)  # AirNet and NAFNet + DA-CLIP: raw state_dict


@pytest.mark.parametrize("name", BASELINES)
def test_checkpoint_round_trip_in_released_format(name, tmp_path):
    src = randomise(tiny(name, seed=0), seed=5)
    path = tmp_path / f"{name}.pth"
    torch.save(_released_format(name, src.state_dict()), path)
    loaded = load_network(name, str(path), preset="tiny")
    assert not loaded.training
    x = torch.rand(1, 3, 20, 28)
    assert torch.equal(run(src, x, name), run(loaded, x, name))


def test_loader_unwraps_dataparallel_and_takes_params_as_upstream(tmp_path):
    """BasicSR files with both entries: upstream (NAFNet, Restormer) evaluates 'params'."""
    a, b = randomise(tiny("nafnet"), seed=1), randomise(tiny("nafnet"), seed=2)
    path = tmp_path / "both.pth"
    torch.save({"params": {f"module.{k}": v for k, v in a.state_dict().items()},
                "params_ema": {f"module.{k}": v for k, v in b.state_dict().items()}}, path)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(run(load_network("nafnet", path, preset="tiny"), x, "nafnet"), run(a, x, "nafnet"))
    assert torch.equal(run(load_network("nafnet", path, preset="tiny", key="params_ema"), x, "nafnet"),
                       run(b, x, "nafnet"))
    # In-memory checkpoints work the same way.
    assert torch.equal(run(load_network("nafnet", {"params": a.state_dict()}, preset="tiny"), x, "nafnet"),
                       run(a, x, "nafnet"))


def test_strip_prefixes_keeps_model_prefixes():
    sd = {"R.head.0.weight": torch.zeros(1), "E.E.queue": torch.zeros(1)}
    assert strip_prefixes(sd, {"R.head.0.weight", "E.E.queue"}) == sd
    wrapped = {f"module.net.{k}": v for k, v in sd.items()}
    assert set(strip_prefixes(wrapped, set(sd))) == set(sd)


def test_airnet_queue_length_follows_the_file(tmp_path):
    src = randomise(tiny("airnet", queue_size=48), seed=2)
    torch.save(src.state_dict(), tmp_path / "a.pth")
    loaded = load_network("airnet", tmp_path / "a.pth", preset="tiny")  # tiny preset has 32
    assert loaded.E.E.queue.shape == (16, 48)
    assert torch.equal(loaded.E.E.queue, src.E.E.queue)


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="weights file not found: .*nope.pth"):
        load_network("nafnet", tmp_path / "nope.pth", preset="tiny")
    with pytest.raises(UserError, match="no weights given for 'restormer'"):
        load_network("restormer", None, preset="tiny")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match=r"junk.pth: not a readable weights file \(.+\)"):
        load_network("nafnet", junk, preset="tiny")
    # Missing + unexpected keys are named.
    sd = tiny("nafnet").state_dict()
    sd["extra.weight"] = sd.pop("intro.weight")
    with pytest.raises(UserError, match=r"missing 1 key\(s\): intro.weight; unexpected 1 key\(s\): extra.weight"):
        load_network("nafnet", {"params": sd}, preset="tiny")
    # A full-size file into a tiny config: shape mismatches are listed (file vs network).
    with pytest.raises(UserError, match=r"shape mismatch.*intro.weight \(16, 3, 3, 3\) vs \(8, 3, 3, 3\)"):
        load_network("nafnet", build_network("nafnet", preset="tiny", width=16).state_dict(), preset="tiny")
    with pytest.raises(UserError, match="no entry 'params_ema'"):
        load_network("nafnet", {"params": tiny("nafnet").state_dict()}, preset="tiny", key="params_ema")
    with pytest.raises(UserError, match="no state_dict found"):
        load_network("nafnet", {"epoch": 3}, preset="tiny")


def test_load_weights_into_existing_model_in_place():
    src, dst = randomise(tiny("restormer"), seed=7), tiny("restormer")
    assert load_weights(dst, {"params": src.state_dict()}) is dst
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
