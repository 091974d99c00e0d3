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

import hashlib
import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import manifest as mf
from .download import DownloadConfig, Fetched, fetch, forget
from .errors import UserError
from .extract import DEFAULT_LIMITS, ArchiveProblem, DamagedArchive, EncryptedArchive, ExtractLimits, safe_extract
from .io import atomic_write_bytes, atomic_write_text, centre_crop, is_plain_png, read_image, save_image, sha256_bytes, sha256_file
from .layout import item_id, pair_relpaths
from .lock import FolderLock
from .naming import is_image, unique_stems
from .pairing import SourcePair, pair_source
from .sources import NeededFile, Recipe, preset_recipes, recipes_for
from .sources.base import ARCHIVE_SUFFIXES
from .synth import seed_for, synthesize
from .synth.base import STORE_AWARE
from .synth.inpaint import apply_mask
from .tasks import DEGRADATIONS, SPLITS, table1

DEFAULT_ROOT = Path("datasets/universal")
REPORT_NAME = "build_report.json"


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


@dataclass(frozen=True)
class Job:
    """One output pair; picklable so it can run in a worker process."""

    task: str
    split: str
    name: str  # output file name (<stem>.png)
    gt: str
    lq: str | None
    mask: str | None
    lq_kind: str  # "real" | "synthetic" | "mask"
    seed: int | None
    origin: str  # manifest "source"
    licence: str
    params: str  # JSON of what identifies the inputs (recipe, source files, extras)
    gt_expect: tuple | None = None  # published (size, sha256) of the GT file: checked before use
    store: str | None = None  # uint8 store convention of the synthetic LQ (noisy, jpeg-compressed)
    crop: int = 0  # centre-crop LQ and GT to a multiple of this (a protocol's test geometry; 0: none)

    @property
    def id(self) -> str:
        return item_id(self.split, self.task, self.name)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.lq_kind, self.seed, self.params]).encode()).hexdigest()[:16]


def _digest_problem(job: "Job") -> str | None:
    """Why the GT file is not the published one (expected and actual values), or None."""
    if job.gt_expect is None:
        return None
    size, sha = job.gt_expect
    have_size, have = Path(job.gt).stat().st_size, sha256_file(job.gt)
    if have == sha and (size is None or have_size == size):
        return None
    return (f"{Path(job.gt).name}: sha256 {have} ({have_size} bytes), expected the published {sha}"
            + (f" ({size} bytes)" if size is not None else "") + "; the file is not used")


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


# ------------------------------------------------------------------------------------ conversion

