"""Sparse inputs and structured operators: Deep Interest Network and MgNO.

Both papers build a model around what is present: DIN around the few ids of a huge, sparse
vocabulary that a user actually touched (attention of the candidate over them, a regulariser
that only touches the rows in the batch); MgNO around a linear operator that is mostly
structure (a multigrid V-cycle of 3-point convolutions instead of a dense kernel).

- :mod:`sparsebook.sparse_inputs.kernels`: the pure math (activation unit input and weighted
  pooling, Dice, mini-batch aware L2, AUC and RelaImpr; restriction/prolongation, the V-cycle,
  the spectral convolution, the finite-volume Darcy solvers, the relative error).
- :mod:`sparsebook.sparse_inputs.experiments`: the synthetic CTR task (:func:`ctr_data`), the
  batched-over-seeds CTR models (:class:`CTRNet`), the operators (:class:`MgNO`, :class:`FNO`,
  :class:`PlainCNN`), the frozen configs with ``preset(scale)`` and the runners
  (:func:`run_ctr`, :func:`run_reg_cost`, :func:`run_operator`).
- :mod:`sparsebook.sparse_inputs.figures`: one plotting function per figure.

This module only re-exports the chapter's public names.
"""
from sparsebook.sparse_inputs.experiments import (
    CTR_VARIANTS, N_SEEDS, CTRConfig, CTRNet, CTRSuiteConfig, OperatorSuiteConfig, run_ctr_suite, run_operator_suite, FNO, MgNO, OperatorConfig, PlainCNN, RegCostConfig, VCycleOperator, build_model,
    ctr_data, darcy_data, device_for, feature_counts, matched_widths, n_params, random_coefficient, run_ctr,
    run_operator, run_reg_cost, train_one_cycle, true_solutions,
)
from sparsebook.sparse_inputs.figures import (
    plot_attention, plot_interests, plot_operator_sweep, plot_predictions, plot_reg_cost, plot_regularization,
    plot_resolution, plot_training_curves,
)
from sparsebook.sparse_inputs.kernels import (
    BCS, activation_unit_input, auc, darcy_1d, darcy_2d, dice, full_l2, full_weighting, mba_l2, mean_pool, prelu,
    prolong, rela_impr, relative_l2, restrict, smooth, sparse_grad_bytes, spectral_conv, sum_pool, two_level_auc,
    vcycle, weighted_pool,
)

__all__ = [
    "CTR_VARIANTS", "N_SEEDS", "CTRConfig", "CTRNet", "CTRSuiteConfig", "OperatorSuiteConfig", "run_ctr_suite",
    "run_operator_suite", "FNO", "MgNO", "OperatorConfig", "PlainCNN", "RegCostConfig", "VCycleOperator",
    "build_model", "ctr_data", "darcy_data", "device_for", "feature_counts", "matched_widths", "n_params",
    "random_coefficient", "run_ctr", "run_operator", "run_reg_cost", "train_one_cycle", "true_solutions",
    "plot_attention", "plot_interests", "plot_operator_sweep", "plot_predictions", "plot_reg_cost",
    "plot_regularization", "plot_resolution", "plot_training_curves",
    "BCS", "activation_unit_input", "auc", "darcy_1d", "darcy_2d", "dice", "full_l2", "full_weighting", "mba_l2",
    "mean_pool", "prelu", "prolong", "rela_impr", "relative_l2", "restrict", "smooth", "sparse_grad_bytes",
    "spectral_conv", "sum_pool", "two_level_auc", "vcycle", "weighted_pool",
]
