"""A deterministic PyTorch training loop shared by chapters.

Same seed, same numbers on any machine: :func:`fit` calls
:func:`sparsebook.seed_everything` (which pins PyTorch to one thread) and
draws minibatches from its own seeded generator.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from sparsebook.seeding import seed_everything

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


def fit(model: nn.Module, x, y, *, steps: int, lr: float, batch_size: int = 128, seed: int = 0,
        optimizer: str = "adam", weight_decay: float = 0.0,
        loss_fn: Callable | None = None, penalty: Callable[[nn.Module, int], torch.Tensor] | None = None,
        callback: Callable[[nn.Module, int], None] | None = None, every: int = 0) -> dict:
    """Train ``model`` on ``(x, y)`` by minibatch gradient descent for ``steps`` steps.

    loss = ``loss_fn(model(x_b), y_b)`` (cross-entropy by default) ``+ penalty(model, step)``.
    Minibatches are drawn without replacement, reshuffled every epoch, from a
    generator seeded with ``seed``.  ``callback(model, step)`` runs at step 0 and
    every ``every`` steps (and after the last step) in eval mode under ``no_grad``.

    Returns ``{"loss": np.ndarray (steps,)}``: the training loss at every step.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1; got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {optimizer!r}")
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must have the same, non-zero length; got {len(x)} and {len(y)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    seed_everything(seed)
    loss_fn = loss_fn or nn.functional.cross_entropy
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    n = len(x)
    bs = min(batch_size, n)
    order, pos = rng.permutation(n), 0
    losses = np.empty(steps)

    def _cb(step):
        if callback is not None:
            model.eval()
            with torch.no_grad():
                callback(model, step)

    _cb(0)
    for step in range(steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = torch.as_tensor(order[pos:pos + bs])
        pos += bs
        model.train()
        loss = loss_fn(model(x[idx]), y[idx])
        if penalty is not None:
            loss = loss + penalty(model, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = float(loss.detach())
        if every and ((step + 1) % every == 0 or step + 1 == steps):
            _cb(step + 1)
    model.eval()
    return {"loss": losses}
