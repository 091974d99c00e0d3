"""Result-only methods: score a folder of restored images as a method row (``--results NAME=DIR``).

Many methods publish restored images and no weights (the paper's ten-task NAFNet, Restormer,
AirNet and IR-SDE rows; the CDD-11 repository's ``methods`` branch). Such a folder becomes a
method whose "restoration" of an image is the file matched to it, so its row is scored by the
very code that scores every other row, in every table, chart, example grid and export.

Files are matched to the dataset's images by type and name, trying in turn (first hit wins):

- ``<split>/<type>/<output name>``: this toolkit's own ``outputs/<method>/`` layout;
- ``<type>/<stem>.<any image suffix>``: the official per-type layout, and CDD-11's published
  ``NN_<Method>/<type>/<name>.png`` (protocols.md, "CDD-11 released outputs");
- ``<stem>.<any image suffix>`` in the folder itself, when each stem names one image.

Files that match no image are *extra*; images with no file are *missing*; files that cannot
be decoded are *unreadable*; files whose size differs from the input's are *wrong size*. All
four are listed by name in summary.json and the report; only the matched, readable,
right-size files are scored, and the row shows its n against the dataset's.

The folder's content digest (each file's path and sha256) is the row's ``weights_id``, a part
of every cache key: an unchanged folder is never rescored; a changed file gives a new id.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from builders.errors import UserError
from builders.io import read_image, sha256_file
from builders.naming import IMAGE_SUFFIXES
from builders.pairing import images_in

from .methods import Method, MethodUnavailable, method_specs

LAYOUTS = ("toolkit outputs <split>/<type>/<name>", "<type>/<name>", "flat <name>")
_SHOWN = 20  # names listed per problem kind on the console (all of them go to summary.json)


def parse_results(pairs: list[str], methods: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` options -> {name: folder}; a UserError for a bad or clashing one."""
    out: dict[str, Path] = {}
    known = set(method_specs()) if pairs else set()  # (the registry imports torch: only when asked)
    for pair in pairs:
        name, sep, path = pair.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise UserError(f"--results expects NAME=DIR, got {pair!r}")
        if name in known or name in methods:
            raise UserError(f"--results {pair!r}: {name!r} is a method name; give the folder another row name")
        if name in out:
            raise UserError(f"--results: row name {name!r} given twice")
        if "/" in name or name.startswith("."):
            raise UserError(f"--results {pair!r}: the row name may not contain '/' or start with '.'")
        folder = Path(path)
        if not folder.is_dir():
            raise UserError(f"--results {pair!r}: no such folder: {folder}")
        out[name] = folder
    return out


