"""Tests of the one training loop and the two multi-seed paths (worker pool, batched vmap)."""
import numpy as np
import pytest
import torch

from sparsebook.models import mlp
from sparsebook.seeding import over_seeds, seed_everything
from sparsebook.train import batch_order, fit, fit_seeds, make_optimizer, run_steps

SEEDS = (0, 1, 2)


def _data(n=96, d=8, classes=3):
    g = np.random.default_rng(7)
    x = g.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def _make():
    return mlp((8, 16, 3))


def test_batch_order_draws_without_replacement_and_reshuffles_each_epoch():
    order = batch_order(10, 4, 6, seed=3)
    assert order.shape == (6, 4)
    assert len(set(order[:2].ravel())) == 8           # first epoch: 2 full batches, no repeats
    assert np.array_equal(order, batch_order(10, 4, 6, seed=3))
    assert batch_order(3, 8, 2, seed=0).shape == (2, 3)  # batch larger than the data: the whole set


def test_run_steps_logs_each_step_and_minimises_a_quadratic():
    w = torch.tensor([3.0, -2.0], requires_grad=True)
    opt = make_optimizer([w], "sgd", lr=0.1)
    seen = []
    log = run_steps(opt, lambda s: ((w ** 2).sum(),) * 2, steps=50, on_step=seen.append)
    assert log.shape == (50,) and seen == list(range(1, 51))
    assert log[-1] < 1e-6 * log[0]


def test_run_steps_logs_vectors_for_ensembles():
    w = torch.ones(4, requires_grad=True)
    opt = make_optimizer([w], "adam", lr=0.01)
    log = run_steps(opt, lambda s: ((w ** 2).sum(), w ** 2), steps=3)
    assert log.shape == (3, 4)


def test_fit_seeds_follows_separate_fits_to_float_tolerance():
    x, y = _data()
    batched = fit_seeds(_make, x, y, SEEDS, steps=5, lr=1e-2, batch_size=32)
    assert batched["loss"].shape == (5, len(SEEDS))
    for k, s in enumerate(SEEDS):
        seed_everything(s)
        m = _make()
        out = fit(m, x, y, steps=5, lr=1e-2, batch_size=32, seed=s)
        np.testing.assert_allclose(batched["loss"][:, k], out["loss"], rtol=1e-5, atol=1e-6)
        for name, p in m.named_parameters():
            np.testing.assert_allclose(batched["params"][name][k].numpy(), p.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched["predict"](x)[k].numpy(), m(torch.as_tensor(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_fit_seeds_steps_a_learning_rate_schedule_and_records_the_rates():
    x, y = _data()
    const = fit_seeds(_make, x, y, (0,), steps=4, lr=1e-2, batch_size=32)
    np.testing.assert_array_equal(const["lr"], [1e-2] * 4)
    halving = fit_seeds(_make, x, y, (0,), steps=4, lr=1e-2, batch_size=32,
                        schedule=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    np.testing.assert_allclose(halving["lr"], [1e-2, 5e-3, 2.5e-3, 1.25e-3])
    assert halving["loss"][0, 0] == const["loss"][0, 0]        # the first step is the same
    assert halving["loss"][-1, 0] != const["loss"][-1, 0]      # later steps used the smaller rates


def test_members_of_a_batch_differ_by_seed():
    x, y = _data()
    b = fit_seeds(_make, x, y, (0, 1), steps=2, lr=1e-2, batch_size=32)
    assert not np.allclose(b["loss"][:, 0], b["loss"][:, 1])


def _final_loss(seed: int) -> float:
    x, y = _data()
    seed_everything(seed)
    return float(fit(_make(), x, y, steps=20, lr=1e-2, batch_size=32, seed=seed)["loss"][-1])


def test_over_seeds_gives_the_same_results_whatever_the_number_of_workers():
    one = over_seeds(_final_loss, SEEDS, workers=1)
    two = over_seeds(_final_loss, SEEDS, workers=2)
    assert one == two                     # bit-identical: every worker runs one thread
    assert len(set(one)) == len(SEEDS)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"seeds": []}, ValueError, "seeds"), ({"seeds": [-1]}, ValueError, "seed"),
    ({"seeds": [0], "workers": 0}, ValueError, "workers"),
])
def test_over_seeds_validates_arguments(kwargs, exc, match):
    seeds = kwargs.pop("seeds")
    with pytest.raises(exc, match=match):
        over_seeds(_final_loss, seeds, **kwargs)


def test_training_arguments_are_validated():
    x, y = _data()
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer([torch.zeros(1, requires_grad=True)], "rmsprop")
    with pytest.raises(ValueError, match="lr"):
        fit_seeds(_make, x, y, SEEDS, steps=1, lr=0.0)
    with pytest.raises(ValueError, match="seeds"):
        fit_seeds(_make, x, y, [], steps=1, lr=0.1)
    with pytest.raises(ValueError, match="same, non-zero length"):
        fit_seeds(_make, x, y[:-1], SEEDS, steps=1, lr=0.1)


def _final_losses(seeds) -> list:
    x, y = _data()
    return list(fit_seeds(_make, x, y, list(seeds), steps=10, lr=1e-2, batch_size=32)["loss"][-1])


