"""Sparse training: pruning without retraining, sparse fine-tuning, searched, recurrent and Bayesian sparse networks.

Ten papers, one small experiment each, all on scikit-learn's digits (or digits read row by row),
every experiment trained for 5 seeds at once as one batched computation:

- DSnoT (:func:`dsnot`): training-free prune-and-grow of one-shot magnitude or Wanda masks.
- PST (:func:`pst_importance`): sparse fine-tuning with data-free + low-rank/structured data-driven importance.
- SaRA (:func:`smallest_magnitude_mask`, :func:`nuclear_norm`): fine-tuning only the smallest weights, against LoRA.
- Sparse-IFT (:func:`sparse_wide_factor`, :func:`mlp_flops`): wider sparse layers at equal FLOPs.
- WGSEF (:func:`sparse_envelope`, :func:`group_norms`): k-level neuron sparsity against group lasso.
- DASS (``run_search``): differentiable search with sparse operations against DARTS.
- Random Search (:func:`random_node_masks`): node-space search against random and importance-based selection.
- Recurrent networks (``run_rnn``): a pruned GRU.
- SSVI (:func:`ssvi_swap`, :func:`gaussian_kl`, :func:`expected_calibration_error`): sparse mean-field VI.
- SparK (:func:`patch_mask`, ``spark_encode``): masked image modelling with sparse (re-masked) encoding.

Where each part lives: :mod:`~sparsebook.sparse_training.kernels` (pure math),
:mod:`~sparsebook.sparse_training.experiments` (batched networks, configs, runners),
:mod:`~sparsebook.sparse_training.figures` (one function per figure).  This module only re-exports.
"""
from sparsebook.sparse_training.experiments import (
    CONFIGS, N_SEEDS, OPS, ORDER, RUNNERS, DSnoTConfig, GroupSparsityConfig, IsoFlopConfig, PretrainConfig, PSTConfig,
    RandomSearchConfig, RNNConfig, SaRAConfig, SearchConfig, SparKConfig, SSVIConfig, cubic_schedule, device_for,
    forward, gru_forward, init_gru, init_mlp, member_accuracy, member_ce, mirror, pretrained, pst_trainable,
    run_all, run_dsnot, run_experiment, run_indexed, run_group_sparsity, run_pst, run_random_search, run_rnn, run_sara, run_search,
    run_sparse_ift, run_spark, run_ssvi, spark_encode, sparse_wide_plan, stacked_digits, train_members)
from sparsebook.sparse_training.figures import (
    plot_dsnot, plot_finetune, plot_group_sparsity, plot_iso_flop, plot_rnn, plot_search, plot_ssvi_spark)
from sparsebook.sparse_training.kernels import (
    dsnot, expected_calibration_error, gaussian_kl, group_norms, layer_topk_mask, lora_rank_for_budget, mlp_flops,
    n_keep, nuclear_norm, patch_mask, pst_importance, random_node_masks, reconstruction_gap, ridge_probe, row_topk_mask,
    smallest_magnitude_mask, sparse_envelope, sparse_wide_factor, ssvi_swap, straight_through, upsample_mask,
    wanda_scores)

__all__ = [
    "CONFIGS", "N_SEEDS", "OPS", "ORDER", "RUNNERS", "DSnoTConfig", "GroupSparsityConfig", "IsoFlopConfig", "PretrainConfig",
    "PSTConfig", "RandomSearchConfig", "RNNConfig", "SaRAConfig", "SearchConfig", "SparKConfig", "SSVIConfig",
    "cubic_schedule", "device_for", "forward", "gru_forward", "init_gru", "init_mlp", "member_accuracy", "member_ce",
    "mirror", "pretrained", "pst_trainable", "run_all", "run_dsnot", "run_experiment", "run_indexed", "run_group_sparsity", "run_pst",
    "run_random_search", "run_rnn", "run_sara", "run_search", "run_sparse_ift", "run_spark", "run_ssvi",
    "spark_encode", "sparse_wide_plan", "stacked_digits", "train_members",
    "dsnot", "expected_calibration_error", "gaussian_kl", "group_norms", "layer_topk_mask", "lora_rank_for_budget",
    "mlp_flops", "n_keep", "nuclear_norm", "patch_mask", "pst_importance", "random_node_masks", "reconstruction_gap", "ridge_probe",
    "row_topk_mask", "smallest_magnitude_mask", "sparse_envelope", "sparse_wide_factor", "ssvi_swap",
    "straight_through", "upsample_mask", "wanda_scores",
    "plot_dsnot", "plot_finetune", "plot_group_sparsity", "plot_iso_flop", "plot_rnn", "plot_search", "plot_ssvi_spark",
]
