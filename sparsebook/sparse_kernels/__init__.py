"""Sparse kernels: turning sparsity into wall-clock time, on the CPU and on an H200.

Kernels and reference semantics (:mod:`~sparsebook.sparse_kernels.kernels`, CPU, tested in CI):

- :func:`sparse_gemv_reference` (``y = Wᵀ(x ⊙ 1[|x| > t])``), :func:`sparse_rows_reference` (CATS's
  up projection), :func:`cats_mlp_reference`, :func:`activation_mask`, :func:`threshold_for_sparsity`;
- :func:`ideal_speedup`, :func:`fraction_of_ideal`, :func:`layer_byte_fraction`: what a memory-bound
  kernel can gain; :func:`crossover_sparsity`: where sparse starts to win;
- :func:`threshold_activation`, :func:`cats_threshold` (one per tensor), :func:`chess_thresholds` (one per
  channel): thresholds from calibration data; :func:`dispatch_crossover`, :func:`dispatch_plan`: sparse or
  dense per projection from a measured crossover table;
- :func:`two_four_mask`, :func:`is_two_four`: the 2:4 pattern; :func:`conv1x1_as_matmul`,
  :func:`random_sparse_weight`: the 1×1 convolution of Fast Sparse ConvNets.

The GPU kernels (Triton) live in :mod:`sparsebook.sparse_kernels.gpu`, imported only where a GPU is
used (CI has neither a GPU nor Triton); :mod:`sparsebook.sparse_kernels.measure` is the one-process
H200 measurement that writes ``book/data/sparse_kernels_h200.json``.

Experiments (:mod:`~sparsebook.sparse_kernels.experiments`): the CPU sweep
(:class:`ConvConfig`, :func:`run_conv_sweep`; stored by :func:`measure_cpu`), the accuracy cost of the
thresholds on trained gated LMs (:class:`AccuracyConfig`, :func:`run_accuracy`, :func:`accuracy_rows`) and the stored GPU data (:func:`load_h200`,
:func:`gemv_rows`, :func:`layer_rows`, :func:`semi_rows`); figures in
:mod:`~sparsebook.sparse_kernels.figures`.
"""
from sparsebook.sparse_kernels.experiments import (CPU_DATA, DATA, DISPATCH_DATA, AccuracyConfig, ConvConfig, GatedLM,
                                                   accuracy_rows, conv_crossover, conv_speedups, cpu_environment,
                                                   cpu_label, dispatch_rows, dispatch_table, gemv_rows, h200_label,
                                                   layer_rows, load_h200, markov_windows, measure_cpu, ratio_estimate,
                                                   run_accuracy, run_conv_sweep, semi_rows, tokens_per_second, worst)
from sparsebook.sparse_kernels.figures import (plot_accuracy, plot_conv, plot_dispatch, plot_gemv, plot_gemv_times,
                                               plot_layers, plot_semi)
from sparsebook.sparse_kernels.kernels import (MOBILENET_V1_POINTWISE, activation_mask, cats_mlp_reference, cats_threshold,
                                               chess_thresholds, conv1x1_as_matmul, crossover_sparsity, dispatch_crossover,
                                               dispatch_plan, fraction_of_ideal, ideal_speedup, is_two_four,
                                               layer_byte_fraction, random_sparse_weight, sparse_gemv_reference,
                                               sparse_rows_reference, threshold_activation, threshold_for_sparsity,
                                               two_four_mask)

__all__ = [
    "MOBILENET_V1_POINTWISE", "activation_mask", "threshold_for_sparsity", "sparse_gemv_reference",
    "sparse_rows_reference", "cats_mlp_reference", "ideal_speedup", "fraction_of_ideal", "layer_byte_fraction",
    "two_four_mask", "is_two_four", "random_sparse_weight", "conv1x1_as_matmul", "crossover_sparsity",
    "DATA", "CPU_DATA", "cpu_environment", "measure_cpu", "cpu_label", "ConvConfig", "run_conv_sweep", "conv_speedups", "conv_crossover", "load_h200", "ratio_estimate",
    "gemv_rows", "layer_rows", "semi_rows", "tokens_per_second", "worst", "h200_label",
    "plot_gemv", "plot_gemv_times", "plot_semi", "plot_layers", "plot_conv",
    "threshold_activation", "cats_threshold", "chess_thresholds", "dispatch_crossover", "dispatch_plan",
    "AccuracyConfig", "GatedLM", "markov_windows", "run_accuracy", "accuracy_rows", "DISPATCH_DATA", "dispatch_rows",
    "dispatch_table", "plot_accuracy", "plot_dispatch",
]
