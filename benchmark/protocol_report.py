"""The ``protocol`` entry of summary.json for a ``benchmark.run --protocol`` run: what the
report needs to set the run beside the protocol's reported numbers (reports.protocol renders it)."""

from __future__ import annotations

import json

import pandas as pd

from .conventions import get_convention


def _noise_modes(items: pd.DataFrame) -> list[str]:
    modes = set()
    for p in items["parameters"]:
        try:
            mode = json.loads(p or "{}").get("noise")
        except ValueError:
            continue
        if mode:
            modes.add(mode)
    return sorted(modes)


def protocol_block(protocol, conventions: list[str], items: pd.DataFrame, summary: dict) -> dict:
    run_counts = items.groupby("type").size().to_dict()
    tasks = [{"name": t.name, "display": t.display, "degradation": t.word, "count": t.count,
              "run_count": int(run_counts.get(t.name, 0))} for t in protocol.tasks]
    ran = [t for t in tasks if t["name"] in summary["tasks"]]
    full = len(ran) == len(tasks) and all(t["run_count"] == t["count"] for t in tasks)
    noise = _noise_modes(items)
    build = f"python -m builders.build --preset {protocol.preset or protocol.name}"
    if noise and noise != ["seeded"]:
        build += f" --noise {noise[0]}"
    return {
        "name": protocol.name, "title": protocol.title, "paper": protocol.paper, "crop": protocol.crop,
        "average": protocol.average, "tasks": tasks, "full": full,
        "noise": noise,
        "conventions": [{"name": c.name, "display": c.display, "psnr": c.psnr, "ssim": c.ssim, "families": c.families,
                         "output": c.output, "reference": c.reference, "own": c.name == protocol.convention}
                        for c in map(get_convention, conventions)],
        "reported": [{"method": r.method, "source": r.source, "convention": r.convention, "toolkit": r.toolkit,
                      "values": r.values} for r in protocol.reported],
        "reported_file": protocol.reported_file,
        "build_command": build,
        "command": summary["command"],
    }
