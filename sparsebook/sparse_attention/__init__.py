"""Sparse attention: which sparsity pattern keeps what attention needs, and what it costs.

Kernels (:mod:`sparsebook.sparse_attention.kernels`, pure PyTorch functions on boolean masks
``[..., L, L]``): fixed patterns (:func:`local_mask`, :func:`strided_mask`, :func:`random_mask`, S2's
sharded :func:`s2_mask` with :func:`union_coverage`), content-based ones (the Routing Transformer's
online k-means :func:`kmeans_update` and balanced :func:`routing_mask`; Sparsifiner's low-rank
:func:`lowrank_factors` + :func:`topk_mask`; SeerAttention's :func:`block_ground_truth` and block
top-k), Combiner's full-support :func:`combiner_attention`, token selection (:func:`subsample_keys`,
:func:`informativeness`, :func:`keep_top`), the measures (:func:`mass_recall`, :func:`top1_recall`,
:func:`total_variation`) and analytic cost (:func:`attention_cost`).

Experiments (:mod:`sparsebook.sparse_attention.experiments`): multi-query associative recall
(:func:`recall_task`), a one-layer NoPE attention model (:class:`RecallNet`) trained over seeds in one
batched computation, and the runners ``run_patterns``, ``run_s2``, ``run_pathways``, ``run_seqboat``,
``run_lemo``, ``run_sparsifiner`` (the predictor trained jointly with its mask), ``run_trained_patterns``
(routing and the SeerAttention gate fine-tuned jointly with their patterns), ``run_scratch`` (routing, local
and random patterns trained from scratch), ``run_induction``
(a two-layer model on two-hop recall, patterns imposed on its induction circuit), ``run_induction_scratch``
(the same model trained from scratch with each pattern), ``run_wallclock`` with their frozen
configs.  Figures in
:mod:`sparsebook.sparse_attention.figures`.

This module only re-exports the chapter's public names.
"""
from sparsebook.sparse_attention.experiments import (
    INDUCTION_PATTERNS, N_SEEDS, CostConfig, InductionConfig, InductionNet, LeMoConfig, PathwaysConfig, PatternConfig, RecallConfig, RecallNet, S2Config, SeerGate,
    ScratchConfig, SeqBoatConfig, SparsifinerConfig, TrainedPatternConfig, accuracy, pair_coverage, run_scratch, training_steps, analytic_costs, induction_task, recall_task, run_induction, run_induction_scratch, run_lemo, run_pathways, run_patterns,
    run_s2, run_seqboat, run_sparsifiner, run_trained_patterns, start_background, run_wallclock, subsample_ensemble_accuracy, svd_predictor, train_dense)
from sparsebook.sparse_attention.figures import (plot_costs, plot_induction, plot_masks, plot_recall_vs_density, plot_scratch, plot_tasks,
                                                  plot_trained_patterns, plot_training)
from sparsebook.sparse_attention.kernels import (
    PATTERNS, attention_cost, block_gather_attention, block_ground_truth, causal_mask, combiner_attention,
    dense_attention, density, expand_blocks, informativeness, keep_top, kmeans_assign, kmeans_update,
    local_mask, loglog_slope, lowrank_factors, mass_recall, masked_softmax, random_mask, routing_mask, s2_mask,
    strided_mask, subsample_keys, top1_recall, topk_blocks, topk_mask, total_variation, two_hop_coverage,
    union_coverage)

__all__ = [
    "INDUCTION_PATTERNS", "N_SEEDS", "CostConfig", "InductionConfig", "InductionNet", "LeMoConfig", "PathwaysConfig", "PatternConfig", "RecallConfig", "RecallNet", "S2Config",
    "ScratchConfig", "pair_coverage", "run_scratch", "training_steps",
    "SeerGate", "SeqBoatConfig", "SparsifinerConfig", "TrainedPatternConfig", "accuracy", "analytic_costs", "induction_task", "recall_task", "run_induction", "run_induction_scratch", "run_lemo",
    "run_pathways", "run_patterns", "run_s2", "run_seqboat", "run_sparsifiner", "run_trained_patterns", "start_background", "run_wallclock",
    "subsample_ensemble_accuracy", "svd_predictor", "train_dense",
    "plot_costs", "plot_induction", "plot_masks", "plot_recall_vs_density", "plot_scratch", "plot_tasks", "plot_trained_patterns", "plot_training",
    "PATTERNS", "attention_cost", "block_gather_attention", "block_ground_truth", "causal_mask", "combiner_attention",
    "dense_attention", "density", "expand_blocks", "informativeness", "keep_top", "kmeans_assign", "kmeans_update",
    "local_mask", "loglog_slope", "lowrank_factors", "mass_recall", "masked_softmax", "random_mask", "routing_mask",
    "s2_mask", "strided_mask", "subsample_keys", "top1_recall", "topk_blocks", "topk_mask", "total_variation",
    "two_hop_coverage", "union_coverage",
]
