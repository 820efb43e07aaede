"""Inductive bias in bits (Boopathy et al. 2024), guidance by representational alignment
(Subramaniam et al. 2024) and source-task selection by the Lasso (Wang et al. 2023).

**Inductive bias.**  For a task with training set ``(X, Y)``, a test set and an error
level ``ε``, the inductive bias a hypothesis space needs is the information it takes
to pick a well-generalizing hypothesis out of the hypotheses that fit the data:

    I(ε) = −log₂ P_h( e(h) ≤ ε ),   h ~ p(h | h fits (X, Y)),                   (1)

in **bits** (the authors' code returns nats; divide by ln 2).  ``e(h)`` is the test
mean squared error ``e = ‖f(X_test) − Y_test‖² / (n_test·k)`` for ``k`` outputs.

**Kernel hypotheses.**  Take the noise-free Gaussian-process posterior under a kernel
``κ`` (hypotheses that interpolate the training set):

    μ = K_{*X} K_{XX}⁻¹ Y,   Σ = K_{**} − K_{*X} K_{XX}⁻¹ K_{X*}.                 (2)

With ``Σ = U diag(λ) Uᵀ`` and ``f = μ + U diag(√λ) z`` (``z`` standard normal), the
test error of a random hypothesis is exactly a *generalized χ²*

    e = Σ_j w_j (z_j + δ_j)²,   w_j = λ_j / (n_test·k),   δ_j = u_jᵀ(μ − y)/√λ_j,   (3)

one term per eigenvector and output.  :func:`generalized_chi2_logcdf` computes
``log P(e ≤ x)`` far into the lower tail with a saddlepoint approximation;
:func:`generalized_chi2_cdf_imhof` gives ``P(e ≤ x)`` exactly (Imhof's integral) in the bulk.

**Practical estimator.**  For hypothesis spaces without a closed form (trained
networks), the paper samples hypotheses, records their test errors and fits a
scaled noncentral χ² ``e ≈ s·χ²_ν(λ)`` (:func:`fit_scaled_ncx2`), then reads
``I(ε)`` from the fitted lower tail.

**Guidance.**  Linear centred kernel alignment between representations
``X (n×p)`` and ``Y (n×q)`` of the same ``n`` examples (:func:`linear_cka`), and a
target network trained on ``CE + α Σ_l (1 − CKA(target_l, guide_l))`` against a
frozen guide (:func:`guidance_penalty`, :func:`run_guidance`).

**Where each part lives.**

- :mod:`sparsebook.inductive_bias.kernels`: the math: the generalized χ² tail, cumulants and
  sampler, the scaled-χ² fit, the RBF kernel, the GP posterior and its test-loss distribution
  (:class:`~sparsebook.inductive_bias.kernels.KernelLoss`), linear CKA, layer pairing and the
  guidance penalty.
- :mod:`sparsebook.inductive_bias.experiments`: the configs (``preset("ci"|"full")``) and
  runners ``run_estimator``, ``run_dimension``, ``run_network_bias``, ``run_guidance`` (and their
  multi-seed forms on :func:`sparsebook.seeding.over_seeds`), the ``*_estimates`` functions that
  turn their outputs into the estimates (with uncertainty) the claims rest on; the
  chapter's tasks (``single_index_task``, ``gp_task``), the batched MLP ensemble trainer
  (:func:`train_mlp_ensemble`, on :func:`sparsebook.train.run_steps`) and the guidance networks.
- :mod:`sparsebook.inductive_bias.figures`: one plotting function per figure.

This module only re-exports the names the notebook, the tests and the benchmarks use.
"""
from sparsebook.inductive_bias.experiments import (
    DimensionConfig,
    EstimatorConfig,
    GuidanceConfig,
    MultiTaskConfig,
    NetworkConfig,
    dimension_estimates,
    estimator_estimates,
    guidance_estimates,
    guidance_seed,
    multitask_estimates,
    network_bias_seed,
    network_estimates,
    run_dimension,
    run_estimator,
    run_guidance,
    run_guidance_seeds,
    run_multitask,
    run_multitask_seeds,
    run_network_bias,
    run_network_bias_seeds,
    train_mlp_ensemble,
)
from sparsebook.inductive_bias.figures import (
    explore_dimension,
    plot_dimension,
    plot_hypotheses_1d,
    plot_try_dimension,
    try_dimension,
    plot_estimator,
    plot_guidance,
    plot_network_bias,
)
from sparsebook.inductive_bias.kernels import (
    ScaledNcx2,
    allocate_samples,
    fit_scaled_ncx2,
    gaussian_test_loss,
    generalized_chi2_cdf_imhof,
    generalized_chi2_cumulants,
    generalized_chi2_logcdf,
    gp_posterior,
    guidance_penalty,
    kernel_test_loss,
    independent_difference,
    lasso_relevance,
    layer_pairs,
    linear_cka,
    log_slope_estimate,
    median_lengthscale,
    ml_amplitude,
    ncx2_from_cumulants,
    ncx2_moment_fit,
    rbf_kernel,
    rms_estimate,
    sample_generalized_chi2,
)

__all__ = [
    "generalized_chi2_logcdf",
    "generalized_chi2_cumulants",
    "generalized_chi2_cdf_imhof",
    "sample_generalized_chi2",
    "ScaledNcx2",
    "ncx2_moment_fit",
    "ncx2_from_cumulants",
    "fit_scaled_ncx2",
    "rbf_kernel",
    "median_lengthscale",
    "gp_posterior",
    "gaussian_test_loss",
    "kernel_test_loss",
    "linear_cka",
    "layer_pairs",
    "guidance_penalty",
    "ml_amplitude",
    "rms_estimate",
    "independent_difference",
    "log_slope_estimate",
    "lasso_relevance",
    "allocate_samples",
    "train_mlp_ensemble",
    "EstimatorConfig",
    "run_estimator",
    "estimator_estimates",
    "DimensionConfig",
    "run_dimension",
    "dimension_estimates",
    "NetworkConfig",
    "run_network_bias",
    "network_bias_seed",
    "run_network_bias_seeds",
    "network_estimates",
    "GuidanceConfig",
    "run_guidance",
    "guidance_seed",
    "run_guidance_seeds",
    "guidance_estimates",
    "MultiTaskConfig",
    "run_multitask",
    "run_multitask_seeds",
    "multitask_estimates",
    "plot_estimator",
    "plot_dimension",
    "plot_hypotheses_1d",
    "plot_network_bias",
    "plot_guidance",
    "explore_dimension",
    "plot_try_dimension",
    "try_dimension",
]
