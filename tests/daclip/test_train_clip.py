"""DA-CLIP training: losses, schedule, DDP equivalence, CLI, embeddings cache, evaluation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from builders.errors import UserError
from builders.tasks import DEGRADATIONS

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# -- losses ---------------------------------------------------------------------------------

def test_infonce_matches_numpy():
    from daclip.losses import infonce

    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    scale = torch.tensor(7.0)
    logits = 7.0 * a.double().numpy() @ b.double().numpy().T
    ref = -0.5 * (np.trace(_np_log_softmax(logits, 1)) + np.trace(_np_log_softmax(logits, 0))) / 5
    assert abs(float(infonce(a, b, scale)) - ref) < 1e-5
    # perfectly aligned, well separated pairs: the loss goes to 0 as the scale grows
    eye = torch.eye(4)
    assert float(infonce(eye, eye, torch.tensor(100.0))) < 1e-6
    assert abs(float(infonce(eye, eye, torch.tensor(0.0))) - math.log(4)) < 1e-6


def test_label_aware_loss():
    from daclip.losses import infonce, label_aware_infonce

    g = torch.Generator().manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    s = torch.tensor(10.0)
    distinct = torch.arange(6)
    torch.testing.assert_close(label_aware_infonce(a, b, distinct, s), infonce(a, b, s))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = 10.0 * a.double().numpy() @ b.double().numpy().T
    pos = (labels[:, None] == labels[None, :]).numpy().astype(float)
    tgt = pos / pos.sum(1, keepdims=True)
    ref = -0.5 * ((tgt * _np_log_softmax(logits, 1)).sum(1).mean() + (tgt * _np_log_softmax(logits.T, 1)).sum(1).mean())
    assert abs(float(label_aware_infonce(a, b, labels, s)) - ref) < 1e-5


def test_daclip_loss_sums_the_two_terms():
    from daclip.losses import DaClipLoss, infonce

    g = torch.Generator().manual_seed(2)
    feats = {k: torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
             for k in ("image_features", "text_features", "image_degra_features", "text_degra_features")}
    feats["logit_scale"] = torch.tensor(20.0)
    out = DaClipLoss()(feats)
    c = infonce(feats["image_features"], feats["text_features"], feats["logit_scale"])
    d = infonce(feats["image_degra_features"], feats["text_degra_features"], feats["logit_scale"])
    torch.testing.assert_close(out.total, c + d)
    with pytest.raises(ValueError):
        DaClipLoss(label_aware=True)(feats)


def test_lr_schedule_and_param_groups():
    from daclip.model import create_daclip
    from daclip.train_clip import lr_at, param_groups

    assert lr_at(0, 1000, 100, 1.0) == pytest.approx(0.01)
    assert lr_at(99, 1000, 100, 1.0) == pytest.approx(1.0)
    assert lr_at(100, 1000, 100, 1.0) == pytest.approx(1.0)
    assert lr_at(550, 1000, 100, 1.0) == pytest.approx(0.5)
    assert lr_at(1000, 1000, 100, 1.0) == pytest.approx(0.0)
    model = create_daclip(model_cfg=TINY)
    no_decay, decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    dd = {names[id(p)] for p in decay["params"]}
    assert "logit_scale" in nd and "visual_control.class_embedding" in nd
    assert "visual_control.transformer.zero_modules.0.weight" in dd
    assert "visual_control.transformer.zero_modules.0.bias" in nd
    assert not any(n.startswith("clip.") for n in nd | dd)
    assert len(nd) + len(dd) == len(model.trainable_parameters())
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


# -- DDP --------------------------------------------------------------------------------------

_WORKER = textwrap.dedent('''
    import os, sys, torch, torch.distributed as dist
    sys.path.insert(0, {repo!r})
    torch.set_num_threads(1)
    from daclip.dist import init_distributed, cleanup
    from daclip.losses import DaClipLoss
    from daclip.train_clip import train_step
    from torch.nn.parallel import DistributedDataParallel as DDP

    def batch():
        g = torch.Generator().manual_seed(11)
        images = torch.randn(8, 3, 32, 32, generator=g)
        texts = torch.randint(1, 49000, (8, 154), generator=g)
        texts[:, 76] = 49407
        texts[:, 153] = 49407
        labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
        return images, texts, labels

    def model():
        from daclip.model import create_daclip
        torch.manual_seed(0)
        m = create_daclip(model_cfg={cfg!r})
        with torch.no_grad():  # non-zero control so the content path carries gradients too
            for z in m.visual_control.transformer.zero_modules:
                z.weight.normal_(0, 0.05)
        return m

    def run(info, label_aware):
        m = model()
        images, texts, labels = batch()
        if info.enabled:
            n = images.shape[0] // info.world_size
            sl = slice(info.rank * n, (info.rank + 1) * n)
            images, texts, labels = images[sl], texts[sl], labels[sl]
            net = DDP(m)
        else:
            net = m
        net.train()
        # SGD: the step is lr * gradient, so equal parameters mean equal gradients (Adam's first
        # step is lr * sign(g) and would amplify float noise on zero-gradient entries).
        opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
        loss = train_step(net, images, texts, labels, DaClipLoss(label_aware=label_aware), opt, None, None,
                          torch.device("cpu"))
        return {{"loss": float(loss.total.detach()), "content": float(loss.content), "degradation": float(loss.degradation),
                 "params": {{k: v.detach().clone() for k, v in m.named_parameters() if v.requires_grad}}}}

    if __name__ == "__main__":
        out = sys.argv[1]
        info = init_distributed("gloo")
        if info.is_main:
            torch.save({{k: v.detach().clone() for k, v in model().named_parameters() if v.requires_grad}},
                       out + "_init.pt")
        for la in (False, True):
            result = run(info, la)
            if info.is_main:
                torch.save(result, out + ("_la" if la else "_plain") + ".pt")
        cleanup()
''')



def test_two_process_gloo_ddp_matches_one_process(tmp_path, free_port):
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER.format(repo=str(REPO), cfg=TINY))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    # the one-process reference runs in this process (same code, no process group)
    import runpy

    ns = runpy.run_path(str(worker), run_name="reference")
    single = tmp_path / "single"
    info = ns["init_distributed"]("gloo")
    assert not info.enabled
    torch.save({k: v.detach().clone() for k, v in ns["model"]().named_parameters() if v.requires_grad},
               f"{single}_init.pt")
    for tag, la in (("plain", False), ("la", True)):
        torch.save(ns["run"](info, la), f"{single}_{tag}.pt")
    port = free_port
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(port), str(worker), str(tmp_path / "ddp")],
        env=env, check=False, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # The gather with gradient uses no deprecated collective (it used to warn once per rank and step).
    assert "FutureWarning" not in ddp.stderr and "deprecated" not in ddp.stderr, ddp.stderr[-3000:]
    init = torch.load(tmp_path / "single_init.pt", weights_only=True)
    for tag in ("plain", "la"):
        a = torch.load(tmp_path / f"single_{tag}.pt", weights_only=True)
        b = torch.load(tmp_path / f"ddp_{tag}.pt", weights_only=True)
        assert abs(a["loss"] - b["loss"]) < 1e-5, (tag, a["loss"], b["loss"])
        assert abs(a["content"] - b["content"]) < 1e-5
        assert a["loss"] > 0.5  # a real loss, not a degenerate 0
        for k, v in a["params"].items():
            torch.testing.assert_close(b["params"][k], v, atol=1e-6, rtol=1e-5, msg=f"{tag} {k}")
        moved = [k for k, v in a["params"].items() if not torch.equal(v, init[k])]
        assert len(moved) > len(a["params"]) // 2  # the step really changed the controller


# -- data -------------------------------------------------------------------------------------

def test_captions_csv_reading(tmp_path):
    from daclip.data import read_captions_csv

    (tmp_path / "img").mkdir()
    csv = tmp_path / "daclip_train.csv"
    csv.write_text("filepath\ttitle\n"
                   "img/a.png\ta man riding a bike: hazy\n"
                   f"{tmp_path / 'img' / 'b.png'}\ta cat on a mat: noisy\n")
    items = read_captions_csv(csv)
    assert [(it.caption, it.degradation) for it in items] == [
        ("a man riding a bike", "hazy"), ("a cat on a mat", "noisy")]
    assert items[0].path == tmp_path / "img" / "a.png"
    bad = tmp_path / "bad.csv"
    bad.write_text("filepath\ttitle\nimg/a.png\ta man: riding: hazy\n")
    with pytest.raises(UserError, match="bad.csv:2: .*exactly one"):
        read_captions_csv(bad)
    # Against a dataset's vocabulary, a word it does not have is named.
    from builders.vocabulary import DACLIP
    foggy = tmp_path / "foggy.csv"
    foggy.write_text("filepath\ttitle\nimg/a.png\ta man: foggy\n")
    with pytest.raises(UserError, match="foggy.csv:2: unknown degradation 'foggy'"):
        read_captions_csv(foggy, DACLIP)
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("path,caption\nx,y\n")
    with pytest.raises(UserError, match="filepath<TAB>title"):
        read_captions_csv(nohead)
    with pytest.raises(UserError, match="not found"):
        read_captions_csv(tmp_path / "missing.csv")


def test_manifest_items_with_template_and_csv_captions(mini_root, tmp_path):
    from daclip.data import (
        TEMPLATE_CAPTION,
        DaClipDataset,
        eval_transform,
        items_from_manifest,
    )
    from daclip.model import get_tokenizer

    items = items_from_manifest(mini_root, "val", "none")
    assert len(items) == 50 and {it.caption for it in items} == {TEMPLATE_CAPTION}
    assert {it.degradation for it in items} == set(DEGRADATIONS)
    with pytest.raises(UserError, match="--captions none"):
        items_from_manifest(mini_root, "val", "auto")
    csv = tmp_path / "val.csv"
    lines = ["filepath\ttitle"] + [f"{it.path}\tphoto number {i}: {it.degradation}" for i, it in enumerate(items)]
    csv.write_text("\n".join(lines) + "\n")
    with_csv = items_from_manifest(mini_root, "val", str(csv))
    assert [it.caption for it in with_csv] == [f"photo number {i}" for i in range(50)]
    ds = DaClipDataset(with_csv[:3], eval_transform(32), get_tokenizer(None))
    image, text, label = ds[2]
    assert image.shape == (3, 32, 32) and text.shape == (154,) and int(label) == DEGRADATIONS.index(with_csv[2].degradation)
    tok = get_tokenizer(None)
    assert torch.equal(text[:77], tok(["photo number 2"])[0])
    assert torch.equal(text[77:], tok([with_csv[2].degradation])[0])


# -- CLI: training, resume, embeddings, evaluation -------------------------------------------

@pytest.fixture(scope="module")
def tiny_cfg_file(tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("cfg") / "tiny32.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def test_train_cli_checkpoints_resumes_and_writes_metrics(mini_root, tmp_path, tiny_cfg_file, capsys):
    from daclip.checkpoint import load_daclip
    from daclip.train_clip import main

    out = tmp_path / "run"
    args = ["--root", str(mini_root), "--captions", "none", "--model-cfg", tiny_cfg_file, "--pretrained", "none",
            "--batch-size", "40", "--lr", "1e-3", "--warmup", "2", "--workers", "0", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    hist = json.loads((out / "metrics.json").read_text())
    assert len(hist) == 1 and hist[0]["step"] == 4  # 160 images / 40
    assert 0.0 <= hist[0]["val_accuracy"] <= 1.0 and hist[0]["val_n"] == 50
    assert set(hist[0]["val_accuracy_per_type"]) == set(DEGRADATIONS)
    assert (out / "last.pt").is_file() and (out / "daclip.pt").is_file()
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and "optimizer" in ckpt
    assert main([*args, "--epochs", "2", "--resume", "auto", "--label-aware"]) == 0
    hist = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2] and hist[1]["step"] == 8
    import yaml

    model = load_daclip(out / "daclip.pt", model_cfg=yaml.safe_load(Path(tiny_cfg_file).read_text()))
    last = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["visual_control.proj"], last["visual_control.proj"])
    # training changed the controller but never the frozen CLIP
    first_ckpt = ckpt["state_dict"]
    assert torch.equal(last["clip.visual.proj"], first_ckpt["clip.visual.proj"])
    assert not torch.equal(last["visual_control.proj"], first_ckpt["visual_control.proj"])


def test_train_cli_errors(mini_root, tmp_path, capsys):
    from daclip.train_clip import main

    assert main(["--root", str(mini_root), "--model-cfg", "tiny", "--out", str(tmp_path)]) == 2
    assert "--captions none" in capsys.readouterr().err
    assert main(["--root", str(tmp_path / "nothing"), "--captions", "none", "--model-cfg", "tiny",
                 "--pretrained", "none", "--out", str(tmp_path)]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert main(["--out", str(tmp_path)]) == 2
    assert "--root" in capsys.readouterr().err
    assert main(["--root", str(mini_root), "--model-cfg", "tiny", "--pretrained", str(tmp_path / "x.pt"),
                 "--captions", "none", "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_embeddings_are_cached_and_match_the_model(mini_root, tmp_path):
    import shutil

    from builders.io import read_image
    from builders.manifest import read_manifest
    from daclip.embed import (
        compute_embeddings,
        embeddings_path,
        load_embeddings,
        model_fingerprint,
    )
    from daclip.model import clip_preprocess, create_daclip

    root = tmp_path / "set"
    shutil.copytree(mini_root, root)
    torch.manual_seed(0)
    model = create_daclip(model_cfg=TINY)
    path, table = compute_embeddings(model, root, splits=["val"], batch_size=16, progress=False)
    assert path == embeddings_path(root, model_fingerprint(model)) and path.is_file()
    df = read_manifest(root)
    val = df[df["split"] == "val"]
    assert len(table) == len(val) and table.content.shape == (50, 16)
    row = val.iloc[7]
    img = torch.from_numpy(np.array(read_image(root / row["lq_path"]))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        c, d = model.encode_image(clip_preprocess(img, 32), control=True)
    c2, d2 = table.lookup([row["sha256"]])
    torch.testing.assert_close(c2, c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d2, d, atol=1e-5, rtol=1e-5)
    # second run: reuses the 50 cached rows, adds only the 160 train images
    mtime = path.stat().st_mtime_ns
    _, again = compute_embeddings(model, root, splits=["val"], progress=False)
    assert path.stat().st_mtime_ns == mtime and len(again) == 50
    _, full = compute_embeddings(model, root, progress=False)
    assert len(full) == 210
    torch.testing.assert_close(full.lookup([row["sha256"]])[0], c2)
    assert len(load_embeddings(path)) == 210
    # another model gets another cache file
    other = create_daclip(model_cfg=TINY)
    assert model_fingerprint(other) != model_fingerprint(model)
    with pytest.raises(KeyError):
        table.lookup(["0" * 64])


def test_embed_and_evaluate_clis(mini_root, tmp_path, tiny_cfg_file, capsys):
    import shutil

    from daclip.checkpoint import save_daclip
    from daclip.embed import main as embed_main
    from daclip.evaluate import main as eval_main
    from daclip.model import create_daclip

    root = tmp_path / "set"
    shutil.copytree(mini_root, root)
    import yaml

    torch.manual_seed(0)
    ckpt = tmp_path / "d.pt"
    save_daclip(create_daclip(model_cfg=yaml.safe_load(Path(tiny_cfg_file).read_text())), ckpt)
    assert embed_main(["--root", str(root), "--checkpoint", str(ckpt), "--model-cfg", tiny_cfg_file,
                       "--split", "val", "--device", "cpu"]) == 0
    assert "50 embeddings (dim 16)" in capsys.readouterr().out
    out = tmp_path / "eval"
    assert eval_main(["--root", str(root), "--checkpoint", str(ckpt), "--model-cfg", tiny_cfg_file,
                      "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "clip-zero-shot" in printed and "overall" in printed
    res = json.loads((out / "degradation_eval.json").read_text())
    assert set(res) == {"clip-zero-shot", "daclip"}
    for r in res.values():
        cm = np.array(r["confusion"])
        assert cm.shape == (10, 10) and cm.sum() == r["n"] == 50
        assert (cm.sum(1) == 5).all()  # five val images per type
        assert r["labels"] == list(DEGRADATIONS)
        for i, w in enumerate(DEGRADATIONS):
            assert r["accuracy"][w] == pytest.approx(cm[i, i] / 5)
        assert r["overall"] == pytest.approx(np.trace(cm) / 50)
    import pandas as pd

    preds = pd.read_parquet(out / "degradation_predictions.parquet")
    assert len(preds) == 50 and set(preds.columns) >= {"id", "type", "pred_daclip", "pred_clip-zero-shot"}
    assert eval_main(["--root", str(root), "--checkpoint", str(tmp_path / "none.pt"), "--model-cfg", tiny_cfg_file,
                      "--out", str(out)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_summarise_known_values():
    from daclip.evaluate import summarise

    true = np.array([0, 0, 1, 1, 1, 3])
    pred = np.array([0, 1, 1, 1, 0, 3])
    r = summarise(true, pred)
    assert r["accuracy"] == {DEGRADATIONS[0]: 0.5, DEGRADATIONS[1]: pytest.approx(2 / 3), DEGRADATIONS[3]: 1.0}
    assert r["overall"] == pytest.approx(4 / 6) and r["n"] == 6
    assert r["confusion"][1][0] == 1 and r["confusion"][0][1] == 1


def test_bench_script_runs_on_cpu(tiny_cfg_file):
    res = subprocess.run([sys.executable, str(REPO / "bench" / "bench_daclip_train.py"), "--model-cfg", tiny_cfg_file,
                          "--batch-size", "4", "--steps", "2", "--warmup", "1", "--device", "cpu"],
                         check=False, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "images/s" in res.stdout and "peak" in res.stdout
