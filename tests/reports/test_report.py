"""The report a researcher publishes from: the paper's numbers, cost columns, CSV export, charts,
zoom boxes, the confusion matrix from --degradation-eval, per-image rows and skipped methods."""

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark.run import main as bench_main
from builders.tasks import DEGRADATIONS, table1
from reports.html import CHART_H, CHART_W, nice_axis, render_report
from reports.paper import comparison, paper_data, match_test_set

# The paper's text lives in ../shared beside the repository (CI clones it there too).
REPO_ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SEEDS = REPO_ROOT.parent / "shared" / "seeds"

pytestmark = pytest.mark.usefixtures("one_thread")


def degradation_eval(n=3) -> dict:
    cm = np.zeros((10, 10), dtype=int)
    for i in range(10):
        cm[i, i] = n - (i % 2)
        cm[i, (i + 1) % 10] = i % 2
    acc = {w: float(cm[i, i] / cm[i].sum()) for i, w in enumerate(DEGRADATIONS)}
    res = {"accuracy": acc, "overall": float(np.trace(cm) / cm.sum()), "confusion": cm.tolist(),
           "labels": list(DEGRADATIONS), "n": int(cm.sum())}
    return {"clip-zero-shot": res, "daclip": res}


@pytest.fixture(scope="module")
def run(mini_root, tmp_path_factory):
    from daclip.networks import build_network

    tmp = tmp_path_factory.mktemp("publish")
    torch.manual_seed(0)
    net = build_network("nafnet", preset="tiny")
    torch.save(net.state_dict(), tmp / "naf.pth")
    (tmp / "naf.pth.json").write_text(json.dumps({"network": "nafnet", "config": {"preset": "tiny"}}))
    (tmp / "eval").mkdir()
    (tmp / "eval" / "degradation_eval.json").write_text(json.dumps(degradation_eval()))
    out = tmp / "run"
    rc = bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity,classical,nafnet",
                     "--weights", f"nafnet={tmp / 'naf.pth'}", "--metrics", "psnr,ssim", "--limit", "1",
                     "--degradation-eval", str(tmp / "eval"), "--quiet"])
    assert rc == 0
    return out, sum(p.numel() for p in net.parameters())


def test_paper_data_equals_the_seed_tables():
    seeds = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
    text = "\n".join(p.read_text(errors="replace") for p in seeds)
    if "JORDER" not in text:
        pytest.skip(f"the paper's text is not at {SEEDS}")
    num = r"(\d+\.\d+)"
    found = re.findall(rf"^([A-Za-z][\w .+-]*?)\t{num}\t{num}\t{num}\t{num}\s*$", text, flags=re.M)
    data = paper_data()
    by_id = {t["id"]: t for t in data["tables"]}
    # The seed lists the sub-tables in the order a, c, b, d, then Table 3.
    want = [(r["name"], r["psnr"], r["ssim"], r["lpips"], r["fid"])
            for tid in ("table2a", "table2c", "table2b", "table2d", "table3") for r in by_id[tid]["rows"]]
    got = [(n.strip(), *map(float, v)) for n, *v in found][:len(want)]
    assert got == want
    test = re.search(r"#Test\t(.+)", text).group(1).split("\t")
    assert [int(x.replace(" ", "")) for x in test] == [table1()["test"][t] for t in DEGRADATIONS]


def test_test_set_is_recognised_by_the_paper_counts():
    counts = dict(table1()["test"])
    ok, why = match_test_set({"tasks": list(DEGRADATIONS), "counts": counts})
    assert ok and "Table 1" in why
    ok, why = match_test_set({"tasks": list(DEGRADATIONS), "counts": {**counts, "low-light": 5}})
    assert not ok and "low-light 5 vs 15" in why
    ok, why = match_test_set({"tasks": ["noisy"], "counts": {"noisy": 68}})
    assert not ok and "1 of the ten types" in why


def _summary_on_test_set(psnr_nafnet: float) -> dict:
    tasks = list(DEGRADATIONS)
    row = {t: psnr_nafnet for t in tasks} | {"average": psnr_nafnet}
    return {"title": "t", "dataset": "d", "split": "val", "created": "now", "command": "c", "versions": {},
            "tasks": tasks, "counts": dict(table1()["test"]),
            "methods": [{"name": "nafnet", "display": "NAFNet", "weights_id": "x", "uses_task_label": False}],
            "metrics": [{"name": "psnr", "display": "PSNR", "higher_is_better": True, "fmt": ".2f", "kind": "image"}],
            "unavailable": {}, "tables": {"psnr": {"nafnet": row}}, "images": [], "examples": []}