def _read_mask(path: str, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as im:
        m = im.convert("L")
        if m.size != size:
            # Area interpolation, as DA-CLIP's cv2.resize(..., INTER_AREA).
            m = m.resize(size, Image.Resampling.BOX)
        return np.asarray(m)


def _png_bytes_if_plain(path: str) -> bytes | None:
    """The file's bytes when it already is an 8-bit RGB PNG: copied as is, saving a re-encode."""
    if not path.lower().endswith(".png") or not is_plain_png(path):
        return None
    return Path(path).read_bytes()


def _write(path: Path, img: np.ndarray, src: str | None) -> bytes:
    raw = _png_bytes_if_plain(src) if src else None
    if raw is None:
        return save_image(path, img)
    atomic_write_bytes(path, raw)
    return raw


def _is_current(root: Path, job: Job, row: dict | None) -> bool:
    if row is None:
        return False
    try:
        if json.loads(row["parameters"]).get("job_key") != job.key:
            return False
    except ValueError:
        return False
    lq, gt = root / row["lq_path"], root / row["gt_path"]
    return (lq.is_file() and gt.is_file() and sha256_file(lq) == row["sha256"]
            and sha256_file(gt) == row["gt_sha256"])


def convert(job: Job, root: str, row: dict | None, force: bool) -> dict:
    """Build one pair. Returns {"status": "built"|"skipped"|"failed", "row" or "problem"}."""
    root = Path(root)
    if not force and _is_current(root, job, row):
        return {"status": "skipped", "id": job.id}
    params = {**json.loads(job.params), "job_key": job.key}
    bad = _digest_problem(job)
    if bad is not None:
        return {"status": "failed", "id": job.id, "problem": {
            "id": job.id, "kind": "digest-mismatch", "lq": job.lq, "gt": job.gt, "detail": bad}}
    try:
        whole = read_image(job.gt)
        gt = centre_crop(whole, job.crop)
        cropped = gt.shape != whole.shape
        if job.lq_kind == "real":
            whole = read_image(job.lq)
            lq = centre_crop(whole, job.crop)
            cropped = cropped or lq.shape != whole.shape
            if lq.shape != gt.shape:
                return {"status": "failed", "id": job.id, "problem": {
                    "id": job.id, "kind": "size-mismatch", "lq": job.lq, "gt": job.gt,
                    "detail": f"LQ {lq.shape[1]}x{lq.shape[0]} vs GT {gt.shape[1]}x{gt.shape[0]}"}}
        elif job.lq_kind == "synthetic":
            out = synthesize(job.task, gt, job.seed, store=job.store)
            lq, params = out.lq, {**params, **out.params}
        else:
            out = apply_mask(gt, _read_mask(job.mask, (gt.shape[1], gt.shape[0])))
            lq, params = out.lq, {**params, **out.params}
    except UserError as exc:
        return {"status": "failed", "id": job.id, "problem": {
            "id": job.id, "kind": "unreadable", "lq": job.lq, "gt": job.gt, "detail": str(exc)}}
    lq_rel, gt_rel = pair_relpaths(job.split, job.task, job.name)
    # A file is copied as it is only when nothing was cropped from it.
    gt_bytes = _write(root / gt_rel, gt, None if cropped else job.gt)
    lq_bytes = _write(root / lq_rel, lq, job.lq if job.lq_kind == "real" and not cropped else None)
    return {"status": "built", "id": job.id, "row": {
        "id": job.id, "type": job.task, "split": job.split, "name": job.name,
        "lq_path": lq_rel, "gt_path": gt_rel, "source": job.origin, "licence": job.licence,
        "width": int(gt.shape[1]), "height": int(gt.shape[0]),
        "parameters": json.dumps(params, sort_keys=True),
        "sha256": sha256_bytes(lq_bytes), "gt_sha256": sha256_bytes(gt_bytes)}}


def _convert_star(args):
    return convert(*args)


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
                on_result(_convert_star(a))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=cfg.workers, initializer=_ignore_sigint) as ex:
                futures = [ex.submit(_convert_star, a) for a in args]
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
            _save_report(root, report, outcomes)
            continue
        out.problems = paired.problems
        out.layout += paired.layout
        jobs = plan_jobs(recipe, paired.pairs, located, cfg, {n: f["sha256"] for n, f in out.files.items()})
        out.found = dict(Counter(f"{j.task}/{j.split}" for j in jobs))
        manifest = _build_jobs(root, jobs, cfg, manifest, out)
        _save_report(root, report, outcomes)
    if manifest.empty and not mf.manifest_path(root).exists():
        mf.write_manifest(root, [])
    return _save_report(root, report, outcomes)


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


# ------------------------------------------------------------------------------------- reports

def read_report(root: Path) -> dict:
    path = Path(root) / REPORT_NAME
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    return {"recipes": {}}


def _save_report(root: Path, report: dict, outcomes: list[RecipeOutcome]) -> dict:
    for o in outcomes:
        report["recipes"][o.name] = asdict(o)
    report["failing_pairs"] = sum(len(r["failed"]) for r in report["recipes"].values())
    report["unpaired_files"] = sum(len(r["problems"]) for r in report["recipes"].values())
    report["errors"] = {n: r["error"] for n, r in report["recipes"].items() if r.get("error")}
    atomic_write_text(Path(root) / REPORT_NAME, json.dumps(report, indent=1, sort_keys=True))
    return report


def paper_counts() -> dict[tuple[str, str], int]:
    """(type, split) -> the paper's count (Table 1: its #Test is what this build calls val)."""
    t = table1()
    return {(k, "train"): n for k, n in t["train"].items()} | {(k, "val"): n for k, n in t["test"].items()}


