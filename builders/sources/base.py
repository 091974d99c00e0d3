"""Recipe data types for the real source datasets (modelled on torchvision's (url, filename,
checksum) entries and TFDS checksum files).

A :class:`Recipe` names the files a source needs, where each can be fetched (in order), which
pairing rule turns the extracted files into (LQ, GT) pairs, the licence note and the paper's
counts. Sizes and sha256 sums that are not known yet are None: verification then uses whatever
is known, and the build report prints the values it measured so a maintainer can fill them in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class Candidate:
    """One place a file can come from.

    kind: "url" (HTTP(S)), "gdrive" (Google Drive file id), "hf" (Hugging Face dataset
    repo; ``where`` is "<owner>/<repo>:<path in repo>") or "hf-model" (a model repo, same form).
    """

    kind: str
    where: str
    note: str = ""


@dataclass(frozen=True)
class NeededFile:
    name: str  # the file name on disk (also the name looked up under --from-dir and --mirror)
    candidates: tuple[Candidate, ...]
    size: int | None = None
    sha256: str | None = None

    @property
    def is_archive(self) -> bool:
        return self.name.lower().endswith(ARCHIVE_SUFFIXES)


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

    def describe(self) -> dict:
        """JSON-able description (for --list --json)."""
        return {
            "name": self.name, "title": self.title, "types": list(self.tasks), "lq": self.lq,
            "expected": [{"type": t, "split": s, "count": n} for (t, s), n in self.expected.items()],
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256,
                       "candidates": [{"kind": c.kind, "where": c.where, **({"note": c.note} if c.note else {})}
                                      for c in f.candidates]} for f in self.files],
            "pairing": self.pairing, "split": self.split_note, "licence": self.licence,
            "homepage": self.homepage, "notes": list(self.notes),
        }


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in _RECIPES:
        raise KeyError(f"recipe {recipe.name!r} registered twice")
    _RECIPES[recipe.name] = recipe
    return recipe


def all_recipes() -> list[Recipe]:
    """All recipes, in the canonical order of the degradation types they feed."""
    from ..tasks import DEGRADATIONS

    return sorted(_RECIPES.values(), key=lambda r: (min(DEGRADATIONS.index(t) for t in r.tasks), r.name))


def get_recipe(name: str) -> Recipe:
    return _RECIPES[name]


def recipes_for(tasks) -> list[Recipe]:
    """Recipes feeding any of ``tasks``, in canonical order."""
    wanted = set(tasks)
    return [r for r in all_recipes() if wanted & set(r.tasks)]


def url(u: str, note: str = "") -> Candidate:
    return Candidate("url", u, note)


def gdrive(file_id: str, note: str = "") -> Candidate:
    return Candidate("gdrive", file_id, note)


def hf(repo_path: str, note: str = "") -> Candidate:
    return Candidate("hf", repo_path, note)
