"""Helpers shared by the issue-17 reliability tests (tests/*/test_reliability_*.py): real
photographs cropped small, an official-layout dataset, a tiny NAFNet file, and a restore run that
kills itself after its third output."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from builders.index import index_folder
from builders.io import save_image

@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")


def crop(img, h, w, y=0, x=0):
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def noisy(gt, seed=0, sigma=20):
    rng = np.random.default_rng(seed)
    return np.clip(gt.astype(np.int16) + rng.normal(0, sigma, gt.shape), 0, 255).astype(np.uint8)


def official(root: Path, pairs) -> Path:
    """val/<type>/{LQ,GT}/<name> files, then --index (the repro's way)."""
    for task, name, lq, gt in pairs:
        for kind, img in (("LQ", lq), ("GT", gt)):
            save_image(root / "val" / task / kind / name, img)
    index_folder(root)
    return root


def psnr_of(run: Path, method="identity", name="p0.png") -> float:
    s = json.loads((run / "summary.json").read_text())
    vals = [r for r in s["images"] if r["name"] == name and r["method_name"] == method]
    assert len(vals) == 1
    return float(vals[0]["values"]["psnr"])


def _manifest_pointing_at(tmp_path, rel_lq: str):
    from builders.io import sha256_file
    from builders.manifest import write_manifest

    astro = skimage.data.astronaut()
    private = tmp_path / "private" / "holiday.png"
    save_image(private, crop(astro, 48, 48, 200, 200))
    ds = tmp_path / "ds"
    gt = crop(astro, 48, 48, 10, 10)
    save_image(ds / "val" / "noisy" / "GT" / "p0.png", gt)
    lq_file = ds / rel_lq if not os.path.isabs(rel_lq) else Path(rel_lq)
    write_manifest(ds, [{"id": "val/noisy/p0", "type": "noisy", "split": "val", "name": "p0.png",
                         "lq_path": rel_lq, "gt_path": "val/noisy/GT/p0.png", "source": "t", "licence": "t",
                         "width": 48, "height": 48, "parameters": "{}", "sha256": sha256_file(lq_file),
                         "gt_sha256": sha256_file(ds / "val/noisy/GT/p0.png")}])
    return ds, private


def _tiny_nafnet(path: Path) -> str:
    import torch

    from daclip.networks import build_network

    torch.manual_seed(0)
    torch.save(build_network("nafnet", preset="tiny").state_dict(), path)
    Path(str(path) + ".json").write_text(json.dumps({"network": "nafnet", "config": {"preset": "tiny"}}))
    return str(path)


def _photos(folder: Path, n: int = 3) -> list[Path]:
    astro = skimage.data.astronaut()
    paths = []
    for i in range(n):
        p = folder / f"i{i:02d}.png"
        save_image(p, (crop(astro, 40, 48, 30 * i, 40 * i) // 3).astype(np.uint8))  # dark: low-light
        paths.append(p)
    return paths


_KILL_AFTER_THIRD = """
import os, signal, sys
import builders.io as bio
real, n = bio.save_image, [0]
def save(path, img):
    n[0] += 1
    data = real(path, img)
    if n[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would, right after the third output
    return data
bio.save_image = save
from daclip.restore import main
sys.exit(main(sys.argv[1:]))
"""
