"""DA-CLIP model: structure, controller init, control order, weights format, preprocessing."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from builders.errors import UserError
from builders.tasks import DEGRADATIONS

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "daclip" / "fixtures" / "daclip_ViT-B-32_keys.json"

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
VIT_B_32 = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
}


def tiny_model(seed: int = 0):
    from daclip.model import create_daclip

    torch.manual_seed(seed)
    return create_daclip(model_cfg=TINY)


def randomise_controller(model, seed: int = 1):
    """Non-zero zero modules and a perturbed controller, so outputs depend on every weight."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.visual_control.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        model.logit_scale.fill_(3.0)


def tokens(model, captions, words):
    from daclip.model import get_tokenizer

    tok = get_tokenizer(model)
    return torch.cat([tok(list(captions)), tok(list(words))], dim=1)


# -- structure ------------------------------------------------------------------------------

def test_shapes_and_official_outputs():
    model = tiny_model()
    images = torch.randn(4, 3, 32, 32)
    content, degra = model.encode_image(images, control=True)
    assert content.shape == (4, 32) and degra.shape == (4, 32)
    assert model.encode_image(images).shape == (4, 32)
    text = tokens(model, ["a cat", "a dog", "a car", "a tree"], ["hazy", "noisy", "hazy", "snowy"])
    assert text.shape == (4, 154)
    out = model(images, text)
    assert list(out) == ["image_features", "text_features", "image_degra_features",
                         "text_degra_features", "logit_scale"]
    for key in ("image_features", "text_features", "image_degra_features", "text_degra_features"):
        assert out[key].shape == (4, 32)
        torch.testing.assert_close(out[key].norm(dim=-1), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["logit_scale"], model.clip.logit_scale.exp())
    # deduplicated word encoding equals encoding every row
    words = text[:, 77:]
    torch.testing.assert_close(out["text_degra_features"], model.encode_text(words, normalize=True),
                               atol=1e-5, rtol=0)


def test_controller_is_a_copy_by_name_and_clip_is_frozen():
    import open_clip

    from daclip.model import DaCLIP

    torch.manual_seed(0)
    clip = open_clip.CLIP(**TINY)
    with torch.no_grad():  # non-default ln_post: the official zip-order copy gets this wrong
        clip.visual.ln_post.weight.uniform_(0.5, 1.5)
        clip.visual.ln_post.bias.uniform_(-0.5, 0.5)
    model = DaCLIP(clip)
    with torch.no_grad():
        for p in model.visual_control.parameters():
            p.zero_()
    model.init_controller()
    ctrl = dict(model.visual_control.named_parameters())
    for name, p in clip.visual.named_parameters():
        key = ("transformer." + name) if name.startswith("transformer.") else name
        assert torch.equal(ctrl[key], p), name
    for lin in model.visual_control.transformer.zero_modules:
        assert lin.weight.abs().sum() == 0 and lin.bias.abs().sum() == 0
    assert all(not p.requires_grad for p in model.clip.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"logit_scale"} | {f"visual_control.{n}" for n in ctrl}


def test_frozen_parameters_unchanged_after_an_optimiser_step():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.clip.state_dict().items()}
    ctrl_before = {k: v.clone() for k, v in model.visual_control.state_dict().items()}
    from daclip.losses import DaClipLoss
    from daclip.train_clip import build_optimizer

    opt = build_optimizer(model, lr=1e-2, weight_decay=0.05)
    images = torch.randn(6, 3, 32, 32)
    text = tokens(model, [f"photo {i}" for i in range(6)], [DEGRADATIONS[i] for i in range(6)])
    model.train()
    loss = DaClipLoss()(model(images, text)).total
    loss.backward()
    opt.step()
    for k, v in model.clip.state_dict().items():
        assert torch.equal(v, before[k]), k
    zero_w = model.visual_control.transformer.zero_modules[0].weight
    assert zero_w.abs().sum() > 0  # the content loss reaches the zero modules through the frozen tower
    changed = [k for k, v in model.visual_control.state_dict().items() if not torch.equal(v, ctrl_before[k])]
    assert len(changed) > len(ctrl_before) // 2
    assert not model.clip.training  # frozen CLIP stays in eval mode


