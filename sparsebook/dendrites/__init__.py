"""Dendrites and sparse distributed representations (Ahmad & Hawkins 2016).

A dendritic segment with ``s`` synapses onto a population of ``n`` cells fires an
NMDA spike when at least ``theta`` of its synapses see an active cell.  Patterns
are sparse: ``a`` of the ``n`` cells are active.  This package computes the
paper's error probabilities exactly (to relative 1e-12 in double precision, in
log space, far below the underflow of a naive evaluation; or in rational arithmetic),
simulates them by Monte Carlo in JAX, and runs the chapter's experiments.

Where each part lives:

- :mod:`sparsebook.dendrites.kernels`: the exact probabilities (false match, false
  negative, union), the Monte Carlo estimators and ``loglog_slope`` (pure math).
- :mod:`sparsebook.dendrites.experiments`: ``DendritesConfig`` with
  ``preset("ci"|"full")``, the authors' printed numbers (``AUTHORS_*``), the runners
  ``run_scaling``, ``run_noise``, ``run_union``, ``run_optimal_threshold``,
  ``run_authors_value``, ``run_table1``, ``run_monte_carlo``, and the Monte Carlo checks
  (``monte_carlo_estimates``, ``add_monte_carlo_checks``).
- Sparsey (Rinkus 2017): ``sparsey_*`` kernels (CSA code selection, Hebbian storage, retrieval),
  ``superposed_false_match`` (the union property for a coding unit), ``SparseyConfig`` and the
  runners ``run_sparsey_capacity`` and ``run_sparsey_similarity``.
- :mod:`sparsebook.dendrites.figures`: one plotting function per figure; the explorable
  false-match figure (``explore_false_match``) and the try-your-own cell (``try_false_match``).

This module only re-exports the chapter's public names.

Everything here is a hypergeometric tail.  Draw ``m`` items without replacement
from a population of ``N`` that holds ``K`` marked items; the number of marked
items drawn, ``X``, has

    P(X = b) = C(K, b) C(N − K, m − b) / C(N, m)
             = C(m, b) (K)_b (N − K)_{m−b} / (N)_m,                          (H)

with ``(x)_k = x (x − 1) ⋯ (x − k + 1)`` the falling factorial.  The second form
has ``m + 1`` terms, each a sum of at most ``m`` logarithms of integers, so in
log space its relative error is a few ``m·ε`` whatever the size of ``N``.

- False match (paper eq. 1): ``P = Σ_{b ≥ θ} C(s, b) C(n − s, a − b) / C(n, a)``:
  ``X`` = active cells among the ``s`` synapses, population ``n``, ``a`` marked
  (active), ``s`` drawn.
- False negative under noise (paper, "robustness to noise"): ``v`` of the stored
  pattern's ``a`` cells are replaced by cells outside it; the segment (``s``
  synapses onto the pattern) misses when more than ``s − θ`` of its cells are
  among the replaced: ``P = Σ_{b > s − θ} C(s, b) C(a − s, v − b) / C(a, v)``.
- Union (paper, "the union property"): ``M`` patterns of ``s`` synapses each on
  one segment give on average ``n (1 − (1 − s/n)^M)`` distinct synapses.
"""
from sparsebook.dendrites.experiments import (DendritesConfig, SparseyConfig, add_monte_carlo_checks,
                                              monte_carlo_estimates, results_table, run_authors_value,
                                              run_monte_carlo, run_noise, run_noise_monte_carlo,
                                              run_optimal_threshold, run_scaling, run_sparsey_capacity,
                                              run_sparsey_similarity, run_table1, run_union)
from sparsebook.dendrites.figures import (explore_false_match, plot_monte_carlo, plot_noise, plot_optimal_threshold,
                                          plot_scaling, plot_sparsey_capacity, plot_sparsey_crosstalk,
                                          plot_try_false_match, plot_union, try_false_match)
from sparsebook.dendrites.kernels import (MonteCarloResult, binomial_two_sided_p, code_overlap,
                                          false_match_probability, false_match_probability_exact,
                                          false_negative_probability, hypergeom_log_sf,
                                          log_false_match_probability, loglog_slope, nearest_code_correct,
                                          printed_deviation, simulate_false_match, simulate_false_match_numpy,
                                          simulate_false_negative, simulate_noise_overlaps,
                                          simulate_union_false_match, sparsey_choose, sparsey_drive,
                                          sparsey_familiarity, sparsey_learn, sparsey_retrieve, sparsey_store,
                                          sparsey_win_probabilities, superposed_false_match,
                                          union_false_match_exact, union_false_match_probability,
                                          union_size_distribution, union_size_laws, union_synapse_count)

__all__ = [
    "DendritesConfig",
    "SparseyConfig",
    "run_noise_monte_carlo",
    "run_sparsey_capacity",
    "run_sparsey_similarity",
    "plot_sparsey_capacity",
    "plot_sparsey_crosstalk",
    "binomial_two_sided_p",
    "code_overlap",
    "nearest_code_correct",
    "simulate_noise_overlaps",
    "sparsey_choose",
    "sparsey_drive",
    "sparsey_familiarity",
    "sparsey_learn",
    "sparsey_retrieve",
    "sparsey_store",
    "sparsey_win_probabilities",
    "superposed_false_match",
    "union_size_laws",
    "add_monte_carlo_checks",
    "monte_carlo_estimates",
    "results_table",
    "run_authors_value",
    "run_monte_carlo",
    "run_noise",
    "run_optimal_threshold",
    "run_scaling",
    "run_table1",
    "run_union",
    "plot_monte_carlo",
    "plot_noise",
    "plot_optimal_threshold",
    "plot_scaling",
    "plot_union",
    "explore_false_match",
    "plot_try_false_match",
    "try_false_match",
    "MonteCarloResult",
    "false_match_probability",
    "false_match_probability_exact",
    "false_negative_probability",
    "hypergeom_log_sf",
    "log_false_match_probability",
    "loglog_slope",
    "printed_deviation",
    "simulate_false_match",
    "simulate_false_match_numpy",
    "simulate_false_negative",
    "simulate_union_false_match",
    "union_false_match_exact",
    "union_false_match_probability",
    "union_size_distribution",
    "union_synapse_count",
]
