"""Issue 21: the field's released all-in-one models (AdaIR, MoCE-IR(-S), InstructIR, OneRestore,
MaskDCPT's NAFNet), their released containers, input handling, weights rows and methods.

Full-size keys and shapes are checked against fixtures written from the upstream classes
(tests/fixtures/keys_<network>.json: see their "source"); the containers are replicas built
here, around tiny presets, and go through the one restricted loader.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from builders.errors import UserError
from daclip.networks import build_network, load_network
from test_released_formats import lightning_checkpoint, randomise

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
X = torch.rand(1, 3, 29, 43, generator=torch.Generator().manual_seed(0))  # odd sides

pytestmark = pytest.mark.usefixtures("one_thread")


def meta(name: str, preset: str = "default"):
    with torch.device("meta"):
        return build_network(name, preset=preset)


FULL = [("adair", "adair", "default"), ("moce-ir", "moce-ir", "default"), ("moce-ir-s", "moce-ir", "small"),
        ("instructir", "instructir", "default"), ("instructir-lm", "instructir-lm", "default"),
        ("onerestore", "onerestore", "default"), ("onerestore-embedder", "onerestore-embedder", "default"),
        ("maskdcpt-nafnet", "maskdcpt-nafnet", "default")]


@pytest.mark.parametrize("network,fixture,preset", FULL)
def test_released_configuration_keys_equal_the_upstream_classes(network, fixture, preset):
    expected = json.loads((FIXTURES / f"keys_{fixture}.json").read_text())["presets"][preset]
    model = meta(network, preset)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected["keys"]  # same names and shapes (registration order may differ)
    assert sum(p.numel() for p in model.parameters()) == expected["num_params"]


# ---------------------------------------------------------------- the released containers


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and torch.equal(a, b)


def test_adair_lightning_checkpoint_with_optimizer_loops_and_callbacks(tmp_path):
    src = randomise(build_network("adair", preset="tiny"), 3).eval()
    ckpt = lightning_checkpoint(src)
    assert {"optimizer_states", "loops", "callbacks", "lr_schedulers"} <= set(ckpt)
    torch.save(ckpt, tmp_path / "adair5d.ckpt")
    loaded = load_network("adair", tmp_path / "adair5d.ckpt", preset="tiny")
    bare = load_network("adair", src.state_dict(), preset="tiny")
    assert loaded.loaded_from["prefix"] == "net." and loaded.loaded_from["entries"][0].startswith("state_dict")
    with torch.no_grad():
        _same(loaded(X), bare(X))
        # the upstream signature: forward(inp_img, noise_emb=None), noise_emb unused
        _same(loaded(X, torch.ones(1, 8)), bare(X))


def test_moce_ir_last_ckpt(tmp_path):
    src = randomise(build_network("moce-ir", preset="tiny"), 5).eval()
    ckpt = lightning_checkpoint(src)
    key = ("ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
           "'train_time_interval': None}")
    ckpt["callbacks"] = {key: {**next(iter(ckpt["callbacks"].values())), "last_model_path": "/ckpt/last.ckpt"}}
    assert all(k.startswith("net.") for k in ckpt["state_dict"])  # L1 loss without weights: net.* only
    torch.save(ckpt, tmp_path / "last.ckpt")
    loaded = load_network("moce-ir", tmp_path / "last.ckpt", preset="tiny")
    bare = load_network("moce-ir", src.state_dict(), preset="tiny")
    assert sum(k.endswith("routing.complexity") for k in loaded.state_dict()) == 3  # tiny: 1+1+1 decoder blocks
    with torch.no_grad():
        loaded.set_generator(torch.Generator().manual_seed(7))
        bare.set_generator(torch.Generator().manual_seed(7))
        _same(loaded(X), bare(X))


def test_instructir_two_plain_state_dicts(tmp_path):
    im = randomise(build_network("instructir", preset="tiny"), 1).eval()
    lm = randomise(build_network("instructir-lm"), 2).eval()  # the released LMHead(384, 256, 7)
    torch.save(OrderedDict(im.state_dict()), tmp_path / "im_instructir-7d.pt")
    torch.save(OrderedDict(lm.state_dict()), tmp_path / "lm_instructir-7d.pt")
    im2 = load_network("instructir", tmp_path / "im_instructir-7d.pt", preset="tiny")
    lm2 = load_network("instructir-lm", tmp_path / "lm_instructir-7d.pt")
    sentence = F.normalize(torch.randn(1, 384, generator=torch.Generator().manual_seed(3)), dim=1)
    with torch.no_grad():
        embd, logits = lm2(sentence)
        assert embd.shape == (1, 256) and logits.shape == (1, 7)
        assert torch.allclose(embd.norm(dim=1), torch.ones(1))  # fc1, then L2-normalised
        _same(embd, F.normalize(sentence @ lm.fc1.weight.t() + lm.fc1.bias, dim=1))
        _same(im2(X, embd), im(X, embd))
        assert not torch.equal(im2(X, embd), im2(X, -embd))  # the text conditions the image network


def test_instructir_text_pooling_is_the_attention_masked_mean():
    from daclip.networks.instructir import mean_pool

    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.equal(mean_pool(tokens, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))


def test_onerestore_tar_files(tmp_path):
    net = randomise(build_network("onerestore", preset="tiny"), 1).eval()
    torch.save(net.state_dict(), tmp_path / "onerestore_cdd-11.tar")  # a torch zip despite the name
    loaded = load_network("onerestore", tmp_path / "onerestore_cdd-11.tar", preset="tiny")
    emb = torch.relu(torch.randn(1, 324, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        _same(loaded(X, emb), net(X, emb))  # any size: no padding
    torch.manual_seed(0)
    embedder = randomise(build_network("onerestore-embedder"), 4).eval()
    torch.save(embedder.state_dict(), tmp_path / "embedder_model.tar")
    e2 = load_network("onerestore-embedder", tmp_path / "embedder_model.tar")
    assert any(k.startswith("feat_extractor.block4.") for k in e2.state_dict())  # ResNet18 from the file
    imgs = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        vec, names = e2.image_embedding(imgs)
        vec0, names0 = embedder.image_embedding(imgs)
        _same(vec, vec0)
        assert names == names0 and all(n in e2.types for n in names)
        # the vector is the predicted type's row: the same as asking for that type by name
        _same(vec, e2.type_embedding(names))
        assert (e2.scene_vectors() >= 0).all()
    with pytest.raises(ValueError, match="unknown OneRestore scene type"):
        e2.type_embedding(["fog"])


def test_onerestore_keys_resize_without_antialias():
    from torchvision.transforms import Resize

    from daclip.networks.onerestore import CrossAttention

    att = CrossAttention(8, 2, False)
    k = torch.rand(1, 8, 61, 47, generator=torch.Generator().manual_seed(1))
    seen = {}
    orig = F.interpolate

    def spy(t, size=None, **kw):
        seen.update(kw)
        return orig(t, size=size, **kw)

    F.interpolate = spy
    try:
        att(k, torch.rand(1, 324))
    finally:
        F.interpolate = orig
    assert seen["antialias"] is False and seen["mode"] == "bilinear" and not seen["align_corners"]
    # what torchvision 0.14's tensor Resize did (and 0.17+ does only with antialias=False)
    _same(F.interpolate(k, (18, 18), **seen), Resize([18, 18], antialias=False)(k))


def test_onerestore_glove_type_vectors(tmp_path):
    from daclip.networks.onerestore import glove_type_vectors

    words = {"clear": [1.0, 0.0], "low": [0.0, 2.0], "haze": [4.0, 4.0], "rain": [2.0, 0.0], "snow": [0.0, 8.0]}
    path = tmp_path / "glove.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in words.items()))
    vec = glove_type_vectors(path, ("clear", "low_haze", "low_haze_snow"))
    assert vec.flatten().tolist() == pytest.approx([1.0, 0.0, 2.0, 3.0, 4.0 / 3, 14.0 / 3], rel=1e-6)
    with pytest.raises(ValueError, match="fog"):
        glove_type_vectors(path, ("fog",))


def test_maskdcpt_reads_params_ema_first_and_says_which(tmp_path):
    a = randomise(build_network("maskdcpt-nafnet", preset="tiny"), 1).eval()
    b = randomise(build_network("maskdcpt-nafnet", preset="tiny"), 2).eval()
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, tmp_path / "both.pth")
    torch.save({"params_ema": b.state_dict()}, tmp_path / "ema.pth")
    torch.save({"params": a.state_dict()}, tmp_path / "plain.pth")
    with torch.no_grad():
        both = load_network("maskdcpt-nafnet", tmp_path / "both.pth", preset="tiny")
        _same(both(X), b(X))
        assert both.loaded_from["entries"] == ["params_ema (of params, params_ema)"]
        _same(load_network("maskdcpt-nafnet", tmp_path / "ema.pth", preset="tiny")(X), b(X))
        plain = load_network("maskdcpt-nafnet", tmp_path / "plain.pth", preset="tiny")
        _same(plain(X), a(X))
        assert plain.loaded_from["entries"] == ["params (of params)"]
        # the toolkit's own NAFNet keeps upstream NAFNet's order ('params' first)
        assert load_network("maskdcpt-nafnet", tmp_path / "both.pth", preset="tiny", key="params")(X).equal(a(X))


def test_maskdcpt_layernorm_eps_and_global_pooling():
    net = build_network("maskdcpt-nafnet", preset="tiny")
    norms = [m for n, m in net.named_modules() if n.endswith("norm1") or n.endswith("norm2")]
    assert norms and all(m.eps == 1e-5 for m in norms)
    assert all(isinstance(m.sca[0], torch.nn.AdaptiveAvgPool2d) for m in net.modules() if hasattr(m, "sca"))


# ---------------------------------------------------------------- input handling


@pytest.mark.parametrize("name,multiple,mode", [("adair", 8, "reflect"), ("moce-ir", 8, "reflect"),
                                                ("maskdcpt-nafnet", 16, "reflect"), ("instructir", 16, "constant")])
def test_padding_is_what_the_architecture_needs(name, multiple, mode):
    net = randomise(build_network(name, preset="tiny"), 1).eval()
    extra = (torch.rand(1, 256),) if name == "instructir" else ()
    if name == "moce-ir":
        net.set_generator(torch.Generator().manual_seed(0))
    multiple = getattr(net, "padder_size", multiple)  # InstructIR: 2 ** levels (4 in the tiny preset)
    with torch.no_grad():
        out = net(X, *extra)
        h, w = X.shape[-2:]
        padded = F.pad(X, (0, (-w) % multiple, 0, (-h) % multiple), mode=mode)
        if name == "moce-ir":
            net.set_generator(torch.Generator().manual_seed(0))
        ref = net(padded, *extra)[..., :h, :w]  # no further padding on an exact multiple
    assert out.shape == X.shape
    assert torch.allclose(out, ref, atol=1e-6)


def test_moce_ir_routes_each_image_of_a_batch_on_its_own():
    from daclip.networks.moce_ir import RoutingFunction

    net = randomise(build_network("moce-ir", preset="tiny"), 2).eval()
    for m in net.modules():
        if isinstance(m, RoutingFunction):
            m.noise_std = 0.0  # without noise, an image's route depends on it alone
    x2 = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        both = net(x2)
        assert torch.allclose(both[0:1], net(x2[0:1]), atol=1e-5)
        assert torch.allclose(both[1:2], net(x2[1:2]), atol=1e-5)


def test_moce_ir_adapter_combines_the_experts_as_upstream():
    """Upstream stacks the chosen experts' outputs (a contiguous copy) before the gate-weighted sum.
    The FFT expert's output is channels-last strided; kept so, the adapter's output is too, and the
    cross attention's normalise over h*w then sums in another order (1.7e-5 at the output of the
    full-size moce-ir with random weights, against 0 with the copy)."""
    from daclip.networks.moce_ir import AdapterLayer, RoutingFunction

    net = randomise(build_network("moce-ir", preset="tiny"), 2).eval()
    for m in net.modules():
        if isinstance(m, RoutingFunction):
            m.noise_std = 0.0  # the route can be recomputed outside the forward
    calls = []
    hooks = [m.register_forward_hook(lambda layer, args, out: calls.append((layer, args, out)))
             for m in net.modules() if isinstance(m, AdapterLayer)]
    with torch.no_grad():
        net(X)
        layouts = []
        for layer, (x, freq_emb, shared), out in calls:
            values, indices = layer.routing(x, freq_emb)
            expert_out = layer.experts[int(indices[0, 0])](x, shared)
            layouts.append(expert_out.is_contiguous())
            assert out.is_contiguous()
            assert torch.equal(out, layer.proj_out(values[0, 0] * expert_out))
    for h in hooks:
        h.remove()
    assert len(calls) == 3 and not all(layouts)  # the strided case is exercised


def test_moce_ir_router_noise_comes_from_the_given_generator():
    net = randomise(build_network("moce-ir", preset="tiny"), 2).eval()
    g = torch.Generator().manual_seed(11)
    before = g.get_state().clone()
    state = torch.get_rng_state()
    net.set_generator(g)
    with torch.no_grad():
        net(X)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert not torch.equal(g.get_state(), before)  # ... the noise came from g
    net.set_generator(None)
    with torch.no_grad():
        net(X)
    assert not torch.equal(torch.get_rng_state(), state)  # upstream's global draws otherwise


# ---------------------------------------------------------------- weights table and methods


def test_releases_by_protocol():
    from daclip.weights import WEIGHTS, release_for, releases

    assert release_for("adair", "5d").filename == "adair5d.ckpt"
    assert release_for("adair", "3D").filename == "adair3d.ckpt"
    assert release_for("moce-ir", "cdd-11").name == "moce-ir-cdd11"
    assert set(releases("moce-ir-s")) == {"3d", "5d", "cdd11"}
    assert release_for("instructir", "7d").hf_repo == "marcosv/InstructIR"
    assert release_for("instructir", "7d", role="lm").size == 403275
    assert release_for("instructir", "5d") is None  # the 3D and 5D variants were not released
    assert release_for("promptir", "3d").filename == "model.ckpt"
    assert release_for("airnet", "3d").filename == "All.pth"
    assert release_for("maskdcpt-nafnet", "12d").filename == "nafnet_maskdcpt_12d.pth"
    assert set(releases("onerestore")) == {"cdd11", "real", "lol", "reside-ots", "rain1200", "snow100k"}
    glove = WEIGHTS["onerestore-glove"]
    assert (glove.size, glove.sha256[:8]) == (13017, "58e45834") and "PDDL" in glove.licence + "PDDL"
    for e in WEIGHTS.values():
        if e.method in ("adair", "moce-ir", "moce-ir-s"):
            assert e.page.startswith("https://drive.google.com/drive/folders/") and not (e.url or e.hf_repo)


def _cache(tmp_path, entry: str, obj) -> Path:
    from daclip.weights import WEIGHTS, cached_path

    path = cached_path(WEIGHTS[entry], tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("name", ["adair", "moce-ir", "moce-ir-s", "instructir", "onerestore", "maskdcpt-nafnet"])
def test_offline_without_files_says_how_to_get_them(tmp_path, monkeypatch, name):
    from daclip.registry import MethodUnavailable, method_spec

    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    with pytest.raises(MethodUnavailable) as err:
        method_spec(name).factory().prepare("cpu")
    text = str(err.value)
    if name in ("adair", "moce-ir", "moce-ir-s"):  # Drive folders: by hand
        assert "by hand from https://drive.google.com/drive/folders/" in text
    else:
        assert f"python -m benchmark.weights fetch --methods {name}" in text
    assert f"--weights {name}=PATH" in text  # the method's name, as --weights takes it


def test_release_option_picks_the_file_and_is_recorded(tmp_path, monkeypatch):
    from daclip.registry import MethodUnavailable, method_spec

    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    net = randomise(build_network("adair", preset="tiny"), 1).eval()
    _cache(tmp_path, "adair-3d", lightning_checkpoint(net))
    m = method_spec("adair").factory(release="3d", preset="tiny")
    m.prepare("cpu")
    assert m.settings["release"] == "adair3d.ckpt (3d)"
    assert m.settings["padding"] == "reflect to 8 inside the network" and m.settings["conditioning"] == "blind"
    assert m.settings["container"].startswith("state_dict (of epoch, global_step")
    lq = np.random.default_rng(0).integers(0, 256, (21, 27, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = net(torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255)
    want = (ref.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(m.restore(lq, "noisy"), want)
    with pytest.raises(MethodUnavailable, match=r"no release for protocol '7d' \(releases: 3d, 5d\)"):
        method_spec("adair").factory(release="7d", preset="tiny").prepare("cpu")
    # --weights overrides the release and says so
    path = tmp_path / "mine.ckpt"
    torch.save(lightning_checkpoint(net), path)
    m2 = method_spec("adair").factory(weights=str(path), release="5d", preset="tiny")
    m2.prepare("cpu")
    assert m2.settings["release"] == "mine.ckpt (--weights)"


def test_moce_ir_method_seeds_each_image_by_its_id(tmp_path, monkeypatch):
    from daclip.registry import method_spec

    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    net = randomise(build_network("moce-ir", preset="tiny"), 1).eval()
    _cache(tmp_path, "moce-ir-5d", lightning_checkpoint(net))
    m = method_spec("moce-ir").factory(preset="tiny", seed=3)
    m.prepare("cpu")
    assert "seeded per image" in m.settings["router_noise"]
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for _ in range(2))
    together = m.restore_batch([a, b], ["noisy", "noisy"], keys=["x/1", "x/2"])
    alone = m.restore_batch([b], ["noisy"], keys=["x/2"])
    swapped = m.restore_batch([b, a], ["noisy", "noisy"], keys=["x/2", "x/1"])
    assert np.array_equal(together[1], alone[0]) and np.array_equal(swapped[1], together[0])


class _FakeEncoder:
    """Stands in for bge-micro-v2 (no hub here): a fixed 384-d vector per distinct text."""

    def __init__(self, name, device):
        self.texts: list[str] = []

    def __call__(self, texts):
        self.texts += texts
        g = torch.Generator().manual_seed(sum(map(ord, texts[0])))
        return F.normalize(torch.randn(len(texts), 384, generator=g), dim=1)


def test_instructir_method_instruction_per_type_or_prompt(tmp_path, monkeypatch):
    import daclip.networks.instructir as iir
    from daclip.registry import method_spec

    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    monkeypatch.setattr(iir, "InstructionEncoder", _FakeEncoder)
    im = randomise(build_network("instructir", preset="tiny"), 1)
    lm = randomise(build_network("instructir-lm"), 2)
    files = f'{_cache(tmp_path, "instructir-7d", OrderedDict(im.state_dict()))},{tmp_path / "lm.pt"}'
    torch.save(OrderedDict(lm.state_dict()), tmp_path / "lm.pt")  # not the released file's size: given by path
    m = method_spec("instructir").factory(weights=files, preset="tiny")
    m.prepare("cpu")
    assert m.uses_task_label and m.settings["conditioning"] == "instructed"
    lq = np.random.default_rng(0).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    m.restore(lq, "rainy")
    m.restore(lq, "shadowed")
    assert m.encoder.texts == ["Remove the rain in the image", "improve the quality of this photo"]
    p = method_spec("instructir").factory(weights=files, preset="tiny", prompt="remove the noise please")
    p.prepare("cpu")
    assert not p.uses_task_label and p.settings["instruction"] == "'remove the noise please'"
    assert p.weights_id != m.weights_id
    assert not np.array_equal(p.restore(lq, "rainy"), m.restore(lq, "rainy"))


def test_onerestore_method_blind_or_given_scene(tmp_path, monkeypatch):
    from daclip.registry import method_spec

    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    torch.manual_seed(0)
    net = randomise(build_network("onerestore", preset="tiny"), 1)
    emb = randomise(build_network("onerestore-embedder"), 2)
    _cache(tmp_path, "onerestore-cdd11", net.state_dict())
    _cache(tmp_path, "onerestore-embedder", emb.state_dict())
    m = method_spec("onerestore").factory(preset="tiny")
    m.prepare("cpu")
    assert m.settings["release"] == "onerestore_cdd-11.tar (cdd11)" and m.settings["embedder"] == "embedder_model.tar"
    lq = np.random.default_rng(1).integers(0, 256, (31, 37, 3), dtype=np.uint8)
    out = m.restore(lq, "hazy")
    assert out.shape == lq.shape and sum(m.predicted.values()) == 1
    given = method_spec("onerestore").factory(preset="tiny", scene="low_haze")
    given.prepare("cpu")
    assert given.settings["conditioning"] == "scene type given: low_haze"
    x = torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ref = net.eval()(x, emb.eval().type_embedding(["low_haze"]))
    want = (ref.clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(given.restore(lq, "hazy"), want)
    with pytest.raises(UserError, match="option scene='fog'"):
        method_spec("onerestore").factory(preset="tiny", scene="fog").prepare("cpu")


def test_report_marks_release_and_blind_or_instructed(tmp_path):
    from reports.html import render_report

    metric = {"name": "psnr", "display": "PSNR", "higher_is_better": True, "fmt": ".2f", "kind": "image"}
    methods = [{"name": "instructir", "display": "InstructIR", "weights_id": "a", "uses_task_label": True,
                "settings": {"release": "im_instructir-7d.pt (7d)", "conditioning": "instructed"}},
               {"name": "adair", "display": "AdaIR", "weights_id": "b", "uses_task_label": False,
                "settings": {"release": "adair3d.ckpt (3d)", "conditioning": "blind"}}]
    s = {"title": "t", "dataset": "d", "split": "val", "created": "now", "command": "c", "versions": {},
         "tasks": ["noisy"], "counts": {}, "methods": methods, "metrics": [metric], "unavailable": {},
         "tables": {"psnr": {m["name"]: {"noisy": 30.0, "average": 30.0} for m in methods}}, "images": [],
         "examples": []}
    html = render_report(tmp_path, s).read_text()
    table = html.split('id="overview-table"')[1].split("</table>")[0]
    rows = {r.split("</td>")[0]: r for r in table.split("<tr><td>")[1:]}
    iir = next(v for k, v in rows.items() if k.startswith("InstructIR"))
    ada = next(v for k, v in rows.items() if k.startswith("AdaIR"))
    assert '<span class="tag">instructed</span>' in iir and "im_instructir-7d.pt (7d)" in iir
    assert '<span class="tag">blind</span>' in ada and "adair3d.ckpt (3d)" in ada


def test_benchmark_protocol_picks_each_release_or_skips(tmp_path, monkeypatch):
    from benchmark.run import protocol_releases
    from daclip.registry import MethodUnavailable, method_spec

    opts = protocol_releases("5d", ["classical", "adair", "instructir", "moce-ir", "promptir"],
                             {"moce-ir": {"release": "cdd11"}}, {"promptir": "mine.ckpt"})
    # adair's and instructir's release for 5d; an explicit release and --weights win
    assert opts == {"adair": {"release": "5d"}, "instructir": {"release": "5d"}, "moce-ir": {"release": "cdd11"}}
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    with pytest.raises(MethodUnavailable, match=r"instructir: no release for protocol '5d' \(releases: 7d\)"):
        method_spec("instructir").factory(**opts["instructir"]).prepare("cpu")


@pytest.mark.parametrize("name", ["instructir", "onerestore"])
def test_per_image_context_methods_stream_large_images(tmp_path, monkeypatch, name):
    """An image over the tiling size goes through in rows of tiles (issue 17) with its
    embedding (text or scene) passed to every tile: the same pixels as the whole-batch tiling."""
    import daclip.networks.instructir as iir
    from daclip.inference import to_tensor, to_uint8
    from daclip.registry import method_spec

    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    monkeypatch.setattr(iir, "InstructionEncoder", _FakeEncoder)
    if name == "instructir":
        im = randomise(build_network("instructir", preset="tiny"), 1)
        torch.save(OrderedDict(randomise(build_network("instructir-lm"), 2).state_dict()), tmp_path / "lm.pt")
        weights = f'{_cache(tmp_path, "instructir-7d", OrderedDict(im.state_dict()))},{tmp_path / "lm.pt"}'
        m = method_spec(name).factory(weights=weights, preset="tiny", tile=32, overlap=8, max_pixels=1000)
    else:
        _cache(tmp_path, "onerestore-cdd11", randomise(build_network("onerestore", preset="tiny"), 1).state_dict())
        _cache(tmp_path, "onerestore-embedder", randomise(build_network("onerestore-embedder"), 2).state_dict())
        m = method_spec(name).factory(preset="tiny", tile=32, overlap=8, max_pixels=1000)
    m.prepare("cpu")
    lq = np.random.default_rng(3).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    assert m.streams and not m.tiling.whole(*lq.shape[:2])
    streamed = m.restore(lq, "hazy")
    m._ctx = m.image_context(lq, "hazy")
    whole_batch = to_uint8(m.restore_tensor(to_tensor(lq, "cpu")))
    assert streamed.shape == lq.shape
    assert np.array_equal(streamed, whole_batch)