def test_controlled_content_equals_plain_clip_at_init():
    model = tiny_model()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        content, _ = model.encode_image(images, control=True)
        plain = model.clip.encode_image(images)
    torch.testing.assert_close(content, plain, atol=1e-5, rtol=1e-5)
    content, _ = model.encode_image(images, control=True)  # with autograd on as well
    torch.testing.assert_close(content.detach(), plain, atol=1e-5, rtol=1e-5)


def test_control_is_added_in_reversed_order():
    model = tiny_model()
    randomise_controller(model)
    images = torch.randn(2, 3, 32, 32)
    vc, fv = model.visual_control, model.clip.visual
    with torch.no_grad():
        # controller: own stream untouched, records zero_module_i(x_i)
        x = vc._embeds(images)
        records = []
        for blk, z in zip(vc.transformer.transformer.resblocks, vc.transformer.zero_modules):
            x = blk(x)
            records.append(z(x))
        degra_ref = vc.ln_post(x[:, 0]) @ vc.proj
        # frozen tower: block i gets the record of controller block L-1-i
        y = fv._embeds(images)
        blocks = list(fv.transformer.resblocks)
        for i, blk in enumerate(blocks):
            y = blk(y) + records[len(blocks) - 1 - i]
        content_ref = fv.ln_post(y[:, 0]) @ fv.proj
        # the same order NOT reversed gives a different answer (the test can tell)
        y2 = fv._embeds(images)
        for i, blk in enumerate(blocks):
            y2 = blk(y2) + records[i]
        content_fwd = fv.ln_post(y2[:, 0]) @ fv.proj
        content, degra = model.encode_image(images, control=True)
    torch.testing.assert_close(content, content_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(degra, degra_ref, atol=1e-5, rtol=1e-5)
    assert (content_fwd - content_ref).abs().max() > 1e-3


def test_no_hard_coded_cuda():
    model = tiny_model()
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    src = (REPO / "daclip" / "model.py").read_text()
    assert ".cuda()" not in src


# -- weights format -------------------------------------------------------------------------

def official_keys(clip_keys: dict[str, tuple], width: int, layers: int) -> dict[str, tuple]:
    """Key -> shape of the released DA-CLIP state_dict, derived from the upstream class:
    ``clip`` (the CLIP), ``visual`` (alias of clip.visual), ``visual_control`` (copy of the
    vision tower whose ``transformer`` is wrapped as ``transformer.transformer`` next to
    ``transformer.zero_modules``) and ``logit_scale``."""
    out = {f"clip.{k}": s for k, s in clip_keys.items()}
    for k, s in clip_keys.items():
        if k.startswith("visual."):
            out[k] = s
            sub = k[len("visual."):]
            if sub.startswith("transformer."):
                sub = "transformer." + sub
            out[f"visual_control.{sub}"] = s
    for i in range(layers):
        out[f"visual_control.transformer.zero_modules.{i}.weight"] = (width, width)
        out[f"visual_control.transformer.zero_modules.{i}.bias"] = (width,)
    out["logit_scale"] = ()
    return out


def test_fixture_lists_the_official_vit_b_32_keys():
    import open_clip

    from daclip.model import DaCLIP

    fixture = {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())["keys"].items()}
    with torch.device("meta"):  # structure only: no memory, no time
        clip = open_clip.CLIP(**VIT_B_32)
        model = DaCLIP(clip)
    plain = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
    assert official_keys(plain, 768, 12) == fixture
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == fixture
    # spot checks against names spelled in the upstream code / released file
    assert fixture["visual_control.transformer.zero_modules.11.weight"] == (768, 768)
    assert fixture["visual_control.transformer.transformer.resblocks.11.mlp.c_proj.bias"] == (768,)
    assert fixture["clip.visual.proj"] == (768, 512)
    assert fixture["clip.text_projection"] == (512, 512)
    assert fixture["clip.token_embedding.weight"] == (49408, 512)
    assert fixture["visual.positional_embedding"] == (50, 768)
    assert len(fixture) == 631


