"""Every catalogue of the toolkit is one Registry, and every entry of each is tested here by
iterating the registry: a new method, network, metric, source, degradation or pairing rule is
checked with no test edit."""

import numpy as np
import pytest
import torch

import daclip.catalogue  # noqa: F401  (registers the network methods)
from builders.errors import UserError
from builders.pairing import PAIRING_RULES
from builders.registry import Registry
from builders.sources.base import RECIPES
from builders.synth.base import SYNTHESIZERS
from daclip.catalogue import SPECS, MethodEntry
from daclip.families import Family
from daclip.networks.registry import NETWORKS
from daclip.registry import _REGISTRY as METHODS
from daclip.registry import MethodUnavailable, create_method

pytestmark = pytest.mark.usefixtures("one_thread")


def _metrics():
    from benchmark.metrics import METRICS, metric_names

    metric_names()  # the set metrics register on first use
    return METRICS


REGISTRIES = {"methods": lambda: METHODS, "networks": lambda: NETWORKS, "metrics": _metrics,
              "sources": lambda: RECIPES, "synthesizers": lambda: SYNTHESIZERS, "pairing rules": lambda: PAIRING_RULES}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_catalogue_is_one_registry_with_duplicate_and_unknown_checks(kind):
    reg = REGISTRIES[kind]()
    assert isinstance(reg, Registry) and len(reg) > 0
    first = reg.names()[0]
    with pytest.raises(KeyError, match=f"{first!r} registered twice"):
        reg.add(first, reg.get(first))
    with pytest.raises(UserError, match=f"unknown {reg.what} 'no-such-name'; known: .*{first}"):
        reg.get("no-such-name")
    assert list(reg) == reg.names() and first in reg


def test_registry_loads_lazily_once():
    calls = []
    reg = Registry("thing", load=lambda: (calls.append(1), reg.add("a", 1)))
    assert calls == [] and reg.names() == ["a"] and reg.get("a") == 1 and calls == [1]


@pytest.fixture(autouse=True)
def no_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("DACLIP_WEIGHTS_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("DACLIP_OFFLINE", "1")


@pytest.mark.parametrize("name", SPECS)
def test_catalogue_entry_is_a_method_of_its_family(name):
    entry = SPECS[name]
    assert isinstance(entry, MethodEntry) and issubclass(entry.family, Family)
    assert entry.spec.network in NETWORKS
    method = create_method(name)
    assert type(method) is entry.family.method and method.batched and method.name == name
    assert method.display_name == entry.display and method.uses_daclip == entry.spec.uses_daclip
    with pytest.raises(MethodUnavailable, match="--weights|train_ir|offline"):
        method.prepare("cpu")  # never random weights


@pytest.mark.parametrize("name", [n for n, e in SPECS.items() if not e.spec.uses_daclip and e.family.trainable])
def test_catalogue_entry_trains_with_its_family(name):
    """One training loss and one validation restore of the tiny network, by the entry's family."""
    from daclip.networks import build_network

    entry = SPECS[name]
    torch.manual_seed(0)
    net = build_network(entry.spec.network, preset="tiny")
    family = entry.family(entry.spec)
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 3, 32, 32, generator=g) for k in ("lq", "gt", "lq_key")}
    loss = family.loss(net, batch, torch.Generator().manual_seed(1))
    assert loss.ndim == 0 and torch.isfinite(loss)
    net.eval()
    with torch.no_grad():
        out = family.restore(net, batch["lq"][:1, :, :20, :28], torch.Generator().manual_seed(2), 2)
    assert out.shape == (1, 3, 20, 28) and torch.isfinite(out).all()


def test_the_seed_is_the_methods_own():
    assert create_method("irsde", seed=7).seed == 7 and create_method("ours").seed == 0
    assert create_method("nafnet").seed is None and create_method("classical").seed is None


def test_a_weight_free_method_restores_batches_through_the_base_contract():
    m = create_method("classical")
    lq = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert not m.batched
    outs = m.restore_batch([lq, lq], ["noisy", "hazy"], keys=["a", "b"])
    assert np.array_equal(outs[0], m.restore(lq, "noisy")) and np.array_equal(outs[1], m.restore(lq, "hazy"))
    with pytest.raises(RuntimeError, match=r"returned float32 \(9, 11, 3\) for x.png; expected uint8"):
        m.check_output(lq.astype(np.float32), lq, "x.png")
