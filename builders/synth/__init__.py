"""Synthetic degradations: one seeded generator per DA-CLIP degradation type.

Each generator maps a clean RGB uint8 image and a numpy Generator to a :class:`Degraded`
(LQ image, JSON-able parameters, auxiliary arrays such as masks or kernels). Use
:func:`synthesize` to run one by name with an integer seed: the same image and seed give the
same bytes.
"""

from .base import Degraded, register_synth, seed_for, synth_names, synthesize  # noqa: F401

# Importing the modules registers the generators.
from . import blur, haze, inpaint, jpeg, lowlight, noise, rain, raindrop, shadow, snow  # noqa: F401,E402
