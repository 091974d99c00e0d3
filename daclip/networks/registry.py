"""Name -> network constructor registry (in the spirit of BasicSR's ARCH_REGISTRY).

Each restoration network module registers a builder under its method name; the builder
takes config keyword arguments and returns an ``nn.Module``.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from builders.registry import Registry


def _import_all() -> None:
    # Importing the package registers every network module listed in its __init__.
    import daclip.networks  # noqa: F401


NETWORKS: Registry[Callable[..., nn.Module]] = Registry("network", load=_import_all)
register_network = NETWORKS.register


def network_names() -> list[str]:
    return sorted(NETWORKS)


def build_network(name: str, **cfg) -> nn.Module:
    return NETWORKS.get(name)(**cfg)
