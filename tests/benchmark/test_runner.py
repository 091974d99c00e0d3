"""The pipelined, batched runner: same values as the plain formulas, whatever the batching,
threading or metric backend; and the reliability probes of issue 12 (run folder lock, inf,
tiny images, bad --out / --device, colliding output names) and issue 14 (methods without weights)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from benchmark.metrics import get_metric
from benchmark.run import main as bench_main
from builders.io import save_image, sha256_file
from builders.manifest import write_manifest

ROOT = Path(__file__).parents[2]
TINY_DACLIP = yaml.safe_load((ROOT / "daclip" / "configs" / "tiny.yaml").read_text())
METRICS = ("psnr", "ssim", "psnr_y", "ssim_y")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")


def photo(h, w, seed=0):
    import skimage.data

    base = skimage.data.astronaut()
    y, x = (seed * 37) % (512 - h), (seed * 53) % (512 - w)
    return np.ascontiguousarray(base[y:y + h, x:x + w])


def noisy(gt, seed=0, sigma=20):
    rng = np.random.default_rng(seed)
    return np.clip(gt.astype(np.int16) + rng.normal(0, sigma, gt.shape), 0, 255).astype(np.uint8)


def write_set(root: Path, pairs) -> Path:
    """pairs: (type, name, lq, gt[, id]); files saved in the format the name says."""
    rows = []
    for p in pairs:
        task, name, lq, gt = p[:4]
        pid = p[4] if len(p) > 4 else f"val/{task}/{Path(name).stem}"
        for kind, img in (("LQ", lq), ("GT", gt)):
            path = root / "val" / task / kind / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".png"):
                save_image(path, img)
            else:
                Image.fromarray(img).save(path, quality=95)
        rows.append({"id": pid, "type": task, "split": "val", "name": name, "lq_path": f"val/{task}/LQ/{name}",
                     "gt_path": f"val/{task}/GT/{name}", "source": "test", "licence": "test",
                     "width": lq.shape[1], "height": lq.shape[0], "parameters": "{}",
                     "sha256": sha256_file(root / "val" / task / "LQ" / name),
                     "gt_sha256": sha256_file(root / "val" / task / "GT" / name)})
    write_manifest(root, rows)
    return root


def values(run: Path) -> pd.DataFrame:
    v = pd.read_parquet(run / "per_image.parquet")
    return v.sort_values(["method", "id", "metric"]).reset_index(drop=True)[["method", "id", "metric", "value"]]


# ---------------------------------------------------------------- metric implementations


def test_ssim_is_scikit_image_gaussian_on_the_cropped_image():
    """BasicSR's SSIM = skimage's Gaussian SSIM (sigma 1.5, population covariance) after the
    4-pixel crop: both filter the whole image and average the valid region only."""
    from skimage.metrics import structural_similarity

    from benchmark.metrics import _y_channel

    gt = photo(120, 150)
    lq = noisy(gt)
    c = slice(4, -4)
    ref = structural_similarity(lq[c, c], gt[c, c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255, channel_axis=2)
    assert get_metric("ssim")(lq, gt) == pytest.approx(ref, abs=1e-9)
    ref_y = structural_similarity(_y_channel(lq[c, c]), _y_channel(gt[c, c]), gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=255)
    assert get_metric("ssim_y")(lq, gt) == pytest.approx(ref_y, abs=1e-9)


def _batch_vs_numpy(device):
    from benchmark.metrics import images_to_batch

    sizes = [(40, 52), (40, 52), (23, 19)]
    pairs = [(noisy(photo(h, w, k), k), photo(h, w, k)) for k, (h, w) in enumerate(sizes)]
    pairs.append((pairs[0][1].copy(), pairs[0][1]))  # perfect: PSNR inf, SSIM 1
    for name in METRICS:
        m = get_metric(name)
        by_size = {}
        for lq, gt in pairs:
            by_size.setdefault(lq.shape, []).append((lq, gt))
        for group in by_size.values():
            got = m.batch_fn(images_to_batch([p[0] for p in group], device),
                             images_to_batch([p[1] for p in group], device)).cpu().tolist()
            want = [m(lq, gt) for lq, gt in group]
            for g, w in zip(got, want):
                if math.isinf(w):
                    assert math.isinf(g) and g > 0, name
                else:
                    assert g == pytest.approx(w, abs=1e-9), name


def test_batched_torch_metrics_equal_numpy_on_cpu():
    _batch_vs_numpy("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_batched_torch_metrics_on_gpu_equal_float64_numpy():
    _batch_vs_numpy("cuda")


def test_too_small_images_have_a_reason():
    ssim, psnr = get_metric("ssim"), get_metric("psnr")
    assert "19x19" in ssim.too_small(8, 8) and "border crop" in ssim.too_small(8, 8)
    assert ssim.too_small(18, 40) and ssim.too_small(19, 19) is None
    assert psnr.too_small(8, 8) and psnr.too_small(9, 9) is None
    assert get_metric("lpips").too_small(30, 64) and get_metric("lpips").too_small(31, 31) is None
    with pytest.raises(ValueError, match="too small"):
        ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


# ---------------------------------------------------------------- the runner: values never change


@pytest.fixture(scope="module")
def mixed_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    pairs = []
    for t, task in enumerate(("noisy", "hazy")):
        for k in range(3):
            gt = photo(40, 48, 10 * t + k)
            pairs.append((task, f"a{k}.png", noisy(gt, k), gt))
        gt = photo(28, 36, 10 * t + 5)
        pairs.append((task, "b.png", noisy(gt, 9), gt))
    return write_set(root, pairs)


def test_threads_backends_and_resume_change_no_value(mixed_set, tmp_path):
    base = ["--dataset", str(mixed_set), "--methods", "identity,classical", "--metrics", ",".join(METRICS), "--quiet"]
    assert bench_main([*base, "--out", str(tmp_path / "one"), "--workers", "1"]) == 0
    assert bench_main([*base, "--out", str(tmp_path / "many"), "--workers", "3"]) == 0
    assert bench_main([*base, "--out", str(tmp_path / "torch"), "--metric-backend", "torch"]) == 0
    one, many, tor = values(tmp_path / "one"), values(tmp_path / "many"), values(tmp_path / "torch")
    pd.testing.assert_frame_equal(one, many)  # threads change nothing, bit for bit
    assert (one[["method", "id", "metric"]] == tor[["method", "id", "metric"]]).all().all()
    assert np.allclose(one["value"], tor["value"], atol=1e-9, rtol=0)
    # every value is the metric applied to the files on disk
    manifest = pd.read_parquet(mixed_set / "manifest.parquet").set_index("id")
    outputs = pd.read_parquet(tmp_path / "many" / "outputs.parquet").set_index(["method", "id"])
    for row in one.itertuples():
        out = np.asarray(Image.open(tmp_path / "many" / outputs.loc[(row.method, row.id), "output_path"]))
        gt = np.asarray(Image.open(mixed_set / manifest.loc[row.id, "gt_path"]))
        assert row.value == get_metric(row.metric)(out, gt)
    s = json.loads((tmp_path / "many" / "summary.json").read_text())
    assert s["run"]["workers"] == 3 and s["run"]["metric_backend"] == "numpy" and s["run"]["batch_size"] == 1
    t = s["run"]["timings"]["classical"]
    assert t["images"] == 8 and t["stages"]["restore"]["images"] == 8 and t["stages"]["metrics"]["images"] == 8
    # The identity output is the LQ file itself (an RGB PNG), not a re-encoding.
    ident = outputs.loc[("identity", "val/noisy/a0")]
    assert ident["output_sha256"] == manifest.loc["val/noisy/a0", "sha256"]


def _save_net(path: Path, name: str, config: dict, **side) -> str:
    from daclip.networks import build_network

    torch.manual_seed(0)
    torch.save(build_network(name, **config).state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps({"network": name, "config": config, **side}))
    return str(path)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from daclip.checkpoint import save_daclip
    from daclip.model import create_daclip

    d = tmp_path_factory.mktemp("tinyw")
    torch.manual_seed(0)
    save_daclip(create_daclip(model_cfg=TINY_DACLIP), d / "daclip.pt")
    out = {}
    for name in ("nafnet", "promptir", "restormer", "airnet", "irsde", "ours", "nafnet-daclip"):
        cfg = {"preset": "tiny", **({"context_dim": 32} if name == "nafnet-daclip" else {})}
        side = {"daclip_cfg": TINY_DACLIP} if name in ("ours", "nafnet-daclip") else {}
        w = _save_net(d / f"{name}.pth", name, cfg, **side)
        out[name] = f"{w},{d / 'daclip.pt'}" if side else w
    return out


@pytest.mark.usefixtures("one_thread")
def test_batched_and_one_at_a_time_give_identical_outputs_and_tables(mixed_set, tiny_weights, tmp_path):
    """Every neural method (tiny weights): --batch-size 3 and --batch-size 1 write the same
    bytes and the same metric tables; diffusion noise is drawn per image, from its id."""
    names = ",".join(tiny_weights)
    args = ["--dataset", str(mixed_set), "--methods", names, "--tasks", "noisy", "--metrics", "psnr,ssim", "--quiet",
            *[a for n, w in tiny_weights.items() for a in ("--weights", f"{n}={w}")],
            "--option", "ours:steps=2", "--option", "irsde:steps=2"]
    assert bench_main([*args, "--out", str(tmp_path / "b1"), "--batch-size", "1"]) == 0
    assert bench_main([*args, "--out", str(tmp_path / "b3"), "--batch-size", "3"]) == 0
    pd.testing.assert_frame_equal(values(tmp_path / "b1"), values(tmp_path / "b3"))
    o1 = pd.read_parquet(tmp_path / "b1" / "outputs.parquet").sort_values(["method", "id"]).reset_index(drop=True)
    o3 = pd.read_parquet(tmp_path / "b3" / "outputs.parquet").sort_values(["method", "id"]).reset_index(drop=True)
    assert list(o1["output_sha256"]) == list(o3["output_sha256"]) and len(o1) == 7 * 4
    assert set(o1["batch"]) == {1} and set(o3["batch"]) == {1, 3}  # three 40x48 in one call, the 28x36 alone
    s = json.loads((tmp_path / "b3" / "summary.json").read_text())
    assert s["run"]["batch_size"] == 3 and s["run"]["amp"] == "none"
    # Each image's noise comes from its own id: two images with the same pixels but other ids differ.
    from benchmark.methods import create_method

    ours = create_method("ours", weights=tiny_weights["ours"], steps=2)
    ours.prepare("cpu")
    lq = noisy(photo(40, 48), 1)
    a, b = ours.restore_batch([lq, lq], keys=["val/noisy/x", "val/noisy/y"])
    assert not np.array_equal(a, b)
    assert np.array_equal(ours.restore_batch([lq], keys=["val/noisy/y"])[0], b)
    assert np.array_equal(ours.restore(lq, "noisy"), ours.restore_batch([lq, lq])[1])  # no keys: the seed


@pytest.mark.usefixtures("one_thread")
def test_true_batches_and_batched_tiles_stay_within_rounding(tiny_weights):
    """net_batch > 1 puts several images (and tiles) into one network call, as on a GPU: the
    float rounding of batched kernels may move a pixel by one grey level, never more."""
    from benchmark.methods import create_method

    imgs = [noisy(photo(40, 48, k), k) for k in range(3)]
    keys = [f"k{k}" for k in range(3)]
    for name in ("nafnet-daclip", "ours"):
        extra = {"steps": 2} if name == "ours" else {}
        single = create_method(name, weights=tiny_weights[name], **extra)
        single.prepare("cpu")
        want = [single.restore_batch([im], keys=[k])[0] for im, k in zip(imgs, keys)]
        for opts in ({"net_batch": 3}, {"net_batch": 6, "tile": 24, "overlap": 8, "max_pixels": 0}):
            m = create_method(name, weights=tiny_weights[name], **extra, **opts)
            m.prepare("cpu")
            calls = []
            m.net.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
            got = m.restore_batch(imgs, keys=keys)
            assert max(calls) == opts["net_batch"], (name, opts, calls)  # really batched (3 images x 2 tiles)
            if "tile" not in opts:
                assert all(np.abs(g.astype(int) - w).max() <= 1 for g, w in zip(got, want)), (name, opts)


@pytest.mark.usefixtures("one_thread")
def test_amp_bf16_is_recorded_and_close_to_fp32(mixed_set, tiny_weights, tmp_path):
    args = ["--dataset", str(mixed_set), "--methods", "identity,nafnet", "--tasks", "hazy", "--metrics", "psnr",
            "--quiet", "--weights", f"nafnet={tiny_weights['nafnet']}"]
    assert bench_main([*args, "--out", str(tmp_path / "run")]) == 0
    assert bench_main([*args, "--out", str(tmp_path / "run"), "--amp", "bf16"]) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["run"]["amp"] == "bf16"
    nafnet = next(m for m in s["methods"] if m["name"] == "nafnet")
    assert nafnet["settings"]["amp"] == "bf16"
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    assert "amp <code>bf16</code>" in page and "batch size <code>1</code>" in page  # shown in the Run section
    o = pd.read_parquet(tmp_path / "run" / "outputs.parquet")
    naf = o[o["method"] == "nafnet"]
    assert naf["weights_id"].nunique() == 2  # the bf16 outputs have their own cache key
    assert (naf["seconds"] > 0).all() and (o["batch"] >= 1).all()
    v = pd.read_parquet(tmp_path / "run" / "per_image.parquet")
    v = v[v["method"] == "nafnet"].groupby("weights_id")["value"].mean()
    assert abs(v.iloc[0] - v.iloc[1]) < 0.05  # dB


# ---------------------------------------------------------------- issue 12 probes


def test_second_writer_of_a_run_folder_is_refused(mixed_set, tmp_path, capsys, lock_holder):
    """Probe 3: two runs on one --out used to both exit 0 with the first one's rows lost."""
    out = tmp_path / "results"
    holder = lock_holder(out, "run folder")
    args = ["--dataset", str(mixed_set), "--methods", "identity", "--metrics", "psnr", "--quiet", "--out", str(out)]
    assert bench_main(args) == 2
    err = capsys.readouterr().err
    assert f"error: run folder {out} is in use by pid {holder.pid} on " in err
    assert not (out / "per_image.parquet").exists()
    holder.kill()
    holder.wait()
    # Sequential runs with different methods on one folder keep both methods' rows.
    assert bench_main(args) == 0
    assert bench_main([*args[:3], "classical", *args[4:]]) == 0
    assert set(pd.read_parquet(out / "per_image.parquet")["method"]) == {"identity", "classical"}


