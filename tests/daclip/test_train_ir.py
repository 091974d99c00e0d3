"""daclip.train_ir: sampling, augmentation, training smoke runs, resume, DDP on gloo."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from builders.io import save_image, sha256_file
from daclip.pair_data import BalancedSampler, PairDataset, augment_pair
from daclip.train_ir import main

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_balanced_sampler_balances_and_shards():
    # 90 pairs of one type, 10 of another: each type is still drawn about half the time.
    types = ["noisy"] * 90 + ["hazy"] * 10
    s = BalancedSampler(types, samples_per_epoch=4000, seed=1)
    got = list(s)
    counts = Counter(types[i] for i, _ in got)
    assert abs(counts["hazy"] - 2000) < 150 and abs(counts["noisy"] - 2000) < 150
    # Two ranks: disjoint halves of the same global stream, together the single-rank stream.
    r0 = list(BalancedSampler(types, 4000, seed=1, rank=0, world_size=2))
    r1 = list(BalancedSampler(types, 4000, seed=1, rank=1, world_size=2))
    assert len(r0) == len(r1) == 2000
    assert sorted(r0 + r1) == sorted(got)
    assert not set(d for _, d in r0) & set(d for _, d in r1)
    # A new epoch draws a new stream; the same epoch repeats exactly.
    s.set_epoch(1)
    assert list(s) != got
    s.set_epoch(0)
    assert list(s) == got


def test_augment_pair_applies_the_same_transform():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 200, (50, 40, 3), dtype=np.uint8)
    lq = (255 - gt).astype(np.uint8)  # a pixel-wise function of GT
    seen = set()
    for seed in range(12):
        a, b = augment_pair(lq, gt, 32, np.random.default_rng(seed))
        assert a.shape == b.shape == (32, 32, 3)
        assert np.array_equal(a, 255 - b)
        seen.add(a.tobytes())
    assert len(seen) > 6  # crops, flips and rotations vary
    small, _ = augment_pair(lq[:20, :20], gt[:20, :20], 32, np.random.default_rng(0))
    assert small.shape == (32, 32, 3)  # padded by reflection when smaller than the patch


def make_train_set(root: Path, types=("noisy", "hazy"), n=3, size=40):
    from builders.manifest import write_manifest

    rows = []
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for task in types:
            for k in range(n if split == "train" else 1):
                gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                lq = np.clip(gt.astype(int) + rng.normal(0, 40, gt.shape), 0, 255).astype(np.uint8)
                name = f"img{k}.png"
                for kind, img in (("LQ", lq), ("GT", gt)):
                    save_image(root / split / task / kind / name, img)
                rows.append({"id": f"{split}/{task}/img{k}", "type": task, "split": split, "name": name,
                             "lq_path": f"{split}/{task}/LQ/{name}", "gt_path": f"{split}/{task}/GT/{name}",
                             "source": "test", "licence": "test", "width": size, "height": size,
                             "parameters": "{}", "sha256": sha256_file(root / split / task / "LQ" / name),
                             "gt_sha256": sha256_file(root / split / task / "GT" / name)})
    write_manifest(root, rows)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_train_set(tmp_path_factory.mktemp("trainset"))


COMMON = ["--patch", "32", "--batch", "2", "--workers", "0", "--quiet", "--val-limit", "1", "--threads", "1"]


def test_dataset_items(data):
    from daclip.pair_data import load_pairs

    pairs = load_pairs(data, "train", ["noisy", "hazy"])
    ds = PairDataset(pairs, patch=24, seed=3, key_view=True)
    item = ds[(0, 5)]
    assert item["lq"].shape == item["gt"].shape == item["lq_key"].shape == (3, 24, 24)
    assert torch.equal(ds[(0, 5)]["lq"], item["lq"])  # a function of (pair, draw)
    assert 0 <= item["lq"].min() and item["lq"].max() <= 1


def test_train_nafnet_resume_and_benchmark_load(data, tmp_path):
    out = tmp_path / "naf"
    args = ["--method", "nafnet", "--preset", "tiny", "--root", str(data), "--out", str(out), *COMMON]
    assert main([*args, "--iters", "3", "--save-every", "2", "--val-every", "0"]) == 0
    for name in ("last.pt", "ema.pth", "ema.pth.json", "log.jsonl", "val.json", "config.json"):
        assert (out / name).is_file(), name
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["step"] == 3
    val = json.loads((out / "val.json").read_text())
    assert set(val) >= {"noisy", "hazy", "mean", "step"}
    # Resume continues from the saved step instead of starting over.
    assert main([*args, "--iters", "5", "--save-every", "10", "--val-every", "0", "--resume"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 5
    # The EMA file runs as the benchmark method through its sidecar config.
    from benchmark.methods import create_method

    method = create_method("nafnet", weights=str(out / "ema.pth"))
    method.prepare("cpu")
    lq = np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    assert method.restore(lq, "noisy").shape == lq.shape


def test_train_ours_with_tiny_daclip(data, tmp_path):
    out = tmp_path / "ours"
    rc = main(["--method", "ours", "--preset", "tiny", "--daclip", "tiny", "--root", str(data), "--out", str(out),
               *COMMON, "--iters", "2", "--val-steps", "2", "--tasks", "noisy"])
    assert rc == 0
    side = json.loads((out / "ema.pth.json").read_text())
    assert side["network"] == "ours" and side["config"] == {"preset": "tiny", "context_dim": 32}
    assert Path(side["daclip_weights"]).is_file() and side["daclip_cfg"]["embed_dim"] == 32
    from benchmark.methods import create_method

    method = create_method("ours", weights=f"{out / 'ema.pth'},{side['daclip_weights']}", steps=2)
    method.prepare("cpu")
    lq = np.random.default_rng(0).integers(0, 256, (20, 18, 3), dtype=np.uint8)
    assert method.restore(lq, "noisy").shape == lq.shape


def test_cli_errors(tmp_path, data, capsys):
    assert main(["--method", "nafnet", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["--method", "ours", "--root", str(data), "--out", str(tmp_path / "o2"), *COMMON, "--iters", "1"]) == 2
    assert "--daclip" in capsys.readouterr().err



def test_torchrun_ddp_two_processes(data, tmp_path, free_port):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port), "-m", "daclip.train_ir", "--method", "nafnet", "--preset", "tiny",
           "--root", str(data), "--out", str(out), *COMMON, "--iters", "2", "--val-every", "0", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 2
    # One writer: one log line per logged step, not one per rank.
    steps = [json.loads(line).get("step") for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1


@pytest.mark.parametrize("method", ["nafnet-daclip", "airnet"])
def test_train_other_methods_smoke(data, tmp_path, method):
    extra = ["--daclip", "tiny"] if method == "nafnet-daclip" else []
    out = tmp_path / method
    rc = main(["--method", method, "--preset", "tiny", "--root", str(data), "--out", str(out), *COMMON, *extra,
               "--iters", "1", "--tasks", "hazy"])
    assert rc == 0
    assert json.loads((out / "ema.pth.json").read_text())["network"] == method
    assert "mean" in json.loads((out / "val.json").read_text())


def test_ctrl_c_keeps_finished_steps(data, tmp_path, monkeypatch):
    from daclip.families import Direct

    real = Direct.loss
    calls = {"n": 0}

    def interrupting(self, net, batch, gen):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, net, batch, gen)

    monkeypatch.setattr(Direct, "loss", interrupting)
    out = tmp_path / "int"
    rc = main(["--method", "nafnet", "--preset", "tiny", "--root", str(data), "--out", str(out), *COMMON,
               "--iters", "10", "--save-every", "100"])
    assert rc == 130
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 2
