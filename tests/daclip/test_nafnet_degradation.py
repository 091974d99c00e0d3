"""NAFNet + Degradation (Table 3): the network, training with daclip.train_ir, and a benchmark run."""

import json

import numpy as np
import pytest
import torch

from daclip.networks import build_network

from test_train_ir import COMMON, make_train_set

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def test_network_is_nafnet_daclip_without_the_content_branch():
    with torch.device("meta"):
        full = build_network("nafnet-daclip", preset="sidd-w32")
        degr = build_network("nafnet-degradation", preset="sidd-w32")
    full_keys, degr_keys = set(full.state_dict()), set(degr.state_dict())
    assert degr_keys == {k for k in full_keys if not k.startswith("middle_attn.")}
    assert any(k.startswith("degra_mlp.") for k in degr_keys)
    n_full = sum(p.numel() for p in full.parameters())
    n_degr = sum(p.numel() for p in degr.parameters())
    n_attn = sum(p.numel() for n, p in full.named_parameters() if n.startswith("middle_attn."))
    assert n_degr == n_full - n_attn > 0


def test_output_follows_the_degradation_embedding_only():
    torch.manual_seed(0)
    net = randomise(build_network("nafnet-degradation", preset="tiny"))
    with torch.no_grad():  # conditioning weights of order one, so their effect is plain to see
        for n, p in net.named_parameters():
            if n.startswith("degra_mlp") or ".modulation." in n:
                p.mul_(10)
    x = torch.rand(1, 3, 20, 24)
    a, b = torch.randn(1, 32), torch.randn(1, 32)
    with torch.no_grad():
        out_a, out_b, plain = net(x, text_context=a), net(x, text_context=b), net(x)
        again = net(x, text_context=a)
    assert out_a.shape == x.shape
    assert torch.equal(out_a, again)
    assert (out_a - out_b).abs().max() > 1e-3  # the degradation embedding changes the output
    assert (out_a - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="content branch"):
        net(x, text_context=a, image_context=torch.randn(1, 32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from daclip.train_ir import main

    data = make_train_set(tmp_path_factory.mktemp("nd-data"))
    out = tmp_path_factory.mktemp("nd-train")
    rc = main(["--method", "nafnet-degradation", "--preset", "tiny", "--daclip", "tiny", "--root", str(data),
               "--out", str(out), *COMMON, "--iters", "3", "--val-every", "0"])
    assert rc == 0
    return data, out


def test_trains_a_few_steps_with_a_tiny_daclip(trained):
    _, out = trained
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3
    side = json.loads((out / "ema.pth.json").read_text())
    assert side["network"] == "nafnet-degradation" and side["method"] == "nafnet-degradation"
    assert side["config"] == {"preset": "tiny", "context_dim": 32}
    keys = set(torch.load(out / "ema.pth", weights_only=True))
    assert not any(k.startswith("middle_attn.") for k in keys) and "degra_mlp.0.weight" in keys


def test_runs_in_the_benchmark_with_its_trained_weights(trained, tmp_path):
    from benchmark.run import main

    data, out = trained
    run = tmp_path / "run"
    rc = main(["--dataset", str(data), "--methods", "identity,nafnet-degradation", "--metrics", "psnr,ssim",
               "--weights", f"nafnet-degradation={out / 'ema.pth'}", "--out", str(run), "--quiet"])
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    row = next(m for m in summary["methods"] if m["name"] == "nafnet-degradation")
    assert row["display"] == "NAFNet + Degradation"
    psnr = summary["tables"]["psnr"]["nafnet-degradation"]
    assert set(psnr) == {"hazy", "noisy", "average"} and all(np.isfinite(v) for v in psnr.values())
    # The benchmark's output is the trained network's restoration of the LQ image.
    from benchmark.methods import create_method
    from builders.io import read_image

    method = create_method("nafnet-degradation", weights=str(out / "ema.pth"))
    method.prepare("cpu")
    lq = read_image(data / "val" / "hazy" / "LQ" / "img0.png")
    saved = read_image(run / "outputs" / "nafnet-degradation" / "val" / "hazy" / "img0.png")
    assert np.array_equal(method.restore(lq, "hazy"), saved)
