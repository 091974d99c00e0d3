"""Cost columns: FLOPs against a hand count, and the figures in summary, CSV, LaTeX and report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from benchmark.cost import network_flops
from benchmark.methods import Method

pytestmark = pytest.mark.usefixtures("one_thread")


class _Toy(Method):
    """conv 3->8 (3x3) + ReLU + conv 8->3 (1x1), called ``steps`` times per image after a small
    "conditioner" matmul, the way the toolkit's network methods call their network."""

    def __init__(self, steps: int):
        self.steps = steps
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))
        self.cond = torch.nn.Linear(64, 10, bias=False)

    def _call(self):
        return lambda x, **ctx: self.net(x)

    def restore_batch(self, lqs, tasks, keys=None):
        x = torch.from_numpy(np.stack(lqs)).permute(0, 3, 1, 2).float() / 255
        self.cond(torch.ones(1, 64))
        run = self._call()
        for _ in range(self.steps):
            x = run(x)
        return [(x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()[0]]


@pytest.mark.parametrize("steps", [1, 5])
def test_flops_equal_a_hand_count(steps):
    hw = 256 * 256
    conv1 = 2 * (3 * 3 * 3) * 8 * hw  # 2 FLOPs per multiply-add, per output value
    conv2 = 2 * 8 * 3 * hw
    cond = 2 * 64 * 10
    f = network_flops(_Toy(steps))
    assert f == {"size": 256, "flops_per_call": conv1 + conv2, "calls_per_image": steps,
                 "other_flops_per_image": cond, "flops_per_image": steps * (conv1 + conv2) + cond}
    assert conv1 + conv2 == 31_457_280


def test_learning_free_method_has_no_flops():
    class Plain(Method):
        def restore(self, lq, task):
            return lq

    assert network_flops(Plain()) is None


def test_cost_in_summary_csv_latex_and_report(mini_root, tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark.run import main as bench_main
    from daclip.networks import build_network

    torch.manual_seed(0)
    net = build_network("nafnet", preset="tiny")
    torch.save(net.state_dict(), tmp_path / "naf.pth")
    (tmp_path / "naf.pth.json").write_text(json.dumps({"network": "nafnet", "config": {"preset": "tiny"}}))
    out = tmp_path / "run"
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity,nafnet",
                       "--weights", f"nafnet={tmp_path / 'naf.pth'}", "--metrics", "psnr", "--tasks", "noisy",
                       "--limit", "1", "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    naf = next(m for m in s["methods"] if m["name"] == "nafnet")
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net.eval()(torch.rand(1, 3, 256, 256))
    assert naf["flops"]["flops_per_call"] == fc.get_total_flops() > 0
    assert naf["flops"]["calls_per_image"] == 1
    assert naf["peak_memory_mb"] > 0 and naf["peak_memory_kind"] == "process peak RSS"
    ident = next(m for m in s["methods"] if m["name"] == "identity")
    assert ident["flops"] is None
    rows = [r for r in csv.DictReader((out / "tables.csv").open()) if r["method"] == "nafnet"]
    assert int(rows[0]["flops_per_call"]) == naf["flops"]["flops_per_call"]
    assert float(rows[0]["peak_memory_mb"]) == naf["peak_memory_mb"]
    tex = (out / "tables.tex").read_text()
    md = (out / "tables.md").read_text()
    g = format(naf["flops"]["flops_per_call"] / 1e9, ".3g")
    assert "GFLOPs/call" in tex and "Peak mem (MB)" in md and f"| {g} |" in md
    html = (out / "report" / "index.html").read_text()
    overview = html.split('id="overview-table"')[1].split("</table>")[0]
    assert "GFLOPs / call" in overview and g in overview and "MB" in overview


@pytest.mark.parametrize("steps", [2, 3])
def test_diffusion_counts_its_configured_steps(tmp_path, steps):
    """IR-SDE (tiny UNet): calls per image = the configured steps, each call the network's FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark.methods import create_method
    from daclip.networks import build_network

    torch.manual_seed(0)
    net = build_network("irsde", preset="tiny")
    torch.save(net.state_dict(), tmp_path / "irsde.pth")
    (tmp_path / "irsde.pth.json").write_text(json.dumps({"network": "irsde", "config": {"preset": "tiny"}}))
    m = create_method("irsde", weights=str(tmp_path / "irsde.pth"), steps=str(steps))
    m.prepare("cpu")
    f = network_flops(m)
    assert f["calls_per_image"] == steps
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m.net(x, x, torch.tensor([1.0]))
    assert f["flops_per_call"] == fc.get_total_flops() > 0
    assert f["flops_per_image"] == steps * f["flops_per_call"] + f["other_flops_per_image"]
