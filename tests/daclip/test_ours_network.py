"""The "ours" / IR-SDE UNets, checkpoint loading, tiled inference and the weights table."""

import hashlib
import http.server
import json
import threading
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from builders.errors import UserError
from builders.hub import OFFLINE_ENVS
from daclip.inference import Fit, Tiling, apply_fitted, batched, tiled_apply
from daclip.networks import build_network, network_names
from daclip.networks.loading import load_network
from daclip.weights import WeightsEntry, WeightsUnavailable, parse_weights_overrides, resolve_weights

FIXTURES = Path(__file__).parents[1] / "fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered():
    assert {"ours", "irsde"} <= set(network_names())


@pytest.mark.parametrize("name", ["ours", "irsde"])
def test_full_size_keys_match_fixture(name):
    fixture = json.loads((FIXTURES / f"keys_{name}.json").read_text())["presets"]["default"]
    with torch.device("meta"):
        model = build_network(name)
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == fixture["keys"]
    assert sum(p.numel() for p in model.parameters()) == fixture["num_params"]


def test_ours_full_size_facts_from_upstream():
    """Shapes derived by hand from the upstream ConditionalUNet and options/test.yml."""
    with torch.device("meta"):
        model = build_network("ours")
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 48.98
    assert sd["init_conv.weight"] == (64, 6, 7, 7)  # cat[x_t - LQ, LQ], 7x7, no bias
    assert "init_conv.bias" not in sd
    assert sd["time_mlp.1.weight"] == (256, 64) and sd["time_mlp.3.weight"] == (256, 256)
    assert sd["prompt"] == (1, 256)
    assert sd["text_mlp.0.weight"] == (256, 512) and sd["text_mlp.2.weight"] == (256, 256)
    assert sd["prompt_mlp.weight"] == (256, 256)
    # Levels 0-2: linear attention (4 heads x 32); level 3 and the middle: SpatialTransformer
    # with heads = channels / 32 and cross-attention keys from the 512-d content embedding.
    assert sd["downs.0.2.fn.fn.to_qkv.weight"] == (384, 64, 1, 1)
    assert sd["downs.0.2.fn.norm.g"] == (1, 64, 1, 1)
    assert sd["downs.3.2.fn.fn.transformer_blocks.0.attn2.to_k.weight"] == (256, 512)
    assert sd["downs.3.2.fn.fn.transformer_blocks.0.ff.net.0.proj.weight"] == (2048, 256)
    assert sd["ups.0.2.fn.fn.transformer_blocks.0.attn2.to_v.weight"] == (512, 512)
    assert sd["mid_attn.fn.fn.proj_in.weight"] == (512, 512, 1, 1)
    assert sd["downs.0.3.weight"] == (64, 64, 4, 4)  # strided 4x4 downsampling conv
    assert sd["downs.3.3.weight"] == (512, 256, 3, 3)  # last level: plain conv
    assert sd["ups.0.3.1.weight"] == (256, 512, 3, 3)  # nearest-up + conv
    assert sd["ups.0.0.block1.proj.weight"] == (512, 768, 3, 3)
    assert sd["ups.3.3.weight"] == (64, 64, 3, 3)
    assert sd["final_res_block.res_conv.weight"] == (64, 128, 1, 1)
    assert sd["final_conv.weight"] == (3, 64, 3, 3)


def test_irsde_full_size_facts():
    with torch.device("meta"):
        model = build_network("irsde")
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 137
    assert sd["mid_attn.fn.fn.to_out.0.weight"] == (1024, 128, 1, 1)  # linear attention + LayerNorm
    assert sd["mid_attn.fn.fn.to_out.1.g"] == (1, 1024, 1, 1)
    assert sd["init_conv.weight"] == (64, 6, 7, 7)
    assert sd["downs.3.3.weight"] == (1024, 512, 3, 3)
    assert not any(k.startswith(("prompt", "text_mlp")) for k in sd)


def tiny_inputs(h, w, batch=2, ctx=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, h, w, generator=g)
    lq = torch.rand(batch, 3, h, w, generator=g)
    return x, lq, torch.randn(batch, ctx, generator=g), torch.randn(batch, ctx, generator=g)