def status_table(root: Path) -> str:
    """Per type and split: pairs present (manifest rows whose files exist) / the paper's count."""
    if not mf.manifest_path(root).is_file():
        what = "does not exist" if not root.exists() else "is a file" if not root.is_dir() else "has no dataset"
        raise UserError(f"--status: {root} {what} (no {mf.manifest_path(root).name}); build a dataset there with "
                        f"--all, --only TYPE or --preset, or index an official-layout folder with --index {root}")
    df = mf.read_manifest(root, required=False)
    present: Counter = Counter()
    for r in df.to_dict("records"):
        if (root / r["lq_path"]).is_file() and (root / r["gt_path"]).is_file():
            present[(r["type"], r["split"])] += 1
    paper = paper_counts()
    lines = [f"{'type':<16} " + " ".join(f"{s + ' (have/paper)':>22}" for s in SPLITS)]
    for t in DEGRADATIONS:
        cells = []
        for s in SPLITS:
            have, want = present[(t, s)], paper.get((t, s), 0)
            mark = "" if have == want else (" +" if have > want else " -")
            cells.append(f"{f'{have}/{want}{mark}':>22}")
        lines.append(f"{t:<16} " + " ".join(cells))
    tot = [(sum(present[(t, s)] for t in DEGRADATIONS), sum(paper.get((t, s), 0) for t in DEGRADATIONS)) for s in SPLITS]
    lines.append(f"{'total':<16} " + " ".join(f"{f'{h}/{w}':>22}" for h, w in tot))
    lines.append("have: pairs in the manifest whose LQ and GT files exist under the root; paper: the paper's "
                 "count (val = its test set). '-' fewer pairs than the paper, '+' more, no mark: equal.")
    return "\n".join(lines)


def _known(f: NeededFile) -> str:
    digests = ", ".join(f"{k} {v}" for k, v in f.digests.items()) or "digest not published"
    return f"size {f.size if f.size is not None else 'not published'}, {digests}"


def list_text(recipes: list[Recipe]) -> str:
    out = []
    for r in recipes:
        out.append(f"{r.name}: {r.title}  [{', '.join(r.tasks)}; LQ {r.lq}]")
        out.append(f"  split:   {r.split_note}")
        out.append("  paper:   " + ", ".join(f"{t}/{s} {n}" for (t, s), n in r.expected.items()))
        out.append(f"  licence: {r.licence}")
        for label, names in r.variants:
            out.append(f"  either:  {label}: {' + '.join(names) if len(names) < 4 else f'{len(names)} files'}")
        shown: set[str] = set()
        for f in r.files:
            if f.group:
                if f.group in shown:
                    continue
                shown.add(f.group)
                members = [g for g in r.files if g.group == f.group]
                out.append(f"  files:   {f.group}: {members[0].name} ... {members[-1].name} ({len(members)} files; "
                           f"sizes and sha256 {'published' if all(g.sha256 for g in members) else 'partly published'}; "
                           "--list --json lists each)")
            else:
                kind = " (a folder, or its .zip)" if f.folder else ""
                out.append(f"  file:    {f.name}{kind}  ({_known(f)})")
                if f.expect:
                    out.append(f"           holds: {f.expect}")
                if f.aliases:
                    out.append(f"           also accepted below --from-dir: {', '.join(f.aliases)}")
            for c in f.candidates:
                where = c.where.replace(Path(f.name).name, "<name>") if f.group else c.where
                dead = "  [reported dead: tried last]" if c.dead else ""
                manual = "  [download by hand]" if c.kind == "gdrive-folder" else ""
                out.append(f"           {c.kind}: {where}" + (f"  ({c.note})" if c.note else "") + dead + manual)
        for n in r.notes:
            out.append(f"  note:    {n}")
    return "\n".join(out)


def list_json(recipes: list[Recipe]) -> str:
    return json.dumps([r.describe() for r in recipes], indent=1)


def summary_text(report: dict, names: list[str]) -> str:
    lines = []
    for n in names:
        r = report["recipes"][n]
        if r.get("error"):
            lines.append(f"{n}: FAILED: {r['error']}")
            continue
        found = ", ".join(f"{k} {v}" + (f"/{r['expected'][k]}" if k in r["expected"] else "") for k, v in sorted(r["found"].items()))
        lines.append(f"{n}: {r['built']} built, {r['skipped']} up to date, {len(r['failed'])} failing, "
                     f"{len(r['problems'])} unpaired files; found {found or 'nothing'}")
        if r.get("variant"):
            lines.append(f"  used: {r['variant']}")
        for note in r.get("layout", []):
            lines.append(f"  layout: {note}")
        for p in r["failed"][:10]:
            lines.append(f"  failing pair {p['id']}: {p['kind']}: {p['detail']}")
        for p in r["problems"][:10]:
            lines.append(f"  {p['kind']}: {p['file']}: {p['detail']}")
    return "\n".join(lines)


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