class ResultFolder(Method):
    """A method row read from a folder of restored images (see the module docstring)."""

    def __init__(self, name: str, folder: Path):
        self.name = name
        self.display_name = name
        self.folder = Path(folder)
        self.files: dict[str, Path] = {}  # image id -> matched, readable, right-size file
        self.coverage: dict = {}

    # -- matching
    def bind(self, items: pd.DataFrame, split_items: pd.DataFrame, names: dict[str, str]) -> None:
        """Match the folder's files to ``items`` (the images of this run); files of other
        images of the split (outside --tasks or --limit) are neither missing nor extra."""
        root = self.folder
        subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
        numbered = [d for d in subdirs if re.fullmatch(r"\d\d_.+", d) and d != "00_gt"]
        if "00_gt" in subdirs and numbered:  # CDD-11's `methods` branch: one folder per method
            raise UserError(f"--results {self.name}={root}: this holds CDD-11's published outputs of "
                            f"{len(numbered)} methods; give one folder per row, e.g. "
                            f"--results {numbered[-1].split('_', 1)[1]}={root / numbered[-1]}")
        files = images_in(root, recursive=True)
        if not files:
            raise UserError(f"--results {self.name}={root}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        rel = {f.relative_to(root).as_posix(): f for f in files}
        by_type_stem: dict[tuple[str, str], list[str]] = {}
        by_stem: dict[str, list[str]] = {}
        for r in rel:
            parts = r.split("/")
            stem = Path(parts[-1]).stem
            by_stem.setdefault(stem, []).append(r)
            if len(parts) >= 2:
                by_type_stem.setdefault((parts[-2], stem), []).append(r)
        # A flat folder only when the names of this run's images are unique.
        flat_ok = not items["name"].map(lambda n: Path(n).stem).duplicated().any()
        selected = set(items["id"])
        used: set[str] = set()
        matched: dict[str, str] = {}
        others = split_items[~split_items["id"].isin(selected)]
        for row in [*items.to_dict("records"), *others.to_dict("records")]:
            stem = Path(row["name"]).stem
            hit = None
            toolkit = names.get(row["id"])  # "<split>/<type>/<stem>.png" as the runner writes it
            if toolkit and toolkit in rel:
                hit = toolkit
            elif toolkit and toolkit.split("/", 1)[1] in rel:
                hit = toolkit.split("/", 1)[1]
            else:
                cands = [c for c in by_type_stem.get((row["type"], stem), []) if c not in used]
                if not cands and flat_ok and row["id"] in selected:
                    cands = [c for c in by_stem.get(stem, []) if "/" not in c and c not in used]
                if cands:
                    exact = [c for c in cands if c.endswith("/" + row["name"]) or c == row["name"]]
                    hit = (exact or sorted(cands))[0]
            if hit is not None:
                used.add(hit)
                if row["id"] in selected:
                    matched[row["id"]] = hit
        extra = sorted(r for r in rel if r not in used)
        missing = sorted(i for i in selected if i not in matched)
        want = {r["id"]: (int(r["height"]), int(r["width"])) for r in items.to_dict("records")}

        def check(item: tuple[str, str]) -> tuple[str, str, str, str | None]:
            iid, r = item
            path = rel[r]
            digest = sha256_file(path)
            try:
                img = read_image(path)
            except (OSError, ValueError, UserError) as exc:
                return iid, r, digest, f"unreadable: {exc}"
            if tuple(img.shape[:2]) != want[iid]:
                h, w = want[iid]
                return iid, r, digest, f"wrong size: {img.shape[1]}x{img.shape[0]}, the input is {w}x{h}"
            return iid, r, digest, None

        with ThreadPoolExecutor(4) as pool:
            checked = list(pool.map(check, sorted(matched.items())))
        unreadable, wrong_size = [], []
        digest = hashlib.sha256()
        for iid, r, sha, problem in checked:
            digest.update(f"{iid}\t{r}\t{sha}\n".encode())
            if problem is None:
                self.files[iid] = rel[r]
            elif problem.startswith("unreadable"):
                unreadable.append({"file": r, "id": iid, "reason": problem})
            else:
                wrong_size.append({"file": r, "id": iid, "reason": problem})
        self.weights_id = "results-" + digest.hexdigest()[:16]
        self.coverage = {"folder": str(root.resolve()), "digest": digest.hexdigest(), "n": len(self.files),
                         "of": len(items), "missing": missing, "extra": extra, "unreadable": unreadable,
                         "wrong_size": wrong_size}
        self.settings = {"results_folder": str(root.resolve()), "folder_digest": digest.hexdigest()[:16]}
        if len(self.files) < len(items):
            self.display_name = f"{self.name} (n={len(self.files)}/{len(items)})"

    @property
    def partial(self) -> bool:
        return bool(self.coverage) and self.coverage["n"] < self.coverage["of"]

    def problems(self) -> list[str]:
        """One line per kind of problem, naming the first files (summary.json lists them all)."""
        c, lines = self.coverage, []
        for kind, entries in (("missing", c["missing"]), ("extra", c["extra"]),
                              ("unreadable", [e["file"] for e in c["unreadable"]]),
                              ("wrong size", [e["file"] for e in c["wrong_size"]])):
            if entries:
                more = f", ... ({len(entries) - _SHOWN} more)" if len(entries) > _SHOWN else ""
                lines.append(f"{kind} {len(entries)}: {', '.join(entries[:_SHOWN])}{more}")
        return lines

    # -- the runner's Method contract (the runner restores only the ids in ``files``)
    batched = True

    def prepare(self, device: str = "cpu") -> None:
        if not self.coverage:
            raise MethodUnavailable(f"result folder {self.folder} was not matched to the dataset")
        if not self.files:
            raise MethodUnavailable(f"no usable image of the dataset in {self.folder} "
                                    f"({'; '.join(self.problems()) or 'nothing matched'})")

    def restore_batch(self, lqs: list[np.ndarray], tasks: list[str], keys: list[str]) -> list[np.ndarray]:
        return [read_image(self.files[k]) for k in keys]