def test_paper_values_stand_beside_ours_with_the_difference_on_the_test_set(tmp_path):
    s = _summary_on_test_set(26.00)
    cmp = comparison(s)
    assert cmp["on_test_set"]
    t3 = next(t for t in cmp["tables"] if t["id"] == "table3")
    naf = next(r for r in t3["rows"] if r["method"] == "nafnet")
    psnr = naf["cells"][0]
    assert psnr["reported"] == 26.34 and psnr["ours"] == 26.00
    assert psnr["diff"] == pytest.approx(-0.34) and psnr["better"] is False
    assert naf["cells"][2]["ours"] is None  # LPIPS not measured in this run
    html = render_report(tmp_path, s).read_text()
    table = html.split('id="paper-table3"')[1].split("</table>")[0]
    assert "this run" in table and "−0.34" in table and "26.00" in table
    # Every reported value is marked as reported (8 rows x 4 metrics in Table 3).
    assert table.count('class="reported first"') == 32
    # Table 2 (rainy): the run's rainy column of the same method.
    rainy = next(t for t in cmp["tables"] if t["id"] == "table2a")
    assert all(r["cells"][0]["ours"] is None for r in rainy["rows"])  # no nafnet row in Table 2


def test_off_the_test_set_the_paper_values_are_reference_only(run):
    out, _ = run
    html = (out / "report" / "index.html").read_text()
    section = html.split('id="paper"')[1].split('id="per-type"')[0]
    assert "not on the ten-task test set" in section and "this run</th>" not in section
    assert section.count('<td class="reported"') == (8 + 4 * 6) * 4  # every value of Tables 3 and 2, marked
    for value in ("27.22", "34.89", "33.91", "0.936"):
        assert value in section


def test_parameters_and_seconds_per_megapixel(run, mini_root):
    out, n_params = run
    s = json.loads((out / "summary.json").read_text())
    naf = next(m for m in s["methods"] if m["name"] == "nafnet")
    assert naf["num_params"] == n_params and naf["daclip_params"] is None
    assert next(m for m in s["methods"] if m["name"] == "classical")["num_params"] is None
    outputs = pd.read_parquet(out / "outputs.parquet")
    manifest = pd.read_parquet(mini_root / "manifest.parquet").set_index("id")
    mine = outputs[outputs["method"] == "nafnet"]
    mp = sum(manifest.loc[i, "width"] * manifest.loc[i, "height"] for i in mine["id"]) / 1e6
    assert naf["seconds_per_megapixel"] == pytest.approx(mine["seconds"].sum() / mp)
    html = (out / "report" / "index.html").read_text()
    overview = html.split('id="overview-table"')[1].split("</table>")[0]
    assert "Parameters" in overview and f"{n_params / 1e3:.1f} k" in overview


def test_csv_export_holds_every_table_value(run):
    out, _ = run
    s = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "tables.csv").open()))
    assert len(rows) == 2 * 3 * 11  # metrics x methods x (ten types + average)
    for r in rows:
        want = s["tables"][r["metric"]][r["method"]][r["type"]]
        assert float(r["value"]) == pytest.approx(want)
    assert {r["n"] for r in rows if r["type"] == "average"} == {"10"}
    assert (out / "tables.md").is_file() and (out / "tables.tex").is_file()


class _Svg(HTMLParser):
    def __init__(self):
        super().__init__()
        self.charts, self.current = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "chart" in (a.get("class") or ""):
            self.current = {"attrs": a, "rects": [], "texts": []}
            self.charts.append(self.current)
        elif self.current is not None and tag == "rect":
            self.current["rects"].append({k: float(a[k]) for k in ("x", "y", "width", "height")})
        elif self.current is not None and tag in ("text", "tspan") and "x" in a:
            self.current["texts"].append((float(a["x"]), float(a.get("y", "nan"))))

    def handle_endtag(self, tag):
        if tag == "svg":
            self.current = None


def test_charts_fill_the_width_start_near_the_data_and_clip_no_label(run):
    out, _ = run
    s = json.loads((out / "summary.json").read_text())
    parser = _Svg()
    parser.feed((out / "report" / "index.html").read_text())
    assert len(parser.charts) == 2
    for chart, metric in zip(parser.charts, ("psnr", "ssim")):
        assert chart["attrs"]["viewbox"] == f"0 0 {CHART_W} {CHART_H}" and "width" not in chart["attrs"]
        vals = [v for row in s["tables"][metric].values() for v in row.values() if v is not None and np.isfinite(v)]
        bottom, top, ticks = nice_axis(min(vals), max(vals))
        step = ticks[-1] - ticks[-2]
        # Near the data, not from zero (unless zero is within a step of the smallest value), nothing cut.
        assert bottom <= min(vals) < bottom + step and top >= max(vals) and (bottom > 0 or min(vals) < step)
        assert len(chart["rects"]) == 3 * 11
        for r in chart["rects"]:
            assert 0 <= r["x"] and r["x"] + r["width"] <= CHART_W and 0 <= r["y"] and r["y"] + r["height"] <= CHART_H
        for x, y in chart["texts"]:
            assert 0 <= x <= CHART_W and (np.isnan(y) or 0 <= y <= CHART_H - 8)
    assert nice_axis(24.0, 31.0)[0] > 0 and nice_axis(0.70, 0.86)[0] >= 0.6


