"""Result-only rows (--results NAME=DIR): equal to the row that wrote the folder; missing,
extra, unreadable and wrong-size files named; an unchanged folder not rescored."""

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.run import main as bench_main
from benchmark.summary import read_summary

METRICS = "psnr,ssim,psnr_y"


@pytest.fixture(scope="module")
def classical_run(mini_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "classical",
                       "--metrics", METRICS, "--limit", "2", "--quiet"]) == 0
    return out


def _rows(out):
    return read_summary(out / "summary.json")


def test_row_from_outputs_equals_the_method_row(classical_run, mini_root, tmp_path, capsys):
    folder = classical_run / "outputs" / "classical"
    out = tmp_path / "scored"
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity",
                       "--results", f"mine={folder}", "--metrics", METRICS, "--limit", "2", "--quiet"]) == 0
    a, b = _rows(classical_run), _rows(out)
    for metric in METRICS.split(","):
        assert b["tables"][metric]["mine"] == a["tables"][metric]["classical"]  # every type and the average, exactly
    # per image, too
    va = pd.read_parquet(classical_run / "per_image.parquet") if (classical_run / "per_image.parquet").exists() else None
    if va is not None:
        vb = pd.read_parquet(out / "per_image.parquet")
        x = va[va["method"] == "classical"].set_index(["id", "metric"])["value"].sort_index()
        y = vb[vb["method"] == "mine"].set_index(["id", "metric"])["value"].sort_index()
        assert np.array_equal(x.to_numpy(), y.to_numpy())
    s = b["result_folders"]["mine"]
    assert (s["n"], s["of"], s["missing"], s["extra"]) == (20, 20, [], [])
    names = [m["display"] for m in b["methods"]]
    assert names == ["Input", "mine"]
    # the row is in every export and the report
    for f in ("tables.md", "tables.csv", "tables.tex"):
        assert "mine" in (out / f).read_text()
    html = (out / "report" / "index.html").read_text()
    assert 'id="results-mine"' in html
    # the same folder again: nothing rescored (the cache key holds the folder digest)
    before = pd.read_parquet(out / "per_image.parquet")
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity",
                       "--results", f"mine={folder}", "--metrics", METRICS, "--limit", "2", "--quiet"]) == 0
    after = pd.read_parquet(out / "per_image.parquet")
    assert len(after) == len(before)


def test_type_name_layout_other_extension_and_problems(classical_run, mini_root, tmp_path, capsys):
    src = classical_run / "outputs" / "classical" / "val"
    folder = tmp_path / "published"
    shutil.copytree(src, folder)  # <type>/<name>.png, no split folder
    types = sorted(p.name for p in folder.iterdir())
    # one file as a lossless .tif: matched by its stem
    t0 = folder / types[0]
    first = sorted(t0.iterdir())[0]
    Image.open(first).save(first.with_suffix(".tif"))
    first.unlink()
    # missing: one file removed
    gone = sorted((folder / types[1]).iterdir())[0]
    gone.unlink()
    # extra: a file no image has
    (folder / types[2] / "not-in-the-dataset.png").write_bytes((folder / types[2] / sorted(
        p.name for p in (folder / types[2]).iterdir())[0]).read_bytes())
    # wrong size
    ws = sorted((folder / types[3]).iterdir())[0]
    Image.open(ws).crop((0, 0, 20, 20)).save(ws)
    # unreadable
    bad = sorted((folder / types[4]).iterdir())[0]
    bad.write_bytes(b"not an image")
    out = tmp_path / "scored"
    assert bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "classical",
                       "--results", f"pub={folder}", "--metrics", "psnr", "--limit", "2", "--quiet"]) == 0
    err = capsys.readouterr().err
    s = read_summary(out / "summary.json")
    rf = s["result_folders"]["pub"]
    assert rf["n"] == 17 and rf["of"] == 20
    assert rf["missing"] == [f"val/{types[1]}/{gone.stem}"]
    assert rf["extra"] == [f"{types[2]}/not-in-the-dataset.png"]
    assert [e["file"] for e in rf["wrong_size"]] == [f"{types[3]}/{ws.name}"]
    assert [e["file"] for e in rf["unreadable"]] == [f"{types[4]}/{bad.name}"]
    assert "warning: --results pub: scored 17 of 20 images" in err
    for word in ("missing 1", "extra 1", "unreadable 1", "wrong size 1", gone.stem, "not-in-the-dataset.png"):
        assert word in err
    # the row says it is partial everywhere it is shown
    disp = {m["name"]: m["display"] for m in s["methods"]}
    assert disp["pub"] == "pub (n=17/20)"
    assert "pub (n=17/20)" in (out / "tables.md").read_text()
    html = (out / "report" / "index.html").read_text()
    assert "not-in-the-dataset.png" in html and "17 of 20 images" in html
    # the .tif matched; the types with a problem hold one value, the others equal classical's
    a = s["tables"]["psnr"]
    assert a["pub"][types[0]] == a["classical"][types[0]]
    assert a["pub"][types[5]] == a["classical"][types[5]]
    v = pd.read_parquet(out / "per_image.parquet")
    n = v[(v["method"] == "pub")].groupby("type").size()
    assert n[types[1]] == 1 and n[types[3]] == 1 and n[types[4]] == 1 and n[types[0]] == 2


