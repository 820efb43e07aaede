"""Sparse autoencoders: recovering known features from superposition.

Kernels (:mod:`.kernels`, pure math): the allocation rules TopK, Mutual Choice (BatchTopK) and
Feature Choice, g-SAE's gradient-aware selection, FVU, the AuxK and aux-Zipf losses, dictionary
metrics against a known dictionary (MMCS, fraction recovered, Hungarian MCC), feature absorption, detection scoring
of explanations, codebook selection and O'Neill & Bui's unique-code score.

Experiments (:mod:`.experiments`): synthetic superposition, the batched trainer (S autoencoders
as stacked tensors, one optimiser, :func:`sparsebook.train.run_steps`), and the runners
``run_allocation``, ``run_absorption``, ``run_gradient``, ``run_mlp``, ``run_codebook``, ``run_attention``, each taking a
frozen config with ``preset(scale)`` and a list of seeds; ``run_all`` runs them all on worker processes.  Figures in :mod:`.figures`.

This module only re-exports the chapter's public names.
"""
from sparsebook.sparse_autoencoders.experiments import (
    ALLOC_RUNS, DATASETS, N_SEEDS, AbsorptionConfig, AllocationConfig, AttentionConfig, CodebookConfig, GradientConfig, MLPConfig,
    device_for, firing_probabilities, hierarchical_codes, random_dictionary, run_absorption, run_allocation, run_attention, run_codebook, run_gradient,
    run_all, run_mlp, run_task, sparse_codes, superposition, train_sae, TASKS,
)
from sparsebook.sparse_autoencoders.figures import plot_absorption, plot_allocation, plot_dead_curves, plot_dictionary, plot_models
from sparsebook.sparse_autoencoders.kernels import (
    RULES, absorption_counts, absorption_rate, allocate, aux_zipf_loss, auxk_loss, balanced_accuracy, budget_per_latent, codebook_select, cosine_matrix,
    dead_fraction, explain_and_score, f1_score, feature_choice_mask, fraction_recovered, fvu, gradient_topk_mask,
    hungarian_match, hungarian_mcc, l0, mean_max_cosine, mutual_choice_mask, topk_mask, unique_code_fraction,
    zipf_targets, zipf_underuse,
)

__all__ = [
    "RULES", "absorption_counts", "absorption_rate", "allocate", "aux_zipf_loss", "auxk_loss", "balanced_accuracy", "budget_per_latent", "codebook_select",
    "cosine_matrix", "dead_fraction", "explain_and_score", "f1_score", "feature_choice_mask", "fraction_recovered", "fvu",
    "gradient_topk_mask", "hungarian_match", "hungarian_mcc", "l0", "mean_max_cosine", "mutual_choice_mask", "topk_mask",
    "unique_code_fraction", "zipf_targets", "zipf_underuse",
    "ALLOC_RUNS", "DATASETS", "N_SEEDS", "AbsorptionConfig", "AllocationConfig", "AttentionConfig", "CodebookConfig", "GradientConfig",
    "MLPConfig", "device_for", "firing_probabilities", "hierarchical_codes", "random_dictionary", "run_absorption", "run_allocation", "run_attention",
    "run_codebook", "run_gradient", "run_mlp", "run_all", "run_task", "TASKS", "sparse_codes", "superposition", "train_sae",
    "plot_absorption", "plot_allocation", "plot_dead_curves", "plot_dictionary", "plot_models",
]
