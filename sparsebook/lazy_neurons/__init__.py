"""Lazy neurons: activation sparsity that emerges in trained ReLU networks, and its use.

Li et al. (2023) observe that the hidden activation ``a = ReLU(x W_upᵀ + b)`` of a
trained Transformer's MLP has very few nonzero entries (3% for T5-Base), fewer
in wider and deeper models, with random labels, random inputs and infinite
data.  Its family puts sparsity to use: Top-k thresholding (Li et al.), ReLU
substitution with a progressive L1 penalty (ProSparse), magnitude thresholds
calibrated on data (CATS, per layer; CHESS, per channel), a differentiable
density loss (DEFT), and a performance-aware metric (Sparsing Law's PPL-p%).

Notation (shapes in brackets, ``…`` = any leading dims, ``h`` = MLP width)

- ``a`` [… , h]: an MLP's hidden activation (after the nonlinearity).
- nonzero fraction ``ρ = mean 1[|a| > τ]`` (``τ = 0``: the paper's "% nonzero").
- dead fraction: units with ``|a_i| ≤ τ`` on every row of the evaluation set.
- ``W_down`` [d, h]: the MLP's down projection (``torch.nn.Linear.weight``).

Everything trains in PyTorch on CPU with one thread (see
:func:`sparsebook.seed_everything`), from seeded data generated here or
scikit-learn's digits.

Where each part lives:

- :mod:`sparsebook.lazy_neurons.kernels`: activation statistics (nonzero and dead
  fractions), thresholds (CATS, CHESS, FATReLU), the ProSparse schedule, DEFT's density
  loss, calibration error, CETT and the sparse MLP forward (pure math).
- :mod:`sparsebook.lazy_neurons.experiments`: the chapter's networks (``MLP``, the
  MLP-Mixer), the activation recorder, the data sources (``NoisyTeacher``,
  ``MarkovSource``), ``train`` (on :func:`sparsebook.train.run_steps`), the frozen configs
  with ``preset("ci"|"full")`` and the runners ``run_<experiment>(config, seed)``.
- :mod:`sparsebook.models`: the shared ``TinyTransformer`` and its sparsifiable
  ``Activation`` (with ``topk_activation`` and ``apply_threshold``), re-exported here.

- :mod:`sparsebook.lazy_neurons.figures`: one plotting function per figure, seed bands and intervals.
This module only re-exports the chapter's public names.  The figures are imported on first use
(:data:`_FIGURES`, module ``__getattr__``): the seed workers of :func:`run_chapter` import this package
to run the experiments and never draw, and matplotlib, SciPy and the statistics module they would
otherwise load cost about a CPU second in every worker.
"""
from sparsebook.lazy_neurons.experiments import (
    CONDITIONS, MLP, PARTS, PARTS_BY_SCALE, RECORDED_TYPES, SEEDS, ActivationRecorder, ActivationsConfig, ConditionsConfig,
    EmergenceConfig, FamilyConfig, MarkovSource, MixerBlock, MixerConfig, NoisyTeacher, ScalingConfig, SpeedConfig,
    TinyMixer, TopKConfig, TransformerScalingConfig, activations_estimates, chapter_part, chapter_seed,
    conditions_estimates, emergence_estimates, evaluate, family_estimates, mixer_estimates, mlp_activation_modules,
    mlp_emergence, mlp_sites, ppl_p_sparsity, record_activations, run_activations, run_chapter, run_conditions, run_data,
    run_emergence, run_family, run_mixer, run_scaling, run_speed, run_topk, run_transformer_scaling,
    scaling_estimates, sparse_activation_batch, topk_estimates, train, TemporalConfig, DriftingTemplates, DeltaMLP,
    run_temporal, temporal_estimates, DeftLoraConfig, LoRALinear, add_lora, run_deft_lora, deft_lora_estimates,
)
from sparsebook.lazy_neurons.kernels import (
    cats_threshold, cett, cett_threshold, chess_thresholds, core_neurons, core_neurons_batch, dead_fraction, deft_density_loss,
    dense_mlp_forward, expected_calibration_error, fatrelu, firing_frequency, jaccard, jaccard_rows, neuron_importance,
    nonzero_fraction, prosparse_lambda, sparse_down, sparse_mlp_forward, quantize_ste, temporal_deltas, delta_density, lora_linear,
)
from sparsebook.models import Activation, TinyTransformer, apply_threshold, topk_activation

__all__ = [
    # kernels
    "nonzero_fraction", "dead_fraction", "firing_frequency", "topk_activation", "cats_threshold",
    "chess_thresholds", "apply_threshold", "fatrelu", "prosparse_lambda", "deft_density_loss",
    "expected_calibration_error", "neuron_importance", "cett", "cett_threshold", "core_neurons", "core_neurons_batch", "jaccard", "jaccard_rows",
    "dense_mlp_forward", "sparse_down", "sparse_mlp_forward", "quantize_ste", "temporal_deltas", "delta_density",
    "lora_linear",
    # networks and the recorder
    "Activation", "MLP", "TinyTransformer", "MixerBlock", "TinyMixer", "RECORDED_TYPES",
    "mlp_activation_modules", "mlp_sites", "ActivationRecorder", "record_activations",
    # data, training, evaluation
    "NoisyTeacher", "MarkovSource", "train", "evaluate", "ppl_p_sparsity", "sparse_activation_batch",
    # experiments
    "EmergenceConfig", "run_emergence", "mlp_emergence", "ConditionsConfig", "CONDITIONS", "run_conditions",
    "ScalingConfig", "run_scaling", "run_data", "TransformerScalingConfig", "run_transformer_scaling",
    "TopKConfig", "run_topk", "ActivationsConfig", "run_activations", "MixerConfig", "run_mixer",
    "FamilyConfig", "run_family", "SpeedConfig", "run_speed", "TemporalConfig", "DriftingTemplates", "DeltaMLP",
    "run_temporal", "DeftLoraConfig", "LoRALinear", "add_lora", "run_deft_lora",
    # over seeds, and the estimates the claims rest on
    "SEEDS", "PARTS", "PARTS_BY_SCALE", "chapter_part", "chapter_seed", "run_chapter", "emergence_estimates",
    "conditions_estimates", "scaling_estimates", "mixer_estimates", "topk_estimates", "activations_estimates",
    "family_estimates", "temporal_estimates", "deft_lora_estimates",
    # figures
    "plot_emergence", "plot_firing", "plot_scaling", "plot_data", "plot_mixer", "plot_topk", "plot_tradeoff",
    "plot_sparsing_law", "plot_speed", "plot_temporal",
    # explorable figure and try-your-own cell
    "explore_emergence", "plot_try_emergence", "try_emergence",
]


#: The figure functions, loaded from :mod:`sparsebook.lazy_neurons.figures` when first asked for.
_FIGURES = ("explore_emergence", "plot_data", "plot_emergence", "plot_try_emergence", "try_emergence", "plot_firing",
            "plot_mixer", "plot_scaling", "plot_sparsing_law", "plot_speed", "plot_topk", "plot_tradeoff",
            "plot_temporal")


def __getattr__(name: str):
    if name in _FIGURES:
        from sparsebook.lazy_neurons import figures

        return getattr(figures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_FIGURES))
