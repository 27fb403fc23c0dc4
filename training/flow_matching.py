"""Rectified-flow (flow-matching) training math, in diffusers' convention.

A clean latent `x0` and Gaussian `noise` are joined by the straight line `x_sigma = (1 - sigma) * x0 + sigma * noise`,
sigma = 0 being data and sigma = 1 pure noise. The model sees `x_sigma` at timestep `1000 * sigma` and predicts the
velocity `d x_sigma / d sigma = noise - x0`, which `FlowMatchEulerDiscreteScheduler` integrates from 1 to 0.
Training sigmas are logit-normal (most samples at mid noise, where the velocity is hardest to guess), optionally
shifted toward noise the way the sampler's `shift` is.
"""

from __future__ import annotations

import torch


def shift_sigmas(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """The sampler's time shift `shift * s / (1 + (shift - 1) * s)`: shift > 1 spends more steps near noise."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sample_timesteps(
    batch: int,
    generator: torch.Generator | None = None,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """`batch` sigmas in (0, 1): sigmoid of a normal(logit_mean, logit_std) draw, then shifted."""
    if logit_std < 0:
        raise ValueError(f"logit_std={logit_std!r} must not be negative")
    if shift <= 0:
        raise ValueError(f"shift={shift!r} must be positive")
    device = device if device is not None else (generator.device if generator is not None else "cpu")
    normal = torch.randn(batch, generator=generator, device=device)
    return shift_sigmas(torch.sigmoid(logit_mean + logit_std * normal), shift)


def _per_sample(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sigma `[B]` (or a scalar) shaped to broadcast over `like`'s non-batch axes."""
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    return sigma.reshape(-1, *([1] * (like.ndim - 1))) if sigma.ndim else sigma


def noisy(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The point at `sigma` on the line from data (sigma = 0) to noise (sigma = 1)."""
    sigma = _per_sample(sigma, x0)
    return (1 - sigma) * x0 + sigma * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What the model must predict: the constant velocity of that line."""
    return noise - x0


def change_weights(source: torch.Tensor, target: torch.Tensor, weight: float, threshold: float = 1e-3) -> torch.Tensor:
    """Per-position loss weights `[B, 1, F, H, W]`: `weight` where the target differs from the source, 1 elsewhere.

    A local edit changes a few percent of a clip; under a plain mean its gradient is drowned by the copied rest.
    """
    changed = (target - source).abs().amax(dim=1, keepdim=True) > threshold  # B, 1, F, H, W
    return 1.0 + (weight - 1.0) * changed.to(target.dtype)


def loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the target's latents (the model predicts only the target; the source is context);
    with `weights`, a weighted mean."""
    error = (pred.float() - target.float()) ** 2
    if weights is None:
        return error.mean()
    weights = weights.float().expand_as(error)
    return (weights * error).sum() / weights.sum()