def test_flat_folder_and_changed_file_rescored(classical_run, mini_root, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    src = classical_run / "outputs" / "classical" / "val" / "noisy"
    for f in src.iterdir():
        shutil.copy(f, folder / f.name)
    out = tmp_path / "scored"
    args = ["--dataset", str(mini_root), "--out", str(out), "--methods", "classical", "--tasks", "noisy",
            "--results", f"flat={folder}", "--metrics", "psnr", "--limit", "2", "--quiet"]
    assert bench_main(args) == 0
    s = read_summary(out / "summary.json")
    assert s["tables"]["psnr"]["flat"] == s["tables"]["psnr"]["classical"]
    wid = {m["name"]: m["weights_id"] for m in s["methods"]}["flat"]
    f = sorted(folder.iterdir())[0]
    img = np.asarray(Image.open(f)).copy()
    img[10, 10] ^= 1  # inside the 4-pixel border crop
    Image.fromarray(img).save(f)
    assert bench_main(args) == 0
    s2 = read_summary(out / "summary.json")
    assert {m["name"]: m["weights_id"] for m in s2["methods"]}["flat"] != wid  # a new folder digest
    assert s2["tables"]["psnr"]["flat"]["noisy"] != s["tables"]["psnr"]["flat"]["noisy"]  # rescored


def test_cli_errors(mini_root, tmp_path, capsys):
    for args, msg in ((["--results", "classical=" + str(tmp_path)], "is a method name"),
                      (["--results", "x"], "expects NAME=DIR"),
                      (["--results", f"x={tmp_path / 'nope'}"], "no such folder")):
        assert bench_main(["--dataset", str(mini_root), "--out", str(tmp_path / "o"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err


def test_cdd11_methods_branch_layout(mini_root, classical_run, tmp_path, capsys):
    """CDD-11's published outputs: NN_<Method>/<type>/<name>.png beside 00_gt/; one method
    folder is a row as is, the branch root is refused with the folder to give."""
    src = classical_run / "outputs" / "classical" / "val"
    root = tmp_path / "methods"
    shutil.copytree(src, root / "17_OneRestore")
    shutil.copytree(src, root / "01_input")
    (root / "00_gt").mkdir()
    out = tmp_path / "scored"
    base = ["--dataset", str(mini_root), "--out", str(out), "--methods", "classical", "--metrics", "psnr",
            "--limit", "2", "--quiet"]
    assert bench_main([*base, "--results", f"OneRestore={root / '17_OneRestore'}"]) == 0
    s = read_summary(out / "summary.json")
    assert s["tables"]["psnr"]["OneRestore"] == s["tables"]["psnr"]["classical"]
    assert bench_main([*base, "--results", f"all={root}"]) == 2
    assert "--results OneRestore=" in capsys.readouterr().err
