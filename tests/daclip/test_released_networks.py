"""Issue 11 item 2: the released DA-CLIP-family models as methods and weights-table entries,
wild-ir's UNet and ViT-L-14 DA-CLIP, IR-SDE's denoising UNet and NAFNet's GoPro (TLC) setting.

Key names and shapes are checked against fixtures written from the upstream classes
(tests/fixtures/keys_wild-ir.json, keys_irsde-denoising.json, daclip/fixtures/
daclip_ViT-L-14_keys.json: see their "source"); forward passes use tiny presets.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from builders.errors import UserError
from daclip.networks import build_network, load_network

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures"
TINY_DACLIP = yaml.safe_load((REPO / "daclip" / "configs" / "tiny.yaml").read_text())

pytestmark = pytest.mark.usefixtures("one_thread")


def meta(name: str, preset: str = "default", **cfg):
    with torch.device("meta"):
        return build_network(name, preset=preset, **cfg)


# ---------------------------------------------------------------- wild-ir and the denoising UNet


@pytest.mark.parametrize("name", ["wild-ir", "irsde-denoising"])
def test_full_size_keys_equal_the_upstream_classes(name):
    fixture = json.loads((FIXTURES / f"keys_{name}.json").read_text())["presets"]["default"]
    model = meta(name)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == fixture["keys"]
    assert list(model.state_dict()) == list(fixture["keys"])  # same order as upstream
    assert sum(p.numel() for p in model.parameters()) == fixture["num_params"]


def test_wild_ir_structure_from_its_config():
    sd = {k: tuple(v.shape) for k, v in meta("wild-ir").state_dict().items()}
    assert sd["init_conv.weight"] == (64, 6, 7, 7)
    assert sd["downsample.weight"] == (64, 64, 4, 4)  # learned 0.5x: strided 4x4 conv
    assert sd["upsample.1.weight"] == (64, 64, 3, 3)  # nearest 2x + 3x3 conv
    assert sd["mid_attn.fn.fn.transformer_blocks.0.attn2.to_k.weight"] == (512, 768)  # ViT-L-14 context
    assert sd["downs.3.2.fn.fn.transformer_blocks.0.attn2.to_v.weight"] == (256, 768)
    assert not any(k.startswith(("prompt", "text_mlp")) for k in sd)  # use_degra_context false
    assert sd["downs.0.2.fn.fn.to_qkv.weight"] == (384, 64, 1, 1)  # linear attention above the bottom
    den = {k: tuple(v.shape) for k, v in meta("irsde-denoising").state_dict().items()}
    assert den["init_conv.weight"] == (64, 3, 7, 7)  # x alone
    assert den["mid_attn.fn.fn.to_out.weight"] == (1024, 128, 1, 1)  # full attention, no LayerNorm


def test_wild_ir_keeps_the_official_forward_signature(tmp_path):
    import daclip

    src = build_network("wild-ir", preset="tiny").eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net = daclip.load_network("wild-ir", src.state_dict(), preset="tiny")
    params = list(inspect.signature(net.forward).parameters)
    assert params == ["xt", "cond", "time", "text_context", "image_context"]
    g = torch.Generator().manual_seed(0)
    x, lq, ctx = torch.rand(1, 3, 20, 28, generator=g), torch.rand(1, 3, 20, 28, generator=g), torch.randn(1, 32, generator=g)
    with torch.no_grad():
        out = net(x, lq, 5, image_context=ctx)
        assert out.shape == x.shape and torch.equal(out, src(x, lq, 5, image_context=ctx))
        # the content embedding conditions it; a degradation embedding has no input to go to
        assert not torch.equal(out, net(x, lq, 5, image_context=-ctx))
        assert torch.equal(out, net(x, lq, 5, text_context=torch.randn(1, 32), image_context=ctx))
    den = build_network("irsde-denoising", preset="tiny")
    assert list(inspect.signature(den.forward).parameters) == ["x", "time"]
    assert den(x, 3).shape == x.shape


def test_denoising_weights_in_the_plain_irsde_name_the_mismatch(tmp_path):
    torch.save(build_network("irsde-denoising", preset="tiny").state_dict(), tmp_path / "den.pth")
    with pytest.raises(UserError, match=r"init_conv.weight \(16, 3, 7, 7\) vs \(16, 6, 7, 7\)"):
        load_network("irsde", tmp_path / "den.pth", preset="tiny")


def test_vit_l_14_daclip_keys_equal_the_bundled_open_clip():
    import open_clip

    from daclip.model import DaCLIP, get_tokenizer

    fixture = json.loads((REPO / "daclip" / "fixtures" / "daclip_ViT-L-14_keys.json").read_text())["keys"]
    cfg = open_clip.get_model_config("ViT-L-14")
    with torch.device("meta"):
        model = DaCLIP(open_clip.CLIP(**cfg))
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == fixture
    assert fixture["visual_control.transformer.zero_modules.23.weight"] == [1024, 1024]
    assert fixture["clip.visual.proj"] == [1024, 768] and len(fixture) == 1087
    # its tokenizer: open_clip's ViT-L-14 tokenizer (BPE, context 77) gives the same tokens
    words = ["a photo of a dog: rainy", "snowy"]
    assert torch.equal(get_tokenizer(model)(words), open_clip.get_tokenizer("ViT-L-14")(words))


# ---------------------------------------------------------------- NAFNet's GoPro setting (TLC)


def test_local_pool_is_a_box_average_with_replicate_padding():
    from daclip.networks.nafnet import LocalAvgPool

    x = torch.randn(2, 3, 9, 13, dtype=torch.float64)
    for k in (3, 4, 8):
        got = LocalAvgPool(k)(x)
        box = F.avg_pool2d(x, k, stride=1)  # valid windows
        ph, pw = x.shape[2] - box.shape[2], x.shape[3] - box.shape[3]
        want = F.pad(box, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        torch.testing.assert_close(got, want)
    # a window covering one side only: full height, local along the width
    got = LocalAvgPool(10)(x)
    torch.testing.assert_close(got[..., 0, :], got[..., 5, :])
    # width 13, window 10: 4 valid starts, replicate-padded 4 left / 5 right
    torch.testing.assert_close(got[..., 0, 1], x[..., :, :10].mean((2, 3)))
    torch.testing.assert_close(got[..., 0, 5], x[..., :, 1:11].mean((2, 3)))
    torch.testing.assert_close(got[..., 0, 12], x[..., :, 3:13].mean((2, 3)))
    torch.testing.assert_close(LocalAvgPool(13)(x), x.mean((2, 3), keepdim=True))


def test_gopro_presets_are_nafnet_local():
    from daclip.networks.nafnet import LocalAvgPool, tlc_kernel

    assert [tlc_kernel(256, level) for level in range(5)] == [384, 192, 96, 48, 24]
    net = meta("nafnet", "gopro-w32")
    pools = {name: m.kernel for name, m in net.named_modules() if isinstance(m, LocalAvgPool)}
    assert pools["encoders.0.0.sca.0"] == 384 and pools["encoders.3.27.sca.0"] == 48
    assert pools["middle_blks.0.sca.0"] == 24 and pools["decoders.3.0.sca.0"] == 384
    assert not any(isinstance(m, LocalAvgPool) for m in meta("nafnet", "sidd-w32").modules())
    # the keys are those of the released BasicSR files either way
    assert list(net.state_dict()) == list(meta("nafnet", "gopro-w32", tlc_train_size=0).state_dict())


def test_tlc_equals_global_pooling_below_the_window_and_differs_above():
    torch.manual_seed(0)
    tlc = build_network("nafnet", preset="tiny", tlc_train_size=32).eval()
    with torch.no_grad():
        for p in tlc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    plain = build_network("nafnet", preset="tiny").eval()
    plain.load_state_dict(tlc.state_dict())
    small, big = torch.rand(1, 3, 40, 44), torch.rand(1, 3, 120, 100)  # windows 48 / 24 at the two levels
    with torch.no_grad():
        assert torch.equal(tlc(small), plain(small))
        assert (tlc(big) - plain(big)).abs().max() > 1e-4


# ---------------------------------------------------------------- weights table and methods


def test_weights_table_has_the_six_releases():
    from daclip.catalogue import SPECS
    from daclip.weights import DACLIP_HF_REPO, WEIGHTS

    files = {"daclip": "daclip_ViT-B-32.pt", "ours": "universal-ir.pth", "daclip-mix": "daclip_ViT-B-32_mix.pt",
             "ours-mix": "universal-ir-mix.pth", "daclip-wild": "wild-daclip_ViT-L-14.pt", "wild-ir": "wild-ir.pth"}
    for key, name in files.items():
        assert WEIGHTS[key].filename == name and WEIGHTS[key].hf_repo == DACLIP_HF_REPO
    # published figures (checksums.tsv, hub commit 01b5f55); none were published for the others
    assert (WEIGHTS["daclip"].size, WEIGHTS["daclip"].sha256[:8]) == (1744725787, "ea948854")
    assert (WEIGHTS["ours"].size, WEIGHTS["ours"].sha256[:8]) == (195990371, "87575b25")
    for key in ("daclip-mix", "ours-mix", "daclip-wild", "wild-ir"):
        assert WEIGHTS[key].size is None and WEIGHTS[key].sha256 is None
    assert (SPECS["ours-mix"].spec.weights, SPECS["ours-mix"].spec.daclip_weights) == ("ours-mix", "daclip-mix")
    wild = SPECS["wild-ir"].spec
    assert (wild.network, wild.daclip_weights, wild.daclip_model) == ("wild-ir", "daclip-wild", "ViT-L-14")


def test_a_cached_file_of_the_wrong_size_is_never_used(tmp_path):
    from daclip.weights import WEIGHTS, WeightsUnavailable, cached_path, resolve_weights

    path = cached_path(WEIGHTS["ours"], tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(WeightsUnavailable, match=r"25 bytes, but the released universal-ir.pth has 195990371"):
        resolve_weights("ours", root=tmp_path, download=False)


def _put(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("method_name", ["ours-mix", "wild-ir"])
def test_mix_and_wild_methods_run_from_the_weights_cache(tmp_path, monkeypatch, method_name):
    from benchmark.methods import create_method
    from daclip.checkpoint import daclip_state_dict
    from daclip.catalogue import SPECS
    from daclip.model import create_daclip
    from daclip.weights import WEIGHTS, cached_path

    spec = SPECS[method_name].spec
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    torch.manual_seed(0)
    net = build_network(spec.network, preset="tiny")
    with torch.no_grad():  # its cross-attention outputs start at zero: make the conditioning matter
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    unet = _put(cached_path(WEIGHTS[spec.weights or method_name], tmp_path), net.state_dict())
    Path(str(unet) + ".json").write_text(json.dumps({"network": spec.network, "config": {"preset": "tiny"},
                                                     "daclip_cfg": TINY_DACLIP}))
    dc_path = cached_path(WEIGHTS[spec.daclip_weights], tmp_path)
    _put(dc_path, {"state_dict": daclip_state_dict(create_daclip(model_cfg=TINY_DACLIP))})
    lq = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    method = create_method(method_name, steps=2, seed=1)
    method.prepare("cpu")
    out = method.restore(lq, "rainy")
    assert out.shape == lq.shape and np.array_equal(out, method.restore(lq, "rainy"))
    assert method.settings == {"steps": 2, "seed": 1, "daclip_amp": "none"}
    # another DA-CLIP file in the cache gives other contexts and another weights_id
    torch.manual_seed(9)
    _put(dc_path, {"state_dict": daclip_state_dict(create_daclip(model_cfg=TINY_DACLIP))})
    other = create_method(method_name, steps=2, seed=1)
    other.prepare("cpu")
    assert other.weights_id != method.weights_id
    t = torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255
    assert not torch.equal(other.conditioner(t)[0], method.conditioner(t)[0])


def test_weights_list_shows_sizes_and_digests(tmp_path, capsys):
    from benchmark.weights import main

    assert main(["list", "--weights-dir", str(tmp_path), "--methods", "ours,ours-mix,wild-ir,promptir"]) == 0
    lines = capsys.readouterr().out.splitlines()

    def line(name):
        return next(ln for ln in lines if f"/{name}  " in ln)

    assert "size 1744725787 bytes, sha256 ea948854d4293f2d222ead043fd5b4090fba984c8e2db8656934d768dc4f8230" in \
        line("daclip_ViT-B-32.pt")
    assert "size 195990371 bytes, sha256 87575b2559ca" in line("universal-ir.pth")
    for name in ("universal-ir-mix.pth", "daclip_ViT-B-32_mix.pt", "wild-ir.pth", "wild-daclip_ViT-L-14.pt",
                 "model.ckpt"):
        assert "size unknown, sha256 not published" in line(name) and "missing" in line(name)
    assert "sha256 7be5be79... (from the hub name)" in line("alexnet-owt-7be5be79.pth")
    assert "sha256 df73285e..." in line("LPIPS_v0.1_alex-df73285e.pth")
    assert "sha256 6726825d..." in line("weights-inception-2015-12-05-6726825d.pth")
