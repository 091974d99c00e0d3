"""Weights the metrics need, in one cache folder: ``python -m benchmark.weights fetch``.

An air-gapped cluster runs ``fetch`` on a machine with internet and copies the folder; every
benchmark command then reads it through ``--weights-dir`` (or $DACLIP_WEIGHTS). The benchmark
never downloads by itself and never scores with random weights: a metric whose files are
missing is reported unavailable with the file it needs.

Layout inside the folder mirrors the caches the libraries use:
    torch/hub/checkpoints/<torchvision and torch-fidelity files>
    torch/hub/pyiqa/<pyiqa files>
    <owner>--<repo>/<file>   (no-reference metrics: daclip.weights' layout, so daclip.restore finds them)

The folder is meant to be copied between machines, so nothing in it is trusted: every file
is checked against its digest before use (the sha256 prefix its hub name carries, as
torch.hub's ``check_hash`` does, or the full sha256 where one is known) and read by the
toolkit's restricted loader (:mod:`daclip.safe_load`); the state dicts are then handed to the
networks. No library ever unpickles a file from this folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from builders.errors import UserError, cli_entry
from builders.weights_folder import (
    WeightsEntry,
    WeightsMismatch,
    default_weights_dir,
    verify,
    weights_dir,
)

WeightsProblem = WeightsMismatch  # a metric-weights file is missing, fails its digest, or is refused


def _table() -> dict[str, WeightsEntry]:
    # URLs are the ones the libraries themselves download from; the hash prefix in each file
    # name is the libraries' own check value.
    entries = (
        WeightsEntry("alexnet-imagenet", "alexnet-owt-7be5be79.pth",
                     url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                     subdir="torch/hub/checkpoints", used_by=("lpips",), note="torchvision AlexNet (LPIPS backbone)"),
        WeightsEntry("lpips-alex-v0.1", "LPIPS_v0.1_alex-df73285e.pth",
                     url="https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/LPIPS_v0.1_alex-df73285e.pth",
                     subdir="torch/hub/pyiqa", used_by=("lpips",), note="LPIPS v0.1 linear layers (pyiqa)"),
        WeightsEntry("inception-v3-compat", "weights-inception-2015-12-05-6726825d.pth",
                     url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         "weights-inception-2015-12-05-6726825d.pth",
                     subdir="torch/hub/checkpoints", used_by=("fid", "kid"),
                     note="Inception v3 of the TF FID reference (torch-fidelity 'inception-v3-compat')"),
    )
    return {e.key: e for e in entries + _iqa_entries()}


def _iqa_entries() -> tuple[WeightsEntry, ...]:
    """The no-reference metrics' files (daclip.iqa.FILES, their one table; daclip.restore reads
    them from the same folder)."""
    from daclip.iqa import FILES

    return tuple(FILES.values())


WEIGHTS = _table()


def files_for(metric: str) -> list[WeightsEntry]:
    return [w for w in WEIGHTS.values() if metric in w.used_by]


def missing_for(metric: str, wdir: Path) -> list[WeightsEntry]:
    return [w for w in files_for(metric) if not w.path(wdir).is_file()]


def unavailable_reason(metric: str, wdir: Path) -> str | None:
    """Why ``metric`` cannot run from ``wdir`` (missing or bad files), or None when it can."""
    missing = missing_for(metric, wdir)
    if missing:
        names = ", ".join(str(w.path(wdir)) for w in missing)
        return (f"missing weights {names}; run `python -m benchmark.weights fetch --metrics {metric} "
                f"--weights-dir {wdir}` on a machine with internet and copy the folder")
    for w in files_for(metric):
        try:
            verify_file(w, wdir)
        except WeightsProblem as exc:
            return str(exc)
    return None


def verify_file(w: WeightsEntry, wdir: Path) -> Path:
    """The file's path once its size and digest check out; WeightsProblem naming both values."""
    path = w.path(wdir)
    if not path.is_file():
        raise WeightsProblem(f"missing weights {path}")
    verify(w, path, fix=f"run `python -m benchmark.weights fetch --weights-dir {wdir}`")
    return path


def file_digest(key: str, wdir: Path) -> str:
    """The sha256 of weights ``key`` in ``wdir``, verified (what a loaded network was built from)."""
    w = WEIGHTS[key]
    return verify(w, verify_file(w, wdir))


def load_state_dict(key: str, wdir: Path) -> dict:
    """The verified state dict of weights ``key``, read by the restricted loader (never run)."""
    from daclip.safe_load import extract_state_dict, load_checkpoint

    w = WEIGHTS[key]
    path = verify_file(w, wdir)
    try:
        return extract_state_dict(load_checkpoint(path, what="weights file"), source=str(path))
    except UserError as exc:
        raise WeightsProblem(str(exc)) from None


