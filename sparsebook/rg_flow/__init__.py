"""RG flow of a deep MLP at initialization: criticality, universality classes, finite-width corrections.

Everything here follows *The Principles of Deep Learning Theory* (Roberts, Yaida &
Hanin 2022; "PDLT" below), chapters 3–5 and 8–9, in the book's conventions:

* biases ``b ~ N(0, C_b)``, weights ``W ~ N(0, C_W / n_{l-1})``, preactivations
  ``z^(l+1) = b^(l+1) + W^(l+1) σ(z^(l))`` and ``z^(1) = b^(1) + W^(1) x``;
* ``⟨f⟩_K = E f(z)`` with ``z ~ N(0, K)`` (one input), computed by the trapezoidal rule
  in standardized units (4000 nodes, float64; see :data:`N_NODES`);
* the kernel ``K^(l) = E[z_i^(l) z_i^(l)]`` at infinite width, the four-point vertex
  ``V^(l)`` at leading order in ``1/n`` (normalized so that the connected four-point
  function of one input is ``(1/n_{l-1}) [δδ + δδ + δδ] V^(l)``), and the NTK ``Θ^(l)``.

Where each part lives:

* :mod:`sparsebook.rg_flow.kernels`, the pure math.  Kernels (JAX, float64 inside
  ``jax.enable_x64``): :func:`gaussian_expectation`, :func:`mean_square_activation` (⟨σ²⟩, the one place it is
  computed), :func:`kernel_flow`, :func:`susceptibilities`, :func:`susceptibility_curves`,
  :func:`critical_point`, :func:`universality_class`, :func:`k0_class_constants`,
  :func:`vertex_flow`, :func:`fourth_cumulant_theory`, :func:`exact_fourth_cumulant`,
  :func:`ntk_flow`, :func:`two_input_flow`, :func:`relu_arccos_kernel`,
  :func:`erf_arcsin_kernel`.  The optimal aspect ratio (PDLT appendix A; NumPy):
  :func:`scale_mixture_entropy`, :func:`output_mutual_information`, :func:`lognormal_scales`,
  :func:`mutual_information_coefficients`, :func:`optimal_vertex`, :func:`vertex_slope`,
  :func:`optimal_aspect_ratio`.  The estimator :func:`fourth_cumulant_estimate`.
* :mod:`sparsebook.rg_flow.experiments`, Monte Carlo on real random networks (PyTorch, float32,
  batched ``bmm``): :func:`sample_layer_moments`, :func:`sample_output_scales`,
  :func:`gradient_norms`, :func:`full_scale_device`; and the experiments
  :func:`run_kernel_flows`, :func:`run_phase_diagram`, :func:`run_fourth_cumulant`,
  :func:`run_aspect_ratio`, :func:`run_gradients`, each configured by a frozen dataclass with
  ``preset(scale)``.  The activation family: PolyCom (:func:`run_polycom`) and selectable-activation
  KANs (Yang et al. 2024; :func:`run_skan`, built on the kernels :func:`skan_basis`,
  :func:`skan_features`, :func:`skan_layer`, :func:`skan_select`; pruned by the KAN paper's rule:
  :func:`skan_edge_activations`, :func:`kan_sparsity_penalty`, :func:`kan_prune_nodes`).
* :mod:`sparsebook.rg_flow.figures`, one plotting function per figure (house style) and
  :func:`cumulant_table`; the explorable kernel-flow figure (:func:`explore_kernel_flow`) and the
  try-your-own cell (:func:`try_kernel_flow`).
"""
import os

