"""Restore your own images with any method of the registry.

    python -m daclip.restore photos/ --method ours --out restored/
    python -m daclip.restore 'shots/*.jpg' one.png --method nafnet --weights nafnet.pth
    python -m daclip.restore hazy.jpg --method classical --task hazy
    python -m daclip.restore photos/ --method classical --daclip daclip_ViT-B-32.pt   # blind: DA-CLIP picks the type

Inputs are image files, folders (their images, sorted; ``--recursive`` for subfolders) or
glob patterns. Each output is a PNG in ``--out`` (default ``restored/<method>``) named after
its input (``x.jpg`` -> ``x.png``, same size); inputs that would share a name (``x.png`` and
``x.jpg``) all keep their extension in it (``x_png.png``, ``x_jpg.png``) and the command says
so. Outputs that exist from an earlier run with the same method, weights, options and input
are skipped (``--force`` redoes them); a file the command did not write is never overwritten
without ``--force``.
Large images are tiled by the neural methods (``--option tile=768 --option overlap=64
--option max_pixels=...``).

With a DA-CLIP method (ours, nafnet-daclip, nafnet-degradation), or any method plus
``--daclip WEIGHTS``, the predicted degradation type of each image is printed and recorded
in ``<out>/restore.csv`` (and ``restore.json``, which also drives the skipping). DA-CLIP
classifies as the paper does: softmax(100 * degradation feature . text feature(word)) over
its vocabulary: the types recorded in config.json beside the weights by daclip.train_clip,
else the ten DA-CLIP words (the released weights). The type-aware ``classical`` method needs the type: ``--task
TYPE``, or else the type DA-CLIP predicts for each image when ``--daclip`` is given.

``--metrics musiq,niqe`` scores each input and its output with no-reference metrics
(daclip.iqa: pyiqa's networks, weights from the cache through the restricted loader), prints
both and records them in ``restore.csv`` (``<metric>_input``, ``<metric>_output``).

Python:

    import daclip
    out = daclip.restore("photo.jpg", method="classical", task="noisy")
    out.image        # HxWx3 uint8 (the same pixels as the command writes)
    out.degradation  # predicted type (None without DA-CLIP), out.probabilities: {type: p}
    r = daclip.Restorer("ours", device="cuda")   # load once, restore many: r(image)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from builders.errors import UserError, cli_entry
from builders.io import MAX_PIXELS, add_pixel_limit_option, check_pixels, pixel_limit, read_image
from builders.options import parse_options
from builders.tasks import DEGRADATIONS
from builders.vocabulary import DACLIP, check_type_name

from .device import check_device
from .restore_files import (RECORD_CSV, RECORD_JOURNAL, RECORD_JSON, Job, append_journal,
                            collect_inputs, plan_outputs, read_record, replay_journal, write_record)

FLUSH_EVERY = 20  # images between record writes (Ctrl-C and errors write it too)



class Restored(NamedTuple):
    """A restored image and, when a DA-CLIP is loaded, its predicted degradation type."""

    image: np.ndarray  # HxWx3 uint8, the input's size
    degradation: str | None = None
    probabilities: dict[str, float] | None = None

    @property
    def probability(self) -> float | None:
        return None if self.probabilities is None else self.probabilities[self.degradation]


# -- reading inputs ---------------------------------------------------------------------------

def read_input(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """A user's image file as HxWx3 uint8 RGB, turned upright by its EXIF orientation (as viewers
    show it); other modes convert as the dataset reader does (16-bit keeps its high byte); an
    alpha channel is dropped. Images over ``max_pixels`` are refused from their header."""
    return read_image(path, upright=True, alpha="drop", max_pixels=max_pixels)


def as_image(image: Any, max_pixels: int | None = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """(HxWx3 uint8 array, label) for a path, a PIL image or an array (HxW, HxWx3 or HxWx4)."""
    if isinstance(image, (str, os.PathLike)):
        return read_input(image, max_pixels), str(image)
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            check_pixels("the image", *image.size, max_pixels)
            return np.ascontiguousarray(np.asarray(image.convert("RGB"))), "image"
    except ImportError:  # pragma: no cover - Pillow is a dependency
        pass
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise UserError(f"expected an image path, a PIL image or an HxWx3 uint8 array, got {arr.dtype} {arr.shape}")
    if min(arr.shape[:2]) < 1:
        raise UserError(f"empty image {arr.shape}")
    check_pixels("the array", arr.shape[1], arr.shape[0], max_pixels)
    return np.ascontiguousarray(arr[..., :3]), "array"


# -- the restorer -----------------------------------------------------------------------------

def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Restorer:
    """One prepared method (weights loaded once) that restores images one at a time.

    ``method``: a registry name (``daclip.registry.method_specs()``) or a Method instance;
    ``weights``: the method's weights file (DA-CLIP methods: ``"NET.pth,DACLIP.pt"`` or the
    ``daclip`` argument); ``options``: the method's options (tile, steps, amp, ...);
    ``task``: the degradation type given to type-aware methods (``classical``);
    ``daclip``: DA-CLIP weights: the conditioning model of a DA-CLIP method, or for any other
    method a classifier that predicts each image's type (and gives ``classical`` its type
    when ``task`` is None).
    """

    def __init__(self, method: Any = "classical", *, weights: str | None = None,
                 options: Mapping[str, Any] | None = None, task: str | None = None, daclip: str | None = None,
                 daclip_model: str = "", device: str | None = None, max_pixels: int | None = MAX_PIXELS):
        from .registry import Method, create_method, method_specs

        self.max_pixels = max_pixels
        if task is not None:
            check_type_name(task, "--task")
        self.task = task
        self.device = check_device(device) if device else default_device()
        options = dict(options or {})
        if isinstance(method, Method):
            self.method = method
        else:
            specs = method_specs()
            if method not in specs:
                raise UserError(f"unknown method {method!r}; known methods: {', '.join(specs)}")
            if weights and not specs[method].needs_weights:
                raise UserError(f"method {method!r} uses no weights (drop --weights)")
            if daclip and _conditioned_by_daclip(method):
                options.setdefault("daclip_weights", daclip)
            self.method = create_method(method, **({"weights": weights} if weights else {}), **options)
        conditioned = self.method.uses_daclip
        if self.method.uses_task_label and task is None and not daclip:
            raise UserError(f"method {self.method.name!r} is told the degradation type: give --task TYPE "
                            f"({', '.join(DEGRADATIONS)}) or --daclip WEIGHTS to predict it per image")
        why = self.method.cannot_restore(task) if task is not None else None
        if why:
            raise UserError(f"--task {task}: {why}")
        from .registry import MethodUnavailable

        try:
            self.method.prepare(self.device)
        except MethodUnavailable as exc:  # the weights table speaks the benchmark's --weights NAME=PATH
            raise MethodUnavailable(str(exc).replace(f"--weights {self.method.name}=", "--weights ")) from None
        self.classifier = None
        self.vocabulary = DACLIP
        if conditioned:
            self.classifier = self.method.conditioner.model
            if daclip:
                from .model import checkpoint_vocabulary

                self.vocabulary = checkpoint_vocabulary(daclip)
        elif daclip:
            self.classifier, self.vocabulary = _load_classifier(daclip, daclip_model, self.device)
        self._words = None
        self._warned: set[str] = set()

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def weights_id(self) -> str:
        return self.method.weights_id

    def predict(self, image: np.ndarray) -> dict[str, float] | None:
        """Probability of each degradation type (DA-CLIP), or None without a DA-CLIP."""
        if self.classifier is None:
            return None
        import torch

        from .inference import to_tensor
        from .model import classify, clip_preprocess, degradation_text_features

        model = self.classifier
        device = next(model.parameters()).device
        if self._words is None:
            self._words = degradation_text_features(model, words=self.vocabulary.prompts)
        with torch.no_grad():
            x = clip_preprocess(to_tensor(image, device), image_size=model.image_size)
            _, probs = classify(model, x, self._words)
        return {w: float(p) for w, p in zip(self.vocabulary.types, probs[0].tolist())}

    def __call__(self, image: Any) -> Restored:
        img, label = as_image(image, self.max_pixels)
        probs = self.predict(img)
        degradation = max(probs, key=probs.get) if probs else None
        task = self.task or degradation or ""
        why = self.method.cannot_restore(task) if task else None
        if why:  # said once per type; the image is kept as it is
            if task not in self._warned:
                self._warned.add(task)
                print(f"warning: {why}; such images are written unchanged", file=sys.stderr)
            return Restored(img.copy(), degradation, probs)
        return Restored(self.method.check_output(self.method.restore(img, task), img, label), degradation, probs)


def _conditioned_by_daclip(name: str) -> bool:
    from .catalogue import SPECS

    return name in SPECS and SPECS[name].spec.uses_daclip


def _load_classifier(path: str, model: str, device: str):
    from .checkpoint import load_daclip
    from .model import daclip_architecture
    from .weights import WeightsUnavailable, resolve_weights

    try:
        resolved = resolve_weights("daclip", path)
    except WeightsUnavailable as exc:
        raise UserError(f"--daclip: {exc}") from None
    from .model import checkpoint_vocabulary

    name, cfg = daclip_architecture(resolved, model)
    vocab = checkpoint_vocabulary(resolved)
    return load_daclip(resolved, model_name=name, device=device, model_cfg=cfg).eval(), vocab


_CACHE: "OrderedDict[str, Restorer]" = OrderedDict()
_CACHE_SIZE = 2  # prepared methods kept for repeated restore() calls (the demo switches between two)


def get_restorer(method: str = "classical", **kwargs) -> Restorer:
    """A prepared Restorer, reused across calls with the same arguments (the last two are kept)."""
    key = json.dumps([method, kwargs], sort_keys=True, default=str)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    restorer = Restorer(method, **kwargs)
    _CACHE[key] = restorer
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return restorer


def restore(image: Any, method: str = "classical", *, task: str | None = None, weights: str | None = None,
            options: Mapping[str, Any] | None = None, daclip: str | None = None, daclip_model: str = "",
            device: str | None = None) -> Restored:
    """Restore one image (a path, a PIL image or an HxWx3 uint8 array) with a registry method.

    Returns ``Restored(image, degradation, probabilities)``: the restored HxWx3 uint8 array (the
    same pixels ``python -m daclip.restore`` writes) and, with a DA-CLIP, the predicted type.
    The prepared method is cached, so calling this in a loop loads the weights once.
    """
    r = get_restorer(method, task=task, weights=weights, options=dict(options or {}), daclip=daclip,
                     daclip_model=daclip_model, device=device)
    return r(image)


def _metric_scorers(text: str, device: str) -> list:
    """The no-reference metrics of ``--metrics``, built before any image is restored."""
    from .iqa import FILES, NRScorer, parse_names
    from .weights import WeightsUnavailable, resolve_weights

    out = []
    for name in parse_names(text):
        scorer = NRScorer(name)
        try:
            paths = {k: resolve_weights(k, table=FILES) for k in scorer.spec.weights}
            scorer.prepare(paths, device)
        except WeightsUnavailable as exc:
            raise UserError(f"--metrics {name}: {exc} (or: python -m benchmark.weights fetch --metrics {name})") \
                from None
        out.append(scorer)
    return out


def _score(scorers: list, lq: np.ndarray, out: np.ndarray) -> dict:
    return {s.spec.name: {"input": s(lq), "output": s(out)} for s in scorers}


def _metrics_line(source, values: dict, scorers: list) -> str:
    up = {s.spec.name: s.spec.higher_is_better for s in scorers}
    return f"{source}: " + ", ".join(f"{m} {v['input']:.4g} -> {v['output']:.4g} ({'higher' if up[m] else 'lower'} "
                                    f"is better)" for m, v in values.items())


# -- command line -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m daclip.restore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("--method", required=True, help="restoration method (--list-methods shows them)")
    p.add_argument("--out", type=Path, help="output folder (default: restored/<method>)")
    p.add_argument("--weights", help="the method's weights file (DA-CLIP methods: NET.pth,DACLIP.pt)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, repeatable: tile=768, overlap=64, max_pixels=..., steps=50, amp=bf16, ...")
    p.add_argument("--task", help="degradation type for the type-aware methods (classical): "
                   + ", ".join(DEGRADATIONS) + ", or a type of your own")
    p.add_argument("--daclip", metavar="WEIGHTS",
                   help="DA-CLIP weights: conditions a DA-CLIP method; for any other method it predicts each "
                        "image's degradation type (which classical then uses when --task is not given)")
    p.add_argument("--daclip-model", default="",
                   help="architecture of the DA-CLIP weights: open_clip name, toolkit config (tiny) or file "
                        "(default: recorded beside the weights, else ViT-B-32)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the GPU when there is one)")
    p.add_argument("--metrics", metavar="NAMES",
                   help="no-reference metrics of each input and output, printed and recorded in restore.csv: "
                        "niqe, brisque, musiq, clipiqa, maniqa (weights from the cache)")
    add_pixel_limit_option(p)
    p.add_argument("--recursive", "-r", action="store_true", help="also take images in subfolders of a folder")
    p.add_argument("--force", action="store_true", help="restore again even when the output exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    return p


def _list_methods() -> str:
    from .registry import method_specs

    return "\n".join(f"{n:20s} {s.display_name:28s} {'needs weights' if s.needs_weights else 'no weights':14s} "
                     f"{s.description}" for n, s in method_specs().items())


def _check_readable(path: Path, max_pixels: int | None = MAX_PIXELS) -> None:
    """Everything that would stop the run midway, found before any output is written: a file
    that is not an image, one over the pixel limit (from its header), an animation or a
    multi-page file (only its first frame would be restored), a truncated file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            check_pixels(path, *im.size, max_pixels)
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise UserError(f"{path} has {frames} frames (an animation or a multi-page file) and only the first "
                                "would be restored; save the frames you want as separate images")
            if im.format == "PNG":
                im.verify()  # chunk checksums to the end: no decoding
            else:
                if im.format == "JPEG":  # the whole entropy-coded stream, decoded at 1/8 scale
                    im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
                im.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


