"""Information compression: the information plane of a small tanh/ReLU network, measured with
fixed and adaptive estimators, and the coding rate of its representations.

Chapter ``information_compression``.  Papers:

- Shwartz-Ziv & Tishby (2017), the 12-bit task and the information plane;
- Saxe et al. (2018) {saxe2018}: with fixed binning, tanh networks compress and ReLU networks do not;
- Chelombiev, Houghton & O'Donnell (2019) {chelombiev2019}: with adaptive estimators (entropy-based
  binning, a KDE whose noise scales with the layer's activity) non-saturating networks compress too,
  L2 regularization increases compression, and only the last layer's compression tracks generalization;
- Yu et al. (2023) (CRATE): the coding rate ``R(Z) = ½ logdet(I + d/(N ε²) Z Zᵀ)``.

Shapes: a layer's activity ``t`` is ``(N, d)`` (one row per input, ``N = 4096`` for the whole 12-bit
task); labels ``y`` are ``(N,)`` integers.  Information is in bits, coding rates in nats.

Where each part lives:

- :mod:`~sparsebook.information_compression.kernels`: the estimators (fixed and adaptive binning,
  the Kolchinsky–Tracey KDE and its adaptive variant), coding rates and rate reduction, compression
  and the correlation contrast with its paired bootstrap;
- :mod:`~sparsebook.information_compression.experiments`: the 12-bit data set and its split, the
  12-10-7-5-4-3-2 network trained as a seeded ensemble, information and coding-rate trajectories,
  ``PlaneConfig`` / ``GeneralizationConfig`` with ``run_information_plane`` / ``run_generalization``,
  and the chapter's tables and checks;
- :mod:`~sparsebook.information_compression.figures`: one plotting function per figure.
"""
from sparsebook.information_compression.experiments import (
    ACTIVATIONS,
    ANTIPODAL_PAIRS,
    CHAPTER,
    ICOSAHEDRON_EDGES,
    LAYER_NAMES,
    LAYER_SIZES,
    N_BITS,
    N_INPUTS,
    SATURATING,
    CrateConfig,
    GeneralizationConfig,
    PlaneConfig,
    PlaneResult,
    TrainedNetworks,
    activation_fn,
    activation_range,
    bounds_hold,
    AUTHORS_GAIN,
    compression_results,
    correlation_estimate,
    variation_across_seeds,
    init_results,
    split_results,
    seed_compression,
    sweep_results,
    fixed_ranges,
    forward,
    hidden_coding_rates,
    information_trajectory,
    init_weights,
    invariance_check,
    l2_penalty,
    log_epochs,
    run_crate_block,
    run_generalization,
    run_information_plane,
    tishby_dataset,
    label_fingerprint,
    ORIGINAL_LABELS_SHA256,
    train_networks,
    train_test_split,
)
from sparsebook.information_compression.figures import (
    explore_binning,
    plot_coding_rate,
    plot_activation_histograms,
    plot_try_binning,
    try_binning,
    plot_compression,
    plot_generalization,
    plot_l2,
    plot_planes,
    plot_sweeps,
    plot_trajectories,
)
from sparsebook.information_compression.kernels import (
    ESTIMATORS,
    adaptive_bins,
    adaptive_kde_information,
    binned_information,
    class_coding_rate,
    class_mean_cosine,
    coding_rate,
    coefficient_of_variation,
    compression,
    correlation_contrast,
    entropy_bits,
    fixed_bins,
    hidden_compression,
    ista_step,
    joint_codes,
    kde_information,
    layer_information,
    mssa_step,
    normalize_columns,
    pair_information,
    rate_reduction,
    subspace_coding_rate,
    unit_tokens,
)

__all__ = [
    # experiments: data, network, training, trajectories, configs and runners, tables and checks
    "CHAPTER", "ICOSAHEDRON_EDGES", "ANTIPODAL_PAIRS", "N_BITS", "N_INPUTS", "tishby_dataset",
    "train_test_split", "LAYER_SIZES", "LAYER_NAMES", "ACTIVATIONS", "SATURATING", "activation_fn",
    "activation_range", "init_weights", "forward", "log_epochs", "TrainedNetworks", "train_networks",
    "fixed_ranges", "information_trajectory", "hidden_coding_rates", "PlaneConfig", "PlaneResult",
    "run_information_plane", "CrateConfig", "run_crate_block", "GeneralizationConfig", "run_generalization", "compression_results", "sweep_results", "seed_compression", "correlation_estimate", "variation_across_seeds", "init_results", "split_results", "AUTHORS_GAIN",
    "invariance_check", "bounds_hold", "l2_penalty", "label_fingerprint", "ORIGINAL_LABELS_SHA256",
    # kernels: estimators, coding rates, summaries
    "entropy_bits", "joint_codes", "fixed_bins", "adaptive_bins", "binned_information",
    "layer_information", "pair_information", "kde_information", "adaptive_kde_information", "ESTIMATORS",
    "coding_rate", "class_coding_rate", "class_mean_cosine", "rate_reduction", "subspace_coding_rate", "mssa_step", "ista_step", "unit_tokens", "normalize_columns",
    "compression", "coefficient_of_variation", "correlation_contrast", "hidden_compression",
    # figures
    "plot_planes", "plot_compression", "plot_l2", "plot_generalization", "plot_coding_rate", "plot_activation_histograms", "plot_sweeps",
    "plot_trajectories", "explore_binning", "plot_try_binning", "try_binning",
]
