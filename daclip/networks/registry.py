"""Name -> network constructor registry (in the spirit of BasicSR's ARCH_REGISTRY).

Each restoration network module registers a builder under its method name; the builder
takes config keyword arguments and returns an ``nn.Module``.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_NETWORKS: dict[str, Callable[..., nn.Module]] = {}


def register_network(name: str):
    def deco(fn: Callable[..., nn.Module]):
        if name in _NETWORKS:
            raise KeyError(f"network {name!r} registered twice")
        _NETWORKS[name] = fn
        return fn

    return deco


def network_names() -> list[str]:
    _import_all()
    return sorted(_NETWORKS)


def build_network(name: str, **cfg) -> nn.Module:
    _import_all()
    if name not in _NETWORKS:
        from builders.errors import UserError

        raise UserError(f"unknown network {name!r}; known: {', '.join(sorted(_NETWORKS))}")
    return _NETWORKS[name](**cfg)


def _import_all() -> None:
    # Importing the package registers every network module listed in its __init__.
    import daclip.networks  # noqa: F401