def _sha256(path: Path) -> str:
    from builders.io import sha256_file

    return sha256_file(path)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list-methods" in argv:
        print(_list_methods())
        return 0
    args = build_parser().parse_args(argv)
    from .registry import method_specs

    if args.method not in method_specs():
        raise UserError(f"unknown method {args.method!r}; known methods: {', '.join(method_specs())}")
    out = args.out if args.out is not None else Path("restored") / args.method
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    for text in args.inputs:
        if Path(text).expanduser().is_dir() and os.path.realpath(Path(text).expanduser()) == os.path.realpath(out):
            raise UserError(f"--out {out} is the input folder {text}: its outputs would be inputs of the next run; "
                            "choose another --out")
    max_pixels = pixel_limit(args.max_megapixels)
    passed: list[Path] = []
    jobs = plan_outputs(collect_inputs(args.inputs, args.recursive, exclude=[out], skipped=passed))
    for d in passed:  # never restore our own outputs (a run in "." would nest restored/x/restored/x/...)
        print(f"{d}: not searched (output folder of daclip.restore)", file=sys.stderr)
    clash = [j for j in jobs if (out / j.output).resolve() == j.source.resolve()]
    if clash:
        raise UserError(f"--out {out}: restoring {clash[0].source} would overwrite it; choose another --out")

    for job in jobs:  # an unreadable input fails now, before any weights load or file is written
        _check_readable(job.source, max_pixels)

    from builders.io import save_image, sha256_bytes
    from builders.lock import FolderLock

    # Method, options and weights are checked (and loaded) before the output folder is made.
    restorer = Restorer(args.method, weights=args.weights, options=parse_options(args.option), task=args.task,
                        daclip=args.daclip, daclip_model=args.daclip_model, device=args.device,
                        max_pixels=max_pixels)
    scorers = _metric_scorers(args.metrics, restorer.device) if args.metrics else []
    wanted = [s.spec.name for s in scorers]
    with FolderLock(out, "output folder"):
        record = read_record(out)
        journaled = (out / RECORD_JOURNAL).is_file()
        pending = replay_journal(out, record)  # what a killed run finished, and what it had begun
        todo: list[tuple[Job, str]] = []
        skipped = 0
        for job in jobs:
            if job.note:
                print(f"{job.source} -> {job.output} ({job.note})", file=sys.stderr)
            digest = _sha256(job.source)
            target = out / job.output
            entry = record.get(job.output)
            same = (entry is not None and entry.get("input_sha256") == digest and entry.get("method") == restorer.name
                    and entry.get("weights_id") == restorer.weights_id and entry.get("task_given") == args.task)
            if not args.force and target.is_file():
                if same and entry.get("output_sha256") == _sha256(target):
                    skipped += 1
                    if any(m not in entry.get("metrics", {}) for m in wanted):  # only the scores are new
                        entry.setdefault("metrics", {}).update(_score(scorers, read_input(job.source),
                                                                      read_image(target)))
                        print(_metrics_line(job.source, entry["metrics"], scorers))
                        write_record(out, record)
                    continue
                if entry is None and job.output not in pending:  # a file this command did not write
                    raise UserError(f"{target} exists and is not listed in {out / RECORD_JSON}; use --force to "
                                    "overwrite it or choose another --out")
            todo.append((job, digest))
        if skipped:
            print(f"{skipped} of {len(jobs)} outputs already in {out} (--force redoes them)", file=sys.stderr)
        from tqdm import tqdm

        done = 0
        try:
            with tqdm(todo, unit="img", desc=f"restore ({restorer.name})", disable=args.quiet or not todo) as bar:
                for job, digest in bar:
                    t0 = time.perf_counter()
                    result = restorer(job.source)
                    seconds = time.perf_counter() - t0
                    # The journal says an output is being written before it is: a kill between the
                    # two leaves a file the next run knows as its own and redoes.
                    append_journal(out, {"output": job.output, "pending": True})
                    data = save_image(out / job.output, result.image)
                    record[job.output] = {
                        "input": str(job.source.resolve()), "input_sha256": digest, "method": restorer.name,
                        "weights_id": restorer.weights_id, "task_given": args.task,
                        "task": args.task or result.degradation, "degradation": result.degradation,
                        "probability": result.probability, "output_sha256": sha256_bytes(data),
                        "seconds": round(seconds, 4), "width": int(result.image.shape[1]),
                        "height": int(result.image.shape[0]),
                    }
                    if scorers:
                        record[job.output]["metrics"] = _score(scorers, read_input(job.source), result.image)
                        tqdm.write(_metrics_line(job.source, record[job.output]["metrics"], scorers))
                    append_journal(out, {"output": job.output, "entry": record[job.output]})
                    if result.degradation is not None:
                        tqdm.write(f"{job.source}: {result.degradation} ({100 * result.probability:.1f}%)")
                    done += 1
                    if done % FLUSH_EVERY == 0:
                        write_record(out, record)
        finally:
            if done or journaled:
                write_record(out, record)
                (out / RECORD_JOURNAL).unlink(missing_ok=True)  # everything in it is in the record now
    print(f"restored {done} image(s) into {out}" + (f"; types in {out / RECORD_CSV}" if restorer.classifier else ""))
    return 0


class _CallableModule(types.ModuleType):
    """``daclip.restore`` is this module and the function: ``daclip.restore(img, method=...)``."""

    def __call__(self, *args, **kwargs) -> Restored:
        return restore(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    raise SystemExit(main())
