"""Mixture of experts: routing, load balance, merging, pruning, decoupled routers, tree gates,
interpretability and the sample efficiency of temperature gates.

Kernels (PyTorch, any leading batch axes; the chapter stacks seeds there):

- :func:`top_k_routing` (softmax, top-k, renormalised gates), :func:`load_balancing_loss`
  (Switch's ``E Σ f_i P_i``), :func:`router_z_loss`, :func:`expert_capacity` and
  :func:`assign_slots` (capacity factor, dropped tokens), :func:`moe_dispatch` (index dispatch,
  no loop over tokens) and its peer :func:`moe_dense_reference` (every expert on every token,
  masked by :func:`gate_matrix`).
- :func:`smooth_step`, :func:`tree_leaf_probs`, :func:`comet_gate`: COMET's differentiable tree gates;
  :func:`permute_gates` and :func:`swap_neighbourhood`: its permutation-based local search (our reading).
- :func:`align_permutation`, :func:`permute_units`, :func:`merge_experts`, :func:`group_experts`:
  MC-SMoE's weight-matching alignment, grouping and usage-weighted merging; :func:`stable_rank` and
  :func:`low_rank_plus_sparse`: its compression stage.
- :func:`expected_active_fraction` and :func:`sparsity_routing`: MoE-X's sparsity-aware router (our
  reading of its description); :func:`low_rank_sparse_factors`: the trainable factors of the compression.
- :func:`auroc_matrix` (unit ↔ planted-variable detection), :func:`moe_flops` (analytic cost),
  :func:`gaussian_moe_logpdf` (softmax Gaussian MoE with a temperature or an activation gate).

Experiments (:mod:`sparsebook.mixture_of_experts.experiments`): data with known expert structure
(:func:`cluster_regression`, :func:`planted_variables`, :func:`markov_sources`), a small MoE network with stacked seeds
(:class:`NetSpec`, :func:`init_net`, :func:`net_forward`, :func:`train_net`), frozen configs with
``preset(scale)`` and runners; :func:`run_all` runs everything on worker processes.
Figures: :mod:`sparsebook.mixture_of_experts.figures`.

This module only re-exports the chapter's public names.
"""
from sparsebook.mixture_of_experts.experiments import (
    TRUTH, CometConfig, GaussianMoEConfig, MergeConfig, MoeXConfig, NetSpec, PruneConfig, ReadMeConfig, RoutingConfig,
    TrainSpec, LanguageConfig, MoEFFN, cluster_regression, markov_sources, moe_transformer, run_language_seed,
    collect_language, evaluate, init_net, interpretability, net_forward, nmse, planted_variables,
    local_search_step, run_all, run_comet, run_gaussian_moe, run_merging, run_moex, run_pruning, run_readme, run_routing,
    sample_gaussian_moe, specialization, time_layers, train_net, unit_activations, usage,
)
from sparsebook.mixture_of_experts.figures import (
    plot_cost, plot_gaussian, plot_language, plot_merging, plot_moex, plot_pruning, plot_routing,
)
from sparsebook.mixture_of_experts.kernels import (
    align_permutation, assign_slots, auroc_matrix, comet_gate, expert_capacity, experts_all, gate_matrix,
    expected_active_fraction, gaussian_moe_logpdf, group_experts, load_balancing_loss, low_rank_plus_sparse,
    low_rank_sparse_factors, merge_experts, moe_dense_reference, moe_dispatch, moe_flops, permute_gates, permute_units,
    stable_rank, router_z_loss, smooth_step, sparsity_routing, swap_neighbourhood, top_k_routing, tree_leaf_probs,
)

__all__ = [
    # kernels
    "top_k_routing", "load_balancing_loss", "router_z_loss", "expert_capacity", "assign_slots", "gate_matrix",
    "experts_all", "moe_dispatch", "moe_dense_reference", "smooth_step", "tree_leaf_probs", "comet_gate",
    "align_permutation", "permute_units", "merge_experts", "group_experts", "auroc_matrix", "moe_flops",
    "gaussian_moe_logpdf", "low_rank_plus_sparse", "low_rank_sparse_factors", "stable_rank",
    "expected_active_fraction", "sparsity_routing", "permute_gates", "swap_neighbourhood",
    # experiments
    "NetSpec", "TrainSpec", "init_net", "net_forward", "train_net", "evaluate", "nmse", "usage", "specialization",
    "cluster_regression", "planted_variables", "sample_gaussian_moe", "TRUTH", "RoutingConfig", "MergeConfig",
    "PruneConfig", "ReadMeConfig", "CometConfig", "MoeXConfig", "GaussianMoEConfig", "run_routing", "run_merging",
    "run_pruning", "run_readme", "run_comet", "run_moex", "run_gaussian_moe", "run_all", "unit_activations",
    "interpretability", "time_layers", "LanguageConfig", "MoEFFN", "markov_sources", "moe_transformer",
    "run_language_seed", "collect_language", "local_search_step",
    # figures
    "plot_routing", "plot_merging", "plot_pruning", "plot_moex", "plot_gaussian", "plot_cost", "plot_language",
]