def fetch(keys: list[str], wdir: Path, *, mirror: str | None = None, progress: bool = True) -> list[Path]:
    """Download the files of ``keys`` into ``wdir`` (holding its writer lock), each verified."""
    from builders.download import DownloadConfig
    from builders.download import fetch as fetch_file
    from builders.lock import FolderLock
    from builders.sources.base import Candidate, NeededFile

    out = []
    with FolderLock(wdir, "weights folder"):
        for key in keys:
            w = WEIGHTS[key]
            dest = w.path(wdir)
            cfg = DownloadConfig(cache_dir=dest.parent, mirror=mirror, progress=progress,
                                 manual_hint=f"Download {w.url} by hand and put it at {dest}, or fetch through "
                                             "--mirror URL")
            got = fetch_file(NeededFile(w.filename, (Candidate("url", w.url),), sha256=w.sha256, size=w.size), cfg)
            try:
                verify_file(w, wdir)
            except WeightsProblem:
                got.path.unlink(missing_ok=True)  # a file that fails its digest is never kept
                raise
            out.append(got.path)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark.weights",
                                description="List or download the weights that benchmark metrics need.")
    p.add_argument("action", choices=["list", "fetch"], help="list: show files and whether present; fetch: download")
    p.add_argument("--metrics", default="all", help="comma-separated metrics (default: all that need weights; "
                   "'none' for no metric)")
    p.add_argument("--methods", help="also the released weights of these methods, e.g. ours,promptir "
                   "(methods whose weights were never published say how to train them)")
    p.add_argument("--weights-dir", type=Path, help=f"cache folder (default: $DACLIP_WEIGHTS_DIR, then $DACLIP_WEIGHTS, then {default_weights_dir()})")
    p.add_argument("--mirror", help="fetch every file as MIRROR/<file name> instead")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    wdir = weights_dir(args.weights_dir)
    known = sorted({m for w in WEIGHTS.values() for m in w.used_by})
    metrics = known if args.metrics == "all" else [m.strip() for m in args.metrics.split(",")
                                                   if m.strip() and m.strip() != "none"]
    bad = [m for m in metrics if m not in known]
    if bad:
        raise UserError(f"--metrics: {', '.join(bad)} need no weights or are unknown; metrics with weights: {', '.join(known)}")
    keys = list(dict.fromkeys(w.key for m in metrics for w in files_for(m)))
    entries = _method_entries(args.methods) if args.methods else []
    if args.action == "list":
        print(f"weights folder: {wdir}")
        for k in keys:
            w = WEIGHTS[k]
            state = "present" if w.path(wdir).is_file() else "missing"
            digest = (f"sha256 {w.sha256}" if w.sha256 else
                      f"sha256 {w.digest_prefix}... (from the hub name)" if w.digest_prefix else "sha256 unknown")
            print(f"{state:8s} {w.path(wdir)}  size {_size_text(w.size)}, {digest}  ({w.note}; for {', '.join(w.used_by)})")
        from daclip.weights import WEIGHTS as METHOD_WEIGHTS
        from daclip.weights import cached_path

        for e in entries:
            m = METHOD_WEIGHTS[e]
            path = cached_path(m, wdir)
            digest = f"sha256 {m.sha256}" if m.sha256 else "sha256 not published"
            where = m.source
            print(f"{'present' if path.is_file() else 'missing':8s} {path}  size {_size_text(m.size)}, {digest}, "
                  f"from {where}  ({m.note})")
        return 0
    from builders.lock import FolderLock

    with FolderLock(wdir, "weights folder"):  # one writer of the folder at a time
        for path in fetch(keys, wdir, mirror=args.mirror):
            print(f"ok {path}")
        if entries:
            from daclip.weights import WeightsUnavailable, resolve_weights

            failed = []
            for e in entries:
                try:
                    print(f"ok {resolve_weights(e, root=wdir)}")
                except WeightsUnavailable as exc:
                    failed.append(str(exc))
            if failed:
                raise UserError("; ".join(failed))
    return 0


def _size_text(size: int | None) -> str:
    return f"{size} bytes" if size is not None else "unknown"


def _method_entries(text: str) -> list[str]:
    """Weights entries (daclip.weights) that the named methods load: their own, plus DA-CLIP's."""
    from daclip.catalogue import SPECS

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in SPECS]
    if bad:
        raise UserError(f"--methods: unknown or weight-free method {', '.join(bad)}; methods with weights: {', '.join(SPECS)}")
    out = []
    for n in names:
        spec = SPECS[n].spec
        out += [spec.weights or n] + ([spec.daclip_weights] if spec.uses_daclip else [])
        out += [entry for _role, entry in spec.extra]  # InstructIR's head, OneRestore's embedder
    return list(dict.fromkeys(out))


if __name__ == "__main__":
    sys.exit(main())
