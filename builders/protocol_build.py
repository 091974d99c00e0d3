"""Build a protocol's test set (``python -m builders.build --preset 3d|5d|cdd11``) with the
machinery of the full build: fetch or --from-dir, verify, bounded extraction, pairing, the
manifest and build_report.json.

Per protocol (builders.protocols): every task's pairs come from its source recipe; LQ and GT are
centre-cropped to the protocol's multiple (16 for 3D/5D, as the PromptIR family's test datasets
do before inference); CBSD68's noisy LQ is made by one of three noise modes, recorded per pair:

- ``seeded`` (default): each image's noise drawn from (protocol, image name, sigma), so the
  order of the files and any subset give the same pixels;
- ``upstream``: the PromptIR-family stream, numpy's legacy RandomState seeded 0 once, images in
  sorted original_png order, ``randn(H, W, 3) * sigma`` added to the cropped uint8 image, clipped
  and truncated to uint8, the protocol's sigma blocks in order (3D: 15, 25, 50; 5D: 25 alone).
  It depends on every file, so a subset is refused; each block is checked against its published
  digest (sha256 of the concatenated noisy bytes);
- ``from-files``: the pre-noised ``noisyNN/`` PNGs of the GitHub CBSD68 copy.

``--with-train`` adds the protocol's training entries that have a recipe (their train split,
uncropped). Clean-only training images (BSD400 + WED) get noise at each sigma of the protocol's
noisy tasks, one seeded draw per image: protocols.md defines no training noise, so the policy is
recorded in every pair's parameters.

The report's ``protocol`` entry states the noise mode, the crop, which copy or layout each source
was met in, and every task whose count differs from the protocol's.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import manifest as mf
from .download import DownloadConfig
from .errors import UserError
from .full import FullBuildConfig, RecipeOutcome, _build_jobs, _label, _prepare
from .full_report import REPORT_NAME, read_report, save_report, summary_text
from .io import centre_crop, read_image, save_image
from .lock import FolderLock
from .pair_convert import Job
from .pairing import SourcePair, pair_source
from .protocols import Protocol, ProtocolTask
from .sources import Recipe, get_recipe
from .synth import seed_for
from .synth.noise import add_gaussian
from .vocabulary import Vocabulary

NOISE_MODES = ("seeded", "upstream", "from-files")
NOISE_DIR = ".noise"  # staged noisy LQ under the root, one folder per mode and task


def seeded_noisy(clean: np.ndarray, protocol: str, name: str, sigma: float) -> np.ndarray:
    """The default: this image's own draw, seeded from (protocol, image name, sigma)."""
    rng = np.random.default_rng(seed_for("protocol-noise", protocol, name, sigma))
    return add_gaussian(clean, rng.standard_normal(clean.shape), sigma)


def upstream_stream(cleans: list[np.ndarray], blocks: list[float]) -> list[list[np.ndarray]]:
    """The PromptIR-family stream: one RandomState(0), every image of every sigma block in turn."""
    rs = np.random.RandomState(0)  # the legacy generator np.random.seed(0) resets
    return [[add_gaussian(c, rs.randn(*c.shape), sigma) for c in cleans] for sigma in blocks]