def test_rank_part_files_hold_only_their_own_rows(tmp_path):
    from benchmark.store import ResultStore

    main = ResultStore(tmp_path)
    row = dict(method="m", weights_id="w", type="noisy", split="val", name="a.png", metric="psnr", value=30.0,
               lq_sha256="l", gt_sha256="g")
    main.add_value(id="val/noisy/a", **row)
    main.flush()
    rank = ResultStore(tmp_path, rank=1)
    assert rank.has_value("m", "w", "val/noisy/a", "l", "g", "psnr")  # it sees what earlier runs finished
    rank.add_value(id="val/noisy/b", **row)
    rank.flush()
    part = pd.read_parquet(tmp_path / "per_image.rank1.parquet")
    assert list(part["id"]) == ["val/noisy/b"]  # ... but does not copy it into its part file
    assert set(rank.values["id"]) == {"val/noisy/a", "val/noisy/b"}


def test_perfect_restoration_inf_survives_json_and_reruns(tmp_path, capsys):
    """Probe 6a: PSNR inf crashed the summary ("Out of range float values"), on every re-run."""
    gt = photo(40, 48)
    root = write_set(tmp_path / "ds", [("noisy", "same.png", gt, gt), ("noisy", "other.png", noisy(gt), gt)])
    args = ["--dataset", str(root), "--methods", "identity", "--metrics", "psnr,ssim", "--out", str(tmp_path / "run"),
            "--quiet"]
    for _ in range(2):
        assert bench_main(args) == 0
    assert "inf" in capsys.readouterr().out
    raw = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert raw["tables"]["psnr"]["identity"]["noisy"] == "inf"  # strict JSON: a string
    from benchmark.summary import read_summary

    s = read_summary(tmp_path / "run" / "summary.json")
    assert s["tables"]["psnr"]["identity"]["average"] == math.inf
    assert {r["name"]: r["values"]["psnr"] for r in s["images"]}["same.png"] == math.inf
    v = pd.read_parquet(tmp_path / "run" / "per_image.parquet")
    assert np.isinf(v[(v["id"] == "val/noisy/same") & (v["metric"] == "psnr")]["value"]).all()
    assert "∞" in (tmp_path / "run" / "report" / "index.html").read_text()
    from reports.html import render_report

    (tmp_path / "run" / "report" / "index.html").unlink()
    page = render_report(tmp_path / "run")  # from summary.json on disk: "inf" is a float again
    assert "∞" in page.read_text()


