"""Caption every GT image of a built dataset and write the DA-CLIP training CSVs.

    python -m captioning.run --root datasets/mini
    torchrun --nproc_per_node 8 -m captioning.run --root datasets/universal

Writes <root>/daclip_train.csv and <root>/daclip_val.csv (tab-separated, header
filepath/title, filepath = the absolute path of the LQ image (--relative: relative to the
current folder, as the official script writes), title = "<caption of its GT>: <prompt text of its type>"),
the caption store <root>/captions.parquet, and a ``caption`` column in the manifest.
Each distinct GT (by sha256) is captioned once; a re-run captions only what is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from builders.errors import UserError, cli_entry
from builders.tasks import SPLITS

from .blip import DEFAULT_MODEL, DTYPES, MAX_NEW_TOKENS, CaptionerConfig
from .csvfile import make_title, sanitize_caption, write_csv
from .store import STORE_NAME, CaptionRecord, Journal, merge_journals, read_store

DEFAULT_ROOT = Path("datasets/mini")
CSV_NAMES = {split: f"daclip_{split}.csv" for split in SPLITS}


@dataclass(frozen=True)
class RunOptions:
    root: Path
    captioner: CaptionerConfig
    batch_size: int | None = None  # None: 128 on GPU, 8 on CPU
    workers: int | None = None  # None: this process's share of the CPU cores
    force: bool = False
    relative: bool = False
    progress: bool = True


@dataclass(frozen=True)
class RunSummary:
    unique_gt: int
    generated: int  # by this process
    to_caption: int  # by all processes
    csv_rows: dict


def default_workers() -> int:
    """Decoding processes per rank: the cores shared by the ranks of this node, minus one."""
    local_world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(12, (os.cpu_count() or 2) // local_world - 1))


def _gt_table(root: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct GT (first by id), keyed by its sha256."""
    from builders.io import sha256_file

    sha = manifest["gt_sha256"].fillna("").astype(str)
    if (sha == "").any():
        # Older manifests may lack the hash; it is cheap to compute and keeps the key exact.
        sha = [s or sha256_file(root / p) for s, p in zip(sha, manifest["gt_path"])]
        manifest["gt_sha256"] = sha
    return manifest.sort_values("id").drop_duplicates("gt_sha256")[["gt_sha256", "gt_path"]]


def _csv_rows(root: Path, manifest: pd.DataFrame, captions: dict[str, str], relative: bool) -> dict[str, list]:
    from builders.manifest import read_vocabulary

    vocab = read_vocabulary(root, manifest)  # the title's degradation text is the type's prompt text
    order = {t: i for i, t in enumerate(vocab.types)}
    df = manifest.assign(_t=manifest["type"].map(order)).sort_values(["split", "_t", "lq_path"])
    base = Path.cwd()
    rows: dict[str, list] = {split: [] for split in SPLITS}
    for r in df.itertuples(index=False):
        lq = (root / r.lq_path).resolve()
        if not lq.is_file():  # a CSV row pointing nowhere would only fail later, in training
            raise UserError(f"LQ image listed in the manifest is missing: {lq}")
        # Absolute by default, so the CSV works from any working directory; --relative writes
        # paths relative to the current directory, as the official script does.
        path = os.path.relpath(lq, base) if relative else str(lq)
        rows.setdefault(r.split, []).append((Path(path).as_posix(), make_title(captions[r.gt_sha256], vocab.prompt(r.type))))
    return rows


def _update_manifest(root: Path, manifest: pd.DataFrame, captions: dict[str, str]) -> None:
    from builders.manifest import write_manifest

    new = manifest["gt_sha256"].map(captions)
    if "caption" in manifest.columns and manifest["caption"].astype(object).equals(new.astype(object)):
        return
    write_manifest(root, manifest.assign(caption=new))


def caption_dataset(opts: RunOptions) -> RunSummary:
    """The whole stage for this process (rank); rank 0 merges and writes the outputs.

    Rank 0 (the only rank that writes the manifest and the CSVs) holds the dataset root's writer
    lock for the whole stage, so a build and captioning never rewrite the manifest at once: the
    second writer is refused with one error line naming the first.
    """
    from builders.lock import rank0_lock

    if not opts.root.is_dir():  # no folder to lock: the stage says so with one line
        return _caption_dataset(opts)
    with rank0_lock(opts.root, "dataset root"):
        return _caption_dataset(opts)