def stream_digest(images: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(np.ascontiguousarray(im).tobytes())
    return h.hexdigest()


def _train_tasks(protocol: Protocol, entry: dict) -> list[ProtocolTask]:
    """The tasks a training entry feeds: its ``tasks`` (the noise tasks for BSD400 + WED), else
    every task of the protocol (the pairs then name their own task, as CDD-11's do)."""
    return [protocol.task(n) for n in entry["tasks"]] if entry.get("tasks") else list(protocol.tasks)


def _sources(protocol: Protocol, with_train: bool) -> list[tuple[str, list[ProtocolTask], str]]:
    """(recipe, its tasks, "val" or "train"): the test sources, then with ``with_train`` the
    training entries that have a recipe (their train split only)."""
    out = [(s, [t for t in protocol.tasks if t.source == s], "val") for s in protocol.sources]
    if with_train:
        names = _recipe_names()
        out += [(t["source"], _train_tasks(protocol, t), "train") for t in protocol.train if t["source"] in names]
    return out


def protocol_recipes(protocol: Protocol, with_train: bool = False) -> list[Recipe]:
    """The recipes a protocol's build uses (for --list)."""
    return [get_recipe(s) for s, _, _ in _sources(protocol, with_train)]


def _recipe_names() -> set[str]:
    from .sources import all_recipes, preset_recipes

    return {r.name for r in all_recipes() + preset_recipes()}


def _noise_jobs(protocol: Protocol, recipe: Recipe, tasks: list[ProtocolTask], pairs: list[SourcePair],
                located: dict[str, Path], cfg: FullBuildConfig, noise: str, out: RecipeOutcome) -> list[Job]:
    pairs = sorted((p for p in pairs if p.split == "val"), key=lambda p: p.name)
    stage = Path(cfg.root) / NOISE_DIR / noise
    cleans = [centre_crop(read_image(p.gt), protocol.crop) for p in pairs]
    lqs: dict[str, list] = {}
    if noise == "upstream":
        total = sum(t.count for t in tasks) // max(1, len(tasks))
        bad = [p.gt.name for p in pairs if _digest_bad(recipe, p.gt)]
        if len(pairs) != total or bad:
            what = f"found {len(pairs)}" + (f", and {len(bad)} differ from their published digests (e.g. {bad[0]})"
                                            if bad else "")
            raise UserError(f"--noise upstream needs all {total} CBSD68 images with their published digests, because "
                            f"the stream runs over every file in order ({what}); use the default --noise seeded "
                            "for a subset")
        want_clean = protocol.noise.get("clean_digest")
        if want_clean and stream_digest(cleans) != want_clean:
            raise UserError(f"--noise upstream: the cropped clean images have sha256 {stream_digest(cleans)}, not the "
                            f"published {want_clean}")
        blocks = [float(s) for s in protocol.noise["upstream_blocks"]]
        for sigma, images in zip(blocks, upstream_stream(cleans, blocks)):
            task = next(t for t in tasks if t.sigma == sigma)
            want, have = protocol.noise["upstream_digests"].get(task.name), stream_digest(images)
            if want != have:
                raise UserError(f"--noise upstream: the {task.name} stream has sha256 {have}, not the published "
                                f"{want}; nothing of {recipe.name} is built")
            lqs[task.name] = images
        out.notes.append(f"noise upstream: RandomState(0), blocks {', '.join(f'{s:g}' for s in blocks)}, sorted order; "
                         "every block matches its published digest")
    jobs = []
    for t in tasks:
        for k, (p, clean) in enumerate(zip(pairs, cleans)):
            params = {"recipe": recipe.name, "gt_source": _label(p.gt, located), "noise": noise, "sigma": t.sigma,
                      "crop": protocol.crop}
            if noise == "from-files":
                src = dict(p.extra).get(f"noisy{int(t.sigma)}")
                if src is None:
                    raise UserError(f"--noise from-files: no noisy{int(t.sigma)}/{p.name}.png beside the clean images "
                                    "(the GitHub CBSD68 copy's CBSD68/noisy15, noisy25, noisy50 folders)")
                lq_path, params["lq_source"] = Path(src), _label(Path(src), located)
                params["lq_digest"] = _check_noisy(recipe, lq_path, int(t.sigma))
            else:
                if noise == "upstream":
                    lq = lqs[t.name][k]
                    params["stream"] = {"seed": 0, "generator": "numpy RandomState", "order": "sorted",
                                        "blocks": protocol.noise["upstream_blocks"], "uint8": "truncate"}
                else:
                    lq = seeded_noisy(clean, protocol.name, p.name, t.sigma)
                    params["seed"] = ["protocol-noise", protocol.name, p.name, t.sigma]
                lq_path = stage / t.name / f"{p.name}.png"
                save_image(lq_path, lq)
            jobs.append(_job(protocol, recipe, t.name, p, lq_path, params, located))
    return jobs


def _check_noisy(recipe: Recipe, path: Path, sigma: int) -> str:
    """A pre-noised file against its published digest: "published" when it matches, "not
    published" when none is known; a mismatch stops the build of the source."""
    from .io import sha256_file

    want = recipe.member_digests.get(f"noisy{sigma}/{path.name}")
    if want is None:
        return "not published"
    have = sha256_file(path)
    if have != want[1]:
        raise UserError(f"--noise from-files: {path} has sha256 {have}, not the published {want[1]}")
    return "published"


def _digest_bad(recipe: Recipe, path: Path) -> bool:
    from .io import sha256_file

    want = recipe.member_digests.get(path.name)
    return want is None or sha256_file(path) != want[1]


def _job(protocol: Protocol, recipe: Recipe, task: str, p: SourcePair, lq: Path | None, params: dict,
         located: dict[str, Path]) -> Job:
    expect = None if p.gt in set(located.values()) else recipe.member_digests.get(p.gt.name)
    params = {**dict(p.extra), **params, "protocol": protocol.name}
    params = {k: v for k, v in params.items() if v is not None and not k.startswith("noisy")}
    crop = protocol.crop if p.split == "val" else 0  # the test geometry; training images stay whole
    params["crop"] = crop
    return Job(task, p.split, f"{p.name}.png", str(p.gt), None if lq is None else str(lq), None, "real", None,
               f"{recipe.title}: {params.get('gt_source')}", recipe.licence, json.dumps(params, sort_keys=True),
               expect, None, crop)


def _expected(protocol: Protocol, source: str, tasks: list[ProtocolTask], split: str) -> dict[str, int]:
    if split == "val":
        return {f"{t.name}/val": t.count for t in tasks}
    entry = next(t for t in protocol.train if t["source"] == source)
    return {f"{tasks[0].name}/train": entry["count"]} if entry.get("count") and len(tasks) == 1 else {}


TRAIN_NOISE_POLICY = ("the protocol defines no training noise (protocols.md): one draw per image and sigma, seeded from "
                      "(protocol, image name, sigma), at the sigmas of the protocol's noisy test tasks")


def _train_noise_jobs(protocol: Protocol, recipe: Recipe, tasks: list[ProtocolTask], pairs: list[SourcePair],
                      located: dict[str, Path], out: RecipeOutcome) -> list[Job]:
    """Clean training images -> one noisy pair per noise task, drawn by the worker (pair_convert's
    "gaussian" LQ: add_gaussian, as the test noise) from a seed recorded in the parameters."""
    jobs = []
    for t in tasks:
        for p in pairs:
            seed_keys = ["protocol-train-noise", protocol.name, p.name, t.sigma]
            params = {"recipe": recipe.name, "gt_source": _label(p.gt, located), "noise": "seeded", "sigma": t.sigma,
                      "seed": seed_keys, "train_noise": TRAIN_NOISE_POLICY}
            job = _job(protocol, recipe, t.name, p, None, params, located)
            jobs.append(replace(job, lq_kind="gaussian", seed=seed_for(*seed_keys)))
    sigmas = ", ".join(f"{t.sigma:g}" for t in tasks)
    out.notes.append(f"training noise: sigma {sigmas}, seeded per image; {TRAIN_NOISE_POLICY}")
    return jobs


def _pair_jobs(protocol: Protocol, recipe: Recipe, tasks: list[ProtocolTask], pairs: list[SourcePair],
               located: dict[str, Path]) -> list[Job]:
    jobs = []
    for p in pairs:
        task = p.task if p.task is not None else (tasks[0].name if len(tasks) == 1 else None)
        if task not in {t.name for t in tasks}:
            continue
        params = {"recipe": recipe.name, "gt_source": _label(p.gt, located), "lq_source": _label(p.lq, located),
                  "crop": protocol.crop}
        jobs.append(_job(protocol, recipe, task, p, p.lq, params, located))
    return jobs


def build_protocol(protocol: Protocol, cfg: FullBuildConfig, noise: str = "seeded", with_train: bool = False) -> dict:
    """Build ``protocol``'s test set (and training sets whose sources are known) into cfg.root;
    returns the build report (also written to <root>/build_report.json)."""
    if noise not in NOISE_MODES:
        raise UserError(f"--noise {noise!r}: choose from {', '.join(NOISE_MODES)}")
    root = Path(cfg.root)
    with FolderLock(root, "dataset root"):
        dl = cfg.download or DownloadConfig(cache_dir=root / ".downloads", progress=cfg.progress, force=cfg.force)
        report = read_report(root)
        outcomes: list[RecipeOutcome] = []
        if not mf.manifest_path(root).exists():
            # The dataset's vocabulary is the protocol's tasks, in its order (tables follow it).
            mf.write_manifest(root, [], vocabulary=Vocabulary.of(protocol.task_names))
        manifest = mf.read_manifest(root, required=False)
        found: Counter = Counter()
        for source, tasks, split in _sources(protocol, with_train):
            recipe = get_recipe(source)
            out = RecipeOutcome(recipe.name, notes=list(recipe.notes))
            out.expected = _expected(protocol, source, tasks, split)
            outcomes.append(out)
            try:
                located = _prepare(recipe, cfg, dl, out)
                paired = pair_source(recipe.pairing, located)
                out.problems, out.layout = paired.problems, out.layout + paired.layout
                pairs = [p for p in paired.pairs if p.split == split]
                if split == "train" and any(t.sigma is not None for t in tasks):
                    jobs = _train_noise_jobs(protocol, recipe, tasks, pairs, located, out)
                elif any(t.sigma is not None for t in tasks):
                    jobs = _noise_jobs(protocol, recipe, tasks, pairs, located, cfg, noise, out)
                else:
                    jobs = _pair_jobs(protocol, recipe, tasks, pairs, located)
            except UserError as exc:
                out.error = str(exc)
                save_report(root, report, outcomes)
                continue
            out.found = dict(Counter(f"{j.task}/{j.split}" for j in jobs))
            manifest = _build_jobs(root, jobs, cfg, manifest, out)
            built = {j.id for j in jobs} - {f["id"] for f in out.failed}
            found.update(j.task for j in jobs if j.split == "val" and j.id in built)
            save_report(root, report, outcomes)
        report["protocol"] = {
            "name": protocol.name, "title": protocol.title, "noise": noise, "crop": protocol.crop,
            "convention": protocol.convention, "expected": protocol.counts(), "found": dict(found),
            "count_mismatch": [f"{t.name}: {found.get(t.name, 0)} test pairs, the protocol has {t.count}"
                               for t in protocol.tasks if found.get(t.name, 0) != t.count],
            "layouts": {o.name: o.layout for o in outcomes},
            # Training sources the protocol names that have no recipe yet: download them by hand.
            "train_without_recipe": [dict(t) for t in protocol.train if t["source"] not in _recipe_names()]
            if with_train else [],
        }
        return save_report(root, report, outcomes)


def run_protocol_cli(args, protocol: Protocol) -> int:
    """The --preset 3d|5d|cdd11 part of builders.build."""
    import sys

    from .extract import ExtractLimits, parse_size

    root = Path(args.root or protocol.default_root)
    if args.from_dir is not None and not Path(args.from_dir).is_dir():
        raise UserError(f"--from-dir: not a folder: {args.from_dir}")
    if args.from_dir is not None and args.mirror:
        raise UserError("choose one of --from-dir and --mirror")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    limits = ExtractLimits(max_bytes=parse_size(args.max_extract_size), max_ratio=args.max_extract_ratio)
    dl = DownloadConfig(cache_dir=root / ".downloads", mirror=args.mirror,
                        from_dir=None if args.from_dir is None else Path(args.from_dir),
                        retries=args.retries, progress=not args.quiet, force=args.force)
    cfg = FullBuildConfig(root=root, tasks=tuple(protocol.task_names), download=dl, workers=args.workers,
                          seed=args.seed, force=args.force, progress=not args.quiet, limits=limits)
    report = build_protocol(protocol, cfg, noise=args.noise, with_train=args.with_train)
    names = [s for s, _, _ in _sources(protocol, args.with_train)]
    info = report["protocol"]
    print(f"{protocol.name}: {protocol.title}; noise {info['noise']}; crop {info['crop'] or 'none'}; "
          f"convention {info['convention']}")
    print(summary_text(report, names))
    print(f"report: {root / REPORT_NAME}")
    errors = [f"{n}: {report['recipes'][n]['error']}" for n in names if report["recipes"][n].get("error")]
    if errors:
        raise UserError(f"{len(errors)} source(s) could not be built: " + " || ".join(errors))
    for t in info["train_without_recipe"]:
        print(f"not built: training source {t['source']} has no recipe" + (f" ({t['note']})" if t.get("note") else ""))
    for line in info["count_mismatch"]:
        print(f"warning: {line} (stated in {root / REPORT_NAME})", file=sys.stderr)
    n_failed = sum(len(report["recipes"][n]["failed"]) for n in names)
    if n_failed:
        print(f"warning: {n_failed} failing pairs (see {root / REPORT_NAME})", file=sys.stderr)
    return 1 if n_failed or info["count_mismatch"] else 0