@pytest.mark.parametrize("h,w", [(17, 23), (32, 45), (9, 9)])
def test_tiny_forward_odd_sizes(h, w):
    torch.manual_seed(0)
    ours = build_network("ours", preset="tiny").eval()
    irsde = build_network("irsde", preset="tiny").eval()
    x, lq, deg, content = tiny_inputs(h, w)
    with torch.no_grad():
        a = ours(x, lq, torch.tensor([3.0, 70.0]), text_context=deg, image_context=content)
        b = irsde(x, lq, 5)
    assert a.shape == b.shape == (2, 3, h, w)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()


def test_conditioning_changes_output():
    torch.manual_seed(0)
    net = build_network("ours", preset="tiny").eval()
    # proj_out of the cross-attention blocks starts at zero (upstream); give it weights so
    # the content path is live, as after training.
    for m in net.modules():
        if hasattr(m, "proj_out"):
            nn.init.normal_(m.proj_out.weight, std=0.2)
    x, lq, deg, content = tiny_inputs(16, 16)
    with torch.no_grad():
        base = net(x, lq, 10.0, text_context=deg, image_context=content)
        other_deg = net(x, lq, 10.0, text_context=deg * -3, image_context=content)
        other_img = net(x, lq, 10.0, text_context=deg, image_context=content * -3)
        other_t = net(x, lq, 80.0, text_context=deg, image_context=content)
    for other in (other_deg, other_img, other_t):
        assert (base - other).abs().max() > 1e-4


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    net = build_network("ours", preset="tiny").eval()
    # Saved as DataParallel would: 'module.' prefixes, and a plain dict like universal-ir.pth.
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "universal-ir.pth")
    loaded = load_network("ours", tmp_path / "universal-ir.pth", preset="tiny")
    x, lq, deg, content = tiny_inputs(20, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, lq, 7.0, text_context=deg, image_context=content),
                                   net(x, lq, 7.0, text_context=deg, image_context=content))
    # A file of another architecture is refused with the key names, not loaded partially.
    torch.save(build_network("irsde", preset="tiny").state_dict(), tmp_path / "irsde.pth")
    with pytest.raises(UserError, match="missing|unexpected"):
        load_network("ours", tmp_path / "irsde.pth", preset="tiny")


# -- inference helpers ----------------------------------------------------------------------

