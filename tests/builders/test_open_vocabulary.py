"""A dataset's own degradation types, from --index to the report (issue 19).

Two new types (underwater, moire_pattern) go through every command with tiny models; the
vocabulary is asserted at each step. The released vocabulary is extended by one type on a
replica of the released checkpoint format.
"""

from __future__ import annotations

import csv
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from builders.build import main as build_main
from builders.errors import UserError
from builders.manifest import read_manifest, read_vocabulary
from builders.tasks import DEGRADATIONS
from builders.vocabulary import (
    DACLIP,
    METADATA_KEY,
    Vocabulary,
    check_type_name,
    default_prompt,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TYPES = ("moire_pattern", "underwater")  # the dataset's order: its type names sorted
PROMPTS = ("moire pattern", "underwater")  # default prompt text: '_' and '-' read as spaces


def _photo(rng, size=40):
    x = np.linspace(0, 1, size)
    base = np.stack([np.outer(x, 1 - x), np.outer(1 - x, x), np.outer(x, x)], axis=2)
    return np.clip(base * 255 + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)


def _degrade(gt: np.ndarray, task: str) -> np.ndarray:
    f = gt.astype(np.float64)
    if task == "underwater":  # a blue-green cast, red absorbed
        f = f * np.array([0.4, 0.9, 1.0]) + np.array([0, 20, 40])
    elif task == "moire_pattern":
        yy, xx = np.mgrid[:gt.shape[0], :gt.shape[1]]
        f = f + 40 * np.sin(0.9 * xx + 0.7 * yy)[..., None]
    else:  # noisy
        f = f + np.random.default_rng(1).normal(0, 25, f.shape)
    return np.clip(f, 0, 255).astype(np.uint8)


def make_pairs(root: Path, types=TYPES, train=4, val=3, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for task in types:
            for k in range(n):
                gt = _photo(rng)
                for sub, img in (("GT", gt), ("LQ", _degrade(gt, task))):
                    d = root / split / task / sub
                    d.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(img).save(d / f"{task[:3]}{k}.png")
    return root


# ---------------------------------------------------------------- the rules


def test_type_names_and_default_prompts():
    for ok in ("underwater", "moire", "low_haze_rain", "motion-blurry", "x" * 64, "a.b"):
        assert check_type_name(ok, "here") == ok
    for bad, why in (("a b", "whitespace"), ("a/b", "path separator"), ("a..b", "'..'"), ("a\x01", "control"),
                     ("x" * 65, "longer than 64"), ("", "empty"), ("val", "split")):
        with pytest.raises(UserError, match=f"here: type name .* is refused \\(.*{why}"):
            check_type_name(bad, "here")
    assert default_prompt("low_haze_rain") == "low haze rain"
    assert default_prompt("under-water") == "under water"
    assert default_prompt("motion-blurry") == "motion-blurry"  # the DA-CLIP words are prompted verbatim
    assert DACLIP.types == DACLIP.prompts == DEGRADATIONS
    ext = DACLIP.extended(Vocabulary.of(["noisy", "underwater"]))
    assert ext.types == (*DEGRADATIONS, "underwater") and ext.prompt("underwater") == "underwater"


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from captioning.tiny import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def test_two_new_types_from_index_to_report(tmp_path, tiny_blip, capsys):
    ds = make_pairs(tmp_path / "ds")
    (ds / "val" / "empty_type" / "LQ").mkdir(parents=True)
    (ds / "val" / "empty_type" / "GT").mkdir()

    # 1. --index: any folder names; the vocabulary goes into the manifest's parquet metadata.
    assert build_main(["--index", str(ds)]) == 0
    out = capsys.readouterr().out
    assert "warning: val/empty_type/{LQ,GT} holds no images; left out" in out
    vocab = read_vocabulary(ds)
    assert (vocab.types, vocab.prompts) == (TYPES, PROMPTS)
    man = read_manifest(ds)
    assert sorted(set(man["type"])) == list(TYPES) and len(man) == 14
    meta = json.loads(pq.read_schema(ds / "manifest.parquet").metadata[METADATA_KEY])
    assert meta == {"types": list(TYPES), "prompts": list(PROMPTS)}

    # 2. captions (tiny BLIP): the title's degradation text is the type's prompt text.
    from captioning import run as caprun

    assert caprun.main(["--root", str(ds), "--model", str(tiny_blip), "--workers", "1", "--max-new-tokens", "8",
                        "--batch-size", "16", "--device", "cpu", "--quiet"]) == 0
    for split, n in (("train", 8), ("val", 6)):
        rows = pd.read_csv(ds / f"daclip_{split}.csv", sep="\t")
        assert len(rows) == n
        words = [t.split(": ")[1] for t in rows["title"]]  # the official loader's split
        expect = [PROMPTS[TYPES.index(Path(p).parent.parent.name)] for p in rows["filepath"]]
        assert words == expect and words == sorted(words, key=PROMPTS.index)
    assert read_vocabulary(ds) == vocab  # captioning rewrote the manifest and kept the vocabulary

    # 3. train_clip on the captions; the checkpoint's config.json records the vocabulary.
    from daclip.train_clip import main as train_clip

    run = tmp_path / "clip"
    assert train_clip(["--root", str(ds), "--model-cfg", "tiny", "--pretrained", "none", "--batch-size", "4",
                       "--epochs", "1", "--lr", "1e-3", "--warmup", "1", "--workers", "0", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["vocabulary"] == {"types": list(TYPES), "prompts": list(PROMPTS)}
    hist = json.loads((run / "metrics.json").read_text())
    assert set(hist[-1]["val_accuracy_per_type"]) == set(TYPES) and hist[-1]["val_n"] == 6

    # 4. daclip.evaluate over the checkpoint's vocabulary (CLIP zero-shot and DA-CLIP).
    from daclip.evaluate import main as evaluate

    ev = tmp_path / "ev"
    assert evaluate(["--root", str(ds), "--checkpoint", str(run / "daclip.pt"), "--model-cfg", "tiny",
                     "--out", str(ev), "--device", "cpu"]) == 0
    res = json.loads((ev / "degradation_eval.json").read_text())
    for model in ("clip-zero-shot", "daclip"):
        assert res[model]["labels"] == list(TYPES) and res[model]["n"] == 6
        cm = np.array(res[model]["confusion"])
        assert cm.shape == (2, 2) and cm.sum(axis=1).tolist() == [3, 3]
    preds = pd.read_parquet(ev / "degradation_predictions.parquet")
    assert set(preds["pred_daclip"]) <= set(TYPES)

    # 5. train_ir, class-balanced over the two types.
    from daclip.train_ir import main as train_ir

    ir = tmp_path / "naf"
    assert train_ir(["--method", "nafnet", "--preset", "tiny", "--root", str(ds), "--out", str(ir), "--patch", "32",
                     "--batch", "2", "--workers", "0", "--quiet", "--val-limit", "1", "--threads", "1",
                     "--iters", "2", "--val-every", "0"]) == 0
    val = json.loads((ir / "val.json").read_text())
    assert set(TYPES) <= set(val)

    # 6. daclip.restore --daclip predicts the user's types (the vocabulary beside the checkpoint).
    from daclip.restore import main as restore

    photos = ds / "val" / "underwater" / "LQ"
    rout = tmp_path / "restored"
    assert restore([str(photos), "--method", "nafnet", "--weights", str(ir / "ema.pth"), "--daclip",
                    str(run / "daclip.pt"), "--out", str(rout), "--device", "cpu", "--quiet"]) == 0
    with open(rout / "restore.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(r["degradation"] in TYPES for r in rows)
    # The demo's prediction is over the same types (its restore call, without the Gradio page).
    from builders.io import read_image
    from daclip.app import AUTO, DemoConfig, restore_for_demo

    lq = read_image(next(photos.iterdir()))
    image, label = restore_for_demo(DemoConfig(daclip=str(run / "daclip.pt"), device="cpu"), lq, "classical", AUTO)
    assert set(label) == set(TYPES) and sum(label.values()) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(image, lq)  # classical has nothing for either type: the input, as said once
    # classical: told a type it has no restorer for, one error line.
    capsys.readouterr()
    assert restore([str(photos), "--method", "classical", "--task", "underwater", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --task underwater: no classical restorer for type underwater"]

    # 7. benchmark.run: per-type tables in the dataset's order, the confusion matrix over its types,
    #    classical says once per type that it has no restorer and its row shows the type skipped.
    from benchmark.run import main as bench

    bout = tmp_path / "bench"
    capsys.readouterr()
    assert bench(["--dataset", str(ds), "--methods", "identity,classical,nafnet", "--weights",
                  f"nafnet={ir / 'ema.pth'}", "--metrics", "psnr,ssim", "--degradation-eval", str(ev),
                  "--out", str(bout), "--quiet", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    for t in TYPES:
        assert err.count(f"no classical restorer for type {t}") == 1
    summary = json.loads((bout / "summary.json").read_text())
    assert summary["tasks"] == list(TYPES) and summary["counts"] == {"moire_pattern": 3, "underwater": 3}
    assert summary["skipped_tasks"] == {"classical": {t: f"no classical restorer for type {t}" for t in TYPES}}
    assert [e["task"] for e in summary["examples"]] == list(TYPES)
    assert summary["tables"]["psnr"]["classical"] == {"moire_pattern": None, "underwater": None, "average": None}
    per_image = pd.read_parquet(bout / "per_image.parquet")
    assert set(per_image["type"]) == set(TYPES)
    assert set(per_image["method"]) == {"identity", "nafnet"}  # classical restored nothing
    md = (bout / "tables.md").read_text()
    assert "| Method | moire_pattern | underwater | Average |" in md
    assert "| Classical (type-aware) | skipped | skipped | - |" in md
    html = (bout / "report" / "index.html").read_text()
    assert html.index(">moire_pattern<br>") < html.index(">underwater<br>")  # per-type headers, dataset order
    assert "Method <b>classical</b>, type <b>underwater</b> skipped: no classical restorer for type underwater" in html
    assert html.count('title="no classical restorer for type underwater">skipped</td>') == 2  # PSNR and SSIM
    assert "<tr><td>moire_pattern</td>" in html and "<tr><td>underwater</td>" in html  # confusion-matrix rows


def test_bad_names_mismatch_and_empty_folders_are_one_line(tmp_path, capsys):
    bad = make_pairs(tmp_path / "bad", types=("under water",), train=1, val=1)
    assert build_main(["--index", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --index {bad}: folder train/under water: type name "
                                               "'under water' is refused (whitespace)")
    long = make_pairs(tmp_path / "long", types=("x" * 65,), train=0, val=1)
    assert build_main(["--index", str(long)]) == 2
    assert "longer than 64 characters" in capsys.readouterr().err

    empty = tmp_path / "empty"
    (empty / "val" / "moire" / "LQ").mkdir(parents=True)
    (empty / "val" / "moire" / "GT").mkdir()
    assert build_main(["--index", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --index {empty}: no LQ/GT pairs") and err.count("\n") == 1
    assert err.strip().endswith("type folders without images: val/moire/{LQ,GT}")

    # A checkpoint trained on the ten DA-CLIP words (no vocabulary beside it) against a dataset of new types.
    from daclip.checkpoint import save_daclip
    from daclip.evaluate import main as evaluate
    from daclip.model import create_daclip, load_model_cfg

    ds = make_pairs(tmp_path / "ds", train=1, val=1)
    assert build_main(["--index", str(ds)]) == 0
    ck = tmp_path / "ck" / "daclip_tiny.pt"
    ck.parent.mkdir()
    save_daclip(create_daclip(model_cfg=load_model_cfg("tiny")), ck)
    capsys.readouterr()
    assert evaluate(["--root", str(ds), "--checkpoint", str(ck), "--model-cfg", "tiny", "--out",
                     str(tmp_path / "ev"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: vocabulary mismatch: dataset {ds} has type(s) moire_pattern, "
                                               f"underwater, which checkpoint {ck} does not know")
    # --prompt names a type the dataset does not have
    assert build_main(["--index", str(ds), "--prompt", "foggy=fog"]) == 2
    assert "prompt given for 'foggy'" in capsys.readouterr().err


# ---------------------------------------------------------------- the released vocabulary + one


def _released_replica(path: Path, seed: int = 0) -> torch.nn.Module:
    """A tiny DA-CLIP saved as open_clip's trainer wrote daclip_ViT-B-32.pt (module. keys, epoch,
    name, optimizer), with no config.json beside it (see tests/test_released_formats.py)."""
    from daclip.checkpoint import daclip_state_dict
    from daclip.model import create_daclip, load_model_cfg

    torch.manual_seed(seed)
    model = create_daclip(model_cfg=load_model_cfg("tiny"))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    sd = daclip_state_dict(model)
    torch.save({"epoch": 30, "name": "daclip_ViT-B-32_b784x4_lr3e-5_e30",
                "state_dict": OrderedDict((f"module.{k}", v) for k, v in sd.items()),
                "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(3e-5), "params": [0]}]}},
               path, pickle_protocol=2)
    return model.eval()


def test_continue_from_the_released_controller_with_a_new_type(tmp_path):
    from daclip.checkpoint import load_daclip
    from daclip.evaluate import evaluate_dataset
    from daclip.model import checkpoint_vocabulary, load_model_cfg
    from daclip.train_clip import main as train_clip

    rel = tmp_path / "released"
    rel.mkdir()
    replica = _released_replica(rel / "daclip_ViT-B-32.pt")
    assert checkpoint_vocabulary(rel / "daclip_ViT-B-32.pt") == DACLIP
    ds = make_pairs(tmp_path / "ds", types=("noisy", "underwater"), train=2, val=2)
    assert build_main(["--index", str(ds)]) == 0
    assert read_vocabulary(ds).types == ("noisy", "underwater")

    run = tmp_path / "run"
    # lr 0: the controller stays the released one, so the old types must classify exactly as before.
    assert train_clip(["--root", str(ds), "--captions", "none", "--model-cfg", "tiny", "--pretrained",
                       str(rel / "daclip_ViT-B-32.pt"), "--batch-size", "2", "--epochs", "1", "--lr", "0",
                       "--warmup", "1", "--workers", "0", "--out", str(run)]) == 0
    vocab = checkpoint_vocabulary(run / "daclip.pt")
    assert vocab.types == (*DEGRADATIONS, "underwater") and vocab.prompts == (*DEGRADATIONS, "underwater")
    cfg = load_model_cfg("tiny")
    trained = load_daclip(run / "daclip.pt", model_cfg=cfg).eval()
    for k, v in replica.state_dict().items():
        assert torch.equal(trained.state_dict()[k], v), k  # started from the released controller, not CLIP's

    # Old types still classify: over ten + one, DA-CLIP's probabilities of the ten words, renormalised,
    # are the released model's over the ten.
    from daclip.embed import _load_batch
    from daclip.model import classify, degradation_text_features, get_tokenizer

    man = read_manifest(ds)
    images = _load_batch(ds, man["lq_path"].tolist(), trained.image_size)
    _, p11 = classify(trained, images, degradation_text_features(trained, get_tokenizer(trained), vocab.prompts))
    _, p10 = classify(replica, images, degradation_text_features(replica, get_tokenizer(replica)))
    assert p11.shape[1] == 11
    torch.testing.assert_close(p11[:, :10] / p11[:, :10].sum(1, keepdim=True), p10, rtol=1e-4, atol=1e-6)
    results, _ = evaluate_dataset(trained, ds, "val", progress=False, vocabulary=vocab)
    assert results["daclip"]["labels"] == [*DEGRADATIONS, "underwater"]
    assert results["daclip"]["n"] == 4 and set(results["daclip"]["accuracy"]) == {"noisy", "underwater"}

    # With a real learning rate the new type is trained in and the frozen CLIP is untouched.
    run2 = tmp_path / "run2"
    assert train_clip(["--root", str(ds), "--captions", "none", "--model-cfg", "tiny", "--pretrained",
                       str(rel / "daclip_ViT-B-32.pt"), "--batch-size", "2", "--epochs", "1", "--lr", "1e-2",
                       "--warmup", "1", "--workers", "0", "--out", str(run2)]) == 0
    moved = load_daclip(run2 / "daclip.pt", model_cfg=cfg).state_dict()
    assert torch.equal(moved["clip.visual.proj"], replica.state_dict()["clip.visual.proj"])
    assert not torch.equal(moved["visual_control.proj"], replica.state_dict()["visual_control.proj"])
    assert json.loads((run2 / "config.json").read_text())["vocabulary"]["types"][-1] == "underwater"


def test_manifest_rewrites_keep_the_vocabulary(tmp_path, capsys):
    import io

    from builders.manifest import write_manifest

    ds = make_pairs(tmp_path / "ds", train=1, val=1)
    assert build_main(["--index", str(ds), "--prompt", "underwater=deep water"]) == 0
    assert "vocabulary: moire_pattern ('moire pattern'), underwater ('deep water')" in capsys.readouterr().out
    man = read_manifest(ds)
    write_manifest(ds, man.assign(caption="a photo"))  # as captioning rewrites it
    assert read_vocabulary(ds).prompts == ("moire pattern", "deep water")
    extra = man.iloc[:1].assign(id="val/scratches/x", type="scratches")
    write_manifest(ds, pd.concat([man, extra]))  # a new type goes after the recorded ones
    v = read_vocabulary(ds)
    assert v.types == (*TYPES, "scratches") and v.prompt("underwater") == "deep water"
    # Ten-word rows: no metadata entry, the bytes pandas writes, the DA-CLIP vocabulary on reading.
    ten = tmp_path / "ten"
    ten.mkdir()
    rows = man.assign(type="noisy", id=[f"{s}/noisy/{n}" for s, n in zip(man["split"], man["name"])])
    write_manifest(ten, rows)
    buf = io.BytesIO()
    read_manifest(ten).to_parquet(buf, index=False)
    assert (ten / "manifest.parquet").read_bytes() == buf.getvalue()
    assert METADATA_KEY not in (pq.read_schema(ten / "manifest.parquet").metadata or {})
    assert read_vocabulary(ten) == DACLIP