def test_images_too_small_for_a_metric_are_skipped_with_the_reason(tmp_path, capsys):
    """Probe 6b: 1x1 and 8x8 images made SSIM fail ("Kernel size can't be greater...")."""
    pairs = [("noisy", f"s{n}.png", noisy(photo(n, n, n), n), photo(n, n, n)) for n in (1, 8, 12, 24)]
    root = write_set(tmp_path / "ds", pairs)
    args = ["--dataset", str(root), "--methods", "identity", "--metrics", "psnr,ssim", "--out", str(tmp_path / "run"),
            "--quiet"]
    assert bench_main(args) == 0
    err = capsys.readouterr().err
    assert "ssim: 3 image(s) not scored (image 1x1 is too small: ssim needs at least 19x19" in err
    v = pd.read_parquet(tmp_path / "run" / "per_image.parquet").set_index(["id", "metric"])
    assert v.loc[("val/noisy/s24", "ssim"), "skipped"] == "" and np.isfinite(v.loc[("val/noisy/s24", "ssim"), "value"])
    assert np.isfinite(v.loc[("val/noisy/s12", "psnr"), "value"])
    for n in (1, 8):
        assert np.isnan(v.loc[(f"val/noisy/s{n}", "psnr"), "value"])
        assert f"image {n}x{n} is too small" in v.loc[(f"val/noisy/s{n}", "ssim"), "skipped"]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["skipped_images"]["ssim"]["count"] == 3 and s["skipped_images"]["psnr"]["count"] == 2
    assert s["tables"]["ssim"]["identity"]["noisy"] == pytest.approx(v.loc[("val/noisy/s24", "ssim"), "value"])
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    assert "<b>ssim</b>: 3 image(s) not scored (image 1x1 is too small" in page and "val/noisy/s8" in page
    assert bench_main(args) == 0  # and the re-run is a no-op, not a crash


