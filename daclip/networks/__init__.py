"""Restoration networks. Each module registers itself in :mod:`daclip.networks.registry`.

Every module of this folder is imported here, so a new network is one new file with
``@register_network("<name>")``: no list to edit.
"""

import importlib
import pkgutil

from .registry import build_network, network_names, register_network  # noqa: F401

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

from .loading import load_network  # noqa: F401,E402