def _caption_dataset(opts: RunOptions) -> RunSummary:
    from tqdm import tqdm

    from builders.manifest import read_manifest
    from daclip.dist import barrier, default_device, init_distributed

    root = opts.root
    if not root.is_dir():
        raise UserError(f"--root {root}: not a folder (build the dataset first)")
    info = init_distributed()
    manifest = read_manifest(root)
    if manifest.empty:
        raise UserError(f"manifest of {root} has no rows")
    gts = _gt_table(root, manifest)

    # Rank 0 folds journals left by an interrupted run into the store before anyone reads it.
    if info.is_main:
        merge_journals(root)
    barrier()
    store = read_store(root)
    todo = [(s, p) for s, p in zip(gts["gt_sha256"], gts["gt_path"]) if opts.force or s not in store]
    mine = todo[info.rank::info.world_size]
    if info.is_main and opts.progress:
        print(f"captioning: {len(todo)} of {len(gts)} distinct GT images to caption "
              f"({len(gts) - len(todo) if not opts.force else 0} already in {STORE_NAME})", file=sys.stderr)

    generated = 0
    if mine:
        from .blip import Captioner
        from .pipeline import caption_batches

        captioner = Captioner(opts.captioner, default_device(opts.captioner.device, info))
        bs = opts.batch_size or (128 if captioner.device.type == "cuda" else 8)
        paths = [root / p for _, p in mine]
        # A resumed run's bar starts at what earlier runs finished (this rank's share of it).
        done = 0 if opts.force else len(gts) - len(todo)
        done_here = done // info.world_size + (1 if info.rank < done % info.world_size else 0)
        with Journal(root, info.rank) as journal, tqdm(
            total=done_here + len(mine), initial=done_here, unit="img",
            desc=f"captions[{info.rank}]" if info.enabled else "captions",
            disable=not opts.progress, position=info.rank, leave=info.is_main,
        ) as bar:
            workers = opts.workers if opts.workers is not None else default_workers()
            for idx, raw in caption_batches(captioner, paths, bs, workers):
                journal.append(CaptionRecord(mine[i][0], sanitize_caption(c), c, captioner.model_id)
                               for i, c in zip(idx, raw))
                generated += len(idx)
                bar.update(len(idx))
    barrier()

    csv_rows = {}
    if info.is_main:
        store = merge_journals(root)
        missing = [s for s in gts["gt_sha256"] if s not in store]
        if missing:  # only possible if a rank's journal vanished mid-run
            raise UserError(f"{len(missing)} GT images have no caption; re-run to caption them")
        captions = {k: v.caption for k, v in store.items()}
        for split, rows in _csv_rows(root, manifest, captions, opts.relative).items():
            csv_rows[split] = write_csv(root / CSV_NAMES.get(split, f"daclip_{split}.csv"), rows)
        _update_manifest(root, manifest, captions)
        if opts.progress:
            print("captioning: wrote " + ", ".join(f"{CSV_NAMES.get(s, s)} ({n} rows)" for s, n in csv_rows.items())
                  + f" in {root}", file=sys.stderr)
    barrier()
    return RunSummary(unique_gt=len(gts), generated=generated, to_caption=len(todo), csv_rows=csv_rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m captioning.run",
        description="Caption every GT image of a built dataset with BLIP and write the DA-CLIP "
        "training CSVs <root>/daclip_train.csv and daclip_val.csv (tab-separated, "
        "filepath = LQ image, title = '<caption>: <degradation>'). Resumable; "
        "multi-GPU with torchrun --nproc_per_node N -m captioning.run.",
    )
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help=f"dataset folder with manifest.parquet (default {DEFAULT_ROOT})")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"BLIP captioning model: hub id (from the HF cache offline) or a local folder "
                   f"written by save_pretrained (default {DEFAULT_MODEL})")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per generate call (default 128 on GPU, 8 on CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: this rank's GPU, else CPU)")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="model precision (default auto: fp16 on GPU, fp32 on CPU)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader processes decoding images per rank (0: decode in the main "
                   "process; default: the node's cores / ranks - 1, at most 12)")
    p.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS,
                   help=f"caption length limit in tokens (default {MAX_NEW_TOKENS}, as the paper)")
    p.add_argument("--force", action="store_true",
                   help="recaption every GT even if the caption store has it (an interrupted "
                   "--force run starts over when re-run with --force)")
    p.add_argument("--relative", action="store_true",
                   help="write LQ paths relative to the current folder (as the official script) "
                   "instead of absolute paths")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    if not 1 <= args.max_new_tokens <= 512:
        raise UserError(f"--max-new-tokens must be in 1..512, got {args.max_new_tokens}")
    from daclip.dist import cleanup

    opts = RunOptions(
        root=args.root,
        captioner=CaptionerConfig(model=args.model, device=args.device, dtype=args.dtype,
                                  max_new_tokens=args.max_new_tokens),
        batch_size=args.batch_size, workers=args.workers, force=args.force,
        relative=args.relative, progress=not args.quiet,
    )
    try:
        summary = caption_dataset(opts)
    finally:
        cleanup()
    if not args.quiet:
        print(f"generated {summary.generated} captions; {summary.unique_gt} distinct GT images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
