"""benchmark.run --protocol: the protocol's tasks, words, conventions and report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

from benchmark.run import main as run_main
from builders.build import main as build_main
from builders.sources import base as recipes_base

import protocol_fixtures as fx


@pytest.fixture(scope="module")
def tiny_3d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("p3d")
    fx.sots(tmp / "src", n_gt=2, shared=1)
    fx.rain100l(tmp / "src", "relaid", n=2)
    fx.cbsd68(tmp / "src", n=2)
    folder = tmp / "src" / "CBSD68-dataset" / "CBSD68" / "original_png"
    digests = {p.name: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in folder.iterdir()}
    r = recipes_base.RECIPES.get("cbsd68-test")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(recipes_base.RECIPES._entries, "cbsd68-test", replace(r, member_digests=digests))
        assert build_main(["--preset", "3d", "--from-dir", str(tmp / "src"), "--root", str(tmp / "3d"), "--quiet"]) == 1
    return tmp / "3d"


def test_protocol_run_scores_both_conventions_and_reports(tiny_3d, tmp_path):
    out = tmp_path / "run"
    assert run_main(["--protocol", "3d", "--dataset", str(tiny_3d), "--methods", "identity,classical",
                     "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["tasks"] == ["sots", "rain100l", "cbsd68_sigma15", "cbsd68_sigma25", "cbsd68_sigma50"]
    assert [m["name"] for m in s["metrics"]] == ["psnr-promptir", "ssim-promptir", "psnr", "ssim"]
    p = s["protocol"]
    assert p["name"] == "3d" and p["noise"] == ["seeded"] and p["crop"] == 16 and not p["full"]
    assert [c["name"] for c in p["conventions"]] == ["promptir", "basicsr"] and p["conventions"][0]["own"]
    # The promptir PSNR of Input on SOTS is the mean of skimage's PSNR over its three pairs.
    from skimage.metrics import peak_signal_noise_ratio

    from builders.manifest import read_manifest

    rows = read_manifest(tiny_3d)
    rows = rows[rows["type"] == "sots"].to_dict("records")
    want = np.mean([peak_signal_noise_ratio(fx.read(tiny_3d / r["gt_path"]) / 255.0,
                                            fx.read(tiny_3d / r["lq_path"]) / 255.0, data_range=1) for r in rows])
    assert abs(s["tables"]["psnr-promptir"]["identity"]["sots"] - want) < 1e-9
    # A type-aware method is told the task's degradation word (sots -> hazy), not the task name.
    from benchmark.methods import create_method

    m = create_method("classical")
    r = rows[0]
    restored = fx.read(out / "outputs" / "classical" / "val" / "sots" / r["name"])
    assert np.array_equal(restored, m.restore(fx.read(tiny_3d / r["lq_path"]), "hazy"))
    md = (out / "protocol.md").read_text()
    assert "PromptIR family convention (`promptir`)" in md and "unified (BasicSR) convention (`basicsr`)" in md
    assert "not the full test set" in md and "| *PromptIR* | 30.58 / 0.974 |" in md
    assert "`python -m builders.build --preset 3d` then `python -m benchmark.run --protocol 3d" in md
    assert "MoCE-IR (moce-ir; MoCE-IR Table 1): add `--conventions moce-ir`" in md
    html = (out / "report" / "index.html").read_text()
    assert 'id="protocol-promptir"' in html and "Noise: seeded." in html


def test_delta_only_on_the_full_set_and_same_convention():
    from reports.protocol import protocol_tables

    tasks = [{"name": "low", "display": "low", "count": 1, "run_count": 1}]
    info = {"tasks": tasks, "full": True,
            "conventions": [{"name": "onerestore", "psnr": "psnr-onerestore", "ssim": "ssim-onerestore"},
                            {"name": "basicsr", "psnr": "psnr", "ssim": "ssim"}],
            "reported": [{"method": "OneRestore†", "source": "README", "convention": "onerestore",
                          "toolkit": "onerestore", "values": {"psnr": {"low": 26.55, "average": 28.72}}}]}
    summary = {"protocol": info, "tasks": ["low"], "methods": [{"name": "onerestore", "display": "OneRestore"}],
               "tables": {"psnr-onerestore": {"onerestore": {"low": 27.0, "average": 27.0}},
                          "ssim-onerestore": {"onerestore": {"low": 0.9, "average": 0.9}},
                          "psnr": {"onerestore": {"low": 30.0, "average": 30.0}}, "ssim": {}}}
    own, unified = protocol_tables(summary)
    assert [r["kind"] for r in own["rows"]] == ["reported", "run", "delta"]
    assert own["rows"][2]["cells"] == ["+0.45 / -", "-1.72 / -"]
    assert [r["kind"] for r in unified["rows"]] == ["run"]  # never compared across conventions
    info["full"] = False
    assert [r["kind"] for r in protocol_tables(summary)[0]["rows"]] == ["reported", "run"]


def test_bad_protocol_input(tmp_path, capsys, monkeypatch):
    assert run_main(["--protocol", "4d", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown protocol '4d'; known: 3d, 5d, cdd11, daclip10"
    assert run_main(["--protocol", "3d", "--tasks", "hazy", "--out", str(tmp_path / "r")]) == 2
    assert "not in protocol 3d" in capsys.readouterr().err
    assert run_main(["--protocol", "3d", "--conventions", "skimage", "--out", str(tmp_path / "r")]) == 2
    assert "unknown metric convention 'skimage'" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert run_main(["--protocol", "cdd11", "--methods", "identity", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "error: --dataset: no such folder: datasets/cdd11"


def test_protocol_files_are_consistent():
    from builders.protocols import get_protocol, protocol_names
    from builders.sources import get_recipe

    from benchmark.conventions import get_convention

    assert protocol_names() == ["3d", "5d", "cdd11", "daclip10"]
    for name in protocol_names():
        p = get_protocol(name)
        get_convention(p.convention)
        for v in p.variants:
            get_convention(v)
        for t in p.tasks:
            get_recipe(t.source)
        for r in p.reported:
            get_convention(r.convention)
    assert get_protocol("cdd11").task("low_haze_rain").word == "low_haze_rain"
    from builders.tasks import table1

    assert get_protocol("daclip10").counts() == table1()["test"]  # the ten-task set restated, same counts
    assert sum(t.count for t in get_protocol("5d").tasks) == 500 + 100 + 68 + 1111 + 15
    zoo = {r.toolkit for n in ("3d", "5d", "cdd11") for r in get_protocol(n).reported}
    assert {"adair", "moce-ir", "instructir", "onerestore", "maskdcpt-nafnet"} <= zoo
