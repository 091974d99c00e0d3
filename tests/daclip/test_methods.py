"""The neural methods in the benchmark registry: weights handling, restore, CLI run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from benchmark.methods import MethodUnavailable, create_method, method_specs
from builders.io import save_image, sha256_file
from daclip.inference import to_tensor, to_uint8
from daclip.networks import build_network



pytestmark = pytest.mark.usefixtures("one_thread")
NEURAL = {
    "ours": "Ours (IR-SDE + DA-CLIP)", "irsde": "IR-SDE", "nafnet": "NAFNet",
    "nafnet-daclip": "NAFNet + DA-CLIP", "nafnet-degradation": "NAFNet + Degradation", "promptir": "PromptIR", "restormer": "Restormer", "airnet": "AirNet",
}
TINY_DACLIP = yaml.safe_load((Path(__file__).parents[2] / "daclip" / "configs" / "tiny.yaml").read_text())


@pytest.fixture(autouse=True)
def no_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")


def save_net(path: Path, name: str, config: dict, seed: int = 0, **side) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_network(name, **config)
    torch.save(net.state_dict(), path)
    (Path(str(path) + ".json")).write_text(json.dumps({"network": name, "config": config, **side}))
    return net.eval()


def image(h=37, w=29, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_registry_names():
    specs = method_specs()
    for name, display in NEURAL.items():
        assert specs[name].display_name == display
        assert specs[name].needs_weights
    assert "identity" in specs


def test_nafnet_restore_matches_network(tmp_path):
    net = save_net(tmp_path / "nafnet.pth", "nafnet", {"preset": "tiny"})
    method = create_method("nafnet", weights=str(tmp_path / "nafnet.pth"))
    method.prepare("cpu")
    assert method.weights_id == sha256_file(tmp_path / "nafnet.pth")[:16]
    lq = image()
    out = method.restore(lq, "noisy")
    assert out.shape == lq.shape and out.dtype == np.uint8
    with torch.no_grad():
        want = to_uint8(net(to_tensor(lq)))
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1
    # A file of another network is refused by its sidecar before loading.
    save_net(tmp_path / "r.pth", "restormer", {"preset": "tiny"})
    with pytest.raises(MethodUnavailable, match="restormer"):
        create_method("nafnet", weights=str(tmp_path / "r.pth")).prepare("cpu")


@pytest.mark.parametrize("name", ["promptir", "restormer", "airnet", "irsde"])
def test_other_methods_restore(tmp_path, name):
    save_net(tmp_path / "w.pth", name, {"preset": "tiny"})
    options = {"steps": 3} if name == "irsde" else {}
    method = create_method(name, weights=str(tmp_path / "w.pth"), **options)
    method.prepare("cpu")
    lq = image(35, 41)
    out = method.restore(lq, "hazy")
    assert out.shape == lq.shape and out.dtype == np.uint8
    if name in ("promptir", "airnet"):
        # Default: padded, scored on the full image; protocol=crop is upstream's centre crop to
        # 16 (35 % 16 = 3 -> rows 1..32, 41 % 16 = 9 -> columns 4..35), the rim kept from the input.
        # PromptIR's file is a release (3d): a --weights file is recorded as such.
        given = {"release": "w.pth (--weights)"} if name == "promptir" else {}
        assert method.settings == {"protocol": "pad", **given}
        crop = create_method(name, weights=str(tmp_path / "w.pth"), protocol="crop")
        crop.prepare("cpu")
        assert crop.settings == {"protocol": "crop", **given} and crop.weights_id != method.weights_id
        got = crop.restore(lq, "hazy")
        rim = np.ones(lq.shape[:2], bool)
        rim[1:33, 4:36] = False
        assert np.array_equal(got[rim], lq[rim]) and not np.array_equal(got[~rim], lq[~rim])


def test_ours_restore_with_daclip(tmp_path, tiny_daclip):
    save_net(tmp_path / "unet.pth", "ours", {"preset": "tiny"}, daclip_cfg=TINY_DACLIP)
    weights = f"{tmp_path / 'unet.pth'},{tiny_daclip}"
    lq = image(40, 36, seed=1)
    method = create_method("ours", weights=weights, steps=4, seed=5)
    method.prepare("cpu")
    a = method.restore(lq, "noisy")
    assert a.shape == lq.shape and a.dtype == np.uint8
    assert np.array_equal(a, method.restore(lq, "noisy"))  # seeded
    other = create_method("ours", weights=weights, steps=4, seed=6)
    other.prepare("cpu")
    assert not np.array_equal(a, other.restore(lq, "noisy"))
    assert other.weights_id != method.weights_id  # options are part of the cache key
    # The daclip_weights option is the same as the "UNET,DACLIP" form.
    same = create_method("ours", weights=str(tmp_path / "unet.pth"), daclip_weights=str(tiny_daclip), steps=4, seed=5)
    same.prepare("cpu")
    assert same.weights_id == method.weights_id
    assert np.array_equal(same.restore(lq, "noisy"), a)
    # Tiled (tile smaller than the image) runs and stays close to the whole-image result.
    tiled = create_method("ours", weights=weights, steps=4, seed=5, tile=24, overlap=12, max_pixels=0)
    tiled.prepare("cpu")
    t = tiled.restore(lq, "noisy")
    assert t.shape == lq.shape
    # Without DA-CLIP weights (offline, nothing cached) the method is unavailable.
    with pytest.raises(MethodUnavailable, match="daclip"):
        create_method("ours", weights=str(tmp_path / "unet.pth")).prepare("cpu")


def test_nafnet_daclip_restore(tmp_path, tiny_daclip):
    save_net(tmp_path / "nd.pth", "nafnet-daclip", {"preset": "tiny", "context_dim": 32}, daclip_cfg=TINY_DACLIP)
    method = create_method("nafnet-daclip", weights=f"{tmp_path / 'nd.pth'},{tiny_daclip}")
    method.prepare("cpu")
    lq = image(20, 24)
    assert method.restore(lq, "rainy").shape == lq.shape


def make_dataset(root: Path, types=("noisy", "hazy"), size=(32, 40)):
    from builders.manifest import write_manifest

    rows = []
    rng = np.random.default_rng(0)
    for k, task in enumerate(types):
        gt = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        lq = np.clip(gt.astype(int) + rng.normal(0, 30, gt.shape), 0, 255).astype(np.uint8)
        for kind, img in (("LQ", lq), ("GT", gt)):
            save_image(root / "val" / task / kind / "a.png", img)
        rows.append({"id": f"val/{task}/a", "type": task, "split": "val", "name": "a.png",
                     "lq_path": f"val/{task}/LQ/a.png", "gt_path": f"val/{task}/GT/a.png", "source": "test",
                     "licence": "test", "width": size[1], "height": size[0], "parameters": "{}",
                     "sha256": sha256_file(root / "val" / task / "LQ" / "a.png"),
                     "gt_sha256": sha256_file(root / "val" / task / "GT" / "a.png")})
    write_manifest(root, rows)


def test_benchmark_cli_runs_given_weights(tmp_path, tiny_daclip, capsys):
    from benchmark.run import main

    data = tmp_path / "data"
    make_dataset(data)
    save_net(tmp_path / "ours.pth", "ours", {"preset": "tiny"}, daclip_cfg=TINY_DACLIP)
    save_net(tmp_path / "naf.pth", "nafnet", {"preset": "tiny"})
    save_net(tmp_path / "pir.pth", "promptir", {"preset": "tiny"})
    rc = main(["--dataset", str(data), "--methods", "identity,ours,nafnet,promptir", "--tasks", "noisy,hazy",
               "--out", str(tmp_path / "run"),
               "--weights", f"ours={tmp_path / 'ours.pth'},{tiny_daclip}", "--weights", f"nafnet={tmp_path / 'naf.pth'}",
               "--weights", f"promptir={tmp_path / 'pir.pth'}", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    for display in ("Ours (IR-SDE + DA-CLIP)", "NAFNet", "PromptIR", "Input"):
        assert display in out
    # Without the weights the run stops with one clear line (no random-weights row).
    rc = main(["--dataset", str(data), "--methods", "nafnet", "--tasks", "noisy", "--out", str(tmp_path / "run2"),
               "--quiet"])
    cap = capsys.readouterr()
    assert "nafnet" in cap.err and "--weights" in cap.err
    # Either the run stops (exit 2) or it reports the method unavailable; never a score.
    assert rc in (0, 2)
    rows = [line.split() for line in cap.out.splitlines() if line.strip().startswith("NAFNet")]
    assert all(r[-1] == "-" for r in rows)


def test_sidecar_names_the_daclip(tmp_path, tiny_daclip):
    save_net(tmp_path / "unet.pth", "ours", {"preset": "tiny"}, daclip_cfg=TINY_DACLIP, daclip_weights=str(tiny_daclip))
    method = create_method("ours", weights=str(tmp_path / "unet.pth"), steps=2)
    method.prepare("cpu")
    assert method.restore(image(16, 16), "noisy").shape == (16, 16, 3)


def test_restore_batch_groups_sizes(tmp_path):
    save_net(tmp_path / "nafnet.pth", "nafnet", {"preset": "tiny"})
    method = create_method("nafnet", weights=str(tmp_path / "nafnet.pth"))
    method.prepare("cpu")
    imgs = [image(20, 24, seed=0), image(17, 19, seed=1), image(20, 24, seed=2)]
    outs = method.restore_batch(imgs)
    for img, out in zip(imgs, outs):
        assert np.abs(out.astype(int) - method.restore(img, "noisy").astype(int)).max() <= 1
