"""Benchmark protocols as data: one yaml file per protocol in this folder (3d, 5d, cdd11, daclip10).

A protocol names its tasks (the dataset's own words, a display name, the ten-type degradation
word a type-aware method is told, the test count), the source each task comes from, the
centre crop applied before inference, the noise synthesis, its metric convention and the
numbers reported for it, each with its source. Adding a protocol is one more yaml file here
(plus a recipe in builders.sources for a new source). The facts are in protocols.md of the
project's reference notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..registry import Registry

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ProtocolTask:
    name: str  # the manifest type (the dataset's own word)
    display: str
    degradation: str | None  # ten-type word for type-aware methods; None: told the task name
    count: int  # test images
    source: str  # recipe name in builders.sources
    sigma: float | None = None  # synthetic Gaussian noise (0..255 scale)

    @property
    def word(self) -> str:
        """What a type-aware method is told for this task."""
        return self.degradation or self.name


@dataclass(frozen=True)
class Reported:
    method: str
    source: str
    convention: str
    values: dict[str, dict[str, float]]  # metric ("psnr", "ssim") -> task name or "average" -> value
    toolkit: str | None = None  # the toolkit's method of this row, where it has one


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    paper: str
    tasks: tuple[ProtocolTask, ...]
    convention: str  # the protocol's own metric convention (benchmark.conventions)
    variants: tuple[str, ...] = ()  # other conventions of the family, available by name
    crop: int = 0  # centre crop of LQ and GT to a multiple of this before inference (0: none)
    noise: dict = field(default_factory=dict)
    train: tuple[dict, ...] = ()  # training sources: {source (a recipe), tasks, count, note}
    reported: tuple[Reported, ...] = ()
    average: str = ""
    preset: str | None = None  # an existing builders.build preset builds it instead
    dataset: str | None = None  # default dataset root (default datasets/<name>)
    reported_file: str | None = None

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(t.source for t in self.tasks))

    @property
    def default_root(self) -> Path:
        return Path(self.dataset or f"datasets/{self.name}")

    def task(self, name: str) -> ProtocolTask:
        return next(t for t in self.tasks if t.name == name)

    def counts(self) -> dict[str, int]:
        return {t.name: t.count for t in self.tasks}

    def words(self) -> dict[str, str]:
        return {t.name: t.word for t in self.tasks}


def _load(path: Path) -> Protocol:
    import yaml

    d = yaml.safe_load(path.read_text())
    if d.get("counts_from") == "table1":
        # The ten-task set's counts have one home, builders/table1.yaml (its test column).
        from ..tasks import table1

        test = table1()["test"]
        d["tasks"] = [{**t, "count": test[t["name"]]} for t in d["tasks"]]
    tasks = tuple(ProtocolTask(**t) for t in d["tasks"])
    reported = tuple(Reported(method=r["method"], source=r["source"], convention=r["convention"],
                              toolkit=r.get("toolkit"),
                              values={m: dict(r[m]) for m in ("psnr", "ssim") if m in r})
                     for r in d.get("reported") or [])
    names = {t.name for t in tasks}
    for t in d.get("train") or []:
        bad = set(t.get("tasks") or ()) - names
        if bad:
            raise ValueError(f"{path.name}: training source {t['source']} names unknown tasks {sorted(bad)}")
    for r in reported:
        for metric, vals in r.values.items():
            bad = set(vals) - names - {"average"}
            if bad:
                raise ValueError(f"{path.name}: {r.method} {metric} names unknown tasks {sorted(bad)}")
    return Protocol(name=d["name"], title=d["title"], paper=d.get("paper", ""), tasks=tasks,
                    convention=d["convention"], variants=tuple(d.get("variants") or ()), crop=int(d.get("crop") or 0),
                    noise=dict(d.get("noise") or {}), train=tuple(d.get("train") or ()), reported=reported,
                    average=d.get("average", ""), preset=d.get("preset"), dataset=d.get("dataset"),
                    reported_file=d.get("reported_file"))


def _load_all() -> None:
    for path in sorted(HERE.glob("*.yaml")):
        p = _load(path)
        if p.name != path.stem:
            raise ValueError(f"{path.name}: name {p.name!r} differs from the file name")
        PROTOCOLS.add(p.name, p)


PROTOCOLS: Registry[Protocol] = Registry("protocol", load=_load_all)


def protocol_names() -> list[str]:
    return PROTOCOLS.names()


def get_protocol(name: str) -> Protocol:
    return PROTOCOLS.get(name)
