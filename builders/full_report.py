"""What a real-source build reports: ``build_report.json`` (read, merged, written), the
``--status`` table against the paper's counts, the ``--list`` text/JSON of the source recipes,
and the per-recipe summary printed at the end of a build.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from . import manifest as mf
from .errors import UserError
from .io import atomic_write_text
from .sources import NeededFile, Recipe
from .tasks import DEGRADATIONS, SPLITS, table1

REPORT_NAME = "build_report.json"


def read_report(root: Path) -> dict:
    path = Path(root) / REPORT_NAME
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    return {"recipes": {}}


def save_report(root: Path, report: dict, outcomes: list) -> dict:
    """Merge the recipes' outcomes (RecipeOutcome dataclasses) into ``report`` and write it."""
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
        out.append("  paper:   " + (", ".join(f"{t}/{s} {n}" for (t, s), n in r.expected.items()) or "no count published"))
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
