"""Build the paper's ten-type dataset from the real sources (``python -m builders.build --all``).

Per recipe: fetch and verify the files, extract them safely under <root>/.extracted, pair them
with the source's rule, then convert every pair to <root>/<split>/<type>/{LQ,GT}/<name>.png
(in parallel with ``workers`` processes). Synthetic LQ (noise, JPEG, official masks) is seeded
from (seed, type, split, name) and its parameters go into the manifest.

Idempotent and resumable: a pair whose manifest row matches the same recipe inputs and whose
files still hash to the recorded sums is skipped; finished rows are flushed to the manifest
periodically and on Ctrl-C; outputs are written atomically, so a killed run re-run ends with the
same files and no duplicate rows. Pairs that fail (unreadable, sizes differ) and files that could
not be paired go to <root>/build_report.json and are printed, never dropped silently.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from . import manifest as mf
from .download import DownloadConfig, Fetched, fetch, forget
from .errors import UserError
from .extract import DEFAULT_LIMITS, ArchiveProblem, DamagedArchive, EncryptedArchive, ExtractLimits, safe_extract
from .full_report import REPORT_NAME, list_json, list_text, read_report, save_report, status_table, summary_text
from .io import atomic_write_text, sha256_file
from .lock import FolderLock
from .naming import is_image, unique_stems
from .pair_convert import Job, convert_packed
from .pairing import SourcePair, pair_source
from .sources import NeededFile, Recipe, preset_recipes, recipes_for
from .sources.base import ARCHIVE_SUFFIXES
from .synth import seed_for
from .synth.base import STORE_AWARE
from .tasks import DEGRADATIONS, SPLITS

DEFAULT_ROOT = Path("datasets/universal")


@dataclass(frozen=True)
class FullBuildConfig:
    root: Path
    tasks: tuple[str, ...] = DEGRADATIONS
    download: DownloadConfig | None = None  # None: <root>/.downloads, no mirror
    workers: int = 1
    seed: int = 0
    force: bool = False
    progress: bool = True
    flush_every: int = 500  # manifest rows between periodic flushes
    limits: ExtractLimits = DEFAULT_LIMITS  # bounds on what one archive may expand to
    # How synthetic noisy/JPEG LQ is stored as uint8: "truncate", as DA-CLIP's generate_LQ.py.
    uint8_store: str = "truncate"


@dataclass
class RecipeOutcome:
    name: str
    files: dict = field(default_factory=dict)
    found: dict = field(default_factory=dict)  # "type/split" -> pairs found
    expected: dict = field(default_factory=dict)
    built: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    error: str | None = None
    notes: list = field(default_factory=list)
    variant: str = ""  # which of the source's file sets was used
    layout: list = field(default_factory=list)  # which of the known inner layouts was met


# ------------------------------------------------------------------------------------ planning

def _label(path: Path | None, located: dict[str, Path]) -> str | None:
    """'<needed file>:<path inside it>': the same whether files came by download or --from-dir."""
    if path is None:
        return None
    for name, where in located.items():
        if path == where:
            return name
        if path.is_relative_to(where):
            return f"{name}:{path.relative_to(where).as_posix()}"
    return str(path)


def plan_jobs(recipe: Recipe, pairs: list[SourcePair], located: dict[str, Path], cfg: FullBuildConfig,
              file_sha: dict[str, str] | None = None) -> list[Job]:
    """One Job per (type, pair). ``file_sha`` (needed file -> sha256) ties each pair to the exact
    archive it came from, so a changed download rebuilds its pairs. Two pairs that would write the
    same output name are both built, named by builders.naming's rule."""
    file_sha = file_sha or {}
    fetched = set(located.values())
    jobs: list[Job] = []
    for task in recipe.tasks:
        if task not in cfg.tasks:
            continue
        chosen = [p for p in pairs if (task, p.split) in recipe.expected and p.task in (None, task)]
        # Two pairs of one name (x.png beside x.jpg) both get built, under builders.naming's rule.
        stems = unique_stems([f"{p.split}/{p.name}{p.gt.suffix or '.img'}" for p in chosen])
        for p, stem in zip(chosen, stems):
            name = f"{PurePosixPath(stem).name}.png"
            seed = None if recipe.lq == "real" else seed_for(cfg.seed, "full", task, p.split, name)
            store = cfg.uint8_store if recipe.lq == "synthetic" and task in STORE_AWARE else None
            gt_label = _label(p.gt, located)
            labels = {"gt_source": gt_label, "lq_source": _label(p.lq, located), "mask_source": _label(p.mask, located)}
            origins = {lab.split(":", 1)[0] for lab in labels.values() if lab}
            params = {"recipe": recipe.name, **labels, **dict(p.extra),
                      "source_sha256": {n: file_sha[n] for n in sorted(origins) if n in file_sha}}
            if store is not None:
                params["uint8_store"] = store
            if recipe.notes:
                params["notes"] = list(recipe.notes)
            # Files found inside archives are checked against their published digests (files
            # that are needed files themselves were checked when they were fetched).
            expect = None if p.gt in fetched else recipe.member_digests.get(p.gt.name)
            job = Job(task, p.split, name, str(p.gt), None if p.lq is None else str(p.lq),
                      None if p.mask is None else str(p.mask), recipe.lq, seed,
                      f"{recipe.title}: {gt_label}", recipe.licence,
                      json.dumps({k: v for k, v in params.items() if v is not None}, sort_keys=True),
                      expect, store)
            jobs.append(job)
    return jobs


