"""One object per restoration family, serving both inference and training.

A family says which method class restores with it (:attr:`Family.method`, used by the
benchmark and ``daclip.restore``), and how ``daclip.train_ir`` trains it (:meth:`Family.loss`)
and restores a validation batch with it (:meth:`Family.restore`). Every catalogue entry
(:mod:`daclip.catalogue`) names its family, so neither side tests method names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .inference import DaclipConditioner, apply_fitted
from .methods import DiffusionMethod, NetSpec, NetworkMethod, daclip_contexts
from .sde import IRSDE, make_generator
from .zoo_methods import InstructIRMethod, OneRestoreMethod, RouterNoiseMethod


class Family:
    """Training loss and validation restore of one family; ``method`` restores at inference."""

    #: The inference class (the benchmark's and daclip.restore's method object).
    method: type[NetworkMethod] = NetworkMethod
    #: Training batches carry a second LQ view ("lq_key"), for a contrastive degradation encoder.
    key_view: bool = False
    #: ``daclip.train_ir`` can train it (the released zoo models that need an instruction or a
    #: scene vector per image are evaluated here, not trained).
    trainable: bool = True

    def __init__(self, spec: NetSpec, conditioner: DaclipConditioner | None = None):
        self.spec = spec
        self.conditioner = conditioner

    def contexts(self, lq: torch.Tensor) -> dict:
        return daclip_contexts(self.spec, self.conditioner, lq)

    def loss(self, net, batch, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def restore(self, net, lq: torch.Tensor, gen: torch.Generator, steps: int) -> torch.Tensor:
        raise NotImplementedError


class Diffusion(Family):
    """IR-SDE: a noise-predicting UNet, trained on the SDE's loss, restored by sampling."""

    method = DiffusionMethod

    def __init__(self, spec, conditioner=None):
        super().__init__(spec, conditioner)
        self.sde = IRSDE(spec.sde)

    def loss(self, net, batch, gen):
        lq, gt = batch["lq"], batch["gt"]
        # Times from a CPU generator (indices), noise drawn on the training device.
        t = self.sde.random_times(lq.shape[0], gen).to(lq.device)
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        noise = torch.randn(lq.shape, generator=make_generator(seed, lq.device), device=lq.device)
        xt = self.sde.noisy_state(gt, lq, t, noise)
        pred = net(xt, lq, t.float(), **self.contexts(lq))
        return self.sde.training_loss(pred, xt, gt, lq, t)

    def restore(self, net, lq, gen, steps):
        ctx = self.contexts(lq)
        sde = self.sde.with_steps(steps)
        return sde.sample(lambda x, t: net(x, lq, t, **ctx).float(), lq, sampler=self.spec.sampler, generator=gen)


class Direct(Family):
    """A feed-forward network (NAFNet, Restormer, PromptIR, ...): L1 loss, one call to restore."""

    def loss(self, net, batch, gen):
        return F.l1_loss(net(batch["lq"], **self.contexts(batch["lq"])).float(), batch["gt"])

    def restore(self, net, lq, gen, steps):
        ctx = self.contexts(lq)
        return apply_fitted(lambda x: net(x, **ctx).float(), [lq], self.spec.fit)


class AirNet(Family):
    """AirNet: L1 restoration loss + 0.1 x the encoder's contrastive loss (two LQ views)."""

    key_view = True

    def loss(self, net, batch, gen):
        out, logits, labels = net(batch["lq"], batch["lq_key"])
        return F.l1_loss(out.float(), batch["gt"]) + 0.1 * F.cross_entropy(logits.float(), labels)

    def restore(self, net, lq, gen, steps):
        inner = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
        return apply_fitted(lambda x: inner.restore(x).float(), [lq], self.spec.fit)


class RouterNoise(Direct):
    """MoCE-IR: trained as a direct network; its method seeds the routers' eval noise per image."""

    method = RouterNoiseMethod


class Instructed(Family):
    """InstructIR: ``net(x, txtembd)`` with a text embedding per image (evaluated, not trained here)."""

    method = InstructIRMethod
    trainable = False


class SceneConditioned(Family):
    """OneRestore: ``net(x, embedding)`` with a scene vector per image (evaluated, not trained here)."""

    method = OneRestoreMethod
    trainable = False
