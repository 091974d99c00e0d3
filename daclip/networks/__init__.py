"""Restoration networks. Each module registers itself in :mod:`daclip.networks.registry`."""

from .registry import build_network, network_names, register_network  # noqa: F401
from . import cond_unet  # noqa: F401,E402  (registers "ours" and "irsde")
# Baseline networks (each registers itself on import).
from . import airnet, nafnet, nafnet_daclip, promptir, restormer  # noqa: F401,E402
# The field's released all-in-one models.
from . import adair, instructir, maskdcpt_nafnet, moce_ir, onerestore  # noqa: F401,E402
from .loading import load_network  # noqa: F401,E402
