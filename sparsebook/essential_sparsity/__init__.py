"""Essential sparsity: one-shot magnitude pruning, its sharp knee, and sparse training.

Kernels (PyTorch; JAX versions of the magnitude and N:M masks with a parity test):

- :func:`magnitude_mask` keeps the largest ``|w|`` (one global pool or per layer),
  :func:`nm_mask` keeps N of every M consecutive input weights, :func:`random_mask`
  draws a random mask with uniform or ERK layer-wise densities (:func:`erk_densities`).
  Masks are explicit boolean tensors of the weights' shapes (no
  ``torch.nn.utils.prune`` re-parametrization).
- :func:`cubic_sparsity_schedule` is the gradual-pruning schedule of Zhu & Gupta;
  :func:`pruning_window` turns start/end fractions of training into its ``t0``, ``n_steps``.
- :func:`essential_sparsity_point` finds the knee of a performance-versus-sparsity curve.
- :func:`average_state_dicts` makes a sparse model soup (models sharing one mask).

Experiment runners ``run_<experiment>(config, seed=0)`` train small MLPs on
scikit-learn's digits, and (:func:`run_transformer_oneshot`) a tiny Transformer on a
synthetic sorting task (:func:`sort_task`), also fine-tuned with the one-shot mask fixed
(:func:`run_transformer_finetune`); each takes a frozen config with
``preset(scale)``.  Trained parents are cached per (config, seed) so experiments share them.

Where each part lives:

- :mod:`sparsebook.essential_sparsity.kernels`: the masks, densities, schedule, knee
  finders, masks on models, soups and the ridge probe (pure math).
- :mod:`sparsebook.essential_sparsity.experiments`: the models (``small_cnn``, the masked
  autoencoder, the pruning pool of the shared :class:`~sparsebook.models.TinyTransformer`),
  data, the frozen configs and the runners.
- :mod:`sparsebook.essential_sparsity.figures`: one plotting function per figure, and
  ``knee_table``.

Every training-based claim rests on several seeds: :func:`run_seed` runs every experiment for one
seed, :func:`run_seeds` runs ``N_SEEDS[scale]`` seeds on worker processes, :func:`collect` stacks one
quantity over seeds for :mod:`sparsebook.stats`.

This module only re-exports the chapter's public names.
"""
from sparsebook.essential_sparsity.experiments import (
    N_SEEDS, ArchitectureConfig, IMPConfig, full_device, imp_pairs, run_imp, DataAmountConfig, EmergenceConfig, FinetuneConfig, GradualConfig, JourneyConfig, NMTrainConfig,
    ObjectiveConfig, OneShotConfig, ParentConfig, RandomPruningConfig, SoupConfig, TransformerConfig,
    collect, evaluate, prunable, run_architecture, run_finetune, run_seed, run_seeds, run_data_amount, run_emergence, run_gradual, run_journey,
    run_nm_training, run_objectives, run_oneshot, run_random_pruning, run_soups, run_transformer_oneshot,
    TransformerFinetuneConfig, run_transformer_finetune, TransformerIMPConfig, run_transformer_imp,
    FULL_STEP_FACTOR, training_steps,
    small_cnn, sort_task, train_parent, transformer_pool,
)
from sparsebook.essential_sparsity.figures import (
    band, explore_layer_densities, plot_imp, plot_imp_architectures, plot_weight_magnitudes, knee_table, mlp_shapes, plot_emergence, plot_journey, plot_objectives, plot_oneshot, plot_soups_nm, plot_sparse_training,
    plot_transformer, plot_transformer_finetune, plot_try_layer_densities, try_layer_densities,
)
from sparsebook.essential_sparsity.kernels import (
    KNEE_METHODS, apply_masks, average_density, average_state_dicts, largest_rise_fraction, cubic_sparsity_schedule, erk_densities,
    essential_sparsity_point, hinge_fit, knee_sharpness, log_magnitude_histogram, MAGNITUDE_EDGES,
    magnitude_threshold, magnitude_mask, magnitude_mask_jax, n_pruned, nm_mask,
    nm_mask_jax, pruning_window, random_mask,
)

__all__ = [
    # kernels
    "magnitude_mask", "nm_mask", "random_mask", "erk_densities", "magnitude_mask_jax", "nm_mask_jax",
    "cubic_sparsity_schedule", "pruning_window", "essential_sparsity_point", "hinge_fit", "knee_sharpness",
    "average_state_dicts", "n_pruned", "KNEE_METHODS", "log_magnitude_histogram", "MAGNITUDE_EDGES",
    "magnitude_threshold", "apply_masks", "largest_rise_fraction", "average_density",
    # experiments
    "ParentConfig", "OneShotConfig", "ArchitectureConfig", "run_architecture", "small_cnn", "ObjectiveConfig",
    "DataAmountConfig", "EmergenceConfig", "RandomPruningConfig", "GradualConfig", "JourneyConfig", "SoupConfig",
    "NMTrainConfig", "FinetuneConfig", "run_finetune", "IMPConfig", "run_imp", "full_device", "imp_pairs", "run_seed", "run_seeds", "collect", "N_SEEDS", "train_parent", "run_oneshot", "run_objectives", "run_data_amount", "run_emergence",
    "run_random_pruning", "run_gradual", "run_journey", "run_soups", "run_nm_training",
    "sort_task", "TransformerConfig", "transformer_pool", "run_transformer_oneshot", "prunable", "evaluate",
    "TransformerFinetuneConfig", "run_transformer_finetune", "TransformerIMPConfig", "run_transformer_imp",
    "FULL_STEP_FACTOR", "training_steps",
    # figures and tables
    "knee_table", "plot_oneshot", "plot_objectives", "plot_emergence", "plot_sparse_training", "plot_journey",
    "plot_transformer", "plot_transformer_finetune", "plot_soups_nm", "plot_imp", "plot_imp_architectures",
    "plot_weight_magnitudes", "band", "explore_layer_densities", "mlp_shapes", "plot_try_layer_densities",
    "try_layer_densities",
]