def test_batched_over_seeds_does_not_depend_on_the_number_of_workers_and_checks_its_runner():
    one = over_seeds(_final_losses, (0, 1, 2, 3, 4), workers=1, batch=3)
    two = over_seeds(_final_losses, (0, 1, 2, 3, 4), workers=2, batch=3)
    assert one == two and len(one) == 5
    with pytest.raises(ValueError, match="batch"):
        over_seeds(_final_losses, (0, 1), batch=0)
    with pytest.raises(ValueError, match="one result per seed"):
        over_seeds(_final_loss_first_only, (0, 1), workers=1, batch=2)


def _final_loss_first_only(seeds) -> list:
    return _final_losses(seeds)[:1]


@pytest.mark.parametrize("name,weight_decay", [("adam", 0.0), ("adam", 1e-3), ("adamw", 1e-2), ("sgd", 0.0)])
def test_make_optimizer_multi_tensor_updates_are_bit_identical_to_one_tensor_at_a_time(name, weight_decay):
    """make_optimizer uses foreach=True for speed; the stored chapter outputs were made with PyTorch's
    CPU default (foreach=False): the parameters after training must be equal bit for bit."""
    def train(foreach):
        seed_everything(0)
        net = mlp([12, 32, 32, 4])
        opt = make_optimizer(net.parameters(), name, 1e-2, weight_decay)
        for group in opt.param_groups:
            group["foreach"] = foreach
        x, y = torch.randn(64, 12), torch.randint(0, 4, (64,))
        run_steps(opt, lambda s: (torch.nn.functional.cross_entropy(net(x), y),) * 2, steps=50)
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert make_optimizer([torch.zeros(1, requires_grad=True)], name).param_groups[0]["foreach"] is True
    assert torch.equal(train(True), train(False))


def test_run_steps_appends_progress_to_the_file_named_by_the_environment(tmp_path, monkeypatch):
    """Long runs say where they are: with $SPARSEBOOK_PROGRESS set, run_steps names its caller and
    appends a start line, periodic step lines and a done line; the numbers are those without it."""
    from sparsebook import train as tr

    def go():
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.ones(3))
        opt = tr.make_optimizer([w], "sgd", lr=0.1)
        return tr.run_steps(opt, lambda s: ((w ** 2).sum(),) * 2, steps=5)

    plain = go()
    log = tmp_path / "progress.log"
    monkeypatch.setenv(tr.PROGRESS_ENV, str(log))
    monkeypatch.setattr(tr, "PROGRESS_EVERY_S", 0.0)
    np.testing.assert_array_equal(go(), plain)
    lines = log.read_text().splitlines()
    assert "test_train:go" in lines[0] and "start, 5 steps" in lines[0] and "[cpu, first parameters [(3,)]]" in lines[0]
    assert [l.split(": ", 1)[1].split(",")[0] for l in lines[1:-1]] == [f"step {s}/5" for s in range(1, 6)]
    assert "done, 5 steps in" in lines[-1]


def test_progress_names_the_runner_that_called_fit_seeds(tmp_path, monkeypatch):
    from sparsebook import train as tr

    log = tmp_path / "progress.log"
    monkeypatch.setenv(tr.PROGRESS_ENV, str(log))

    def my_runner():
        x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
        return tr.fit_seeds(lambda: torch.nn.Linear(4, 2), x, y, seeds=[0, 1], steps=3, lr=0.1, batch_size=8)

    my_runner()
    assert "test_train:my_runner" in log.read_text().splitlines()[0]


def test_progress_accepts_an_optimiser_without_param_groups(tmp_path, monkeypatch):
    """run_steps takes any object with zero_grad and step (a chapter's pair of optimisers, say)."""
    from sparsebook import train as tr

    class Pair:
        def __init__(self, opt):
            self.opt = opt

        def zero_grad(self, set_to_none=True):
            self.opt.zero_grad(set_to_none=set_to_none)

        def step(self):
            self.opt.step()

    log = tmp_path / "progress.log"
    monkeypatch.setenv(tr.PROGRESS_ENV, str(log))
    w = torch.nn.Parameter(torch.ones(2))
    tr.run_steps(Pair(tr.make_optimizer([w], "sgd", lr=0.1)), lambda s: ((w ** 2).sum(),) * 2, steps=2)
    assert "[?, first parameters []]" in log.read_text().splitlines()[0]


def test_in_background_runs_on_a_spare_worker_or_deferred_with_one_worker(monkeypatch):
    import math
    from concurrent.futures import Future

    from sparsebook.seeding import _Deferred, in_background

    monkeypatch.setenv("SPARSEBOOK_WORKERS", "2")
    fut = in_background(math.comb, 10, 3)
    assert isinstance(fut, Future) and fut.result(timeout=120) == 120
    monkeypatch.setenv("SPARSEBOOK_WORKERS", "1")
    d = in_background(math.comb, 10, 3)
    assert isinstance(d, _Deferred) and d.result() == 120
    with pytest.raises(TypeError, match="fn must be callable"):
        in_background(3)
