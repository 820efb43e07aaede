"""Experiments of the information_compression chapter: the 12-bit data set, the 12-10-7-5-4-3-2 network
trained as a seeded ensemble, information and coding-rate trajectories of the trained networks, the
frozen configs with ``preset("ci"|"full")`` and their ``run_<experiment>(config, seed)`` runners, and
the checks and tables the chapter prints.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from sparsebook.information_compression.kernels import (
    ESTIMATORS, _entropy_from_counts, adaptive_kde_information, class_coding_rate, coding_rate, coefficient_of_variation,
    compression,
    correlation_contrast, hidden_compression, ista_step, kde_information, layer_information, mssa_step,
    normalize_columns, subspace_coding_rate, unit_tokens,
)
from sparsebook.progress import progress
from sparsebook.stats import Estimate, Results, from_seeds, paired_difference
from sparsebook.scales import check_scale
from sparsebook.seeding import seed_everything
from sparsebook.train import make_optimizer, run_steps
from sparsebook.validate import check_int, check_real

CHAPTER = "information_compression"

# ---------------------------------------------------------------------------
# The 12-bit data set (Shwartz-Ziv & Tishby 2017)
# ---------------------------------------------------------------------------
#: The 30 edges of the icosahedron whose vertices carry the 12 bits.
ICOSAHEDRON_EDGES = (
    (0, 1), (0, 3), (0, 5), (0, 10), (0, 11), (1, 2), (1, 3), (1, 4), (1, 11), (2, 3),
    (2, 4), (2, 8), (2, 9), (3, 8), (3, 10), (4, 6), (4, 9), (4, 11), (5, 6), (5, 7),
    (5, 10), (5, 11), (6, 7), (6, 9), (6, 11), (7, 8), (7, 9), (7, 10), (8, 9), (8, 10),
)
#: The 6 antipodal vertex pairs of the icosahedron.
ANTIPODAL_PAIRS = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))
N_BITS = 12
N_INPUTS = 2 ** N_BITS


def tishby_dataset() -> tuple[np.ndarray, np.ndarray]:
    """All 4096 inputs of the 12-bit task and their labels.

    Row ``r`` of ``X`` is the binary expansion of ``r`` (column 0 the most significant bit).
    With ``k`` the number of ones and ``a, b, c`` the numbers of pairs of "on" bits that are
    icosahedron edges, non-adjacent non-antipodal pairs, and antipodal pairs,
    ``y = 1`` iff ``103 k + 2 a − 22 b − 34 c > 429.5`` (2118 positives, as in the original file).

    Returns
    -------
    X : float32 array (4096, 12) of 0/1
    y : int64 array (4096,) of 0/1
    """
    r = np.arange(N_INPUTS)
    bits = (r[:, None] >> (N_BITS - 1 - np.arange(N_BITS))) & 1
    adj = np.zeros((N_BITS, N_BITS), dtype=np.int64)
    for i, j in ICOSAHEDRON_EDGES:
        adj[i, j] = adj[j, i] = 1
    anti = np.zeros((N_BITS, N_BITS), dtype=np.int64)
    for i, j in ANTIPODAL_PAIRS:
        anti[i, j] = anti[j, i] = 1
    k = bits.sum(1)
    a = np.einsum("ni,ij,nj->n", bits, adj, bits) // 2
    c = np.einsum("ni,ij,nj->n", bits, anti, bits) // 2
    b = k * (k - 1) // 2 - a - c
    y = (103 * k + 2 * a - 22 * b - 34 * c > 429.5).astype(np.int64)
    return bits.astype(np.float32), y


#: SHA-256 of the original labels, packed 8 to a byte (``np.packbits``) in the row order of
#: :func:`tishby_dataset` (row ``r`` = the binary expansion of ``r``): computed once from ``y`` in
#: ``data/var_u.mat`` of the authors' IDNNs code (Shwartz-Ziv & Tishby), whose input rows ``F`` are in
#: that same order.  The file itself is not shipped (it is not needed offline): only its fingerprint.
ORIGINAL_LABELS_SHA256 = "371b2b46a5052b4f69f7991ca141fb5afa1ac364ef7beb81ec900eecac2f86d9"


def label_fingerprint(y) -> str:
    """SHA-256 (hex) of a 0/1 label vector packed 8 labels to a byte, in the given row order.

    Two label vectors of the same length have the same fingerprint iff they are equal (up to a
    hash collision), so comparing it with :data:`ORIGINAL_LABELS_SHA256` compares the labels
    themselves, not only their counts.
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be a non-empty 1-D label vector; got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold only 0/1 labels")
    return hashlib.sha256(np.packbits(y.astype(np.uint8)).tobytes()).hexdigest()