def official_checkpoint(seed: int = 3) -> dict[str, torch.Tensor]:
    """A state_dict spelled with the official names (built independently of DaCLIP)."""
    import open_clip

    torch.manual_seed(seed)
    clip = open_clip.CLIP(**TINY)
    plain = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=g) * 0.05 for k, s in official_keys(plain, 64, 3).items()}
    for k in list(sd):
        if k.startswith("visual."):  # the alias holds the same tensor as clip.visual.*
            sd[k] = sd["clip." + k]
    return sd


@pytest.mark.parametrize("layout", ["wrapped_module", "bare"])
def test_official_key_checkpoint_loads_without_missing_or_unexpected_keys(tmp_path, layout):
    from daclip.checkpoint import load_daclip

    sd = official_checkpoint()
    obj = {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 50} if layout == "wrapped_module" else sd
    torch.save(obj, tmp_path / "daclip.pt")
    model = load_daclip(tmp_path / "daclip.pt", model_cfg=TINY)
    loaded = model.state_dict()
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        assert torch.equal(loaded[k], v), k
    assert all(not p.requires_grad for p in model.clip.parameters())


def test_missing_and_unexpected_keys_are_named(tmp_path):
    from daclip.checkpoint import load_daclip

    sd = official_checkpoint()
    del sd["visual_control.transformer.zero_modules.1.bias"]
    sd["visual_control.extra.weight"] = torch.zeros(2)
    torch.save({"state_dict": sd}, tmp_path / "bad.pt")
    with pytest.raises(UserError) as exc:
        load_daclip(tmp_path / "bad.pt", model_cfg=TINY)
    msg = str(exc.value)
    assert "missing 1 key(s): visual_control.transformer.zero_modules.1.bias" in msg
    assert "unexpected 1 key(s): visual_control.extra.weight" in msg
    with pytest.raises(UserError, match="checkpoint not found"):
        load_daclip(tmp_path / "nope.pt", model_cfg=TINY)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pt: not a readable checkpoint \\(not a PyTorch file"):
        load_daclip(tmp_path / "junk.pt", model_cfg=TINY)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    from daclip.checkpoint import load_daclip, save_daclip

    model = tiny_model()
    randomise_controller(model)
    save_daclip(model, tmp_path / "rt.pt", epoch=7)
    raw = torch.load(tmp_path / "rt.pt", weights_only=True)
    assert raw["epoch"] == 7 and set(raw["state_dict"]) == set(model.state_dict())
    # the alias is stored once (shared storage), not as a second copy
    assert raw["state_dict"]["visual.proj"].data_ptr() == raw["state_dict"]["clip.visual.proj"].data_ptr()
    loaded = load_daclip(tmp_path / "rt.pt", model_cfg=TINY)
    images = torch.randn(3, 3, 32, 32)
    text = tokens(model, ["a", "b", "c"], ["hazy", "rainy", "snowy"])
    with torch.no_grad():
        a, b = model.eval()(images, text), loaded.eval()(images, text)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_state_dict_without_alias_still_loads(tmp_path):
    """Files written by code that does not register ``visual`` load strictly too."""
    from daclip.checkpoint import load_daclip

    sd = {k: v for k, v in official_checkpoint().items() if not k.startswith("visual.")}
    torch.save(sd, tmp_path / "noalias.pt")
    model = load_daclip(tmp_path / "noalias.pt", model_cfg=TINY)
    assert torch.equal(model.visual.proj, sd["clip.visual.proj"])


# -- preprocessing and classification -------------------------------------------------------

def test_clip_preprocess_crop_and_normalisation():
    from daclip.model import OPENAI_MEAN, OPENAI_STD, clip_preprocess

    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (2, 3, 224, 448), generator=g).float() / 255  # uint8 grid values
    out = clip_preprocess(img, 224)
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    # short side already 224: no resize, centre crop columns 112..335
    torch.testing.assert_close(out, (img[..., 112:336] - mean) / std, atol=0, rtol=0)
    small = clip_preprocess(torch.full((1, 3, 100, 60), 0.5), 224)
    assert small.shape == (1, 3, 224, 224)
    # 0.5 * 255 = 127.5 truncates to 127, as the official (x * 255).astype(uint8)
    torch.testing.assert_close(small, ((torch.full((1, 3, 224, 224), 127 / 255) - mean) / std), atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        clip_preprocess(torch.rand(3, 10, 10))


def test_classify_matches_manual_softmax():
    from daclip.model import classify, degradation_text_features, get_tokenizer

    model = tiny_model()
    randomise_controller(model)
    words = degradation_text_features(model, get_tokenizer(model))
    assert words.shape == (10, 32)
    images = torch.randn(5, 3, 32, 32)
    pred, probs = classify(model, images, words)
    with torch.no_grad():
        _, d = model.encode_image(images, control=True, normalize=True)
    ref = (100 * d @ words.T).softmax(-1)
    torch.testing.assert_close(probs, ref)
    assert torch.equal(pred, ref.argmax(-1))
    torch.testing.assert_close(probs.sum(-1), torch.ones(5))
    pred0, _ = classify(model, images, words, control=False)
    plain = model.encode_image(images, normalize=True).detach()
    assert torch.equal(pred0, (plain @ words.T).argmax(-1))


def test_model_config_registry_and_errors(tmp_path):
    from daclip.model import build_clip, load_model_cfg

    cfg = load_model_cfg("tiny")
    assert cfg["embed_dim"] == 32 and cfg["vision_cfg"]["layers"] == 2
    assert load_model_cfg(None) is None
    with pytest.raises(UserError, match="neither a file"):
        load_model_cfg("no-such-config")
    bad = tmp_path / "bad.yaml"
    bad.write_text("embed_dim: 4\n")
    with pytest.raises(UserError, match="needs embed_dim"):
        load_model_cfg(str(bad))
    with pytest.raises(UserError, match="not found"):
        build_clip("ViT-B-32", str(tmp_path / "missing.pt"))
    with pytest.raises(UserError, match="unknown open_clip model"):
        build_clip("ViT-Q-99")


def test_pretrained_clip_file_is_loaded(tmp_path):
    """A plain open_clip checkpoint file as `pretrained`: CLIP and controller take its weights."""
    import open_clip

    from daclip.model import create_daclip

    torch.manual_seed(5)
    clip = open_clip.CLIP(**TINY)
    torch.save({"state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}}, tmp_path / "clip.pt")
    torch.manual_seed(6)
    model = create_daclip(model_cfg=TINY, pretrained=str(tmp_path / "clip.pt"))
    assert torch.equal(model.clip.visual.conv1.weight, clip.visual.conv1.weight)
    assert torch.equal(model.visual_control.conv1.weight, clip.visual.conv1.weight)
    assert torch.equal(model.visual_control.ln_post.weight, clip.visual.ln_post.weight)


def test_import_daclip_is_light():
    code = ("import sys, daclip; m = daclip.load_daclip; c = daclip.create_daclip; d = daclip.DaCLIP; "
            "print('transformers' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_grad_checkpointing_gives_the_same_features():
    model = tiny_model()
    randomise_controller(model)
    images = torch.randn(2, 3, 32, 32)
    ref = model.encode_image(images, control=True)
    other = copy.deepcopy(model)
    other.set_grad_checkpointing(True)
    out = other.encode_image(images, control=True)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b)