# JAX on a GPU reserves 75% of the device's memory at its first computation unless told otherwise (about
# 106 GB of an H200).  This chapter's JAX work, float64 quadratures and recursions, needs a few MB, and the
# PyTorch Monte Carlo shares the device: allocate on demand (effective when JAX has not computed yet).
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from sparsebook.rg_flow.experiments import (  # noqa: E402
    AspectRatioConfig, CumulantConfig, GradientConfig, KernelFlowConfig, PhaseDiagramConfig, PolyComConfig, PolyReLU,
    SKAN_TASKS, SKANConfig, run_skan, train_mlp, train_skan,
    full_scale_device, polyrelu_init, run_polycom,
    gradient_norms, run_aspect_ratio, run_fourth_cumulant, run_gradients, run_kernel_flows, run_phase_diagram,
    sample_layer_moments, sample_output_scales,
)
from sparsebook.rg_flow.figures import (  # noqa: E402
    cumulant_table, explore_kernel_flow, plot_angles, plot_aspect_ratio, plot_polycom, plot_skan, plot_skan_pruning, plot_fourth_cumulant, plot_gradients, plot_half_stable,
    plot_kernel_flows, plot_phase_diagram, plot_preactivation_distribution, plot_susceptibilities, plot_try_kernel_flow, plot_vertex_and_ntk, try_kernel_flow,
)
from sparsebook.rg_flow.kernels import (  # noqa: E402
    ACTIVATIONS, N_NODES, CriticalPoint, NoCriticalPoint, activation_fn, chi_parallel, chi_perp, collapse_exponent,
    critical_point, exact_leading_coefficient, leading_coefficient, map_curvature, second_fixed_point,
    erf_arcsin_kernel, exact_fourth_cumulant, flow_step, fourth_cumulant_estimate, fourth_cumulant_theory,
    gaussian_expectation, k0_class_constants, kernel_flow, lognormal_scales, mutual_information_coefficients,
    ntk_flow, optimal_aspect_ratio, optimal_vertex, output_mutual_information, relu_arccos_kernel,
    kernel_map_near_critical, mean_square_activation, scale_mixture_entropy, susceptibilities, susceptibility_curves,
    SKAN_CANDIDATES, kan_prune_nodes, kan_sparsity_penalty, matched_mlp_width, mlp_parameter_count, skan_basis, skan_edge_activations, skan_features, skan_layer,
    skan_parameter_count, skan_select, two_input_flow, universality_class, vertex_flow, vertex_slope,
)

__all__ = [
    # kernels
    "ACTIVATIONS", "N_NODES", "activation_fn", "gaussian_expectation", "kernel_flow", "flow_step",
    "susceptibilities", "susceptibility_curves", "mean_square_activation", "kernel_map_near_critical", "chi_parallel", "chi_perp", "CriticalPoint", "NoCriticalPoint", "critical_point",
    "universality_class", "k0_class_constants", "vertex_flow", "fourth_cumulant_theory",
    "exact_fourth_cumulant", "ntk_flow", "two_input_flow", "relu_arccos_kernel", "erf_arcsin_kernel",
    "fourth_cumulant_estimate", "scale_mixture_entropy", "output_mutual_information", "lognormal_scales",
    "mutual_information_coefficients", "optimal_vertex", "vertex_slope", "optimal_aspect_ratio",
    "exact_leading_coefficient", "leading_coefficient", "collapse_exponent", "map_curvature", "second_fixed_point",
    # experiments
    "sample_layer_moments", "sample_output_scales", "gradient_norms", "full_scale_device",
    "KernelFlowConfig", "PhaseDiagramConfig", "CumulantConfig", "GradientConfig", "AspectRatioConfig",
    "run_kernel_flows", "run_phase_diagram", "run_fourth_cumulant", "run_gradients", "run_aspect_ratio",
    "PolyReLU", "polyrelu_init", "PolyComConfig", "run_polycom",
    "SKAN_TASKS", "SKANConfig", "run_skan", "train_skan", "train_mlp",
    "SKAN_CANDIDATES", "kan_prune_nodes", "kan_sparsity_penalty", "skan_edge_activations", "skan_basis", "skan_features", "skan_layer", "skan_select", "skan_parameter_count",
    "mlp_parameter_count", "matched_mlp_width",
    # figures
    "plot_kernel_flows", "plot_susceptibilities", "plot_preactivation_distribution", "plot_half_stable", "plot_phase_diagram", "plot_vertex_and_ntk", "plot_angles",
    "plot_fourth_cumulant", "plot_gradients", "plot_aspect_ratio", "cumulant_table", "plot_polycom", "plot_skan", "plot_skan_pruning",
    "explore_kernel_flow", "plot_try_kernel_flow", "try_kernel_flow",
]