def _in_from_dir(f: NeededFile, base: Path) -> bool:
    """The file (or, for a folder, the folder or its zip; or an accepted alias) is present in ``base``."""
    from .download import locate_in_dir

    return locate_in_dir(f, base) is not None


def _extract(f: NeededFile, got: Fetched, recipe: Recipe, cfg: FullBuildConfig) -> Path:
    """Extract an archive under <root>/.extracted (again when the archive changed or --force)."""
    dest = cfg.root / ".extracted" / recipe.name / f.name
    stamp = dest.with_name(f".{dest.name}.sha256")
    stale = cfg.force or (dest.exists() and (not stamp.exists() or stamp.read_text() != got.sha256))
    try:
        safe_extract(got.path, dest, keep=None if f.keep_all else recipe.keep_member, force=stale,
                     progress=cfg.progress, limits=cfg.limits)
    except EncryptedArchive as exc:
        raise UserError(f"{exc}" + (f"; {f.note}" if f.note else "")) from None
    except ArchiveProblem as exc:
        if got.cached and isinstance(exc, DamagedArchive):
            forget(got.path)  # a file that fails is never used: the next run fetches it anew
            raise UserError(f"{exc}; the download {got.path} was deleted, run again to fetch it anew") from None
        if got.cached:
            raise UserError(f"{exc}; to fetch it again, delete it: rm -r '{got.path}'") from None
        raise UserError(f"{exc}; replace {got.path} with a good copy") from None
    atomic_write_text(stamp, got.sha256)
    return dest


