"""Tests of the shared parts: seeding, scales, plotting house style, data, training loop."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from sparsebook import check_scale, seed_everything
from sparsebook import data, models as snn, plotting, train


def test_seed_everything_makes_draws_repeatable_and_pins_threads():
    g1 = seed_everything(3)
    a = (g1.random(3), np.random.rand(2), torch.rand(2))
    g2 = seed_everything(3)
    b = (g2.random(3), np.random.rand(2), torch.rand(2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert torch.equal(a[2], b[2])
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(bad, exc):
    with pytest.raises(exc):
        seed_everything(bad)


def test_scales():
    assert check_scale("ci") == "ci"
    with pytest.raises(ValueError, match="scale must be one of"):
        check_scale("medium")


def test_finish_refuses_unlabelled_axes():
    fig, (ax,) = plotting.figure()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(ValueError, match="label"):
        plotting.finish(fig)
    plotting.label(ax, "x (units)", "y (units)")
    assert plotting.finish(fig) is fig
    with pytest.raises(ValueError):
        plotting.label(ax, "", "y")


def test_digits_split_is_seeded_standardised_and_stratified():
    d1, d2 = data.digits(seed=0), data.digits(seed=0)
    np.testing.assert_array_equal(d1["x_train"], d2["x_train"])
    assert d1["x_train"].shape[1] == 64 and d1["x_train"].dtype == np.float32
    assert len(d1["x_train"]) + len(d1["x_test"]) == 1797
    assert abs(float(d1["x_train"].mean())) < 1e-5
    assert set(np.unique(d1["y_test"])) == set(range(10))
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits(test_fraction=1.5)


def test_fit_is_deterministic_and_learns_digits():
    d = data.digits(seed=0)
    runs = []
    for _ in range(2):
        seed_everything(0)
        model = snn.mlp([64, 32, 10])
        hist = train.fit(model, d["x_train"], d["y_train"], steps=150, lr=1e-2, seed=0)
        runs.append((hist["loss"], snn.accuracy(model, torch.tensor(d["x_test"]), torch.tensor(d["y_test"]))))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] > 0.9


def test_fit_and_mlp_validate_arguments():
    with pytest.raises(ValueError, match="sizes"):
        snn.mlp([64])
    with pytest.raises(ValueError, match="activation"):
        snn.mlp([4, 2], activation="swish2")
    m = snn.mlp([4, 2])
    with pytest.raises(ValueError, match="steps"):
        train.fit(m, np.zeros((3, 4), np.float32), np.zeros(3, np.int64), steps=0, lr=0.1)
    with pytest.raises(ValueError, match="same"):
        train.fit(m, np.zeros((3, 4), np.float32), np.zeros(2, np.int64), steps=1, lr=0.1)


def test_import_leaves_the_arithmetic_to_the_machine():
    """No import-time ISA pinning: results are compared within their uncertainty instead (README)."""
    import subprocess
    import sys

    code = "import os, sparsebook; print(sorted(k for k in ('ATEN_CPU_CAPABILITY', 'MKL_CBWR', 'XLA_FLAGS') if k in os.environ))"
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"


def test_seed_everything_sets_deterministic_algorithms_without_importing_the_compiler():
    """The ATen flag is on (warn only) and torch._inductor (seconds of import per process) stays out."""
    import subprocess
    import sys

    import os

    code = ("import os, sys, torch; from sparsebook.seeding import seed_everything; seed_everything(3); "
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
            "'torch._inductor' in sys.modules, os.environ['CUBLAS_WORKSPACE_CONFIG'])")
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.split()
    assert out == ["True", "True", "False", ":4096:8"]      # cuBLAS made deterministic before CUDA starts


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tiny_transformer_training_step_is_bit_identical_on_a_gpu():
    """seed_everything sends attention to its deterministic math kernel on a GPU (the fused kernels'
    backward passes are not deterministic): two seeded steps give identical gradients."""
    grads = []
    for _ in range(2):
        seed_everything(0)
        model = snn.TinyTransformer(vocab=32, seq_len=64, d_model=64, heads=4).cuda()
        x = torch.randint(0, 32, (16, 64), device="cuda")
        model(x).float().logsumexp(-1).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]).cpu())
    assert not torch.backends.cuda.mem_efficient_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
    assert torch.equal(grads[0], grads[1])