def test_zoom_box_marks_where_the_zoom_comes_from(run):
    out, _ = run
    html = (out / "report" / "index.html").read_text()
    boxes = re.findall(r'<img src="(assets/ex\d+_\d+\.png)"[^>]*><span class="zoombox" style="left: ([\d.]+)%; '
                       r'top: ([\d.]+)%; width: ([\d.]+)%; height: ([\d.]+)%"></span></span><img class="zoom" '
                       r'src="(assets/ex\d+_\d+_zoom\.png)"', html)
    assert len(boxes) == 10 * 4  # every crop of the ten examples: input, classical, nafnet, ground truth
    for crop, left, top, width, height, zoom in boxes:
        c = np.asarray(Image.open(out / "report" / crop))
        z = np.asarray(Image.open(out / "report" / zoom))
        h, w = c.shape[:2]
        y0, x0 = round(float(top) * h / 100), round(float(left) * w / 100)
        zh, zw = round(float(height) * h / 100), round(float(width) * w / 100)
        assert z.shape[:2] == (4 * zh, 4 * zw)
        assert np.array_equal(c[y0:y0 + zh, x0:x0 + zw].repeat(4, 0).repeat(4, 1), z)


def test_confusion_matrix_with_full_type_names(run):
    out, _ = run
    html = (out / "report" / "index.html").read_text()
    section = html.split('id="degradation"')[1]
    for t in DEGRADATIONS:
        assert f'<th class="vert"><span>{t}</span></th>' in section
    assert "DA-CLIP" in section and "CLIP (zero-shot)" in section


def test_per_image_rows_in_canonical_order_link_to_outputs(run):
    out, _ = run
    html = (out / "report" / "index.html").read_text()
    body = html.split('id="per-image"')[1].split("</table>")[0]
    types = re.findall(r"<tr><td>([a-z-]+)</td>", body)
    assert [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]] == list(DEGRADATIONS)
    links = re.findall(r'<a href="\.\./([^"]+)">', body)
    assert len(links) == 10 * 3
    for link in links:
        assert (out / link).is_file()


def test_skipped_methods_are_shown_like_unavailable_metrics(run, tmp_path):
    out, _ = run
    s = json.loads((out / "summary.json").read_text())
    assert "skipped" not in (out / "report" / "index.html").read_text().split("<h2")[0]
    s["skipped_methods"] = {"ours": "no weights for 'ours' <offline>"}
    shutil.copytree(out / "outputs", tmp_path / "outputs")
    html = render_report(tmp_path, s).read_text()
    assert 'id="skipped"' in html and "<b>ours</b> skipped: no weights for &#39;ours&#39; &lt;offline&gt;" in html


@pytest.mark.parametrize("content,message", [
    ("{not json", "not a readable degradation_eval.json"),
    ("[1, 2]", "expected an object"),
    ('{"daclip": {"labels": ["hazy"], "confusion": [[1, 2]]}}', "'confusion' must be a 1x1 matrix"),
    ('{"daclip": {"labels": ["fog gy"], "confusion": [[1]]}}', "label 'fog gy' is not a type name"),
    ('{"daclip": {"labels": ["hazy"], "confusion": [[1]], "overall": 7}}', "'overall' must be a value in [0, 1]"),
])
def test_malformed_degradation_eval_is_one_error_line(mini_root, tmp_path, capsys, content, message):
    bad = tmp_path / "degradation_eval.json"
    bad.write_text(content)
    for args in (["--degradation-eval", str(bad)], []):  # given, or found in the run folder
        out = tmp_path / "run"
        if not args:
            out.mkdir(exist_ok=True)
            shutil.copy(bad, out / "degradation_eval.json")
        rc = bench_main(["--dataset", str(mini_root), "--out", str(out), "--methods", "identity", "--limit", "1",
                         "--metrics", "psnr", "--quiet", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    rc = bench_main(["--dataset", str(mini_root), "--out", str(tmp_path / "r2"), "--degradation-eval",
                     str(tmp_path / "nowhere"), "--quiet"])
    assert rc == 2 and "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["0", "-2"])
def test_evaluate_rejects_a_batch_size_below_one(mini_root, tmp_path, capsys, size):
    from daclip.evaluate import main

    rc = main(["--root", str(mini_root), "--model-cfg", "tiny", "--out", str(tmp_path), "--batch-size", size])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"error: --batch-size must be at least 1, got {size}"]