def train_test_split(n: int = N_INPUTS, train_fraction: float = 0.8, seed: int = 0,
                     shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a split of ``range(n)``.

    ``shuffle=True``: a seeded permutation (what this chapter uses).  ``shuffle=False``: the first
    ``round(train_fraction·n)`` rows, as in the original code; on the 12-bit task this leaves a test
    set of inputs with many leading ones, 84% of them positive against 52% overall.
    """
    n = check_int(n, "n", 2)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction!r}")
    n_train = int(round(train_fraction * n))
    n_train = min(max(n_train, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


# ---------------------------------------------------------------------------
# The 12-10-7-5-4-3-2 network, trained as a seeded ensemble in one batched model
# ---------------------------------------------------------------------------
LAYER_SIZES = (12, 10, 7, 5, 4, 3, 2)
#: Activations the chapter trains; tanh and softsign saturate, the others do not (on the positive side).
ACTIVATIONS = ("tanh", "softsign", "relu", "elu", "softplus", "centred_softplus", "leaky_relu")
SATURATING = ("tanh", "softsign")
_LN2 = math.log(2.0)


def activation_fn(name: str):
    """The torch function of activation ``name`` (one of :data:`ACTIVATIONS`).

    ``centred_softplus(x) = softplus(x) − log 2`` (zero at zero).
    """
    fns = {
        "tanh": torch.tanh,
        "softsign": torch.nn.functional.softsign,
        "relu": torch.relu,
        "elu": torch.nn.functional.elu,
        "softplus": torch.nn.functional.softplus,
        "centred_softplus": lambda x: torch.nn.functional.softplus(x) - _LN2,
        "leaky_relu": torch.nn.functional.leaky_relu,
    }
    if name not in fns:
        raise ValueError(f"activation must be one of {ACTIVATIONS}; got {name!r}")
    return fns[name]


def activation_range(name: str) -> tuple[float, float] | None:
    """The fixed range of a bounded activation (for fixed binning), ``None`` if unbounded."""
    activation_fn(name)
    return (-1.0, 1.0) if name in SATURATING else None


#: Initialization gain of the authors' code (Chelombiev et al., ``idnns/networks/model.py``): weights
#: ``~ truncated normal(0, (gain/√n_in)²)`` with ``gain = 2`` (``he = 2.0``) for the ReLU family and 1
#: for tanh (softsign, absent from their code, gets 1 as a saturating activation).
AUTHORS_GAIN = {"tanh": 1.0, "softsign": 1.0, "relu": 2.0, "elu": 2.0, "softplus": 2.0,
                "centred_softplus": 2.0, "leaky_relu": 2.0}


def init_weights(seed: int, sizes=LAYER_SIZES, gain: float = 1.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One network's weights ``W_l`` ``(n_{l+1}, n_l)`` and biases ``(n_{l+1}, 1)`` from seed ``seed``.

    Truncated normal weights, std ``gain/√n_l`` cut at two std (the authors' code:
    ``truncated_normal_initializer(stddev=he/√n_in)``, :data:`AUTHORS_GAIN`), zero biases.
    """
    seed = check_int(seed, "seed", 0)
    gain = check_real(gain, "gain", 0, low_open=True)
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = torch.randn(n_out, n_in, generator=g, dtype=torch.float32)
        while (bad := w.abs() > 2).any():
            w[bad] = torch.randn(int(bad.sum()), generator=g, dtype=torch.float32)
        out.append((w * (gain / math.sqrt(n_in)), torch.zeros(n_out, 1, dtype=torch.float32)))
    return out


def l2_penalty(weights, l2) -> torch.Tensor:
    """The authors' L2 term per network: ``l2_s · Σ_{l < L} ½‖W_l‖²`` (``tf.nn.l2_loss`` of every weight
    matrix but the last, the output layer's).  ``weights``: per layer ``(S, n_{l+1}, n_l)``; ``l2``
    ``(S,)``; returns ``(S,)``."""
    if len(weights) < 2:
        raise ValueError(f"weights must hold at least 2 layers; got {len(weights)}")
    return torch.as_tensor(l2, dtype=weights[0].dtype) * sum(0.5 * (w * w).sum((1, 2)) for w in weights[:-1])


def _groups(activations) -> list[tuple[str, int, int]]:
    """Runs of equal activations: ``[(name, start, stop), ...]``."""
    out = []
    for i, a in enumerate(activations):
        if out and out[-1][0] == a:
            out[-1] = (a, out[-1][1], i + 1)
        else:
            out.append((a, i, i + 1))
    return out


def forward(params, x_t: torch.Tensor, activations) -> list[torch.Tensor]:
    """Every layer's activity for a batch of ``S`` networks, features first.

    ``params``: per layer ``(W (S, n_{l+1}, n_l), b (S, n_{l+1}, 1))``; ``x_t`` ``(12, N)`` shared by the
    networks; ``activations``: ``S`` names (network ``s`` uses ``activations[s]`` in every hidden layer).
    Hidden layers ``T_l = f(W_l T_{l−1} + b_l)``; the last entry is the output logits ``(S, 2, N)``.
    """
    groups = _groups(activations)
    fns = {a: activation_fn(a) for a, _, _ in groups}
    n_models = params[0][0].shape[0]
    if len(activations) != n_models:
        raise ValueError(f"activations must name one activation per network: {n_models} networks, "
                         f"{len(activations)} names")
    h = x_t.expand(n_models, -1, -1)
    outs = []
    for i, (w, b) in enumerate(params):
        h = torch.baddbmm(b, w, h)
        if i < len(params) - 1:
            if len(groups) == 1:
                h = fns[groups[0][0]](h)
            else:
                parts = h.split([s1 - s0 for _, s0, s1 in groups], 0)
                h = torch.cat([fns[a](part) for (a, _, _), part in zip(groups, parts)], 0)
        outs.append(h)
    return outs


def log_epochs(epochs: int, n_records: int) -> np.ndarray:
    """About ``n_records`` distinct epochs from 0 to ``epochs``, log-spaced (0 and ``epochs`` included)."""
    epochs = check_int(epochs, "epochs", 1)
    n_records = check_int(n_records, "n_records", 2)
    return np.unique(np.round(np.geomspace(1, epochs + 1, n_records) - 1).astype(np.int64))


@dataclass
class TrainedNetworks:
    """What :func:`train_networks` returns, for ``S`` networks.

    ``activations``, ``l2``, ``seeds`` ``(S,)`` describe network ``s``; ``epochs`` ``(R,)`` the record
    epochs; ``layers[l]`` float32 ``(S, R, 4096, n_l)``: activity of layer ``l`` on all inputs (the last
    layer is the softmax output); ``train_acc``/``test_acc`` ``(S,)`` at the end; ``loss`` ``(S, epochs)``
    training cross-entropy (without the L2 term).
    """

    activations: tuple
    l2: np.ndarray
    seeds: np.ndarray
    epochs: np.ndarray
    layers: list
    train_acc: np.ndarray
    test_acc: np.ndarray
    loss: np.ndarray

    def select(self, activation: str, l2: float | None = None) -> np.ndarray:
        """Indices of the networks with this activation (and this L2 strength, if given)."""
        mask = np.array([a == activation for a in self.activations])
        if l2 is not None:
            mask &= np.isclose(self.l2, l2)
        return np.flatnonzero(mask)


def train_networks(activations, seeds, epochs: int, lr: float, l2=0.0, n_records: int = 12,
                   train_fraction: float = 0.8, split_seed: int = 0, init: str = "authors",
                   shuffle: bool = True) -> TrainedNetworks:
    """Train ``S`` 12-10-7-5-4-3-2 networks at once with full-batch Adam on the 12-bit task.

    Network ``s`` has activation ``activations[s]``, initial weights from ``seeds[s]``
    (:func:`init_weights`; ``init="authors"``: gain :data:`AUTHORS_GAIN` of the activation, ``"unit"``:
    gain 1) and L2 penalty ``l2[s]`` (a number applies to all).  Loss of network ``s``, in the authors'
    convention: mean cross-entropy on the training split ``+ l2_s · Σ_{hidden l} ½‖W_l‖²``
    (``tf.nn.l2_loss`` of every weight matrix but the output layer's); the losses are summed, so each
    network's gradient is its own.  The split is ``train_test_split(seed=split_seed, shuffle=shuffle)``
    (``shuffle=False``: the authors' unshuffled split, the first 80% of the rows).  The activity of every
    layer on all 4096 inputs is recorded at :func:`log_epochs`.  Deterministic:
    :func:`sparsebook.seed_everything` pins torch to one thread.
    """
    activations = tuple(activations)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    n_models = len(activations)
    if n_models < 1 or seeds.shape[0] != n_models:
        raise ValueError(f"activations and seeds must have the same length >= 1; got {n_models} and {seeds.shape[0]}")
    for a in set(activations):
        activation_fn(a)
    lr = check_real(lr, "lr", 0, low_open=True)
    l2 = np.broadcast_to(np.asarray(l2, dtype=np.float64), (n_models,)).copy()
    if not (np.isfinite(l2).all() and (l2 >= 0).all()):
        raise ValueError(f"l2 must be finite and >= 0; got {l2}")
    if init not in ("authors", "unit"):
        raise ValueError(f"init must be 'authors' or 'unit'; got {init!r}")
    record = log_epochs(epochs, n_records)
    seed_everything(int(seeds[0]))
    X, y = tishby_dataset()
    tr, te = train_test_split(len(y), train_fraction, seed=split_seed, shuffle=shuffle)
    x_all = torch.from_numpy(np.ascontiguousarray(X.T))
    x_tr = torch.from_numpy(np.ascontiguousarray(X[tr].T))
    y_tr = torch.from_numpy(y[tr]).expand(n_models, 1, -1)
    inits = [init_weights(int(s), gain=AUTHORS_GAIN[a] if init == "authors" else 1.0)
             for s, a in zip(seeds, activations)]
    params = [(torch.stack([m[l][0] for m in inits]).requires_grad_(True),
               torch.stack([m[l][1] for m in inits]).requires_grad_(True)) for l in range(len(inits[0]))]
    flat = [p for wb in params for p in wb]
    opt = make_optimizer(flat, "adam", lr)
    l2_t = torch.from_numpy(l2.astype(np.float32))
    use_l2 = bool((l2 > 0).any())
    layers = [np.empty((n_models, len(record), N_INPUTS, n), dtype=np.float32) for n in LAYER_SIZES[1:]]

    def snapshot(pos):
        with torch.no_grad():
            outs = forward(params, x_all, activations)
            outs[-1] = torch.softmax(outs[-1], dim=1)
            for l, o in enumerate(outs):
                layers[l][:, pos] = o.transpose(1, 2).numpy()

    rec_pos = 0
    if record[0] == 0:
        snapshot(0)
        rec_pos = 1

    def objective(ep):
        logits = forward(params, x_tr, activations)[-1]
        ce = -torch.log_softmax(logits, 1).gather(1, y_tr).mean((1, 2))
        loss = ce.sum()
        if use_l2:
            loss = loss + l2_penalty([w for w, _ in params], l2_t).sum()
        return loss, ce

    def on_step(done):
        nonlocal rec_pos
        if rec_pos < len(record) and record[rec_pos] == done:
            snapshot(rec_pos)
            rec_pos += 1

    # (epochs, S) per-network cross-entropies -> (S, epochs)
    losses = np.ascontiguousarray(run_steps(opt, objective, steps=epochs, on_step=on_step).T)
    with torch.no_grad():
        pred = forward(params, x_all, activations)[-1].argmax(1).numpy()
    correct = pred == y[None, :]
    return TrainedNetworks(activations, l2, seeds, record, layers, correct[:, tr].mean(1),
                           correct[:, te].mean(1), losses)


def fixed_ranges(nets: TrainedNetworks, models=None) -> list[list[tuple[float, float]]]:
    """Fixed-binning range per network and layer: ``[-1, 1]`` for bounded activations, ``[0, 1]`` for
    the softmax layer, else the layer's min and max over all recorded epochs (as in the original code)."""
    models = np.arange(len(nets.activations)) if models is None else np.asarray(models)
    out = []
    for s in models:
        bounded = activation_range(nets.activations[s])
        row = []
        for l, arr in enumerate(nets.layers):
            if l == len(nets.layers) - 1:
                row.append((0.0, 1.0))
            elif bounded is not None:
                row.append(bounded)
            else:
                lo, hi = float(arr[s].min()), float(arr[s].max())
                row.append((lo, hi if hi > lo else lo + 1.0))
        out.append(row)
    return out


def information_trajectory(nets: TrainedNetworks, estimator: str = "adaptive", n_bins: int = 30,
                           noise_var: float = 1e-3, rel_noise: float = 0.1, models=None,
                           points=None, records=None) -> np.ndarray:
    """Information plane of trained networks: array ``(S', R', L, 2)`` of ``(I(X;T), I(T;Y))`` in bits.

    ``estimator`` in :data:`ESTIMATORS`.  ``models``: indices of the networks (default all);
    ``points``: indices of the inputs to use (default all 4096; the KDE estimators cost O(N²) and may
    use a subsample); ``records``: indices of the record epochs to evaluate (default all).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    _, y = tishby_dataset()
    idx = np.arange(N_INPUTS) if points is None else np.asarray(points)
    y = y[idx]
    models = np.arange(len(nets.activations)) if models is None else np.asarray(models)
    rec = np.arange(len(nets.epochs)) if records is None else np.asarray(records)
    ranges = fixed_ranges(nets, models) if estimator == "fixed" else None
    out = np.zeros((len(models), len(rec), len(nets.layers), 2))
    for i, s in enumerate(models):
        for j, r in enumerate(rec):
            for l, arr in enumerate(nets.layers):
                t = arr[s, r][idx]
                if estimator == "fixed":
                    out[i, j, l] = layer_information(t, y, n_bins, "fixed", value_range=ranges[i][l])
                elif estimator == "adaptive":
                    out[i, j, l] = layer_information(t, y, n_bins, "adaptive")
                elif estimator == "kde":
                    out[i, j, l] = kde_information(t, y, noise_var)
                else:
                    out[i, j, l] = adaptive_kde_information(t, y, rel_noise)
    return out



def hidden_coding_rates(nets: TrainedNetworks, eps: float = 0.5, models=None) -> np.ndarray:
    """``(S', R, L−1, 2)``: coding rate ``R(Z)`` and class rate ``R^c(Z)`` (nats) of every hidden layer,
    ``Z`` the layer's activity on all inputs, ``(d, 4096)``, with unit-norm columns."""
    _, y = tishby_dataset()
    models = np.arange(len(nets.activations)) if models is None else np.asarray(models)
    n_rec = len(nets.epochs)
    out = np.zeros((len(models), n_rec, len(nets.layers) - 1, 2))
    for i, s in enumerate(models):
        for r in range(n_rec):
            for l, arr in enumerate(nets.layers[:-1]):
                z = normalize_columns(arr[s, r].T)
                out[i, r, l] = coding_rate(z, eps), class_coding_rate(z, y, eps)
    return out


# ---------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlaneConfig:
    """Information-plane experiment.

    Trains ``n_models`` seeds of every activation in ``activations`` without L2, and of every
    activation in ``l2_activations`` with the authors' L2 penalty ``l2`` (their convention, see
    :func:`train_networks`; same seeds, so the comparison is paired), all in one batched run on the
    split ``train_test_split(seed=seed)``, with the authors' initialization.  Measures their
    information planes with fixed and adaptive binning at ``n_bins`` (adaptive only for the L2 runs)
    and at each of ``bins_sweep`` for ``sweep_activations``; and, for ``kde_activations``, with a
    fixed-noise KDE at ``noise_var`` and an adaptive KDE at ``rel_noise`` (every seed, a seeded
    subsample of ``kde_points`` inputs, ``kde_records`` of the record epochs: the KDE costs O(N²)),
    plus, for ReLU, the KDE at each noise of ``kde_sweep``: ``("fixed", σ²)`` or ``("adaptive", rel)``.
    ``init_activations`` are trained once more with unit gain (``init="unit"``, same seeds: the same
    initial weights scaled by 1/2) and measured with fixed and adaptive binning, to show what the
    authors' gain 2 does to their verdicts.  ``split_activations`` are trained once more on the
    authors' unshuffled split (the first 80% of the rows; same seeds, so the same initial weights) and
    measured with fixed and adaptive binning, to show what the skewed split does.
    """

    activations: tuple = ACTIVATIONS
    l2_activations: tuple = ("tanh", "relu")
    l2: float = 0.015
    n_models: int = 5
    epochs: int = 500
    lr: float = 5e-3
    n_records: int = 10
    n_bins: int = 30
    bins_sweep: tuple = (10, 100)
    sweep_activations: tuple = ("tanh", "relu", "elu", "softplus", "centred_softplus", "leaky_relu")
    kde_activations: tuple = ("tanh", "relu")
    kde_points: int = 384
    kde_records: int = 6
    noise_var: float = 1e-3
    rel_noise: float = 0.1
    kde_sweep: tuple = (("fixed", 0.01), ("adaptive", 0.03))
    eps: float = 0.5
    init_activations: tuple = ("relu", "elu")
    split_activations: tuple = ("tanh", "relu")

    @classmethod
    def preset(cls, scale: str) -> "PlaneConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(l2_activations=ACTIVATIONS, n_models=10, epochs=4000, lr=1e-3, n_records=30,
                   kde_points=N_INPUTS, kde_records=12, kde_sweep=(("fixed", 0.01), ("adaptive", 0.03),
                                                                   ("adaptive", 0.05)),
                   init_activations=tuple(a for a in ACTIVATIONS if a not in SATURATING))

    def validate(self) -> "PlaneConfig":
        for a in self.activations + self.l2_activations + self.kde_activations + self.sweep_activations \
                + self.init_activations + self.split_activations:
            activation_fn(a)
        for a in self.kde_activations + self.sweep_activations + self.init_activations + self.split_activations:
            if a not in self.activations:
                raise ValueError("kde_activations, sweep_activations, init_activations and split_activations must "
                                 f"be among activations; got {a!r}")
        check_int(self.n_models, "n_models", 2)
        check_int(self.epochs, "epochs", 1)
        check_int(self.n_records, "n_records", 2)
        check_int(self.n_bins, "n_bins", 2)
        for b in self.bins_sweep:
            check_int(b, "bins_sweep", 2)
        check_int(self.kde_points, "kde_points", 2)
        check_int(self.kde_records, "kde_records", 2)
        if self.kde_points > N_INPUTS:
            raise ValueError(f"kde_points must be <= {N_INPUTS}; got {self.kde_points}")
        if not self.l2 > 0:
            raise ValueError(f"l2 must be > 0; got {self.l2!r}")
        for kind, v in self.kde_sweep:
            if kind not in ("fixed", "adaptive"):
                raise ValueError(f"kde_sweep entries must be ('fixed' | 'adaptive', noise); got {kind!r}")
            check_real(v, "kde_sweep noise", 0, low_open=True)
        for name in ("lr", "noise_var", "rel_noise", "eps"):
            check_real(getattr(self, name), name, 0, low_open=True)
        return self


@dataclass
class PlaneResult:
    """Results of :func:`run_information_plane`.

    ``info[(estimator, activation, l2)]``: ``(S, R', L, 2)`` bits, ``(I(X;T), I(T;Y))`` per seed,
    record and layer (``L = 6``: five hidden layers and the softmax); the KDE entries cover the
    records ``kde_record_index`` only.  ``bins_sweep[(estimator, activation, n_bins)]`` and
    ``kde_sweep[(kind, noise, activation)]``: the same arrays for the swept constants (no L2).
    ``rates[activation]``: ``(S, R, 5, 2)`` nats, ``(R(Z), R^c(Z))`` of the hidden layers without L2.
    ``train_acc``, ``test_acc``, ``final_loss``: ``{(activation, l2): (S,)}``; ``loss``:
    ``{(activation, l2): (S, epochs)}`` training cross-entropy.  ``sample_layers[activation]``: the
    first seed's layer activities ``[(R, 4096, n_l) per layer]`` for the ``kde_activations``.
    ``init_sweep[(estimator, activation)]``: ``(S, R, L, 2)`` bits of the unit-gain runs of
    ``init_activations`` (no L2), fixed and adaptive binning at ``n_bins``.  ``split_sweep``: the
    same for ``split_activations`` trained on the authors' unshuffled split, with ``split_acc[(part,
    activation)]`` ``(S,)`` their train and test accuracy (``part`` in ``"train", "test"``).
    """

    config: PlaneConfig
    epochs: np.ndarray
    info: dict
    rates: dict
    train_acc: dict
    test_acc: dict
    final_loss: dict
    kde_record_index: np.ndarray
    sample_layers: dict
    bins_sweep: dict
    kde_sweep: dict
    loss: dict
    split_seed: int
    init_sweep: dict = field(default_factory=dict)
    split_sweep: dict = field(default_factory=dict)
    split_acc: dict = field(default_factory=dict)


def run_information_plane(config: PlaneConfig, seed: int = 0, scale: str = "ci") -> PlaneResult:
    """Train the networks of ``config`` (seeds ``seed … seed + n_models − 1``, split seed ``seed``) and
    measure their information planes with every estimator, and the coding rates of their hidden layers."""
    if not isinstance(config, PlaneConfig):
        raise TypeError(f"config must be a PlaneConfig; got {type(config).__name__}")
    config.validate()
    seed_everything(seed)
    seeds = list(range(seed, seed + config.n_models))
    runs = [(a, 0.0) for a in config.activations] + [(a, float(config.l2)) for a in config.l2_activations]
    acts = tuple(a for a, _ in runs for _ in seeds)
    l2s = [l2 for _, l2 in runs for _ in seeds]
    nets = train_networks(acts, seeds * len(runs), config.epochs, config.lr, l2s, config.n_records,
                          split_seed=seed)
    kde_rec = np.unique(np.round(np.linspace(0, len(nets.epochs) - 1, config.kde_records)).astype(int))
    pts = np.sort(np.random.default_rng(seed).permutation(N_INPUTS)[:config.kde_points])
    info, rates, tr_acc, te_acc, loss, sample, curves = {}, {}, {}, {}, {}, {}, {}
    bsweep, ksweep = {}, {}
    for act, l2 in progress(runs, desc="information", scale=scale):
        m = nets.select(act, l2)
        for est in (("fixed", "adaptive") if l2 == 0.0 else ("adaptive",)):
            info[(est, act, l2)] = information_trajectory(nets, est, config.n_bins, models=m)
            if l2 == 0.0 and act in config.sweep_activations and (est == "adaptive" or act in ("tanh", "relu")):
                for b in config.bins_sweep:
                    bsweep[(est, act, int(b))] = information_trajectory(nets, est, int(b), models=m)
        if l2 == 0.0 and act in config.kde_activations:
            info[("kde", act, l2)] = information_trajectory(
                nets, "kde", noise_var=config.noise_var, models=m, points=pts, records=kde_rec)
            info[("adaptive_kde", act, l2)] = information_trajectory(
                nets, "adaptive_kde", rel_noise=config.rel_noise, models=m, points=pts, records=kde_rec)
            sample[act] = [arr[m[0]].copy() for arr in nets.layers]
            if act == "relu":
                for kind, v in config.kde_sweep:
                    ksweep[(kind, float(v), act)] = information_trajectory(
                        nets, "kde" if kind == "fixed" else "adaptive_kde", noise_var=float(v),
                        rel_noise=float(v), models=m, points=pts, records=kde_rec)
        if l2 == 0.0:
            rates[act] = hidden_coding_rates(nets, config.eps, models=m)
        tr_acc[(act, l2)], te_acc[(act, l2)] = nets.train_acc[m], nets.test_acc[m]
        loss[(act, l2)] = nets.loss[m, -1]
        curves[(act, l2)] = nets.loss[m]
    isweep = {}
    if config.init_activations:                       # last, so the runs above are unchanged by it
        acts_u = tuple(a for a in config.init_activations for _ in seeds)
        nets_u = train_networks(acts_u, seeds * len(config.init_activations), config.epochs, config.lr, 0.0,
                                config.n_records, split_seed=seed, init="unit")
        for act in config.init_activations:
            m = nets_u.select(act)
            for est in ("fixed", "adaptive"):
                isweep[(est, act)] = information_trajectory(nets_u, est, config.n_bins, models=m)
    ssweep, sacc = {}, {}
    if config.split_activations:                      # last as well: the runs above are unchanged by it
        acts_s = tuple(a for a in config.split_activations for _ in seeds)
        nets_s = train_networks(acts_s, seeds * len(config.split_activations), config.epochs, config.lr, 0.0,
                                config.n_records, shuffle=False)
        for act in config.split_activations:
            m = nets_s.select(act)
            sacc[("train", act)], sacc[("test", act)] = nets_s.train_acc[m], nets_s.test_acc[m]
            for est in ("fixed", "adaptive"):
                ssweep[(est, act)] = information_trajectory(nets_s, est, config.n_bins, models=m)
    return PlaneResult(config, nets.epochs, info, rates, tr_acc, te_acc, loss, kde_rec, sample,
                       bsweep, ksweep, curves, seed, isweep, ssweep, sacc)


@dataclass(frozen=True)
class GeneralizationConfig:
    """Compression vs generalization: ``n_models`` initializations of one activation, one split."""

    activation: str = "tanh"
    n_models: int = 16
    epochs: int = 500
    lr: float = 5e-3
    l2: float = 0.0
    n_records: int = 10
    n_bins: int = 30
    n_boot: int = 2000
    level: float = 0.95

    @classmethod
    def preset(cls, scale: str) -> "GeneralizationConfig":
        check_scale(scale)
        if scale == "ci":
            return cls()
        return cls(n_models=64, epochs=4000, lr=1e-3, n_records=30)

    def validate(self) -> "GeneralizationConfig":
        activation_fn(self.activation)
        check_int(self.n_models, "n_models", 3)
        check_int(self.epochs, "epochs", 1)
        check_int(self.n_records, "n_records", 2)
        check_int(self.n_bins, "n_bins", 2)
        check_int(self.n_boot, "n_boot", 10)
        check_real(self.lr, "lr", 0, low_open=True)
        if not (self.l2 >= 0):
            raise ValueError(f"l2 must be >= 0; got {self.l2!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1); got {self.level!r}")
        return self


def run_generalization(config: GeneralizationConfig, seed: int = 0) -> dict:
    """Per-layer compression (adaptive binning) against test accuracy across seeds.

    Seeds ``1000 + seed … 1000 + seed + n_models − 1`` (disjoint from the information-plane runs), split
    ``train_test_split(seed=seed)``.  Returns ``{"compression": (S, L) bits, "test_acc": (S,),
    "train_acc": (S,)}`` and the entries of :func:`correlation_contrast` at ``level``: Pearson r of
    each layer's compression with test accuracy, its bootstrap interval, and the contrast "softmax
    layer minus the mean hidden layer".
    """
    if not isinstance(config, GeneralizationConfig):
        raise TypeError(f"config must be a GeneralizationConfig; got {type(config).__name__}")
    config.validate()
    seed_everything(seed)
    seeds = list(range(1000 + seed, 1000 + seed + config.n_models))
    nets = train_networks((config.activation,) * config.n_models, seeds, config.epochs, config.lr,
                          config.l2, config.n_records, split_seed=seed)
    comp = compression(information_trajectory(nets, "adaptive", config.n_bins)[..., 0])
    out = {"compression": comp, "test_acc": nets.test_acc, "train_acc": nets.train_acc}
    out.update(correlation_contrast(comp, nets.test_acc, config.n_boot, config.level, seed=seed))
    return out


def correlation_estimate(r: float, lo: float, hi: float, n: int, se: float | None = None) -> Estimate:
    """A correlation over ``n`` networks with its bootstrap interval, as a ``seeds`` :class:`Estimate`
    (compared within its interval by the notebook regression); ``se`` defaults to the interval's
    width over 2·1.96."""
    r, lo, hi = float(r), float(lo), float(hi)
    if not all(np.isfinite([r, lo, hi])):
        raise ValueError(f"r, lo and hi must be finite; got {r}, {lo}, {hi}")
    se = (hi - lo) / (2 * 1.959964) if se is None or not np.isfinite(se) else float(se)
    return Estimate(r, min(lo, r), max(hi, r), "seeds", int(n), se, (), "bootstrap")


def variation_across_seeds(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Coefficient of variation (:func:`~.kernels.coefficient_of_variation`) of one value per network,
    with a percentile bootstrap interval over networks (``scipy.stats.bootstrap``, seeded), as a
    ``seeds`` :class:`Estimate`."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D (one value per network); got shape {values.shape}")
    cv = float(coefficient_of_variation(values))
    check_int(n_boot, "n_boot", 10)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    def _cv(v, axis=-1):                     # lenient inside resamples: a zero mean gives inf/nan, not an error
        with np.errstate(divide="ignore", invalid="ignore"):
            return v.std(axis=axis, ddof=1) / v.mean(axis=axis)

    ci = stats.bootstrap((values,), _cv, n_resamples=n_boot, confidence_level=level,
                         method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    lo, hi = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
    return Estimate(cv, min(lo, cv), max(hi, cv), "seeds", int(values.size), float(ci.standard_error), (),
                    "bootstrap")


def seed_compression(res: PlaneResult, estimator: str, activation: str, l2: float = 0.0,
                     n_bins: int | None = None, kde: tuple | None = None, init: str = "authors") -> Estimate:
    """Hidden-layer compression of ``activation`` over the seeds (:func:`sparsebook.stats.from_seeds`).

    ``n_bins`` picks a run of the bins sweep, ``kde = (kind, noise)`` one of the KDE sweep,
    ``init="unit"`` the unit-gain runs (``init_sweep``)."""
    if init not in ("authors", "unit"):
        raise ValueError(f"init must be 'authors' or 'unit'; got {init!r}")
    if init == "unit":
        info = res.init_sweep[(estimator, activation)]
    elif kde is not None:
        info = res.kde_sweep[(kde[0], float(kde[1]), activation)]
    elif n_bins is not None and n_bins != res.config.n_bins:
        info = res.bins_sweep[(estimator, activation, int(n_bins))]
    else:
        info = res.info[(estimator, activation, float(l2))]
    return from_seeds(hidden_compression(info))


@dataclass(frozen=True)
class CrateConfig:
    """A weight-tied stack of CRATE blocks (Yu et al. 2023) on the 12-bit words, untrained.

    Each word is a set of 12 tokens, token ``j`` = the embedding of bit value ``x_j`` plus a positional
    embedding (random normal, dimension ``d``).  A block normalizes the tokens, takes one MSSA step
    (``heads`` random orthonormal subspaces of dimension ``d/heads``, step ``step``), normalizes, and
    one ISTA step (random orthogonal dictionary, ``eta``, ``lam``).  ``n_words`` words, ``layers``
    blocks, ``n_seeds`` draws of the random weights."""

    n_words: int = 256
    d: int = 16
    heads: int = 4
    layers: int = 6
    step: float = 0.5
    eta: float = 0.1
    lam: float = 0.1
    eps: float = 0.5
    n_seeds: int = 5

    @classmethod
    def preset(cls, scale: str) -> "CrateConfig":
        check_scale(scale)
        return cls() if scale == "ci" else cls(n_words=N_INPUTS, n_seeds=20)

    def validate(self) -> "CrateConfig":
        check_int(self.n_words, "n_words", 2)
        if self.n_words > N_INPUTS:
            raise ValueError(f"n_words must be <= {N_INPUTS}; got {self.n_words}")
        check_int(self.d, "d", 2)
        check_int(self.heads, "heads", 1)
        if self.d % self.heads:
            raise ValueError(f"heads must divide d; got d={self.d}, heads={self.heads}")
        check_int(self.layers, "layers", 1)
        check_int(self.n_seeds, "n_seeds", 2)
        check_real(self.step, "step", 0, 1)
        for name in ("eta", "eps"):
            check_real(getattr(self, name), name, 0, low_open=True)
        check_real(self.lam, "lam", 0)
        return self


def run_crate_block(config: CrateConfig, seed: int = 0) -> dict:
    """Coding rate and sparsity through the CRATE stack of ``config``, weights drawn from ``seed``.

    Returns ``{"rc_in": (layers,), "rc_mssa": (layers,), "rc_out": (layers + 1,), "sparsity": (layers,)}``:
    mean over words of ``R^c(Z; U)`` (:func:`subspace_coding_rate`, nats) of the normalized tokens entering
    each MSSA step and leaving it, of the normalized tokens entering the stack and leaving every block,
    and the fraction of zero coordinates after each ISTA step."""
    if not isinstance(config, CrateConfig):
        raise TypeError(f"config must be a CrateConfig; got {type(config).__name__}")
    config.validate()
    rng = np.random.default_rng(seed)
    d, k = config.d, config.heads
    X, _ = tishby_dataset()
    words = X[np.sort(rng.permutation(N_INPUTS)[:config.n_words])]            # (W, 12)
    bit_emb = rng.normal(size=(2, d)) / math.sqrt(d)
    pos_emb = rng.normal(size=(N_BITS, d)) / math.sqrt(d)
    z = (bit_emb[words.astype(int)] + pos_emb[None]).transpose(0, 2, 1)       # (W, d, 12)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    u = q.T.reshape(k, d // k, d).transpose(0, 2, 1)                          # (K, d, p), orthonormal
    dmat, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rc_in, rc_mssa, sparsity = [], [], []
    rc_out = [float(subspace_coding_rate(unit_tokens(z), u, config.eps).mean())]
    for _ in range(config.layers):
        zn = unit_tokens(z)
        rc_in.append(float(subspace_coding_rate(zn, u, config.eps).mean()))
        zh = mssa_step(zn, u, config.step)
        rc_mssa.append(float(subspace_coding_rate(zh, u, config.eps).mean()))
        z = ista_step(unit_tokens(zh), dmat, config.eta, config.lam)
        sparsity.append(float((z == 0).mean()))
        rc_out.append(float(subspace_coding_rate(unit_tokens(z), u, config.eps).mean()))
    return {"rc_in": np.array(rc_in), "rc_mssa": np.array(rc_mssa), "rc_out": np.array(rc_out),
            "sparsity": np.array(sparsity)}


# ---------------------------------------------------------------------------
# Summaries and checks for the chapter
# ---------------------------------------------------------------------------
LAYER_NAMES = ("10", "7", "5", "4", "3", "softmax")


def compression_results(res: PlaneResult) -> Results:
    """Per activation: hidden-layer compression (bits) with fixed and adaptive binning and test
    accuracy, each over the seeds with its 95% interval."""
    vals = {}
    for act in res.config.activations:
        vals[f"{act}: fixed binning (bits)"] = seed_compression(res, "fixed", act)
        vals[f"{act}: adaptive binning (bits)"] = seed_compression(res, "adaptive", act)
        vals[f"{act}: test accuracy"] = from_seeds(res.test_acc[(act, 0.0)])
    return Results(vals, title=f"hidden-layer compression and test accuracy, {res.config.n_models} seeds")


def sweep_results(res: PlaneResult) -> Results:
    """Hidden-layer compression (bits, over the seeds) at every swept estimator constant: the number of
    bins for fixed binning (tanh, ReLU) and adaptive binning, and the KDE noise for ReLU."""
    cfg = res.config
    vals = {}
    bins = sorted({cfg.n_bins, *cfg.bins_sweep})
    for est, acts in (("fixed", ("tanh", "relu")), ("adaptive", cfg.sweep_activations)):
        for act in acts:
            for b in bins:
                vals[f"{est} binning, {act}, {b} bins"] = seed_compression(res, est, act, n_bins=b)
    if "relu" in cfg.kde_activations:
        kde = [("fixed", cfg.noise_var), ("adaptive", cfg.rel_noise)] + [(k, float(v)) for k, v in cfg.kde_sweep]
        for kind, v in sorted(kde):
            name = f"fixed KDE σ² = {v:g}" if kind == "fixed" else f"adaptive KDE σ = {v:g}·max|t|"
            main = (kind, v) in (("fixed", cfg.noise_var), ("adaptive", cfg.rel_noise))
            e = (seed_compression(res, "kde" if kind == "fixed" else "adaptive_kde", "relu") if main
                 else seed_compression(res, "", "relu", kde=(kind, v)))
            vals[f"{name}, relu"] = e
    return Results(vals, title="hidden-layer compression (bits) against the estimator's constant")


def init_results(res: PlaneResult) -> Results:
    """Hidden-layer compression (bits, over the seeds) of ``init_activations`` with the authors' gain
    (:data:`AUTHORS_GAIN`) and with unit gain, fixed and adaptive binning, and their paired difference
    (same seeds: the same initial weights, scaled)."""
    vals = {}
    for act in res.config.init_activations:
        g = AUTHORS_GAIN[act]
        for est in ("fixed", "adaptive"):
            a = hidden_compression(res.info[(est, act, 0.0)])
            u = hidden_compression(res.init_sweep[(est, act)])
            vals[f"{est} binning, {act}: authors' gain {g:g}"] = from_seeds(a)
            vals[f"{est} binning, {act}: unit gain"] = from_seeds(u)
            vals[f"{est} binning, {act}: gain {g:g} minus unit (paired)"] = paired_difference(a, u)
    return Results(vals, title=f"hidden-layer compression (bits) against the initialization, {res.config.n_models} seeds")


def split_results(res: PlaneResult) -> Results:
    """Test accuracy and hidden-layer compression (fixed and adaptive binning) of ``split_activations``
    on the seeded shuffled split (the chapter's) and on the authors' unshuffled split, with paired
    differences (same seeds: the same initial weights)."""
    vals = {}
    for act in res.config.split_activations:
        acc_s, acc_o = res.test_acc[(act, 0.0)], res.split_acc[("test", act)]
        vals[f"{act}: test accuracy, shuffled split (seed {res.split_seed})"] = from_seeds(acc_s)
        vals[f"{act}: test accuracy, original unshuffled split"] = from_seeds(acc_o)
        vals[f"{act}: test accuracy, original minus shuffled (paired)"] = paired_difference(acc_o, acc_s)
        vals[f"{act}: train accuracy, original unshuffled split"] = from_seeds(res.split_acc[("train", act)])
        for est in ("fixed", "adaptive"):
            c_s = hidden_compression(res.info[(est, act, 0.0)])
            c_o = hidden_compression(res.split_sweep[(est, act)])
            vals[f"{act}, {est} binning: compression, original minus shuffled split (bits, paired)"] = \
                paired_difference(c_o, c_s)
    return Results(vals, title=f"the authors' unshuffled split against a shuffled one, {res.config.n_models} seeds")


def invariance_check(layers, warp=np.sinh, n_bins: int = 30) -> dict:
    """Apply a strictly increasing ``warp`` to every recorded layer of one network and compare the
    information estimates: ``{"adaptive": max |ΔI|, "fixed": max |ΔI|}`` in bits over layers, records
    and both coordinates (fixed binning on each layer's own range)."""
    _, y = tishby_dataset()
    out = {"adaptive": 0.0, "fixed": 0.0}
    for arr in layers:
        for t in arr:
            t64 = t.astype(np.float64)
            for est in out:
                a = np.array(layer_information(t64, y, n_bins, est))
                b = np.array(layer_information(warp(t64), y, n_bins, est))
                out[est] = max(out[est], float(np.abs(a - b).max()))
    return out


def bounds_hold(res: PlaneResult, tol: float = 1e-9) -> bool:
    """Every estimate of ``res`` satisfies ``0 <= I(T;Y) <= H(Y)``, ``0 <= I(X;T) <= log2 N``."""
    _, y = tishby_dataset()
    h_y = _entropy_from_counts(np.bincount(y))
    ok = True
    for (est, _, _), v in res.info.items():
        n = res.config.kde_points if est in ("kde", "adaptive_kde") else N_INPUTS
        ok &= bool((v >= -tol).all() and (v[..., 1] <= h_y + tol).all() and (v[..., 0] <= math.log2(n) + tol).all())
    return ok
