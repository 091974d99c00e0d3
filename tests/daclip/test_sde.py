"""IR-SDE: schedule facts, forward marginal, ML loss and the three samplers."""

import math

import numpy as np
import pytest
import torch

from daclip.sde import IRSDE, SDEConfig, make_generator


def numpy_cosine_thetas(T, s=0.008):
    # Independent re-derivation of the official cosine theta schedule (T+1 values).
    n = T + 2
    x = np.linspace(0, n, n + 1)
    acp = np.cos(((x / n) + s) / (1 + s) * np.pi * 0.5) ** 2
    acp = acp / acp[0]
    return 1 - acp[1:-1]


def test_schedule_matches_closed_form():
    sde = IRSDE(SDEConfig(max_sigma=50, T=100, eps=0.005))
    thetas = numpy_cosine_thetas(100)
    np.testing.assert_allclose(sde.thetas.numpy(), thetas, rtol=1e-12)
    cums = np.cumsum(thetas) - thetas[0]
    dt = -math.log(0.005) / cums[-1]
    assert sde.dt == pytest.approx(dt, rel=1e-12)
    like = torch.zeros(1, dtype=torch.float64)
    # Mean coefficient exp(-theta_bar_T dt) is eps by construction; t=0 is the clean image.
    assert float(sde.mean_coef(100, like)) == pytest.approx(0.005, rel=1e-9)
    assert float(sde.mean_coef(0, like)) == 1.0
    assert float(sde.sigma_bar(0, like)) == 0.0
    assert float(sde.sigma_bar(100, like)) == pytest.approx(50 / 255 * math.sqrt(1 - 0.005**2), rel=1e-9)
    # sigma_t^2 = 2 theta_t max_sigma^2 (stationary variance max_sigma^2).
    np.testing.assert_allclose(sde.sigmas.numpy() ** 2, 2 * thetas * (50 / 255) ** 2, rtol=1e-12)


@pytest.mark.parametrize("t", [1, 10, 50, 100])
def test_forward_marginal_matches_exact_chain(t):
    """Chaining the exact one-step OU transitions from x0 gives the closed-form marginal."""
    sde = IRSDE(SDEConfig(max_sigma=50))
    n = 200_000
    gen = torch.Generator().manual_seed(t)
    x0, mu = 0.8, 0.3
    x = torch.full((n,), x0, dtype=torch.float64)
    for s in range(1, t + 1):
        a = math.exp(-float(sde.thetas[s]) * sde.dt)
        std = sde.max_sigma * math.sqrt(1 - a * a)
        x = mu + (x - mu) * a + std * torch.randn(n, generator=gen, dtype=torch.float64)
    mean, std = sde.forward_marginal(torch.tensor(x0, dtype=torch.float64), torch.tensor(mu, dtype=torch.float64), t)
    se = float(std) / math.sqrt(n)
    assert abs(x.mean().item() - float(mean)) < 5 * se + 1e-12
    assert x.std().item() == pytest.approx(float(std), rel=0.01)
    # Closed form written out: mu + (x0 - mu) e^{-theta_bar dt}, max_sigma^2 (1 - e^{-2 theta_bar dt}).
    tb = float(sde.thetas_cumsum[t]) * sde.dt
    assert float(mean) == pytest.approx(mu + (x0 - mu) * math.exp(-tb), rel=1e-12)
    assert float(std) ** 2 == pytest.approx(sde.max_sigma**2 * (1 - math.exp(-2 * tb)), rel=1e-9)


def test_noisy_state_statistics():
    sde = IRSDE()
    x0 = torch.full((1, 3, 64, 64), 0.9)
    mu = torch.full((1, 3, 64, 64), 0.2)
    t = torch.full((64,), 30)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(64, 3, 64, 64, generator=gen)
    xt = sde.noisy_state(x0.expand(64, -1, -1, -1), mu.expand(64, -1, -1, -1), t, noise)
    mean, std = sde.forward_marginal(x0, mu, 30)
    assert xt.mean().item() == pytest.approx(mean.mean().item(), abs=1e-3)
    assert xt.std().item() == pytest.approx(float(std), rel=0.01)
    # true_noise inverts noisy_state.
    torch.testing.assert_close(sde.true_noise(xt, x0, mu, t), noise, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 24, 20, generator=g, dtype=torch.float64)
    lq = (x0 * 0.7 + 0.1 * torch.randn(x0.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x0, lq


def perfect_noise_fn(sde, x0, lq):
    seen = []

    def fn(x, model_t):
        seen.append(model_t)
        t = round(model_t / sde.time_scale)
        return sde.true_noise(x, x0, lq, t)

    return fn, seen


@pytest.mark.parametrize("sampler,steps,mean_tol,max_tol", [
    ("posterior", 100, 1e-9, 1e-8),
    ("posterior", 25, 1e-9, 1e-8),
    ("sde", 100, 0.01, 0.05),
    ("ode", 100, 0.01, 0.05),
])
def test_perfect_predictor_recovers_x0(pair, sampler, steps, mean_tol, max_tol):
    x0, lq = pair
    sde = IRSDE(steps=steps)
    fn, seen = perfect_noise_fn(sde, x0, lq)
    out = sde.sample(fn, lq, sampler=sampler, generator=make_generator(0))
    err = (out - x0).abs()
    assert err.mean().item() < mean_tol
    assert err.max().item() < max_tol
    # The start state is far from x0, so the samplers really did the work.
    assert (sde.initial_state(lq, make_generator(0)) - x0).abs().mean().item() > 0.1
    # Network times stay on the training scale 1..T whatever the number of steps.
    assert seen[0] == pytest.approx(100.0) and seen[-1] == pytest.approx(100 / steps)
    assert len(seen) == steps


@pytest.mark.parametrize("clip", [False, True])
def test_perfect_predictor_float32(pair, clip):
    x0, lq = (t.float() for t in pair)
    sde = IRSDE()
    fn, _ = perfect_noise_fn(sde, x0, lq)
    out = sde.sample(fn, lq, sampler="posterior", generator=make_generator(3), clip_x0=clip)
    assert (out - x0).abs().max().item() < 1e-4


def test_sampling_is_seeded(pair):
    x0, lq = pair
    sde = IRSDE(steps=10)

    def bad_fn(x, t):  # an imperfect predictor, so the injected noise shows in the output
        return torch.zeros_like(x)

    a = sde.sample(bad_fn, lq, sampler="sde", generator=make_generator(7))
    b = sde.sample(bad_fn, lq, sampler="sde", generator=make_generator(7))
    c = sde.sample(bad_fn, lq, sampler="sde", generator=make_generator(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match="unknown sampler"):
        sde.sample(bad_fn, lq, sampler="ddim")


def test_training_loss_prefers_true_noise(pair):
    x0, lq = pair
    sde = IRSDE()
    t = torch.tensor([5, 60])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    xt = sde.noisy_state(x0, lq, t, noise)
    good = sde.training_loss(noise, xt, x0, lq, t).item()
    bad = sde.training_loss(torch.zeros_like(noise), xt, x0, lq, t).item()
    assert good < 0.05 * bad
    # The optimum reverse step from the true x0 is the mean that the loss targets; at t=1
    # it is x0 itself.
    torch.testing.assert_close(sde.optimum_step(xt, x0, lq, 1), x0)
    pred = torch.zeros_like(noise, requires_grad=True)
    sde.training_loss(pred, xt, x0, lq, t).backward()
    assert pred.grad.abs().sum() > 0
