"""Build a DA-CLIP dataset: ``python -m builders.build --preset mini`` (offline), from a folder
(``--images DIR``), or the paper's ten-type set from the real sources (``--all`` / ``--only``).

Writes <root>/{train,val}/<type>/{LQ,GT}/<name>.png and <root>/manifest.parquet.
A re-run skips pairs that are already built and intact; --force rebuilds them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError, cli_entry
from .tasks import DEGRADATIONS, parse_tasks

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MINI_ROOT = Path("datasets/mini")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m builders.build",
        description="Build the ten-type DA-CLIP dataset layout <root>/{train,val}/<type>/{LQ,GT} "
        "with a manifest.parquet.",
        epilog="Degradation types: " + ", ".join(DEGRADATIONS),
    )
    src = p.add_argument_group("what to build")
    src.add_argument("--preset", choices=["mini"], help="offline set from scikit-image's bundled photographs")
    src.add_argument("--images", type=Path, metavar="DIR",
                     help="synthesise all ten types from a folder of clean photographs "
                     "(sorted; every fifth image goes to val)")
    src.add_argument("--all", action="store_true",
                     help="the paper's ten-type set from the real source datasets (download, verify, extract, pair)")
    src.add_argument("--only", metavar="TYPE[,TYPE]",
                     help="like --all, for these degradation types only (with --list: list only their sources)")
    src.add_argument("--list", action="store_true", help="print the source recipes (files, locations, licences)")
    src.add_argument("--status", action="store_true",
                     help="print per type and split the pairs present under --root against the paper's counts")
    src.add_argument("--export-hf", type=Path, metavar="DIR",
                     help="export the dataset at --root as a Hugging Face DatasetDict (datasets.load_from_disk DIR)")
    p.add_argument("--root", type=Path, help=f"output folder (default: {DEFAULT_MINI_ROOT} for --preset mini, "
                   "datasets/universal for --all/--only/--status/--export-hf)")
    p.add_argument("--force", action="store_true", help="rebuild pairs even if they are already built")
    p.add_argument("--seed", type=int, default=0, help="seed for crops and degradations (default 0)")
    p.add_argument("--tasks", help="comma-separated degradation types to synthesise (default: all ten)")
    syn = p.add_argument_group("synthetic set options (--preset/--images)")
    syn.add_argument("--crop", type=int, default=None, help="square crop size in pixels; 0 keeps whole images (default 128)")
    syn.add_argument("--short-side", type=int, default=None, help="resize sources to this short side first (default 256; 0: no resize)")
    syn.add_argument("--train-per-type", type=int, default=None, help="training pairs per type (default 16)")
    syn.add_argument("--val-per-type", type=int, default=None, help="validation pairs per type (default 5)")
    full = p.add_argument_group("real sources (--all/--only)")
    full.add_argument("--json", action="store_true", help="with --list: machine-readable JSON")
    full.add_argument("--from-dir", type=Path, metavar="DIR",
                      help="use files downloaded by hand (same file names as --list shows) from DIR; no network")
    full.add_argument("--mirror", metavar="URL", help="fetch every needed file as URL/<file name> instead")
    full.add_argument("--workers", type=int, default=1, metavar="N",
                      help="convert pairs in N processes in parallel (default 1)")
    full.add_argument("--retries", type=int, default=5, help="download retries per file, with backoff (default 5)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def folder_sources(folder: Path):
    from .io import read_image
    from .synthset import Source

    if not folder.is_dir():
        raise UserError(f"--images: not a folder: {folder}")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise UserError(f"--images: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for f in files:
        read_image(f)  # fail early, naming the unreadable file
    sources = []
    for i, f in enumerate(files):
        split = "val" if i % 5 == 4 or len(files) == 1 else "train"
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in f.stem)
        sources.append(Source(f"{name}", (lambda f=f: read_image(f)), split, f"folder:{f.name}", "as the source photographs"))
    return sources


def synth_config(args):
    from dataclasses import replace

    from .mini import MINI

    overrides = {k: getattr(args, k) for k in ("crop", "short_side", "train_per_type", "val_per_type") if getattr(args, k) is not None}
    for k, v in overrides.items():
        if v < 0:
            raise UserError(f"--{k.replace('_', '-')} must be >= 0, got {v}")
    return replace(MINI, seed=args.seed, tasks=tuple(parse_tasks(args.tasks)), **overrides)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    full_mode = bool(args.all or args.only or args.list or args.status)
    modes = bool(args.preset) + bool(args.images) + full_mode + bool(args.export_hf)
    if args.all and args.only:
        raise UserError("--all and --only exclude each other: --only TYPE[,TYPE] builds just those types")
    if modes != 1:
        raise UserError("choose what to build: --preset mini, --images DIR, --all, --only TYPE[,TYPE], "
                        "--list, --status or --export-hf DIR (see --help)")
    if args.export_hf:
        from .full import DEFAULT_ROOT
        from .hf_export import export_hf

        root = args.root or DEFAULT_ROOT
        counts = export_hf(root, args.export_hf, progress=not args.quiet)
        print(f"{args.export_hf}: DatasetDict " + ", ".join(f"{k} {v} rows" for k, v in counts.items()))
        return 0
    if full_mode:
        from .full import run_cli

        return run_cli(args)
    from .synthset import build_synthetic_set

    cfg = synth_config(args)
    if args.preset == "mini":
        from .mini import mini_sources

        root, sources = args.root or DEFAULT_MINI_ROOT, mini_sources()
    else:
        if args.root is None:
            raise UserError("--images needs --root DIR for the output")
        root, sources = args.root, folder_sources(args.images)
    summary = build_synthetic_set(root, sources, cfg, force=args.force, progress=not args.quiet)
    print(f"{root}: {summary.generated} pairs built, {summary.skipped} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
