"""Name -> restoration method registry (the library's; runners add their own methods to it).

A method turns one degraded image (HxWx3 uint8 RGB) into a restored image of the same size.
Provider modules register their methods when imported; they are listed in ``PROVIDERS`` so
that heavy dependencies (torch networks, CLIP) load only when the registry is first asked.
A runner registers runner-only methods (the benchmark's "Input" row) by importing its own
module, which calls :func:`register_method` like any provider.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from builders.errors import UserError
from builders.registry import Registry


class MethodUnavailable(UserError):
    """A method cannot run here (missing weights, missing optional package, ...)."""


class Method:
    """Base class. Subclasses override :meth:`restore` (and :meth:`prepare` if they load weights;
    :meth:`restore_batch` and ``batched = True`` if they restore several images in one call).

    Callers use only this contract: no probing for optional attributes."""

    name: str = ""
    display_name: str = ""
    #: Identifies the weights (e.g. sha256 prefix); part of the cache key of restored images.
    weights_id: str = "none"
    #: Resolved options that change the outputs (input protocol, DA-CLIP precision, ...), as
    #: shown with the results; set by prepare().
    settings: Mapping[str, object] = {}
    #: True when the method is told the degradation type (an oracle); shown in the report.
    uses_task_label: bool = False
    #: Parameters of the restoration network (set by prepare; None for learning-free methods).
    num_params: int | None = None
    #: Parameters of the DA-CLIP that conditions it (frozen CLIP + controller), counted apart.
    daclip_params: int | None = None
    #: True when :meth:`restore_batch` restores several images in one call (the runner then
    #: fills batches of one size); False: it restores them one by one.
    batched: bool = False
    #: The seed of the method's random draws (diffusion noise), recorded with the results;
    #: None for a method that draws nothing.
    seed: int | None = None
    #: True when a DA-CLIP conditions the method (its conditioner then predicts the type).
    uses_daclip: bool = False

    def prepare(self, device: str = "cpu") -> None:
        """Load weights and move to ``device``; raise MethodUnavailable with the reason."""

    def restore(self, lq: np.ndarray, task: str) -> np.ndarray:
        raise NotImplementedError

    def restore_batch(self, lqs: list[np.ndarray], tasks: list[str] | None = None,
                      keys: list[str] | None = None) -> list[np.ndarray]:
        """Restore several images. ``keys`` (the images' ids) seed each image's own draws in a
        method that draws any, so an output never depends on its batch."""
        return [self.restore(lq, t) for lq, t in zip(lqs, tasks or [""] * len(lqs))]

    def check_output(self, out, lq: np.ndarray, where: str) -> np.ndarray:
        """``out`` when it is a uint8 image of ``lq``'s shape; else RuntimeError naming ``where``."""
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != lq.shape:
            raise RuntimeError(f"method {self.name!r} returned {getattr(out, 'dtype', type(out))} "
                               f"{getattr(out, 'shape', '')} for {where}; expected uint8 {lq.shape}")
        return out
    def cannot_restore(self, task: str) -> str | None:
        """Why this method has nothing to do for images of type ``task`` (the runners skip them
        and say so), or None when it restores them."""
        return None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    factory: Callable[..., Method]
    display_name: str
    description: str
    needs_weights: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: Registry[MethodSpec] = Registry("method")
# The library's provider modules, lightest first.
PROVIDERS: tuple[str, ...] = ("daclip.classical", "daclip.catalogue")
_loaded: set[str] = set()


def register_method(name: str, *, display_name: str, description: str, needs_weights: bool = False):
    def deco(factory: Callable[..., Method]):
        _REGISTRY.add(name, MethodSpec(name, factory, display_name, description, needs_weights))
        return factory

    return deco


def _load_providers(*names: str) -> None:
    """Import the provider modules, lightest first; with ``names``, stop as soon as all of
    them are registered (a run of weight-free methods never imports torch)."""
    for mod in PROVIDERS:
        if names and all(n in _REGISTRY for n in names):
            return
        if mod not in _loaded:
            _loaded.add(mod)
            importlib.import_module(mod)


def method_specs() -> Mapping[str, MethodSpec]:
    """Every method, weight-free ones first, each group in registration order (which modules
    were imported first does not change the order of tables and listings)."""
    _load_providers()
    return {s.name: s for s in sorted((s for _, s in _REGISTRY.items()), key=lambda s: s.needs_weights)}


def method_spec(name: str) -> MethodSpec:
    """One method's spec (loads only the providers needed to find it)."""
    _load_providers(name)
    if name not in _REGISTRY:
        raise UserError(f"unknown method {name!r}; known methods: {', '.join(method_specs())}")
    return _REGISTRY.get(name)


def default_methods() -> list[str]:
    """Methods that run with no downloaded weights (the offline main job)."""
    return [n for n, s in method_specs().items() if not s.needs_weights]


def parse_methods(text: str | None) -> list[str]:
    if text is None or text.strip() in ("", "default"):
        return default_methods()
    if text.strip() == "all":
        return list(method_specs())
    names = [m.strip() for m in text.split(",") if m.strip()]
    _load_providers(*names)
    unknown = [m for m in names if m not in _REGISTRY]
    if unknown:
        raise UserError(
            f"unknown method {', '.join(map(repr, unknown))}; known methods: {', '.join(method_specs())}"
        )
    return list(dict.fromkeys(names))


def create_method(name: str, **options) -> Method:
    spec = method_spec(name)
    try:
        method = spec.factory(**options)
    except TypeError as exc:  # options a weight-free method does not take
        raise UserError(f"method {name!r} does not accept {', '.join(sorted(options))} ({exc})") from None
    method.name = name
    method.display_name = method.display_name or spec.display_name
    return method
