"""Method classes of the field's released models whose inputs are not one image alone: MoCE-IR's
seeded router noise, and a per-image embedding for InstructIR (an instruction) and OneRestore
(a scene type). Their specs are in :mod:`daclip.families`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from builders.errors import UserError

from .inference import to_tensor
from .methods import NetSpec, NetworkMethod, _digest
from .registry import MethodUnavailable
from .sde import image_seed, make_generator
from .weights import weights_id


class RouterNoiseMethod(NetworkMethod):
    """MoCE-IR: its routers add noise in eval too (upstream keeps it; so does this port). Each
    image draws it from its own generator, seeded from the ``seed`` option and the image's id,
    one image and one tile per network call, so an output never depends on the order or the
    batch it came in (upstream seeds once per test run and is only correct at batch size 1)."""

    noise_scheme = "per-image-generator"
    draws_noise = True

    def prepare(self, device: str = "cpu") -> None:
        super().prepare(device)
        self.settings["router_noise"] = f"kept; seeded per image from seed {self.opts.seed} and the image id"
        self.weights_id = _digest(self.weights_id, self.noise_scheme, str(self.opts.seed))

    def _images_per_call(self, n: int) -> int:
        return 1

    def _tile_batch(self, images: int) -> int:
        return 1

    def restore_tensor(self, lq: torch.Tensor, keys: list[str] | None = None) -> torch.Tensor:
        outs = []
        try:
            for i in range(lq.shape[0]):
                seed = image_seed(self.opts.seed, keys[i]) if keys is not None else self.opts.seed
                # A CPU generator: the same draws on any device.
                self.net.set_generator(make_generator(seed, "cpu"))
                outs.append(super().restore_tensor(lq[i:i + 1]))
        finally:
            self.net.set_generator(None)
        return torch.cat(outs)


def _second_file(method: NetworkMethod, role: str) -> Path:
    """The method's second file (``weights='NET,SECOND'`` or the table's entry for ``role``)."""
    return method._resolve(method.weights_entry(role), method.daclip_path)


class PerImageContextMethod(NetworkMethod):
    """A network with a per-image input besides the image (a text or scene embedding): images
    run one at a time, each with its own embedding, tiled when large."""

    def image_context(self, lq: np.ndarray, task: str | None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _contexts(self, lq: torch.Tensor) -> dict:
        return self._ctx

    def _stream_contexts(self, lq: np.ndarray) -> dict:
        return self._ctx

    @torch.no_grad()
    def restore_batch(self, lqs: list[np.ndarray], tasks: list[str] | None = None,
                      keys: list[str] | None = None) -> list[np.ndarray]:
        if self.net is None:
            raise RuntimeError("call prepare() first")
        out = []
        for i, lq in enumerate(lqs):
            self._ctx = self.image_context(lq, tasks[i] if tasks else None)
            out += super().restore_batch([lq], None, None if keys is None else [keys[i]])
        return out


def _load_prompts(name: str) -> dict:
    """A method's fixed instructions (``daclip/prompts/<name>.yaml``; not a DA-CLIP config)."""
    import yaml

    return yaml.safe_load((Path(__file__).parent / "prompts" / f"{name}.yaml").read_text(encoding="utf-8"))


class InstructIRMethod(PerImageContextMethod):
    """InstructIR: instruction -> bge-micro-v2 -> language head -> ``net(x, txtembd)``.

    Each degradation type gets the fixed instruction of ``daclip/prompts/instructir.yaml``
    (so the method is told the type: marked type-aware); the ``prompt`` option gives one
    instruction for every image instead.
    """

    def __init__(self, spec: NetSpec, weights: str | None = None, **options):
        self.prompt = str(options.pop("prompt", "") or "")
        self.text_encoder = str(options.pop("text_encoder", "") or "")
        super().__init__(spec, weights=weights, **options)
        self.uses_task_label = not self.prompt
        self._cache: dict[str, torch.Tensor] = {}

    def prepare(self, device: str = "cpu") -> None:
        from builders.hub import HubUnreachable

        from .networks.instructir import TEXT_ENCODER, InstructionEncoder
        from .networks.loading import load_network

        super().prepare(device)
        lm_path = _second_file(self, "lm")
        self.lm = load_network("instructir-lm", lm_path).to(self.device).eval()
        name = self.text_encoder or TEXT_ENCODER
        try:
            self.encoder = InstructionEncoder(name, self.device)
        except (HubUnreachable, OSError, ImportError) as exc:
            raise MethodUnavailable(
                f"{self.name}: text encoder {name!r} is not in the Hugging Face cache and cannot be loaded "
                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); on a machine with internet run "
                f"`huggingface-cli download {name}` and copy ~/.cache/huggingface/hub, or pass "
                f"--option {self.name}:text_encoder=FOLDER") from None
        prompts = _load_prompts("instructir")
        self.instructions: dict[str, str] = dict(prompts["types"])
        self.default_instruction: str = prompts["default"]
        self.settings["language_head"] = lm_path.name
        self.settings["text_encoder"] = name
        self.settings["instruction"] = (repr(self.prompt) if self.prompt
                                        else "fixed per type (daclip/prompts/instructir.yaml)")
        self.weights_id = _digest(self.weights_id, weights_id(lm_path), name, self.prompt or json.dumps(
            prompts, sort_keys=True))

    def instruction(self, task: str | None) -> str:
        if self.prompt:
            return self.prompt
        return self.instructions.get(task or "", self.default_instruction)

    def image_context(self, lq: np.ndarray, task: str | None) -> dict[str, torch.Tensor]:
        text = self.instruction(task)
        if text not in self._cache:
            self._cache[text] = self.lm(self.encoder([text]).to(self.device))[0]
        return {"txtembd": self._cache[text]}


class OneRestoreMethod(PerImageContextMethod):
    """OneRestore: blind by default (the released embedder predicts one of its 12 scene types from
    a 224 x 224 bilinear (antialiased, as PIL) resize); the ``scene`` option names the type."""

    def __init__(self, spec: NetSpec, weights: str | None = None, **options):
        self.scene = str(options.pop("scene", "") or "")
        super().__init__(spec, weights=weights, **options)
        self.uses_task_label = False
        self.predicted: dict[str, int] = {}

    def prepare(self, device: str = "cpu") -> None:
        from .networks.loading import load_network
        from .networks.onerestore import SCENE_TYPES

        if self.scene and self.scene not in SCENE_TYPES:
            raise UserError(f"option scene={self.scene!r}: choose from {', '.join(SCENE_TYPES)}")
        super().prepare(device)
        emb_path = _second_file(self, "embedder")
        self.embedder = load_network("onerestore-embedder", emb_path).to(self.device).eval()
        self.settings["embedder"] = emb_path.name
        self.settings["conditioning"] = (f"scene type given: {self.scene}" if self.scene
                                         else "blind (scene type predicted by the released embedder)")
        self.settings["key_resize"] = "bilinear without antialias (the authors' torchvision 0.14)"
        self.weights_id = _digest(self.weights_id, weights_id(emb_path), self.scene)

    def image_context(self, lq: np.ndarray, task: str | None) -> dict[str, torch.Tensor]:
        from PIL import Image

        if self.scene:
            return {"embedding": self.embedder.type_embedding([self.scene])}
        small = np.asarray(Image.fromarray(lq).resize((224, 224), Image.BILINEAR))  # upstream: PIL Resize
        emb, names = self.embedder.image_embedding(to_tensor(small, self.device))
        self.predicted[names[0]] = self.predicted.get(names[0], 0) + 1
        return {"embedding": emb}
