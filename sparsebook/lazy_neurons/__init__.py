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

The notebook draws its figures inline; the chapter has no plotting module.
This module only re-exports the chapter's public names.
"""
from sparsebook.lazy_neurons.experiments import (
    CONDITIONS, MLP, RECORDED_TYPES, ActivationRecorder, ActivationsConfig, ConditionsConfig, EmergenceConfig,
    MarkovSource, MixerBlock, MixerConfig, NoisyTeacher, ScalingConfig, SpeedConfig, TinyMixer, TopKConfig,
    TransformerScalingConfig, evaluate, mlp_activation_modules, mlp_sites, ppl_p_sparsity, record_activations,
    run_activations, run_conditions, run_data, run_emergence, run_mixer, run_scaling, run_speed, run_topk,
    run_transformer_scaling, sparse_activation_batch, train,
)
from sparsebook.lazy_neurons.kernels import (
    cats_threshold, cett, cett_threshold, chess_thresholds, dead_fraction, deft_density_loss, dense_mlp_forward,
    expected_calibration_error, fatrelu, neuron_importance, nonzero_fraction, prosparse_lambda, sparse_down,
    sparse_mlp_forward,
)
from sparsebook.models import Activation, TinyTransformer, apply_threshold, topk_activation

__all__ = [
    # kernels
    "nonzero_fraction", "dead_fraction", "topk_activation", "cats_threshold", "chess_thresholds",
    "apply_threshold", "fatrelu", "prosparse_lambda", "deft_density_loss", "expected_calibration_error",
    "neuron_importance", "cett", "cett_threshold", "dense_mlp_forward", "sparse_down", "sparse_mlp_forward",
    # networks and the recorder
    "Activation", "MLP", "TinyTransformer", "MixerBlock", "TinyMixer", "RECORDED_TYPES",
    "mlp_activation_modules", "mlp_sites", "ActivationRecorder", "record_activations",
    # data, training, evaluation
    "NoisyTeacher", "MarkovSource", "train", "evaluate", "ppl_p_sparsity", "sparse_activation_batch",
    # experiments
    "EmergenceConfig", "run_emergence", "ConditionsConfig", "CONDITIONS", "run_conditions",
    "ScalingConfig", "run_scaling", "run_data", "TransformerScalingConfig", "run_transformer_scaling",
    "TopKConfig", "run_topk", "ActivationsConfig", "run_activations", "MixerConfig", "run_mixer",
    "SpeedConfig", "run_speed",
]
