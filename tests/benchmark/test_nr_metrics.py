"""No-reference metrics: the toolkit's values equal pyiqa's own create_metric on the same images
(random weights written to a temp folder, read by pyiqa in this test only and by the toolkit's
restricted loader), directions equal pyiqa's, and a hostile file runs no code."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

pyiqa = pytest.importorskip("pyiqa")

pytestmark = pytest.mark.usefixtures("one_thread")


def _images():
    from skimage import data

    a = data.astronaut()[100:228, 150:310]  # 128x160
    b = data.chelsea()[50:178, 100:260]
    return [np.ascontiguousarray(a), np.ascontiguousarray(b)]


def _tensor(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def _no_vit_download(monkeypatch):
    import timm
    from pyiqa.archs import maniqa_arch

    real = timm.create_model
    monkeypatch.setattr(maniqa_arch.timm, "create_model", lambda name, pretrained=False, **kw: real(name, **kw))


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    """Random weights in every file the NR metrics read, at the names the toolkit expects."""
    import open_clip

    from benchmark.weights import WEIGHTS

    d = tmp_path_factory.mktemp("nrweights")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    p = lambda key: (WEIGHTS[key].path(d).parent.mkdir(parents=True, exist_ok=True), WEIGHTS[key].path(d))[1]
    # NIQE: a MATLAB v5 file like pyiqa's (36 features: 18 per scale, two scales)
    a = rng.normal(size=(36, 36))
    scipy.io.savemat(p("niqe-params"), {"mu_prisparam": rng.normal(size=(1, 36)),
                                        "cov_prisparam": a @ a.T / 36 + np.eye(36)})
    # BRISQUE: (sv_coef, sv) as piq's file holds them
    torch.save((torch.randn(50, dtype=torch.float64), torch.rand(50, 36, dtype=torch.float64)), p("brisque-svm"))
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.save(MUSIQ(pretrained=False).state_dict(), p("musiq-koniq"))
    import timm
    from pyiqa.archs import maniqa_arch

    real = timm.create_model
    maniqa_arch.timm.create_model = lambda name, pretrained=False, **kw: real(name, **kw)
    try:
        net = maniqa_arch.MANIQA(train_dataset="koniq", scale=0.8, pretrained=False)
    finally:
        maniqa_arch.timm.create_model = real
    torch.save(net.state_dict(), p("maniqa-koniq"))
    del net
    clip = open_clip.create_model("RN50", pretrained=None)
    torch.save(clip.state_dict(), p("clip-rn50-openai"))
    return d


@pytest.fixture
def digests(wdir, monkeypatch):
    """The weights table expects these files' full sha256 (MUSIQ's hub name carries a prefix)."""
    import benchmark.weights as bw
    from builders.io import sha256_file

    for key in ("niqe-params", "brisque-svm", "musiq-koniq", "maniqa-koniq", "clip-rn50-openai"):
        w = bw.WEIGHTS[key]
        monkeypatch.setitem(bw.WEIGHTS, key, dataclasses.replace(w, sha256=sha256_file(w.path(wdir))))


def _toolkit(name, wdir):
    from benchmark.nr_metrics import NR_METRICS

    m = NR_METRICS[name]
    m.scorer.net = None
    m.prepare(wdir, "cpu")
    return m


def _pyiqa(name, wdir, monkeypatch):
    from benchmark.weights import WEIGHTS

    path = lambda key: str(WEIGHTS[key].path(wdir))
    if name == "niqe":
        return pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=path("niqe-params"))
    if name == "brisque":
        return pyiqa.create_metric("brisque", device="cpu", pretrained_model_path=path("brisque-svm"))
    if name == "musiq":
        return pyiqa.create_metric("musiq", device="cpu", pretrained_model_path=path("musiq-koniq"))
    if name == "maniqa":
        _no_vit_download(monkeypatch)
        m = pyiqa.create_metric("maniqa", device="cpu", pretrained=False, test_sample=1)
        m.load_weights(path("maniqa-koniq"), weight_keys=None)  # pyiqa's own loader, on the same file
        return m
    if name == "clipiqa":
        from daclip.iqa import import_clipiqa_arch

        clipiqa_arch = import_clipiqa_arch()
        from pyiqa.archs import clip_model

        f = path("clip-rn50-openai")
        # pyiqa's load() of a state-dict file (not TorchScript) reads it after torch.jit.load has
        # consumed the stream and hits EOF; this is the rest of its state-dict branch, as is.
        monkeypatch.setattr(clipiqa_arch, "load", lambda backbone, device="cpu", **kw: clip_model.build_model(
            torch.load(f, map_location="cpu", weights_only=False)).to(device).float())
        return pyiqa.create_metric("clipiqa", device="cpu")
    raise KeyError(name)


@pytest.mark.parametrize("name", ["niqe", "brisque", "musiq", "clipiqa", "maniqa"])
def test_values_equal_pyiqa(name, wdir, digests, monkeypatch):
    ref = _pyiqa(name, wdir, monkeypatch)
    if name == "maniqa":
        # pyiqa's MANIQA averages 20 crops of ViT-B/8 per image; one crop on both sides keeps the
        # test at seconds on two cores (the crop count is a forward option, not a weight).
        ours = _toolkit(name, wdir)
        ours.net.test_sample = 1
    else:
        ours = _toolkit(name, wdir)
    for img in _images():
        want = float(ref(_tensor(img)).reshape(-1)[0])
        got = ours(img)
        assert np.isfinite(want)
        assert got == pytest.approx(want, abs=1e-5, rel=0), name


def test_directions_equal_pyiqa():
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from benchmark.metrics import get_metric

    for name in ("niqe", "brisque", "musiq", "clipiqa", "maniqa"):
        m = get_metric(name)
        assert m.higher_is_better == (not DEFAULT_CONFIGS[name].get("lower_better", False)), name
        assert m.reference is False


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("key,metric", [("brisque-svm", "brisque"), ("musiq-koniq", "musiq")])
def test_hostile_file_runs_nothing_and_leaves_metric_unavailable(key, metric, tmp_path, monkeypatch):
    import benchmark.weights as bw
    from benchmark.metrics import MetricUnavailable
    from benchmark.nr_metrics import NR_METRICS
    from builders.io import sha256_file

    w = bw.WEIGHTS[key]
    path = w.path(tmp_path)
    path.parent.mkdir(parents=True)
    marker = tmp_path / "ran"
    torch.save({"weight": torch.ones(1), "x": _Payload(marker)}, path)
    monkeypatch.setitem(bw.WEIGHTS, key, dataclasses.replace(w, sha256=sha256_file(path)))
    m = NR_METRICS[metric]
    m.scorer.net = None
    with pytest.raises(MetricUnavailable) as e:
        m.prepare(tmp_path, "cpu")
    assert "refused" in str(e.value) and "system" in str(e.value) and str(path) in str(e.value)
    assert not marker.exists() and m.net is None


def test_mat_file_with_a_non_numeric_variable_is_refused(tmp_path):
    from builders.errors import UserError
    from daclip.safe_load import load_mat

    f = tmp_path / "p.mat"
    scipy.io.savemat(f, {"mu_prisparam": np.zeros((1, 36)), "cov_prisparam": np.array(["text"], dtype=object)})
    with pytest.raises(UserError, match="not a numeric array"):
        load_mat(f, ("mu_prisparam", "cov_prisparam"))
    f.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable MATLAB"):
        load_mat(f, ("mu_prisparam",))


def test_missing_weights_name_the_file(tmp_path):
    from benchmark.metrics import MetricUnavailable
    from benchmark.nr_metrics import NR_METRICS

    with pytest.raises(MetricUnavailable, match="niqe_modelparameters.mat"):
        NR_METRICS["niqe"].prepare(tmp_path, "cpu")


def test_lpips_through_pyiqa_keeps_the_values_of_the_hand_written_network():
    """pyiqa's LPIPS, built without its loader, gives bit for bit what the toolkit's former
    hand-written LpipsAlex gave on the same weights and images (values recorded from it)."""
    import torchvision

    from daclip.iqa import lpips_alex

    torch.manual_seed(7)
    alex = torchvision.models.alexnet().state_dict()
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))}
    rng = np.random.default_rng(7)
    a = torch.from_numpy(rng.integers(0, 256, (2, 3, 48, 64), dtype=np.uint8)).float() / 255
    b = torch.from_numpy(rng.integers(0, 256, (2, 3, 48, 64), dtype=np.uint8)).float() / 255
    with torch.no_grad():
        v = lpips_alex(alex, lin)(a, b, normalize=True).reshape(-1).tolist()
    assert [x.hex() for x in v] == ["0x1.c32d320000000p-1", "0x1.ba518e0000000p-1"]
    with pytest.raises(Exception, match="lack"):
        lpips_alex(alex, {})