class SmallConv(nn.Module):
    """Receptive field 5x5: tiles with overlap >= 4 reproduce the whole-image output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(6, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x, y):
        return self.b(torch.relu(self.a(torch.cat([x, y], 1))))


def test_tiled_apply_equals_whole_interior():
    net = SmallConv()
    x, y = torch.rand(1, 3, 70, 53), torch.rand(1, 3, 70, 53)
    with torch.no_grad():
        whole = net(x, y)
        tiled = tiled_apply(net, [x, y], Tiling(tile=24, overlap=12, max_pixels=0))
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    # Below the size limit the function runs once on the whole image.
    calls = []
    tiled_apply(lambda a: calls.append(a.shape) or a, [x], Tiling(tile=128, overlap=8, max_pixels=0))
    tiled_apply(lambda a: calls.append(a.shape) or a, [x], Tiling(tile=24, overlap=8, max_pixels=70 * 53))
    assert calls == [x.shape, x.shape]
    # A 2K image runs as tiles no larger than the tile size.
    big = []
    tiled_apply(lambda a: big.append(tuple(a.shape[-2:])) or a, [torch.zeros(1, 1, 1080, 2048)], Tiling())
    assert len(big) > 1 and max(max(s) for s in big) <= 768


def test_tiled_apply_blends_constant_exactly():
    # Each tile returns its own constant-valued mean; blending weights must sum to one.
    x = torch.ones(1, 1, 100, 100)
    out = tiled_apply(lambda t: t * 2, [x], Tiling(tile=32, overlap=10, max_pixels=0))
    torch.testing.assert_close(out, x * 2)


def test_fit_modes():
    seen = []

    def fn(t):
        seen.append(tuple(t.shape[-2:]))
        return t + 1

    x = torch.rand(1, 3, 21, 35)
    for mode in ("reflect", "zero"):
        out = apply_fitted(fn, [x], Fit(mode, 16))
        assert seen[-1] == (32, 48) and out.shape == x.shape
        torch.testing.assert_close(out, x + 1)
    out = apply_fitted(fn, [x], Fit("crop", 16))
    assert seen[-1] == (16, 32)
    # centred as upstream crop_img: 21 % 16 = 5 -> rows 2..17; 35 % 16 = 3 -> columns 1..32
    torch.testing.assert_close(out[..., 2:18, 1:33], x[..., 2:18, 1:33] + 1)
    rim = torch.ones_like(x, dtype=torch.bool)
    rim[..., 2:18, 1:33] = False
    torch.testing.assert_close(out[rim], x[rim])  # rim kept from the input
    out = apply_fitted(fn, [x], Fit("none", 16))
    assert seen[-1] == (21, 35)
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]


# -- weights table --------------------------------------------------------------------------

@pytest.fixture()
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_weights_download_and_cache(tmp_path, http_server, monkeypatch):
    for var in OFFLINE_ENVS:  # every download switch off
        monkeypatch.delenv(var, raising=False)
    served, base = http_server
    net = build_network("ours", preset="tiny")
    torch.save(net.state_dict(), served / "universal-ir.pth")
    digest = hashlib.sha256((served / "universal-ir.pth").read_bytes()).hexdigest()
    table = {"ours": WeightsEntry("ours", "universal-ir.pth", url=f"{base}/universal-ir.pth", sha256=digest)}
    cache = tmp_path / "cache"
    path = resolve_weights("ours", root=cache, table=table)
    assert path.is_file() and path.is_relative_to(cache)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    load_network("ours", path, preset="tiny")  # the downloaded file loads
    (served / "universal-ir.pth").unlink()
    assert resolve_weights("ours", root=cache, table=table) == path  # from the cache now
    # A corrupted cached file is detected by its sha256.
    path.write_bytes(b"garbage")
    with pytest.raises(WeightsUnavailable, match="sha256"):
        resolve_weights("ours", root=cache, table=table)
    # A failing download names the file and how to get it.
    path.unlink()
    with pytest.raises(WeightsUnavailable, match="--weights ours=PATH"):
        resolve_weights("ours", root=cache, table=table)
    assert not any(p.name.endswith(".part") for p in cache.rglob("*"))


def test_weights_download_waits_for_another_writer_of_the_cache(tmp_path, http_server, monkeypatch, capsys,
                                                                lock_holder):
    """Two processes needing one released file: the second waits for the first's download and
    uses its file; it never writes the same .part beside it."""
    from daclip.weights import cached_path

    for var in OFFLINE_ENVS:  # every download switch off
        monkeypatch.delenv(var, raising=False)
    served, base = http_server
    torch.save(build_network("ours", preset="tiny").state_dict(), tmp_path / "w.pth")
    digest = hashlib.sha256((tmp_path / "w.pth").read_bytes()).hexdigest()
    # Not served: a download by this process would fail, so success means it used the other's file.
    table = {"ours": WeightsEntry("ours", "universal-ir.pth", url=f"{base}/universal-ir.pth", sha256=digest)}
    cache = tmp_path / "cache"
    target = cached_path(table["ours"], cache)
    holder = lock_holder(cache, "weights folder", 1.0, copy=(tmp_path / "w.pth", target))
    assert resolve_weights("ours", root=cache, table=table) == target
    holder.wait(timeout=30)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert f"in use by pid {holder.pid}" in capsys.readouterr().err
    assert not any(p.name.endswith(".part") for p in cache.rglob("*"))


def test_weights_offline_and_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="offline"):
        resolve_weights("ours", root=tmp_path)
    with pytest.raises(WeightsUnavailable, match="train_ir --method nafnet"):
        resolve_weights("nafnet", root=tmp_path)
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    assert resolve_weights("ours", str(f)) == f
    with pytest.raises(WeightsUnavailable, match="not found"):
        resolve_weights("ours", str(tmp_path / "missing.pth"))
    assert parse_weights_overrides(["ours=a.pth,b.pt", "nafnet=c.pth"]) == {"ours": "a.pth,b.pt", "nafnet": "c.pth"}
    with pytest.raises(UserError):
        parse_weights_overrides(["ours"])


def test_bench_ours_smoke(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ours", Path(__file__).parents[2] / "bench" / "bench_ours.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--preset", "tiny", "--size", "24", "--steps", "2", "--batches", "1,2", "--device", "cpu",
                       "--modes", "bf16,fp32", "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())
    assert [(r["batch"], r["mode"]) for r in rows] == [(1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]
    assert all(r["s_per_image"] > 0 for r in rows)
    assert rows[1]["psnr_to_fp32_output"] > 20  # bf16 stays close to fp32 on the same seed
    assert "s/image" in capsys.readouterr().out
