"""Recipe data types for the real source datasets (modelled on torchvision's (url, filename,
checksum) entries and TFDS checksum files).

A :class:`Recipe` names the files a source needs, where each can be fetched (in order), which
pairing rule turns the extracted files into (LQ, GT) pairs, the licence note and the paper's
counts. Sizes and digests come from ``checksums.tsv`` beside this module (published figures
only); where none was published they are None, verification uses whatever is known, and the
build report prints the values it measured.

Some sources come in several releases with different files (DIV2K as EDSR's one tar or as
ETH's two zips; LOL from Drive or from the hub): ``Recipe.variants`` lists the alternative
file sets in order of preference, and the build uses the first set it can obtain completely.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..registry import Registry

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class Candidate:
    """One place a file can come from.

    kind: "url" (HTTP(S)), "gdrive" (Google Drive file id), "gdrive-folder" (a Drive *folder*:
    never fetched automatically, shown as a download-by-hand instruction), "hf" (Hugging Face
    dataset repo; ``where`` is "<owner>/<repo>:<path in repo>"), "page" (a web page to download
    from by hand, never fetched), "hf-model" (a model repo, same
    form) or "hf-folder" (a whole dataset repo, or the files of it matching ``patterns``,
    downloaded as a folder). ``dead``: reported unreachable; tried last, and said so.
    """

    kind: str
    where: str
    note: str = ""
    dead: bool = False
    patterns: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"kind": self.kind, "where": self.where, **({"note": self.note} if self.note else {}),
                **({"dead": True} if self.dead else {}), **({"patterns": list(self.patterns)} if self.patterns else {})}


@dataclass(frozen=True)
class NeededFile:
    name: str  # the file name on disk (also the name looked up under --from-dir and --mirror)
    candidates: tuple[Candidate, ...]
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    # A folder (a hub image-folder repo, a Drive folder): ``name`` is the folder; under
    # --from-dir it may also be given as ``<name>.zip``, and --mirror fetches ``<name>.zip``.
    folder: bool = False
    expect: str = ""  # what the file or folder must hold (shown in --from-dir instructions)
    note: str = ""  # shown with errors about this file (e.g. an alternative source)
    group: str = ""  # files listed once under this label by --list (the 100 masks, ...)
    keep_all: bool = False  # extract every member (the recipe's keep_member filter is for other files)
    # Other names it circulates under (archives or extracted folders); under --from-dir the file,
    # its folder or any alias is found anywhere below the folder given.
    aliases: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every name --from-dir accepts for it, archive first."""
        names = (self.archive_name, *((self.name,) if self.folder else ()), *self.aliases)
        return tuple(dict.fromkeys(names))

    @property
    def archive_name(self) -> str:
        """The name of the file that holds it: itself, or ``<folder>.zip`` for a folder."""
        return f"{self.name}.zip" if self.folder else self.name

    @property
    def is_archive(self) -> bool:
        return self.archive_name.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def digests(self) -> dict[str, str]:
        return {k: v.lower() for k, v in (("sha256", self.sha256), ("md5", self.md5)) if v}

    def describe(self) -> dict:
        return {"name": self.name, "kind": "folder" if self.folder else "file", "size": self.size,
                "sha256": self.sha256, "md5": self.md5, **({"expect": self.expect} if self.expect else {}),
                **({"group": self.group} if self.group else {}), **({"note": self.note} if self.note else {}),
                **({"aliases": list(self.aliases)} if self.aliases else {}),
                "candidates": [c.describe() for c in self.candidates]}


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    tasks: tuple[str, ...]  # degradation types this source feeds
    expected: dict[tuple[str, str], int]  # (type, split) -> the paper's count
    files: tuple[NeededFile, ...]
    pairing: str  # name of a rule in builders.pairing
    lq: str  # "real", "synthetic" (LQ made from GT by builders.synth) or "mask" (official masks)
    licence: str
    homepage: str = ""
    split_note: str = ""
    notes: tuple[str, ...] = ()
    # Archive members to extract (None: all). Skips e.g. DIV2K's LR folders or Snow100K's
    # non-subset images, which would otherwise cost tens of GB of disk.
    keep_member: Callable[[str], bool] | None = field(default=None, compare=False)
    # Alternative file sets, (label, file names), in order of preference; files named in no
    # variant are needed by every one. Empty: every file is needed.
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Published (size, sha256) of files found *inside* the archives, by file name: checked
    # before a file is used (LIVE1's reference images).
    member_digests: dict[str, tuple[int | None, str]] = field(default_factory=dict, compare=False)
    preset: bool = False  # built by --preset <name>, not part of --all

    def file(self, name: str) -> NeededFile:
        return next(f for f in self.files if f.name == name)

    def file_sets(self) -> list[tuple[str, tuple[NeededFile, ...]]]:
        """(label, files) for each way of building the recipe, in order of preference."""
        if not self.variants:
            return [("", self.files)]
        in_variant = {n for _, names in self.variants for n in names}
        common = tuple(f for f in self.files if f.name not in in_variant)
        return [(label, tuple(self.file(n) for n in names) + common) for label, names in self.variants]

    def describe(self) -> dict:
        """JSON-able description (for --list --json)."""
        return {
            "name": self.name, "title": self.title, "types": list(self.tasks), "lq": self.lq,
            "expected": [{"type": t, "split": s, "count": n} for (t, s), n in self.expected.items()],
            "files": [f.describe() for f in self.files],
            "variants": [{"label": label, "files": list(names)} for label, names in self.variants],
            "members": [{"name": n, "size": size, "sha256": sha} for n, (size, sha) in sorted(self.member_digests.items())],
            "pairing": self.pairing, "split": self.split_note, "licence": self.licence,
            "homepage": self.homepage, "notes": list(self.notes), "preset": self.preset,
        }