def _expand_folder(f: NeededFile, folder: Path, recipe: Recipe, cfg: FullBuildConfig, outcome: RecipeOutcome) -> Path:
    """A downloaded folder that holds archives but no images (a hub repo of zips): extract them."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    archives = [p for p in files if p.name.lower().endswith(ARCHIVE_SUFFIXES)]
    if not archives or any(is_image(p) for p in files):
        return folder
    for a in sorted(archives):
        inner = NeededFile(f"{f.name}/{a.relative_to(folder).as_posix()}", (), keep_all=f.keep_all)
        _extract(inner, Fetched(a, sha256_file(a), a.stat().st_size, "folder", cached=True), recipe, cfg)
    outcome.layout.append(f"{f.name}: a folder of archives ({', '.join(a.name for a in sorted(archives))}), extracted")
    return cfg.root / ".extracted" / recipe.name / f.name


def _obtain(recipe: Recipe, files: tuple[NeededFile, ...], cfg: FullBuildConfig, dl: DownloadConfig,
            outcome: RecipeOutcome) -> dict[str, Path]:
    """Fetch, validate and extract one file set; needed file name -> folder or file."""
    located: dict[str, Path] = {}
    missing = []
    for f in files:
        try:
            got = fetch(f, dl)
        except UserError as exc:
            missing.append(str(exc))
            if dl.from_dir is None:
                break  # the network failed for this source: do not try its other files one by one
            continue  # --from-dir: list every missing file at once
        outcome.files[f.name] = {"size": got.size, "sha256": got.sha256, "from": got.origin,
                                 "expected_size": f.size, "expected_sha256": f.sha256, "expected_md5": f.md5}
        if got.path.is_dir():
            located[f.name] = _expand_folder(f, got.path, recipe, cfg, outcome)
        elif f.is_archive:
            located[f.name] = _extract(f, got, recipe, cfg)
        else:
            located[f.name] = got.path
    if missing:
        raise UserError(" | ".join(missing[:5])
                        + (f" | and {len(missing) - 5} more files" if len(missing) > 5 else ""))
    return located


def _prepare(recipe: Recipe, cfg: FullBuildConfig, dl: DownloadConfig, outcome: RecipeOutcome) -> dict[str, Path]:
    """The first of the recipe's file sets that can be obtained completely (--from-dir: the first
    one whose files are all in the folder); returns needed file name -> folder or file."""
    sets = recipe.file_sets()
    if dl.from_dir is not None and len(sets) > 1:
        present = [(label, files) for label, files in sets if all(_in_from_dir(f, Path(dl.from_dir)) for f in files)]
        if not present:
            from .download import accepted_text

            need = " or ".join(f"[{label}] " + " + ".join(accepted_text(f) if f.aliases else f.archive_name
                                                            for f in files if not _in_from_dir(f, Path(dl.from_dir)))
                               for label, files in sets)
            raise UserError(f"--from-dir {dl.from_dir}: {recipe.name} needs one of these file sets, and these "
                            f"of their files are missing: {need}")
        sets = present[:1]
    elif dl.from_dir is None:
        # A release already downloaded completely is used again before another is tried.
        sets = sorted(sets, key=lambda fs: not all(_in_from_dir(f, dl.cache_dir) for f in fs[1]))
    errors = []
    for label, files in sets:
        try:
            located = _obtain(recipe, files, cfg, dl, outcome)
        except UserError as exc:
            errors.append(f"[{label}] {exc}" if label else str(exc))
            continue
        outcome.variant = label
        return located
    raise UserError(" || ".join(errors))


# ---------------------------------------------------------------------------------------- build

def _ignore_sigint() -> None:
    # Ctrl-C is handled by the main process, which lets running pairs finish and flushes the
    # manifest; a worker dying on SIGINT would break the pool instead.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_jobs(jobs: list[Job], cfg: FullBuildConfig, old, on_result) -> None:
    by_id = {r["id"]: r for r in old.to_dict("records")} if not old.empty else {}
    args = [(j, str(cfg.root), by_id.get(j.id), cfg.force) for j in jobs]
    bar = tqdm(total=len(jobs), desc="converting", unit="pair", disable=not cfg.progress)
    try:
        if cfg.workers <= 1:
            for a in args:
                on_result(convert_packed(a))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=cfg.workers, initializer=_ignore_sigint) as ex:
                futures = [ex.submit(convert_packed, a) for a in args]
                consumed = set()
                try:
                    for fut in as_completed(futures):
                        consumed.add(fut)
                        on_result(fut.result())
                        bar.update()
                except BaseException:
                    # Let the running pairs finish and keep every finished one (Ctrl-C loses nothing done).
                    for fut in futures:
                        fut.cancel()
                    wait(futures)
                    for fut in futures:
                        if fut not in consumed and not fut.cancelled() and fut.exception() is None:
                            on_result(fut.result())
                    raise
    finally:
        bar.close()


def _remove_partial_outputs(root: Path, tasks) -> None:
    """Delete temp files a killed run left behind (builders.io writes '.<name>.<random>.part')."""
    for split in SPLITS:
        for task in tasks:
            for kind in ("LQ", "GT"):
                folder = root / split / task / kind
                if folder.is_dir():
                    for tmp in folder.glob(".*.part"):
                        tmp.unlink(missing_ok=True)


def build_full(cfg: FullBuildConfig, recipes: list[Recipe] | None = None) -> dict:
    """Build the selected recipes into cfg.root; returns the build report (also written to disk).

    Holds the root's writer lock throughout: a second writer (another build, captioning) is
    refused with an error naming this one, instead of both rewriting the manifest.
    """
    root = Path(cfg.root)
    with FolderLock(root, "dataset root"):
        return _build_full_locked(cfg, root, recipes)


def _build_full_locked(cfg: FullBuildConfig, root: Path, recipes: list[Recipe] | None) -> dict:
    dl = cfg.download or DownloadConfig(cache_dir=root / ".downloads", progress=cfg.progress, force=cfg.force)
    recipes = recipes if recipes is not None else recipes_for(cfg.tasks)
    report = read_report(root)
    _remove_partial_outputs(root, cfg.tasks)
    outcomes: list[RecipeOutcome] = []
    manifest = mf.read_manifest(root, required=False)
    for recipe in recipes:
        out = RecipeOutcome(recipe.name, notes=list(recipe.notes))
        out.expected = {f"{t}/{s}": n for (t, s), n in recipe.expected.items() if t in cfg.tasks}
        outcomes.append(out)
        try:
            located = _prepare(recipe, cfg, dl, out)
            paired = pair_source(recipe.pairing, located)
        except UserError as exc:
            out.error = str(exc)
            save_report(root, report, outcomes)
            continue
        out.problems = paired.problems
        out.layout += paired.layout
        jobs = plan_jobs(recipe, paired.pairs, located, cfg, {n: f["sha256"] for n, f in out.files.items()})
        out.found = dict(Counter(f"{j.task}/{j.split}" for j in jobs))
        manifest = _build_jobs(root, jobs, cfg, manifest, out)
        save_report(root, report, outcomes)
    if manifest.empty and not mf.manifest_path(root).exists():
        mf.write_manifest(root, [])
    return save_report(root, report, outcomes)


def _build_jobs(root: Path, jobs: list[Job], cfg: FullBuildConfig, manifest, out: RecipeOutcome):
    rows: list[dict] = []
    failed: set[str] = set()
    state = {"manifest": manifest}

    def flush():
        m = state["manifest"]
        if failed:
            m = m[~m["id"].isin(failed)] if not m.empty else m
        if rows:
            m = mf.upsert(m, rows)
            rows.clear()
        mf.write_manifest(root, m)
        state["manifest"] = m

    def on_result(res):
        if res["status"] == "built":
            rows.append(res["row"])
            out.built += 1
        elif res["status"] == "skipped":
            out.skipped += 1
        else:
            failed.add(res["id"])
            out.failed.append(res["problem"])
        if len(rows) >= cfg.flush_every:
            flush()

    try:
        _run_jobs(jobs, cfg, manifest, on_result)
        out.failed.sort(key=lambda p: p["id"])  # workers finish in any order
        # Rows this recipe made earlier for pairs that no longer exist in its sources.
        failed.update(_stale_ids(state["manifest"], out.name, {j.task for j in jobs} or set(cfg.tasks),
                                 {j.id for j in jobs}))
    finally:
        # Even on Ctrl-C, record the finished pairs so a re-run skips them.
        flush()
    return state["manifest"]


def _stale_ids(manifest, recipe: str, tasks: set[str], current: set[str]) -> set[str]:
    if manifest.empty:
        return set()
    stale = set()
    for r in manifest[manifest["type"].isin(tasks)].to_dict("records"):
        if r["id"] not in current:
            try:
                if json.loads(r["parameters"]).get("recipe") == recipe:
                    stale.add(r["id"])
            except ValueError:
                pass
    return stale


def run_cli(args, recipes: list[Recipe] | None = None, default_root: Path = DEFAULT_ROOT) -> int:
    """The --all/--only/--list/--status/--preset daclip-val part of builders.build."""
    from .extract import ExtractLimits, parse_size
    from .tasks import parse_tasks

    tasks = tuple(parse_tasks(args.only)) if args.only else DEGRADATIONS
    if recipes is None:
        # The ten-type presets (daclip-val); a protocol's sources are listed by --preset NAME --list.
        ten = [r for r in preset_recipes() if set(r.tasks) <= set(DEGRADATIONS)]
        recipes = recipes_for(tasks) + ([] if args.only or not args.list else ten)
    if args.list:
        print(list_json(recipes) if args.json else list_text(recipes))
        return 0
    root = Path(args.root or default_root)
    if args.status:
        print(status_table(root))
        return 0
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.from_dir is not None and not Path(args.from_dir).is_dir():
        raise UserError(f"--from-dir: not a folder: {args.from_dir}")
    if args.from_dir is not None and args.mirror:
        raise UserError("choose one of --from-dir and --mirror")
    if args.max_extract_ratio <= 0:
        raise UserError(f"--max-extract-ratio must be positive, got {args.max_extract_ratio:g}")
    limits = ExtractLimits(max_bytes=parse_size(args.max_extract_size), max_ratio=args.max_extract_ratio)
    dl = DownloadConfig(cache_dir=root / ".downloads", mirror=args.mirror,
                        from_dir=None if args.from_dir is None else Path(args.from_dir),
                        retries=args.retries, progress=not args.quiet, force=args.force)
    cfg = FullBuildConfig(root=root, tasks=tasks, download=dl, workers=args.workers, seed=args.seed,
                          force=args.force, progress=not args.quiet, limits=limits)
    report = build_full(cfg, recipes)
    print(summary_text(report, [r.name for r in recipes]))
    print(f"report: {root / REPORT_NAME}")
    errors = [f"{r.name}: {report['recipes'][r.name]['error']}" for r in recipes if report["recipes"][r.name].get("error")]
    if errors:
        raise UserError(f"{len(errors)} source(s) could not be built: " + " || ".join(errors))
    n_failed = sum(len(report["recipes"][r.name]["failed"]) for r in recipes)
    if n_failed:
        print(f"warning: {n_failed} failing pairs (see {root / REPORT_NAME})", file=sys.stderr)
        return 1
    return 0
