"""Build a DA-CLIP dataset: ``python -m builders.build --preset mini`` (offline), from a folder
(``--images DIR``), the paper's ten-type set from the real sources (``--all`` / ``--only``), the
authors' validation set (``--preset daclip-val``), or index a folder already in the official
layout (``--index DIR``).

Writes <root>/{train,val}/<type>/{LQ,GT}/<name>.png and <root>/manifest.parquet.
A re-run skips pairs that are already built and intact; --force rebuilds them.
Every mode that writes a dataset root holds its writer lock: a second writer of the same root
(another build, captioning) is refused at once with one error line naming the holder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError, cli_entry
from .naming import IMAGE_SUFFIXES, is_image, unique_stems
from .tasks import DEGRADATIONS, parse_tasks

DEFAULT_MINI_ROOT = Path("datasets/mini")
DEFAULT_VAL_ROOT = Path("datasets/daclip-val")


def _buildable_protocols() -> list[str]:
    """Protocol names ``--preset`` builds (daclip10 is built by --preset daclip-val, so it is not one)."""
    from .protocols import get_protocol, protocol_names

    return [n for n in protocol_names() if get_protocol(n).preset is None]


def build_parser() -> argparse.ArgumentParser:
    protocols = _buildable_protocols()  # the registry is read once per parser
    p = argparse.ArgumentParser(
        prog="python -m builders.build",
        description="Build the ten-type DA-CLIP dataset layout <root>/{train,val}/<type>/{LQ,GT} "
        "with a manifest.parquet.",
        epilog="Degradation types: " + ", ".join(DEGRADATIONS),
    )
    src = p.add_argument_group("what to build")
    src.add_argument("--preset", metavar="NAME",
                     help="mini: offline set from scikit-image's bundled photographs; daclip-val: the authors' "
                     f"ten-type validation zip (the paper's test set; default root {DEFAULT_VAL_ROOT}); "
                     f"{', '.join(protocols)}: a benchmark protocol's test set (default root datasets/<name>)")
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
                     help="export the dataset at --root as a Hugging Face DatasetDict (datasets.load_from_disk DIR); "
                     "DIR must be new or an empty folder")
    src.add_argument("--index", type=Path, metavar="DIR",
                     help="write a manifest for a folder already in the official layout (<split>/<type>/{LQ,GT} or "
                     "<type>/{LQ,GT}, LQ and GT of equal names) in place, copying nothing; <type>/{LQ,GT} without "
                     "a split folder counts as val; <type> is any folder name (noisy, underwater, low_haze_rain)")
    src.add_argument("--prompt", action="append", default=[], metavar="TYPE=TEXT",
                     help="with --index: the text a type is prompted with in captions and DA-CLIP (default: "
                     "its name with _ and - read as spaces); repeatable")
    src.add_argument("--lq-only", action="store_true",
                     help="with --index: degraded images without ground truth, in DIR (type 'unknown') or "
                     "DIR/<type>/ (the folder name is the type); benchmarks then use no-reference metrics")
    p.add_argument("--root", type=Path, help=f"output folder (default: {DEFAULT_MINI_ROOT} for --preset mini, "
                   "datasets/universal for --all/--only/--status/--export-hf)")
    p.add_argument("--force", action="store_true",
                   help="rebuild pairs even if they are already built; re-check cached downloads (a bad one is "
                   "fetched again) and extract archives again; with --index, replace a manifest a build wrote")
    p.add_argument("--seed", type=int, default=0, help="seed for crops and degradations (default 0)")
    p.add_argument("--tasks", help="with --preset/--images: comma-separated types to synthesise, among the ten "
                   "(default: all ten)")
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
    full.add_argument("--max-extract-size", default="500G", metavar="SIZE",
                      help="refuse an archive that expands to more than SIZE in total (e.g. 500G, 20G, 800M; "
                      "default 500G)")
    full.add_argument("--max-extract-ratio", type=float, default=100.0, metavar="R",
                      help="refuse an archive that expands to more than R times its own size (image archives "
                      "expand about 1x, a zip bomb 1000x; default 100)")
    prot = p.add_argument_group(f"protocols (--preset {'|'.join(protocols)})")
    prot.add_argument("--with-train", action="store_true",
                      help="also build the training sets whose sources have recipes (the others are listed)")
    prot.add_argument("--noise", default="seeded", choices=["seeded", "upstream", "from-files"],
                      help="CBSD68 noise: seeded per image (default), upstream (the PromptIR-family stream, checked "
                      "against its published digests; needs all 68 images) or from-files (the pre-noised noisyNN/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _protocol_preset(name: str | None):
    """The protocol a --preset names (None for mini/daclip-val); unknown names are one error line."""
    if name is None or name in ("mini", "daclip-val"):
        return None
    from .protocols import get_protocol

    buildable = _buildable_protocols()
    if name not in buildable:
        raise UserError(f"unknown --preset {name!r}; choose from: mini, daclip-val, {', '.join(buildable)}")
    return get_protocol(name)


def unique_names(files: list[Path]) -> list[str]:
    """File-name-safe output names, one per file, never two alike (builders.naming's rule on
    file names whose unsafe characters are made '_')."""
    return unique_stems([f.name for f in files], safe=True)


def folder_sources(folder: Path):
    from .io import read_image
    from .synthset import Source

    if not folder.is_dir():
        raise UserError(f"--images: not a folder: {folder}")
    files = sorted(f for f in folder.iterdir() if is_image(f) and f.is_file())
    if not files:
        raise UserError(f"--images: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for f in files:
        read_image(f)  # fail early, naming the unreadable file
    sources = []
    for i, (f, name) in enumerate(zip(files, unique_names(files))):
        split = "val" if i % 5 == 4 or len(files) == 1 else "train"
        sources.append(Source(name, (lambda f=f: read_image(f)), split, f"folder:{f.name}", "as the source photographs"))
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
    protocol = _protocol_preset(args.preset)
    if protocol is not None:
        if args.images or args.all or args.only or args.status or args.export_hf or args.index:
            raise UserError(f"--preset {protocol.name} builds a protocol's test set; it takes no other mode")
        if args.list:
            from .full_report import list_json, list_text
            from .protocol_build import protocol_recipes

            recipes = protocol_recipes(protocol, args.with_train)
            print(list_json(recipes) if args.json else list_text(recipes))
            return 0
        from .protocol_build import run_protocol_cli

        return run_protocol_cli(args, protocol)
    val_preset = args.preset == "daclip-val"
    full_mode = bool(args.all or args.only or args.list or args.status)
    modes = (bool(args.preset) + bool(args.images) + full_mode + bool(args.export_hf) + bool(args.index)
             - (val_preset and (args.list or args.status)))
    if args.all and args.only:
        raise UserError("--all and --only exclude each other: --only TYPE[,TYPE] builds just those types")
    if modes != 1:
        raise UserError("choose what to build: --preset mini|daclip-val, --images DIR, --all, --only TYPE[,TYPE], "
                        "--list, --status, --export-hf DIR or --index DIR (see --help)")
    if args.export_hf:
        from .full import DEFAULT_ROOT
        from .hf_export import export_hf

        root = args.root or DEFAULT_ROOT
        counts = export_hf(root, args.export_hf, progress=not args.quiet)
        print(f"{args.export_hf}: DatasetDict " + ", ".join(f"{k} {v} rows" for k, v in counts.items()))
        return 0
    if args.lq_only and not args.index:
        raise UserError("--lq-only goes with --index DIR")
    if args.prompt and not args.index:
        raise UserError("--prompt TYPE=TEXT goes with --index DIR")
    if args.index:
        from .index import index_folder, index_lq_only

        if args.root is not None and Path(args.root).resolve() != Path(args.index).resolve():
            raise UserError("--index DIR writes the manifest into DIR itself; leave out --root")
        prompts = {}
        for item in args.prompt:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"--prompt expects TYPE=TEXT, got {item!r}")
            prompts[key.strip()] = value.strip()
        if args.lq_only:
            summary = index_lq_only(args.index, force=args.force, prompts=prompts)
        else:
            summary = index_folder(args.index, force=args.force, prompts=prompts)
        print(summary)
        return 0
    if val_preset:
        from .full import run_cli
        from .sources import get_recipe

        return run_cli(args, [get_recipe("daclip-val")], DEFAULT_VAL_ROOT)
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