RECIPES: Registry[Recipe] = Registry("source recipe")


def register_recipe(recipe: Recipe) -> Recipe:
    return RECIPES.add(recipe.name, recipe)


def all_recipes() -> list[Recipe]:
    """All recipes of the paper's training set (--all), in the canonical order of their types."""
    from ..tasks import DEGRADATIONS

    return sorted((r for _, r in RECIPES.items() if not r.preset),
                  key=lambda r: (min(DEGRADATIONS.index(t) for t in r.tasks), r.name))


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)


def preset_recipes() -> list[Recipe]:
    return sorted((r for _, r in RECIPES.items() if r.preset), key=lambda r: r.name)


def recipes_for(tasks) -> list[Recipe]:
    """Recipes feeding any of ``tasks``, in canonical order."""
    wanted = set(tasks)
    return [r for r in all_recipes() if wanted & set(r.tasks)]


def url(u: str, note: str = "", dead: bool = False) -> Candidate:
    return Candidate("url", u, note, dead)


def gdrive(file_id: str, note: str = "") -> Candidate:
    return Candidate("gdrive", file_id, note)


def gdrive_folder(folder_id: str, note: str = "") -> Candidate:
    return Candidate("gdrive-folder", folder_id, note)


def hf(repo_path: str, note: str = "") -> Candidate:
    return Candidate("hf", repo_path, note)


def page(where: str, note: str = "") -> Candidate:
    """A web page (Kaggle, a box share) to download from by hand; never fetched automatically."""
    return Candidate("page", where, note)


def hf_folder(repo: str, patterns: tuple[str, ...] = (), note: str = "") -> Candidate:
    return Candidate("hf-folder", repo, note, patterns=patterns)


# -------------------------------------------------------------------------- published figures

CHECKSUMS = Path(__file__).with_name("checksums.tsv")


@lru_cache(maxsize=1)
def _published() -> dict[str, tuple[int | None, str | None, str | None]]:
    out = {}
    with open(CHECKSUMS, newline="") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        for r in rows:
            out[r["file"]] = (int(r["size_bytes"]) if r["size_bytes"] else None, r["sha256"] or None, r["md5"] or None)
    return out


def published(key: str) -> dict:
    """``size``/``sha256``/``md5`` keyword arguments for a NeededFile, from checksums.tsv."""
    size, sha, md5 = _published()[key]
    return {"size": size, "sha256": sha, "md5": md5}


def published_keys(prefix: str) -> list[str]:
    return sorted(k for k in _published() if k.startswith(prefix))
