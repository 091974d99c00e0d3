"""Degradation classification accuracy of plain CLIP (zero-shot) and DA-CLIP.

    python -m daclip.evaluate --root DATASET --split val --checkpoint daclip_ViT-B-32.pt --out results/

Each LQ image is classified as softmax(100 * image feature . text feature(prompt)) over a
vocabulary of degradation types: the checkpoint's (recorded in config.json beside it by
daclip.train_clip; the ten DA-CLIP words for the released weights), else the dataset's. Plain
CLIP uses its image features, DA-CLIP its degradation features (the official evaluation). A
dataset type the checkpoint does not know is an error. Writes ``<out>/degradation_eval.json``::

    {model: {"accuracy": {type: acc}, "overall": acc, "confusion": [[...]], "labels": [...], "n": N}}

(confusion rows = true type, columns = predicted type, in ``labels`` order) and
``<out>/degradation_predictions.parquet`` (one row per image and model).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from builders.errors import UserError, cli_entry
from builders.io import atomic_write_bytes, atomic_write_text
from builders.manifest import read_manifest, read_vocabulary, select
from builders.vocabulary import DACLIP, Vocabulary, check_covers, type_name_problem

from .dist import default_device
from .embed import _load_batch, load_model_for_cli
from .model import DaCLIP, degradation_text_features, get_tokenizer

MODELS = {"clip-zero-shot": False, "daclip": True}  # name -> use the controller
RESULT_NAME = "degradation_eval.json"


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    return cm


def summarise(true: np.ndarray, pred: np.ndarray, labels=DACLIP.types) -> dict:
    """Per-type accuracy (types present only), overall accuracy and confusion matrix."""
    cm = confusion_matrix(true, pred, len(labels))
    acc = {w: float(cm[i, i] / cm[i].sum()) for i, w in enumerate(labels) if cm[i].sum() > 0}
    return {"accuracy": acc, "overall": float(np.trace(cm) / max(cm.sum(), 1)),
            "mean_per_type": float(np.mean(list(acc.values()))) if acc else 0.0,
            "confusion": cm.tolist(), "labels": list(labels), "n": int(cm.sum())}


@torch.no_grad()
def predict(model: DaCLIP, root: Path, relpaths: list[str], *, batch_size: int = 64,
            amp_dtype: torch.dtype | None = None, progress: bool = True,
            vocabulary: Vocabulary = DACLIP) -> dict[str, np.ndarray]:
    """Predicted type index per image for each entry of MODELS (one pass through both towers)."""
    from tqdm import tqdm

    device = next(model.parameters()).device
    model.eval()
    words = degradation_text_features(model, get_tokenizer(model), vocabulary.prompts)
    preds = {name: [] for name in MODELS}
    chunks = [relpaths[i:i + batch_size] for i in range(0, len(relpaths), batch_size)]
    for chunk in tqdm(chunks, desc="classifying", disable=not progress):
        images = _load_batch(root, chunk, model.image_size).to(device)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else torch.no_grad()
        with ctx:
            plain = model.encode_image(images, control=False, normalize=True)
            _, degra = model.encode_image(images, control=True, normalize=True)
        for name, feats in (("clip-zero-shot", plain), ("daclip", degra)):
            probs = (100.0 * feats.float() @ words.T).softmax(dim=-1)
            preds[name].append(probs.argmax(dim=-1).cpu())
    return {k: torch.cat(v).numpy() if v else np.zeros(0, dtype=np.int64) for k, v in preds.items()}


def evaluate_dataset(model: DaCLIP, root: str | Path, split: str = "val", *, batch_size: int = 64,
                     amp_dtype: torch.dtype | None = None, progress: bool = True,
                     vocabulary: Vocabulary | None = None, vocabulary_of: str = "the checkpoint"
                     ) -> tuple[dict, pd.DataFrame]:
    """``vocabulary``: the classes (the checkpoint's); None: the dataset's own."""
    root = Path(root)
    df = read_manifest(root)
    if vocabulary is None:
        vocabulary = read_vocabulary(root, df)
    df = select(root, split, manifest=df)
    if df.empty:
        raise UserError(f"{root}: no images in split {split!r}")
    check_covers(vocabulary, sorted(set(df["type"])), vocabulary_of, f"dataset {root}")
    df = df.sort_values("id").reset_index(drop=True)
    true = np.array([vocabulary.index(t) for t in df["type"]], dtype=np.int64)
    preds = predict(model, root, df["lq_path"].tolist(), batch_size=batch_size, amp_dtype=amp_dtype,
                    progress=progress, vocabulary=vocabulary)
    results = {name: summarise(true, p, vocabulary.types) for name, p in preds.items()}
    rows = pd.DataFrame({"id": df["id"], "type": df["type"], "split": df["split"]})
    for name, p in preds.items():
        rows[f"pred_{name}"] = [vocabulary.types[i] for i in p]
    return results, rows


def format_table(results: dict) -> str:
    names = list(results)
    labels = next(iter(results.values()))["labels"] if results else []
    types = [t for t in labels if any(t in results[n]["accuracy"] for n in names)]
    width = max(len(t) for t in [*types, "overall"]) + 2
    lines = ["type".ljust(width) + "".join(n.rjust(16) for n in names)]
    for t in types:
        cells = [results[n]["accuracy"].get(t) for n in names]
        lines.append(t.ljust(width) + "".join(("-" if c is None else f"{100 * c:.1f}%").rjust(16) for c in cells))
    lines.append("overall".ljust(width) + "".join(f"{100 * results[n]['overall']:.1f}%".rjust(16) for n in names))
    return "\n".join(lines)


def write_results(out: str | Path, results: dict, rows: pd.DataFrame) -> Path:
    out = Path(out)
    path = out / RESULT_NAME
    atomic_write_text(path, json.dumps(results, indent=2))
    buf = io.BytesIO()
    rows.to_parquet(buf, index=False)
    atomic_write_bytes(out / "degradation_predictions.parquet", buf.getvalue())
    return path


def read_results(path: str | Path) -> dict:
    """A degradation_eval.json, checked against the layout write_results gives it; anything else
    (not JSON, wrong shapes, unknown labels) is a UserError naming the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not a readable degradation_eval.json ({exc})") from None

    def bad(why: str) -> UserError:
        return UserError(f"{path}: malformed degradation_eval.json: {why} (re-run python -m daclip.evaluate)")

    if not isinstance(data, dict) or not data:
        raise bad("expected an object {model: results}")
    for model, res in data.items():
        if not isinstance(res, dict):
            raise bad(f"{model!r} is not an object")
        labels, cm = res.get("labels"), res.get("confusion")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise bad(f"{model!r}: 'labels' must be a list of degradation types")
        unknown = [x for x in labels if type_name_problem(x)]
        if unknown:
            raise bad(f"{model!r}: label {unknown[0]!r} is not a type name ({type_name_problem(unknown[0])})")
        n = len(labels)
        if (not isinstance(cm, list) or len(cm) != n
                or not all(isinstance(r, list) and len(r) == n and all(isinstance(c, int) and not isinstance(c, bool)
                                                                      and c >= 0 for c in r) for r in cm)):
            raise bad(f"{model!r}: 'confusion' must be a {n}x{n} matrix of counts")
        acc = res.get("accuracy", {})
        if not isinstance(acc, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                and 0 <= v <= 1 for v in acc.values()):
            raise bad(f"{model!r}: 'accuracy' must map types to values in [0, 1]")
        overall = res.get("overall")
        if overall is not None and (not isinstance(overall, (int, float)) or isinstance(overall, bool)
                                    or not 0 <= overall <= 1):
            raise bad(f"{model!r}: 'overall' must be a value in [0, 1]")
    return data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m daclip.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="built dataset (manifest.parquet)")
    p.add_argument("--split", default="val", help="train, val or all (default %(default)s)")
    p.add_argument("--checkpoint", help="DA-CLIP weights (released daclip_ViT-B-32.pt or a trained daclip.pt)")
    p.add_argument("--model", default="ViT-B-32", help="open_clip model name of the checkpoint")
    p.add_argument("--model-cfg", help="custom open_clip config ('tiny' or YAML/JSON)")
    p.add_argument("--pretrained", help="without --checkpoint: plain CLIP weights (open_clip tag or file); the "
                                        "controller is then an untrained copy (DA-CLIP = CLIP)")
    p.add_argument("--out", required=True, help="folder for degradation_eval.json and the predictions")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default %(default)s)")
    p.add_argument("--device", help="cpu, cuda, ... (default: GPU when available)")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (--model-cfg without --checkpoint)")
    return p


@cli_entry
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    torch.manual_seed(args.seed)
    device = default_device(args.device)
    from .model import checkpoint_vocabulary

    model = load_model_for_cli(args.checkpoint, args.model, args.pretrained, args.model_cfg, device)
    amp = torch.float16 if device.type == "cuda" else None
    # A checkpoint classifies over the types it was trained on; plain CLIP over the dataset's.
    vocab = checkpoint_vocabulary(args.checkpoint) if args.checkpoint else None
    results, rows = evaluate_dataset(model, args.root, args.split, batch_size=args.batch_size, amp_dtype=amp,
                                     vocabulary=vocab, vocabulary_of=f"checkpoint {args.checkpoint}")
    path = write_results(args.out, results, rows)
    print(format_table(results))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
