"""The one optimisation loop, the minibatch trainer built on it, and the batched multi-seed trainer.

- :func:`run_steps`: ``steps`` gradient steps on an objective ``step -> (total, logged)``; every
  training in the package goes through it (single networks and stacked ensembles alike).
- :func:`fit`: minibatch training of one ``nn.Module`` on ``(x, y)`` with a seeded batch order.
- :func:`fit_seeds`: the same training for K seeds at once, as one computation
  (``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``); member ``k`` starts from the
  weights ``make_model()`` draws after ``seed_everything(seeds[k])`` and sees the batch order of
  ``fit(..., seed=seeds[k])``, so it follows separate training up to floating-point rounding.

Adam, AdamW and SGD act element by element, so one optimiser over parameters stacked along a
leading seed axis updates every member exactly as K separate optimisers would; the summed loss
``Σ_k L_k`` gives member ``k`` the gradient of its own ``L_k``.

Same seed, same numbers on one machine: :func:`fit` calls :func:`sparsebook.seed_everything`
(which pins PyTorch to one thread) and draws minibatches from its own seeded generator.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from sparsebook.seeding import seed_everything
from sparsebook.validate import check_int, check_real

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}


def make_optimizer(params: Iterable[torch.Tensor], optimizer: str = "adam", lr: float = 1e-3,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``OPTIMIZERS[optimizer](params, lr=lr, weight_decay=weight_decay, foreach=True)`` after argument checks.

    ``foreach=True`` (multi-tensor updates) gives bit-identical parameters to PyTorch's CPU default
    (one tensor at a time: the same element-wise arithmetic, see tests/test_train.py) with less
    Python overhead per step: about 12% of a tiny model's training time on one CPU thread."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {optimizer!r}")
    lr = check_real(lr, "lr", 0, None, low_open=True)
    weight_decay = check_real(weight_decay, "weight_decay", 0, None)
    return OPTIMIZERS[optimizer](list(params), lr=lr, weight_decay=weight_decay, foreach=True)


#: Environment variable naming a file to which :func:`run_steps` appends its progress (for long
#: runs, e.g. ``reproduce KEY --scale full``; worker processes inherit it).  Unset: no progress.
PROGRESS_ENV = "SPARSEBOOK_PROGRESS"
PROGRESS_EVERY_S = 15.0


class _Progress:
    """Progress lines of one :func:`run_steps` call, appended to the file named by ``$SPARSEBOOK_PROGRESS``:
    ``pid caller shapes: step s/S, t s elapsed, r steps/s, about e s left`` every ``PROGRESS_EVERY_S``
    seconds and a ``done`` line at the end.  ``caller`` is the function that called ``run_steps``
    (``module:function``): where the time goes in a chapter that runs longer than expected."""

    def __init__(self, path: str, steps: int, opt: torch.optim.Optimizer):
        caller = sys._getframe(2)
        while caller.f_back is not None and caller.f_globals.get("__name__") == __name__:
            caller = caller.f_back      # through fit / fit_seeds to the chapter's runner
        self.path, self.steps = path, steps
        params = [p for g in getattr(opt, "param_groups", ()) for p in g["params"]]   # any optimiser-like object
        shapes = [tuple(p.shape) for p in params[:3]]
        device = params[0].device.type if params else "?"
        self.tag = (f"{os.getpid()} {caller.f_globals.get('__name__', '?')}:{caller.f_code.co_name} "
                    f"[{device}, first parameters {shapes}]")
        self.t0 = self.last = time.monotonic()
        self._write(f"start, {steps} steps")

    def _write(self, text: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {self.tag}: {text}\n")

    def step(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = done / (now - self.t0)
            self._write(f"step {done}/{self.steps}, {now - self.t0:.0f} s elapsed, {rate:.1f} steps/s, "
                        f"about {(self.steps - done) / rate:.0f} s left")

    def done(self) -> None:
        t = time.monotonic() - self.t0
        self._write(f"done, {self.steps} steps in {t:.1f} s ({self.steps / max(t, 1e-9):.1f} steps/s)")


def run_steps(opt: torch.optim.Optimizer, objective: Callable[[int], tuple], *, steps: int,
              on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """The one optimisation loop: for ``s = 0 … steps−1``: ``total, logged = objective(s)``;
    ``total.backward()``; ``opt.step()``; then ``on_step(s + 1)``.

    ``total`` is the scalar that is differentiated (loss plus penalties); ``logged`` is what is
    recorded (a scalar, or a vector of per-member losses for an ensemble).  Returns the logged
    values, shape ``[steps]`` or ``[steps, K]``, float64.  Logged tensors stay on their device until
    the end (one copy to the host, not one synchronisation per step on a GPU).  With
    ``$SPARSEBOOK_PROGRESS`` set to a file name, progress is appended there (:class:`_Progress`).
    """
    steps = check_int(steps, "steps", 1)
    path = os.environ.get(PROGRESS_ENV)
    progress = _Progress(path, steps, opt) if path else None
    logged_all = []
    for s in range(steps):
        total, logged = objective(s)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        logged_all.append(logged.detach().clone() if isinstance(logged, torch.Tensor)
                          else torch.as_tensor(np.asarray(logged, float)))
        if on_step is not None:
            on_step(s + 1)
        if progress is not None:
            progress.step(s + 1)
    out = np.stack([v.double().cpu().numpy() for v in logged_all])
    if progress is not None:
        progress.done()
    return out


def batch_order(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """Row indices of every minibatch, shape ``[steps, min(batch_size, n)]``.

    Rows are drawn without replacement from ``np.random.default_rng(seed)``, and reshuffled
    whenever fewer than a full batch remain in the current epoch.
    """
    n = check_int(n, "n", 1)
    bs = min(check_int(batch_size, "batch_size", 1), n)
    steps = check_int(steps, "steps", 1)
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(n), 0
    out = np.empty((steps, bs), dtype=np.int64)
    for s in range(steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        out[s] = order[pos:pos + bs]
        pos += bs
    return out


def _check_data(x, y):
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must have the same, non-zero length; got {len(x)} and {len(y)}")
    return x, y


def fit(model: nn.Module, x, y, *, steps: int, lr: float, batch_size: int = 128, seed: int = 0,
        optimizer: str = "adam", weight_decay: float = 0.0,
        loss_fn: Callable | None = None, penalty: Callable[[nn.Module, int], torch.Tensor] | None = None,
        callback: Callable[[nn.Module, int], None] | None = None, every: int = 0) -> dict:
    """Train ``model`` on ``(x, y)`` by minibatch gradient descent for ``steps`` steps.

    loss = ``loss_fn(model(x_b), y_b)`` (cross-entropy by default) ``+ penalty(model, step)``.
    Minibatches follow :func:`batch_order` with ``seed``.  ``callback(model, step)`` runs at
    step 0 and every ``every`` steps (and after the last step) in eval mode under ``no_grad``.

    Returns ``{"loss": np.ndarray (steps,)}``: the training loss (with penalty) at every step.
    """
    steps = check_int(steps, "steps", 1)
    x, y = _check_data(x, y)
    check_int(batch_size, "batch_size", 1)
    seed_everything(seed)
    loss_fn = loss_fn or nn.functional.cross_entropy
    opt = make_optimizer(model.parameters(), optimizer, lr, weight_decay)
    order = torch.as_tensor(batch_order(len(x), batch_size, steps, seed))

    def _cb(step):
        if callback is not None and (step == 0 or (every and (step % every == 0 or step == steps))):
            model.eval()
            with torch.no_grad():
                callback(model, step)
            model.train()

    def objective(s):
        idx = order[s]
        loss = loss_fn(model(x[idx]), y[idx])
        if penalty is not None:
            loss = loss + penalty(model, s)
        return loss, loss

    _cb(0)
    model.train()
    losses = run_steps(opt, objective, steps=steps, on_step=_cb)
    model.eval()
    return {"loss": losses}


def fit_seeds(make_model: Callable[[], nn.Module], x, y, seeds: Sequence[int], *, steps: int, lr: float,
              batch_size: int = 128, optimizer: str = "adam", weight_decay: float = 0.0,
              loss_fn: Callable | None = None, schedule: Callable | None = None) -> dict:
    """Train one network per seed as a single batched computation (``torch.func.vmap``).

    Member ``k``: weights from ``make_model()`` after ``seed_everything(seeds[k])``, minibatches
    ``batch_order(len(x), batch_size, steps, seeds[k])``, loss ``loss_fn(f_k(x_b), y_b)``; the
    optimiser runs on the stacked parameters (shape ``[K, ...]``) with the summed loss, which is
    member-wise the same update as :func:`fit` (up to rounding).  Models must be free of buffers
    that change in training (no batch norm) and of dropout.  ``schedule(optimizer)``, if given,
    returns a learning-rate scheduler (``torch.optim.lr_scheduler``), stepped after every step.

    Returns ``{"params": dict name -> [K, ...] tensor, "loss": [steps, K] array, "lr": [steps]
    learning rate of every step, "model": a template module, "predict": callable x -> [K, rows, ...]
    outputs}``.
    """
    from torch.func import functional_call, stack_module_state, vmap

    seeds = [check_int(s, "seeds[i]", 0) for s in seeds]
    if len(seeds) < 1:
        raise ValueError("seeds must hold at least one seed")
    steps = check_int(steps, "steps", 1)
    x, y = _check_data(x, y)
    check_int(batch_size, "batch_size", 1)
    loss_fn = loss_fn or nn.functional.cross_entropy
    models = []
    for s in seeds:
        seed_everything(s)
        models.append(make_model())
    params, buffers = stack_module_state(models)
    template = models[0]
    opt = make_optimizer(params.values(), optimizer, lr, weight_decay)
    sched = schedule(opt) if schedule is not None else None
    order = torch.as_tensor(np.stack([batch_order(len(x), batch_size, steps, s) for s in seeds], axis=1),
                            device=x.device)
    rates = []

    def advance(step):
        rates.append(opt.param_groups[0]["lr"])      # the rate this step used
        if sched is not None:
            sched.step()

    def one(p, b, xb, yb):
        return loss_fn(functional_call(template, (p, b), (xb,)), yb)

    batched = vmap(one)

    def objective(s):
        idx = order[s]                       # [K, bs]
        per = batched(params, buffers, x[idx], y[idx])
        return per.sum(), per

    template.train()
    losses = run_steps(opt, objective, steps=steps, on_step=advance)
    template.eval()

    @torch.no_grad()
    def predict(xe):
        xe = torch.as_tensor(xe)
        return vmap(lambda p, b: functional_call(template, (p, b), (xe,)))(params, buffers)

    return {"params": {k: v.detach() for k, v in params.items()}, "loss": losses, "lr": np.array(rates),
            "model": template, "predict": predict}