@pytest.mark.parametrize("case", ["out-is-a-file", "bogus-device", "batch-size-0"])
def test_out_is_a_file_and_bogus_device_are_one_error_line(mixed_set, tmp_path, case):
    """Probes 7 (--out is a file: traceback) and 8 (--device bogus accepted with exit 0)."""
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    extra, line = {
        "out-is-a-file": (["--out", str(afile)], f"error: --out {afile} is a file, not a folder"),
        "bogus-device": (["--out", str(tmp_path / "o"), "--device", "bogus"],
                         "error: --device 'bogus' is not a torch device"),
        "batch-size-0": (["--out", str(tmp_path / "o"), "--batch-size", "0"], "error: --batch-size must be >= 1, got 0"),
    }[case]
    r = subprocess.run([sys.executable, "-m", "benchmark.run", "--dataset", str(mixed_set), "--methods", "identity",
                        "--metrics", "psnr", "--quiet", *extra], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stderr.startswith(line) and "Traceback" not in r.stderr, (extra, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1
    assert afile.read_text() == "keep me" and not (tmp_path / "o").exists()


def test_colliding_output_names_never_overwrite(tmp_path):
    """x.png beside x.jpg: both outputs used to be outputs/<m>/val/noisy/x.png (one lost)."""
    a, b = photo(40, 48, 1), photo(40, 48, 2)
    root = write_set(tmp_path / "ds", [("noisy", "x.png", a, a, "val/noisy/x"),
                                       ("noisy", "x.jpg", b, b, "val/noisy/x-jpg")])
    out = tmp_path / "run"
    assert bench_main(["--dataset", str(root), "--methods", "identity", "--metrics", "psnr", "--out", str(out),
                       "--quiet"]) == 0
    o = pd.read_parquet(out / "outputs.parquet").set_index("id")
    assert o.loc["val/noisy/x", "output_path"] == "outputs/identity/val/noisy/x_png.png"
    assert o.loc["val/noisy/x-jpg", "output_path"] == "outputs/identity/val/noisy/x_jpg.png"
    assert np.array_equal(np.asarray(Image.open(out / o.loc["val/noisy/x", "output_path"])), a)
    jpg = np.asarray(Image.open(root / "val/noisy/LQ/x.jpg").convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(out / o.loc["val/noisy/x-jpg", "output_path"])), jpg)


# ---------------------------------------------------------------- issue 14: methods without weights


def test_methods_all_offline_skips_methods_without_weights(mixed_set, tmp_path, capsys):
    from benchmark.methods import method_specs

    out = tmp_path / "run"
    assert bench_main(["--dataset", str(mixed_set), "--methods", "all", "--tasks", "hazy", "--metrics", "psnr",
                       "--out", str(out), "--quiet", "--limit", "1"]) == 0
    err = capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    needing = [n for n, spec in method_specs().items() if spec.needs_weights]
    assert sorted(s["skipped_methods"]) == sorted(needing)
    assert all(s["skipped_methods"][n] for n in needing)
    for n in needing:
        assert f"{n}: skipped (" in err
    assert [m["name"] for m in s["methods"]] == [n for n in method_specs() if n not in needing]
    assert set(pd.read_parquet(out / "per_image.parquet")["method"]) == {m["name"] for m in s["methods"]}
    # Only an unknown name is an error.
    assert bench_main(["--dataset", str(mixed_set), "--methods", "identity,nope", "--out", str(out), "--quiet"]) == 2


def test_ctrl_c_in_a_batched_run_keeps_restored_images(mixed_set, tiny_weights, tmp_path, monkeypatch):
    from daclip.methods import NetworkMethod

    real = NetworkMethod.restore_batch
    calls = {"n": 0}

    def dying(self, lqs, tasks=None, keys=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, lqs, tasks, keys)

    monkeypatch.setattr(NetworkMethod, "restore_batch", dying)
    args = ["--dataset", str(mixed_set), "--methods", "nafnet", "--tasks", "noisy", "--metrics", "psnr",
            "--weights", f"nafnet={tiny_weights['nafnet']}", "--batch-size", "3", "--out", str(tmp_path), "--quiet"]
    assert bench_main(args) == 130
    o = pd.read_parquet(tmp_path / "outputs.parquet")
    assert len(o) == 3 and (o["batch"] == 3).all()  # the first batch was finished and kept
    assert len(pd.read_parquet(tmp_path / "per_image.parquet")) == 3
    assert bench_main(args) == 0 and calls["n"] == 3  # the re-run restores only the last image
    assert len(pd.read_parquet(tmp_path / "per_image.parquet")) == 4


# ---------------------------------------------------------------- the bench script's data


def test_bench_size_mix_and_plain_loop(tmp_path):
    """bench/bench_benchmark.py: the size mix adds up to the 3,490-image test set, and its plain
    loop (the reference of the CPU target) scores what the runner scores."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_benchmark as bb
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert bb.FULL_IMAGES == 3490 and 1700 < bb.FULL_MP < 1800
    plan = bb.size_plan(0.002)
    assert {t for t, _, _ in plan} == {t.type for t in bb.SIZES}  # at least one image per type
    assert sum(1 for t, w, h in plan if (w, h) == (1280, 720)) == 2
    root = bb.make_dataset(tmp_path / "ds", [("noisy", 48, 40), ("hazy", 30, 20)])
    plain = bb.plain_loop(root)
    assert bench_main(["--dataset", str(root), "--methods", "identity", "--metrics", "psnr,ssim", "--quiet",
                       "--out", str(tmp_path / "run")]) == 0
    v = pd.read_parquet(tmp_path / "run" / "per_image.parquet").set_index(["id", "metric"])["value"]
    for (p, s), rid in zip(plain["values"], ["val/noisy/img00000", "val/hazy/img00001"]):
        assert v[(rid, "psnr")] == pytest.approx(p, abs=1e-9) and v[(rid, "ssim")] == pytest.approx(s, abs=1e-9)
