"""IR-SDE: the mean-reverting SDE of IR-SDE / DA-CLIP, its training loss and samplers.

dx = theta_t (mu - x) dt + sigma_t dW with mu = the degraded image (LQ) and
sigma_t^2 = 2 theta_t max_sigma^2, so the marginal at step t is Gaussian with
mean mu + (x0 - mu) exp(-theta_bar_t dt) and std max_sigma sqrt(1 - exp(-2 theta_bar_t dt)).
Steps run 1..T; step 0 is never used. The network predicts the noise of x_t.

Schedules are computed in float64 and cast to the working tensor's dtype on use, so the
closed forms stay exact in tests and bf16 runs only round the final products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

#: noise_fn(x_t, model_time) -> predicted noise, model_time a float (already rescaled).
NoiseFn = Callable[[torch.Tensor, float], torch.Tensor]
#: One generator for the whole batch, or one per image (then image i's noise is exactly what
#: it would be sampled alone with generator i, whatever else is in the batch).
Generators = torch.Generator | Sequence[torch.Generator] | None

SAMPLERS = ("posterior", "sde", "ode")


@dataclass(frozen=True)
class SDEConfig:
    """max_sigma on the 0..255 scale (values < 1 are taken as already on 0..1)."""

    max_sigma: float = 50.0
    T: int = 100
    schedule: str = "cosine"
    eps: float = 0.005


def _cosine_thetas(T: int, s: float = 0.008) -> torch.Tensor:
    # T+1 values (index 0..T): 1 - alphā of a cosine schedule over T+2 steps, ends dropped.
    n = T + 2
    x = torch.linspace(0, n, n + 1, dtype=torch.float64)
    acp = torch.cos(((x / n) + s) / (1 + s) * math.pi * 0.5) ** 2
    acp = acp / acp[0]
    return 1 - acp[1:-1]


def _linear_thetas(T: int) -> torch.Tensor:
    n = T + 1
    scale = 1000 / n
    return torch.linspace(scale * 1e-4, scale * 0.02, n, dtype=torch.float64)


def _constant_thetas(T: int) -> torch.Tensor:
    return torch.ones(T + 1, dtype=torch.float64)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "cosine": _cosine_thetas,
    "linear": _linear_thetas,
    "constant": _constant_thetas,
}


class IRSDE:
    """Schedule, forward marginal, ML loss and reverse samplers of the IR-SDE.

    ``steps`` < T samples with a coarser schedule of ``steps`` steps (the official
    ``sample_T``); the network still sees times on the 0..T scale it was trained on.
    """

    def __init__(self, cfg: SDEConfig | None = None, *, steps: int | None = None, **kwargs):
        cfg = cfg or SDEConfig(**kwargs)
        if cfg.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")
        self.cfg = cfg
        self.T = cfg.T
        self.steps = int(steps or cfg.T)
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        self.time_scale = cfg.T / self.steps
        self.max_sigma = cfg.max_sigma / 255 if cfg.max_sigma >= 1 else cfg.max_sigma
        thetas = SCHEDULES[cfg.schedule](self.steps)
        self.thetas = thetas
        self.sigmas = torch.sqrt(self.max_sigma**2 * 2 * thetas)
        # Shifted so that theta_bar_0 = 0 (x_0 is the clean image exactly).
        self.thetas_cumsum = torch.cumsum(thetas, 0) - thetas[0]
        # dt chosen so that the mean coefficient at the last step is exactly eps.
        self.dt = float(-math.log(cfg.eps) / self.thetas_cumsum[-1])
        self.sigma_bars = torch.sqrt(self.max_sigma**2 * (1 - torch.exp(-2 * self.thetas_cumsum * self.dt)))

    def with_steps(self, steps: int | None) -> "IRSDE":
        return self if not steps or steps == self.steps else IRSDE(self.cfg, steps=steps)

    # -- indexing helpers -------------------------------------------------------------
    @staticmethod
    def _at(arr: torch.Tensor, t, like: torch.Tensor):
        """arr[t]: a Python float for a scalar step (no host-device copy, so sampling
        loops never synchronise the GPU), else a tensor shaped to broadcast against ``like``."""
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            v = arr[t.detach().long().cpu().reshape(-1)]
            return v.to(like.device, like.dtype).reshape(-1, *([1] * (like.dim() - 1)))
        return float(arr[int(t)])

    @staticmethod
    def _exp(v):
        return math.exp(v) if isinstance(v, float) else torch.exp(v)

    # -- forward process --------------------------------------------------------------
    def mean_coef(self, t, like: torch.Tensor):
        return self._exp(-self._at(self.thetas_cumsum, t, like) * self.dt)

    def mu_bar(self, x0: torch.Tensor, mu: torch.Tensor, t) -> torch.Tensor:
        return mu + (x0 - mu) * self.mean_coef(t, x0)

    def sigma_bar(self, t, like: torch.Tensor):
        return self._at(self.sigma_bars, t, like)

    def forward_marginal(self, x0, mu, t):
        """(mean, std) of x_t given x_0 and mu."""
        return self.mu_bar(x0, mu, t), self.sigma_bar(t, x0)

    def random_times(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(1, self.steps + 1, (batch,), generator=generator)

    def noisy_state(self, x0, mu, t, noise: torch.Tensor) -> torch.Tensor:
        mean, std = self.forward_marginal(x0, mu, t)
        return mean + std * noise

    def true_noise(self, xt, x0, mu, t) -> torch.Tensor:
        """The noise that turns x_0 into x_t (the perfect network output)."""
        return (xt - self.mu_bar(x0, mu, t)) / self.sigma_bar(t, xt)

    # -- reverse process --------------------------------------------------------------
    def score_from_noise(self, noise, t) -> torch.Tensor:
        return -noise / self.sigma_bar(t, noise)

    def reverse_sde_mean(self, x, mu, score, t) -> torch.Tensor:
        theta = self._at(self.thetas, t, x)
        sigma = self._at(self.sigmas, t, x)
        return x - (theta * (mu - x) - sigma**2 * score) * self.dt

    def reverse_ode_step(self, x, mu, score, t) -> torch.Tensor:
        theta = self._at(self.thetas, t, x)
        sigma = self._at(self.sigmas, t, x)
        return x - (theta * (mu - x) - 0.5 * sigma**2 * score) * self.dt

    def optimum_step(self, xt, x0, mu, t) -> torch.Tensor:
        """Mean of x_{t-1} given x_t and x_0 (the optimal reverse step)."""
        a = self._exp(-self._at(self.thetas, t, xt) * self.dt)
        b = self._exp(-self._at(self.thetas_cumsum, t, xt) * self.dt)
        c = self._exp(-self._at(self.thetas_cumsum, t - 1, xt) * self.dt)
        denom = 1 - b**2
        return (a * (1 - c**2) / denom) * (xt - mu) + (c * (1 - a**2) / denom) * (x0 - mu) + mu

    def posterior_std(self, t: int) -> float:
        """Std of x_{t-1} given x_t and x_0 (zero at t = 1: x_0 is then exact)."""
        a = math.exp(-2 * float(self.thetas[t]) * self.dt)
        b = math.exp(-2 * float(self.thetas_cumsum[t]) * self.dt)
        c = math.exp(-2 * float(self.thetas_cumsum[t - 1]) * self.dt)
        return math.sqrt(max(0.0, (1 - a) * (1 - c) / (1 - b))) * self.max_sigma

    def x0_from_noise(self, xt, mu, noise, t) -> torch.Tensor:
        return (xt - mu - self.sigma_bar(t, xt) * noise) / self.mean_coef(t, xt) + mu

    # -- training ---------------------------------------------------------------------
    def training_loss(self, noise_pred, xt, x0, mu, t) -> torch.Tensor:
        """Maximum-likelihood objective: L1 between the reverse-SDE step mean implied by
        the predicted noise and the optimal reverse step computed from x_0."""
        noise_pred = noise_pred.float()
        score = self.score_from_noise(noise_pred, t)
        return F.l1_loss(self.reverse_sde_mean(xt, mu, score, t), self.optimum_step(xt, x0, mu, t))

    # -- sampling ---------------------------------------------------------------------
    def initial_state(self, lq: torch.Tensor, generator: Generators = None) -> torch.Tensor:
        """x_T = LQ + N(0, max_sigma^2)."""
        return lq + self.max_sigma * _randn(lq, generator)

    def sample(
        self,
        noise_fn: NoiseFn,
        lq: torch.Tensor,
        *,
        sampler: str = "posterior",
        generator: Generators = None,
        x_T: torch.Tensor | None = None,
        progress: bool = False,
        clip_x0: bool = False,
    ) -> torch.Tensor:
        """Run the reverse process from x_T (default LQ + noise) down to x_0.

        ``clip_x0`` clamps the posterior sampler's x_0 estimate to the image range 0..1
        (DDPM's "clip denoised"); off by default, as in the official code. It keeps an
        imperfect (e.g. briefly trained) network from drifting out of range.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
        mu = lq
        x = self.initial_state(lq, generator) if x_T is None else x_T.clone()
        for t in tqdm(range(self.steps, 0, -1), disable=not progress, desc=f"{sampler} sampling", leave=False):
            noise = noise_fn(x, t * self.time_scale).to(x.dtype)
            if sampler == "posterior":
                x0 = self.x0_from_noise(x, mu, noise, t)
                if clip_x0:
                    x0 = x0.clamp(0, 1)
                x = self.optimum_step(x, x0, mu, t) + self.posterior_std(t) * _randn(x, generator)
            elif sampler == "sde":
                score = self.score_from_noise(noise, t)
                sigma = self._at(self.sigmas, t, x)
                x = self.reverse_sde_mean(x, mu, score, t) - sigma * math.sqrt(self.dt) * _randn(x, generator)
            else:
                x = self.reverse_ode_step(x, mu, self.score_from_noise(noise, t), t)
        return x


def _randn(like: torch.Tensor, generator: Generators) -> torch.Tensor:
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    if len(generator) != like.shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {like.shape[0]}")
    one = (1, *like.shape[1:])
    return torch.cat([torch.randn(one, generator=g, device=like.device, dtype=like.dtype) for g in generator])


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def image_seed(seed: int, key: str) -> int:
    """A seed for one image from the run's seed and the image's id (63 bits, stable across
    runs, machines and batch compositions)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()[:8], "little") >> 1
