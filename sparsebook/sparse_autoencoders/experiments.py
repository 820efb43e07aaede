"""Data with known features, the batched trainers, and the chapter's experiments.

Every model here is held as a dict of parameter tensors with a leading *member* axis ``S`` (one
member per seed, or per seed × condition): one optimiser over the stacked tensors trains all
members at once, and the summed loss gives each member the gradient of its own loss, so S
autoencoders cost about as much as one (Adam acts element by element).  All training goes through
:func:`sparsebook.train.run_steps`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from sparsebook.seeding import seed_everything
from sparsebook.train import make_optimizer, run_steps
from sparsebook.validate import check_int
from sparsebook.sparse_autoencoders import kernels as K

N_SEEDS = {"ci": 5, "full": 10}


def device_for(scale: str) -> torch.device:
    """CPU at ``ci``; the GPU at ``full`` when one is present."""
    if scale not in N_SEEDS:
        raise ValueError(f"scale must be one of {sorted(N_SEEDS)}; got {scale!r}")
    return torch.device("cuda") if scale == "full" and torch.cuda.is_available() else torch.device("cpu")


def seeds_for(scale: str, seed: int = 0) -> list[int]:
    """``N_SEEDS[scale]`` consecutive seeds starting at ``seed``."""
    check_int(seed, "seed", 0)
    if scale not in N_SEEDS:
        raise ValueError(f"scale must be one of {sorted(N_SEEDS)}; got {scale!r}")
    return list(range(seed, seed + N_SEEDS[scale]))


class _Preset:
    """``preset("ci")`` is the class's defaults; ``preset("full")`` overrides them with ``FULL``."""
    FULL: ClassVar[dict] = {}

    @classmethod
    def preset(cls, scale: str):
        if scale == "ci":
            return cls()
        if scale == "full":
            return cls(**cls.FULL)
        raise ValueError(f"scale must be 'ci' or 'full'; got {scale!r}")


# ---------------------------------------------------------------------------
# synthetic superposition
# ---------------------------------------------------------------------------
def firing_probabilities(n_features: int, mean_p: float, zipf: float = 0.0) -> np.ndarray:
    """Per-feature firing probabilities with mean ``mean_p``: uniform (``zipf = 0``) or Zipfian
    ``p_i ∝ (i+1)^(−zipf)``, capped at 1."""
    n_features = check_int(n_features, "n_features", 1)
    if not 0 < mean_p <= 1:
        raise ValueError(f"mean_p must be in (0, 1]; got {mean_p}")
    w = np.arange(1, n_features + 1, dtype=float) ** (-float(zipf))
    return np.minimum(1.0, w * mean_p * n_features / w.sum())


def random_dictionary(n_features: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n_features`` unit-norm random directions in ``dim`` dimensions, ``[F, d]``."""
    D = rng.standard_normal((check_int(n_features, "n_features", 1), check_int(dim, "dim", 1)))
    return D / np.linalg.norm(D, axis=1, keepdims=True)


def sparse_codes(n: int, probs: np.ndarray, rng: np.random.Generator, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Codes ``a [n, F]``: feature i fires with probability ``probs[i]``, magnitude Uniform(low, high)."""
    fire = rng.random((n, len(probs))) < probs
    return fire * rng.uniform(low, high, (n, len(probs)))


def superposition(n: int, n_features: int, dim: int, mean_p: float, zipf: float, rng) -> dict:
    """``x = a D``: sparse codes over a random unit-norm dictionary; returns ``x, a, D`` (float32 x)."""
    D = random_dictionary(n_features, dim, rng)
    a = sparse_codes(n, firing_probabilities(n_features, mean_p, zipf), rng)
    return {"x": (a @ D).astype(np.float32), "a": a, "D": D}


# ---------------------------------------------------------------------------
# the batched trainer and the batched sparse autoencoder
# ---------------------------------------------------------------------------
def train_members(params: dict, member_loss, *, steps: int, lr: float, on_step=None) -> np.ndarray:
    """Adam on stacked parameters ``[S, ...]``: ``member_loss(step) -> [S]`` losses; the summed loss is
    differentiated (each member gets its own gradient).  Returns the logged losses ``[steps, S]``."""
    opt = make_optimizer(params.values(), "adam", lr)

    def objective(s):
        per = member_loss(s)
        return per.sum(), per

    return run_steps(opt, objective, steps=steps, on_step=on_step)


def init_sae(members: int, d_in: int, m: int, d_out: int, gen: torch.Generator, device="cpu") -> dict:
    """Stacked TopK-autoencoder parameters: ``W_enc [S, d_in, m]`` (Kaiming-uniform), ``W_dec [S, m, d_out]``
    unit-norm rows (the encoder's transpose when ``d_in = d_out``, Gao et al.'s initialisation), zero biases."""
    bound = 1 / math.sqrt(d_in)
    W_enc = (torch.rand(members, d_in, m, generator=gen) * 2 - 1) * bound
    W_dec = W_enc.transpose(1, 2).clone() if d_in == d_out else torch.randn(members, m, d_out, generator=gen)
    W_dec = F.normalize(W_dec, dim=-1)
    p = {"W_enc": W_enc, "b_enc": torch.zeros(members, m), "W_dec": W_dec, "b_dec": torch.zeros(members, d_out)}
    return {k: v.to(device).requires_grad_(True) for k, v in p.items()}


def sae_pre(p: dict, x: torch.Tensor) -> torch.Tensor:
    """Encoder pre-activations ``x W_enc + b_enc``: x ``[S, ..., B, d_in]`` → ``[S, ..., B, m]``."""
    shape = x.shape
    xf = x.reshape(shape[0], -1, shape[-1])
    pre = torch.einsum("sbd,sdm->sbm", xf, p["W_enc"]) + p["b_enc"][:, None]
    return pre.reshape(*shape[:-1], pre.shape[-1])


def sae_decode(p: dict, z: torch.Tensor) -> torch.Tensor:
    """``z W_dec + b_dec``: z ``[S, ..., B, m]`` → ``[S, ..., B, d_out]``."""
    shape = z.shape
    out = torch.einsum("sbm,smd->sbd", z.reshape(shape[0], -1, shape[-1]), p["W_dec"]) + p["b_dec"][:, None]
    return out.reshape(*shape[:-1], out.shape[-1])


def _per_member(value, S: int, name: str) -> list:
    """A per-member list of length S from one value or a list."""
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * S
    if len(vals) != S:
        raise ValueError(f"{name} must be one value or one per member ({S}); got {len(vals)}")
    return vals


def sae_codes(p: dict, x: torch.Tensor, rule, k, grad=None, gsae=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse codes ``z = relu(pre)·mask``; ``rule`` and ``k`` are one value or one per member (members
    with the same pair are allocated together); ``gsae [S]`` bool marks members that select by
    :func:`~kernels.gradient_topk_mask` with ``grad``.  Returns ``(z, pre)``."""
    pre = sae_pre(p, x)
    S = pre.shape[0]
    rules, ks = _per_member(rule, S, "rule"), _per_member(k, S, "k")
    groups: dict = {}
    for i, rk in enumerate(zip(rules, ks)):
        groups.setdefault(rk, []).append(i)
    if len(groups) == 1:
        mask = K.allocate(pre, rules[0], ks[0])
    else:
        mask = torch.zeros_like(pre, dtype=torch.bool)
        for (r, kk), idx in groups.items():
            idx = torch.tensor(idx, device=pre.device)
            mask[idx] = K.allocate(pre[idx], r, kk)
    if gsae is not None and bool(gsae.any()):
        w = p["W_dec"].detach()
        w = w.view(w.shape[0], *([1] * (pre.ndim - 3)), *w.shape[1:])
        gmask = K.gradient_topk_mask(pre, grad, w, ks[0])
        sel = gsae.view(-1, *([1] * (pre.ndim - 1)))
        mask = torch.where(sel, gmask, mask)
    return torch.relu(pre) * mask, pre


def normalize_decoder(p: dict) -> None:
    """Project the decoder rows back to unit norm (after every step)."""
    with torch.no_grad():
        p["W_dec"].copy_(F.normalize(p["W_dec"], dim=-1))


def train_sae(x_in: torch.Tensor, target: torch.Tensor, *, m: int, k, rule="topk", steps: int, lr: float,
              batch: int, seed: int, aux=None, aux_coef: float = 1 / 32, k_aux: int | None = None,
              dead_steps: int = 50, grad=None, gsae=None, record_every: int = 0, device="cpu") -> dict:
    """Train S autoencoders at once: member s encodes ``x_in[s]`` ``[N, d_in]`` and reconstructs
    ``target[s]`` ``[N, d_out]`` (an SAE when they are equal, a transcoder when not).

    ``rule``, ``k`` and ``aux`` (None, "auxk" or "zipf") are one value or one per member.  Loss per
    member: FVU of the batch + ``aux_coef``·(AuxK or aux-Zipf loss); a latent is dead after
    ``dead_steps`` steps without firing (Gao et al.'s criterion, counted in steps of ``batch`` tokens).
    ``record_every``: log the dead fraction every that many steps.
    Returns ``{"params", "loss" [steps, S], "dead_curve" [T, S], "curve_steps" [T]}``.
    """
    S, N, d_in = x_in.shape
    auxs = _per_member(aux, S, "aux")
    if any(a not in (None, "auxk", "zipf") for a in auxs):
        raise ValueError(f"aux must be None, 'auxk' or 'zipf'; got {aux!r}")
    ks = _per_member(k, S, "k")
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    p = init_sae(S, d_in, m, target.shape[-1], gen, device)
    with torch.no_grad():
        p["b_dec"].copy_(target.mean(1))
    order = torch.randint(0, N, (steps, S, batch), generator=gen).to(device)
    since = torch.zeros(S, m, device=device)
    freq = torch.tensor([[kk / m] * m for kk in ks], device=device)
    use_auxk = torch.tensor([a == "auxk" for a in auxs], device=device)
    use_zipf = torch.tensor([a == "zipf" for a in auxs], device=device)
    k_aux = min(k_aux or max(1, x_in.shape[-1] // 2), m)
    targets = torch.tensor(np.stack([K.zipf_targets(m, kk) for kk in ks]), dtype=torch.float32, device=device)
    curve, curve_steps = [], []

    def take(t, idx):
        return torch.gather(t, 1, idx[..., None].expand(-1, -1, t.shape[-1]))

    def loss(s):
        idx = order[s]
        xb, yb = take(x_in, idx), take(target, idx)
        gb = take(grad, idx) if grad is not None else None
        z, pre = sae_codes(p, xb, rule, k, gb, gsae)
        yhat = sae_decode(p, z)
        per = K.fvu(yb, yhat)
        with torch.no_grad():
            fired = (z != 0).any(1)
            since.mul_(~fired).add_(1)
            freq.mul_(0.9).add_(0.1 * (z != 0).float().mean(1))
        if bool(use_auxk.any() or use_zipf.any()):
            resid = (yb - yhat).detach()
            u = torch.where(use_auxk[:, None], (since > dead_steps).float(), K.zipf_underuse(freq, targets))
            u = u * (use_auxk | use_zipf)[:, None]
            per = per + aux_coef * torch.nan_to_num(K.aux_zipf_loss(resid, pre, u, p["W_dec"], k_aux))
        return per

    def on_step(s):
        normalize_decoder(p)
        if record_every and (s % record_every == 0 or s == steps):
            curve.append((since > dead_steps).float().mean(1).cpu().numpy())
            curve_steps.append(s)

    losses = train_members(p, loss, steps=steps, lr=lr, on_step=on_step)
    return {"params": {k_: v.detach() for k_, v in p.items()}, "loss": losses,
            "dead_curve": np.array(curve), "curve_steps": np.array(curve_steps)}


@torch.no_grad()
def encode_eval(p: dict, x: torch.Tensor, rule: str, k: int, batch: int, grad=None, gsae=None):
    """Codes and reconstructions of held-out ``x [S, N, d]`` in batches of ``batch`` tokens (the
    batch-level rules allocate within each batch); returns ``(z [S, N, m], xhat [S, N, d_out])``."""
    S, N, d = x.shape
    nb = N // batch
    xb = x[:, : nb * batch].reshape(S, nb, batch, d)
    gb = grad[:, : nb * batch].reshape(S, nb, batch, -1) if grad is not None else None
    z, _ = sae_codes(p, xb, rule, k, gb, gsae)
    return z.reshape(S, nb * batch, -1), sae_decode(p, z).reshape(S, nb * batch, -1)


# ---------------------------------------------------------------------------
# experiment 1: allocation rules and auxiliary losses on synthetic superposition
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AllocationConfig(_Preset):
    """Synthetic superposition (``n_features`` in ``dim``) and the SAEs trained on it."""
    n_features: int = 64
    dim: int = 16
    m: int = 128
    k: int = 4
    mean_p: float = 0.04
    zipf: float = 1.0
    n_train: int = 8192
    n_eval: int = 4096
    steps: int = 600
    batch: int = 128
    lr: float = 3e-3
    dead_steps: int = 100
    record_every: int = 20
    sweep_k: tuple = (2, 8)

    FULL: ClassVar[dict] = dict(n_features=256, dim=64, m=512, k=8, mean_p=0.02, n_train=65536, n_eval=16384, steps=4000,
                       batch=512, dead_steps=200, record_every=100, sweep_k=(2, 4, 16, 32))


DATASETS = ("uniform", "zipf")
ALLOC_RUNS = (("topk", None), ("topk", "auxk"), ("mutual", None), ("mutual", "zipf"), ("feature", None))


def allocation_data(cfg: AllocationConfig, seeds) -> dict:
    """Per seed and firing law, a train and an eval set on one dictionary per seed:
    arrays ``x_train [2S, N, d]`` ordered (uniform seeds..., zipf seeds...), codes and dictionaries."""
    xs, xe, ae, Ds = [], [], [], []
    for name, zipf in (("uniform", 0.0), ("zipf", cfg.zipf)):
        for s in seeds:
            rng = np.random.default_rng([s, 17])
            D = random_dictionary(cfg.n_features, cfg.dim, rng)
            probs = firing_probabilities(cfg.n_features, cfg.mean_p, zipf)
            a_tr, a_ev = sparse_codes(cfg.n_train, probs, rng), sparse_codes(cfg.n_eval, probs, rng)
            xs.append(a_tr @ D), xe.append(a_ev @ D), ae.append(a_ev), Ds.append(D)
    f = lambda v: torch.tensor(np.stack(v), dtype=torch.float32)
    return {"x_train": f(xs), "x_eval": f(xe), "a_eval": ae, "D": Ds}


def run_allocation(cfg: AllocationConfig, seeds, device="cpu", part: str = "all") -> dict:
    """TopK, TopK + AuxK, Mutual Choice, Mutual Choice + aux-Zipf and Feature Choice SAEs at the same
    total budget ``k·B``, each on uniform and Zipfian firing, and the three rules without auxiliary
    loss at every ``k`` of ``sweep_k``: all trained as one batched computation (2 × len(seeds) members
    per condition, one dictionary per seed shared by the conditions).

    Returns ``{"runs": {(rule, aux): metrics, arrays [2S] (uniform seeds, then zipf)},
    "sweep": {(rule, k): metrics}, "n_seeds"}``.  ``part``: "main" (the variants at k), "sweep" (the
    other k) or "all"; the two parts are independent trainings on the same data."""
    if part not in ("all", "main", "sweep"):
        raise ValueError(f"part must be 'all', 'main' or 'sweep'; got {part!r}")
    seeds = list(seeds)
    seed_everything(seeds[0])
    data = allocation_data(cfg, seeds)
    main = [(r, a, cfg.k) for r, a in ALLOC_RUNS] if part != "sweep" else []
    conds = main + ([(r, None, k) for k in cfg.sweep_k for r in K.RULES] if part != "main" else [])
    n = data["x_train"].shape[0]
    rules = [r for r, _, _ in conds for _ in range(n)]
    auxs = [a for _, a, _ in conds for _ in range(n)]
    ks = [k for _, _, k in conds for _ in range(n)]
    x = data["x_train"].to(device).repeat(len(conds), 1, 1)
    xe = data["x_eval"].to(device).repeat(len(conds), 1, 1)
    out = train_sae(x, x, m=cfg.m, k=ks, rule=rules, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, seed=seeds[0], aux=auxs,
                    dead_steps=cfg.dead_steps, record_every=cfg.record_every, device=device)
    z, xhat = encode_eval(out["params"], xe, rules, ks, cfg.batch)
    per_token = (z != 0).sum(-1).double()
    fv, l0v, dead, sd = (K.fvu(xe[:, : z.shape[1]], xhat).cpu().numpy(), K.l0(z).cpu().numpy(),
                         K.dead_fraction(z).cpu().numpy(), per_token.std(-1).cpu().numpy())
    runs, sweep = {}, {}
    for c, (rule, aux, k) in enumerate(conds):
        sl = slice(c * n, (c + 1) * n)
        res = {"fvu": fv[sl], "l0": l0v[sl], "dead": dead[sl], "l0_sd": sd[sl]}
        if c < len(main):
            res["dead_curve"], res["curve_steps"] = out["dead_curve"][:, sl], out["curve_steps"]
            cos = [K.cosine_matrix(data["D"][i], out["params"]["W_dec"][c * n + i]) for i in range(n)]
            res["mmcs"] = np.array([cm.max(1).mean() for cm in cos])
            res["recovered"] = np.array([(cm.max(1) > 0.9).mean() for cm in cos])
            res["mcc"] = np.array([K.hungarian_mcc(data["a_eval"][i][: z.shape[1]], z[c * n + i].cpu().numpy()) for i in range(n)])
            res["max_cos"] = np.stack([cm.max(1) for cm in cos])                       # [2S, F]
            _, r_, c_ = K.hungarian_match(cos[0])
            res["matched_cos"] = cos[0][np.ix_(r_, c_)]                                # member 0, true x matched latents
            runs[(rule, aux)] = res
            if aux is None:
                sweep[(rule, k)] = res
        else:
            sweep[(rule, k)] = res
    return {"runs": runs, "sweep": sweep, "n_seeds": len(seeds)}


# ---------------------------------------------------------------------------
# experiment 1b: hierarchical feature families and feature absorption
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AbsorptionConfig(_Preset):
    """``families`` parent features, each with ``children`` child features (child ⇒ parent): the
    parent fires with probability ``p_parent``; given it fires, exactly one of its children fires with
    probability ``rho`` (the co-occurrence).  The *independent* control has the same marginal firing
    rates with no hierarchy.  Features are random unit vectors in ``dim`` dimensions (``dim`` =
    number of features: little superposition, so a silent parent latent is absorption or allocation)."""
    families: int = 8
    children: int = 3
    dim: int = 32
    p_parent: float = 0.2
    rhos: tuple = (0.25, 0.5, 0.75, 1.0)
    rho_main: float = 0.75
    sweep_rules: tuple = ("topk", "mutual")
    low: float = 0.5
    high: float = 1.5
    m: int = 64
    k: int = 4
    n_train: int = 8192
    n_eval: int = 2048
    steps: int = 400
    batch: int = 64
    lr: float = 3e-3

    FULL: ClassVar[dict] = dict(families=32, dim=128, p_parent=0.1, m=256, k=8, n_train=65536, n_eval=16384, steps=4000,
                                batch=512, sweep_rules=("topk", "mutual", "feature"))

    @property
    def n_features(self) -> int:
        return self.families * (1 + self.children)


def hierarchical_codes(n: int, families: int, children: int, p_parent: float, rho: float, rng: np.random.Generator,
                       independent: bool = False, low: float = 0.5, high: float = 1.5) -> dict:
    """Codes of feature families: feature ``g(1+c)`` is parent g, the next ``c`` are its children.
    Hierarchical: parent on with probability ``p_parent``; when on, one uniformly chosen child joins
    it with probability ``rho``; children never fire alone.  ``independent``: every child fires on its
    own with the same marginal rate ``p_parent·rho/c``.  Magnitudes Uniform(low, high).
    Returns ``{"a" [n, F], "parent" [n, G] bool, "child" [n, G, c] bool}``."""
    n, G, c = check_int(n, "n", 1), check_int(families, "families", 1), check_int(children, "children", 1)
    if not 0 < p_parent <= 1:
        raise ValueError(f"p_parent must be in (0, 1]; got {p_parent}")
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must be in [0, 1]; got {rho}")
    parent = rng.random((n, G)) < p_parent
    if independent:
        child = rng.random((n, G, c)) < p_parent * rho / c
    else:
        joins = parent & (rng.random((n, G)) < rho)
        child = (rng.integers(0, c, (n, G))[..., None] == np.arange(c)) & joins[..., None]
    active = np.concatenate([parent[..., None], child], -1)
    a = active * rng.uniform(low, high, active.shape)
    return {"a": a.reshape(n, G * (1 + c)), "parent": parent, "child": child}


def member_absorption(D, w_dec, fires, parent, child) -> float:
    """Absorption rate of one SAE: the latent of each true feature is the decoder row of largest cosine
    with it; D ``[G(1+c), d]`` (families in order parent, children), w_dec ``[m, d]``, fires ``[N, m]``
    bool, parent ``[N, G]``, child ``[N, G, c]`` → :func:`~kernels.absorption_rate`."""
    G, c = child.shape[1:]
    latent = K.cosine_matrix(D, w_dec).argmax(1).reshape(G, 1 + c)        # [G, 1+c]
    f_lat = np.asarray(fires, bool)[:, latent]                             # [N, G, 1+c]
    return K.absorption_rate(parent, child, f_lat[..., 0], f_lat[..., 1:])


def run_absorption(cfg: AbsorptionConfig, seeds, device="cpu") -> dict:
    """Absorption rate of TopK, Mutual Choice and Feature Choice SAEs (same budget k·B) on hierarchical
    data at every co-occurrence ``rho`` of ``cfg.rhos`` (the rules of ``sweep_rules``; the others at
    ``rho_main`` only) and on the independent control (marginals of ``rho_main``); TopK also at 2k and at 2m latents, on hierarchical (``rho_main``) and control data.
    One dictionary per seed, shared by every condition; the latent of a feature is the one whose
    decoder row has the largest cosine with it.

    Returns ``{"rate": {(rule, rho or "independent", k, m): [S]}, "fvu": same keys, "l0": same keys}``."""
    seeds = list(seeds)
    seed_everything(seeds[0])
    G, c, S = cfg.families, cfg.children, len(seeds)
    variants = [*cfg.rhos, "independent"]
    data, Ds = {}, []
    for s in seeds:
        D = random_dictionary(cfg.n_features, cfg.dim, np.random.default_rng([s, 71]))
        Ds.append(D)
        for v in variants:
            rho = cfg.rho_main if v == "independent" else v
            rng = np.random.default_rng([s, 73, variants.index(v)])
            tr, ev = (hierarchical_codes(n, G, c, cfg.p_parent, rho, rng, v == "independent", cfg.low, cfg.high)
                      for n in (cfg.n_train, cfg.n_eval))
            data[(s, v)] = (tr["a"] @ D, ev)
    pair = (cfg.rho_main, "independent")
    conds = [(r, v, cfg.k, cfg.m) for r in cfg.sweep_rules for v in variants]
    conds += [(r, v, cfg.k, cfg.m) for r in K.RULES if r not in cfg.sweep_rules for v in pair]
    conds += [("topk", v, 2 * cfg.k, cfg.m) for v in pair]
    wide = [("topk", v, cfg.k, 2 * cfg.m) for v in pair]
    out = {"rate": {}, "fvu": {}, "l0": {}}
    for group in (conds, wide):
        members = [(cd, i, s) for cd in group for i, s in enumerate(seeds)]
        f = lambda arrs: torch.tensor(np.stack(arrs), dtype=torch.float32, device=device)
        x = f([data[(s, cd[1])][0] for cd, _, s in members])
        ev = [data[(s, cd[1])][1] for cd, _, s in members]
        xe = f([e["a"] @ Ds[i] for (cd, i, s), e in zip(members, ev)])
        rules, ks = [cd[0] for cd, _, _ in members], [cd[2] for cd, _, _ in members]
        res = train_sae(x, x, m=group[0][3], k=ks, rule=rules, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch,
                        seed=seeds[0], device=device)
        z, xhat = encode_eval(res["params"], xe, rules, ks, cfg.batch)
        n = z.shape[1]
        fv, l0v = K.fvu(xe[:, :n], xhat).cpu().numpy(), K.l0(z).cpu().numpy()
        fires = (z != 0).cpu().numpy()
        rates = [member_absorption(Ds[i], res["params"]["W_dec"][j], fires[j], e["parent"][:n], e["child"][:n])
                 for j, ((cd, i, s), e) in enumerate(zip(members, ev))]
        for g, cd in enumerate(group):
            sl = slice(g * S, (g + 1) * S)
            out["rate"][cd], out["fvu"][cd], out["l0"][cd] = np.array(rates[sl]), fv[sl], l0v[sl]
    return out


# ---------------------------------------------------------------------------
# experiment 2: gradient-aware selection (g-SAE)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class GradientConfig(_Preset):
    """Loud features that the downstream readout ignores, quiet features it amplifies."""
    n_features: int = 32
    dim: int = 16
    m: int = 64
    k: int = 2
    mean_p: float = 0.08
    quiet_scale: float = 0.3
    gain: float = 8.0
    n_train: int = 8192
    n_eval: int = 4096
    steps: int = 400
    batch: int = 128
    lr: float = 3e-3

    FULL: ClassVar[dict] = dict(n_features=192, dim=64, m=384, k=8, mean_p=0.02, n_train=65536, n_eval=16384, steps=4000, batch=512)


def readout_problem(cfg: GradientConfig, seed: int) -> dict:
    """Half the features are loud (magnitude U(0,1)) and invisible to the readout; the other half are
    quiet (magnitude ×``quiet_scale``) and each drives one class of a linear readout
    ``R = gain · Σ_{quiet i} e_{c(i)} D_iᵀ``.  Label = the readout's own argmax on the clean input."""
    rng = np.random.default_rng([seed, 23])
    D = random_dictionary(cfg.n_features, cfg.dim, rng)
    half = cfg.n_features // 2
    scale = np.r_[np.ones(half), np.full(cfg.n_features - half, cfg.quiet_scale)]
    probs = firing_probabilities(cfg.n_features, cfg.mean_p)
    R = cfg.gain * D[half:]                               # [C, d]: class c reads quiet feature half + c
    out = {}
    for split, n in (("train", cfg.n_train), ("eval", cfg.n_eval)):
        a = sparse_codes(n, probs, rng) * scale
        x = a @ D
        logits = x @ R.T
        y = logits.argmax(1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - np.eye(R.shape[0])[y]) @ R            # ∇_x CE(R x, y)
        out[split] = {"x": x, "a": a, "grad": grad, "y": y}
    out["R"], out["D"] = R, D
    return out


def downstream_kl(R: torch.Tensor, x: torch.Tensor, xhat: torch.Tensor) -> torch.Tensor:
    """Mean ``KL(softmax(R x) ‖ softmax(R x̂))`` over tokens: R ``[S, C, d]``, x ``[S, N, d]`` → ``[S]``."""
    lp = torch.log_softmax(torch.einsum("snd,scd->snc", x, R), -1)
    lq = torch.log_softmax(torch.einsum("snd,scd->snc", xhat, R), -1)
    return (lp.exp() * (lp - lq)).sum(-1).mean(-1)


def run_gradient(cfg: GradientConfig, seeds, device="cpu") -> dict:
    """TopK and g-SAE at equal k on the readout problem: members (TopK seeds..., g-SAE seeds...).
    Returns per-condition arrays [S] of FVU, downstream KL and recovery of the quiet features."""
    seeds = list(seeds)
    seed_everything(seeds[0])
    probs = [readout_problem(cfg, s) for s in seeds] * 2
    f = lambda split, key: torch.tensor(np.stack([p[split][key] for p in probs]), dtype=torch.float32, device=device)
    gsae = torch.tensor([False] * len(seeds) + [True] * len(seeds), device=device)
    x, g = f("train", "x"), f("train", "grad")
    out = train_sae(x, x, m=cfg.m, k=cfg.k, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, seed=seeds[0], grad=g,
                    gsae=gsae, device=device)
    xe, ge = f("eval", "x"), f("eval", "grad")
    z, xhat = encode_eval(out["params"], xe, "topk", cfg.k, cfg.batch, ge, gsae)
    n = z.shape[1]
    R = torch.tensor(np.stack([p["R"] for p in probs]), dtype=torch.float32, device=device)
    kl = downstream_kl(R, xe[:, :n], xhat).cpu().numpy()
    fv = K.fvu(xe[:, :n], xhat).cpu().numpy()
    half = cfg.n_features // 2
    quiet = np.array([K.fraction_recovered(p["D"][half:], out["params"]["W_dec"][i]) for i, p in enumerate(probs)])
    loud = np.array([K.fraction_recovered(p["D"][:half], out["params"]["W_dec"][i]) for i, p in enumerate(probs)])
    S = len(seeds)
    return {name: {"kl": kl[sl], "fvu": fv[sl], "quiet_recovered": quiet[sl], "loud_recovered": loud[sl]}
            for name, sl in (("topk", slice(0, S)), ("gsae", slice(S, 2 * S)))}


# ---------------------------------------------------------------------------
# experiment 3: a trained MLP; transcoders against SAEs, and automatic interpretation
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MLPConfig(_Preset):
    """A one-hidden-layer MLP trained to map ``x = a D_in`` to ``y = a D_out`` (features moved
    from one basis to another), then a TopK SAE on its output and a TopK transcoder replacing it."""
    n_features: int = 32
    dim: int = 16
    hidden: int = 16
    mean_p: float = 0.08
    n_train: int = 8192
    n_eval: int = 4096
    mlp_steps: int = 500
    mlp_lr: float = 3e-3
    m: int = 64
    k: int = 4
    steps: int = 400
    batch: int = 128
    lr: float = 3e-3

    FULL: ClassVar[dict] = dict(n_features=128, dim=64, hidden=64, mean_p=0.03, n_train=65536, n_eval=16384, mlp_steps=4000,
                       m=256, k=8, steps=4000, batch=512)


def mlp_forward(p: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked MLP ``relu(x W1 + b1) W2 + b2``; returns ``(output, hidden activations)``."""
    h = torch.relu(torch.einsum("snd,sdh->snh", x, p["W1"]) + p["b1"][:, None])
    return torch.einsum("snh,shd->snd", h, p["W2"]) + p["b2"][:, None], h


def train_mlps(x: torch.Tensor, y: torch.Tensor, hidden: int, steps: int, lr: float, batch: int, seed: int) -> dict:
    """Train S one-hidden-layer MLPs (member s on ``x[s] → y[s]``, MSE) as one batched computation."""
    S, N, d = x.shape
    gen = torch.Generator().manual_seed(seed)
    u = lambda *sh, fan: ((torch.rand(*sh, generator=gen) * 2 - 1) / math.sqrt(fan))
    p = {"W1": u(S, d, hidden, fan=d), "b1": u(S, hidden, fan=d), "W2": u(S, hidden, y.shape[-1], fan=hidden),
         "b2": u(S, y.shape[-1], fan=hidden)}
    p = {k: v.to(x.device).requires_grad_(True) for k, v in p.items()}
    order = torch.randint(0, N, (steps, S, batch), generator=gen).to(x.device)

    def loss(s):
        idx = order[s][..., None]
        xb = torch.gather(x, 1, idx.expand(-1, -1, d))
        yb = torch.gather(y, 1, idx.expand(-1, -1, y.shape[-1]))
        return (mlp_forward(p, xb)[0] - yb).pow(2).sum(-1).mean(-1)

    train_members(p, loss, steps=steps, lr=lr)
    return {k: v.detach() for k, v in p.items()}


def run_mlp(cfg: MLPConfig, seeds, device="cpu") -> dict:
    """Train one MLP per seed; then, batched, a TopK SAE on its output and a TopK transcoder
    (input → output) at equal k.  Measures reconstruction of the MLP output (FVU), recovery of the
    output features, the weights-only circuit of the transcoder, and detection scores of latents
    and of top-k-sparsified MLP neurons against the planted variables ``a_i > 0``."""
    seeds = list(seeds)
    seed_everything(seeds[0])
    S = len(seeds)
    tr, ev, Din, Dout = [], [], [], []
    for s in seeds:
        rng = np.random.default_rng([s, 31])
        Di, Do = random_dictionary(cfg.n_features, cfg.dim, rng), random_dictionary(cfg.n_features, cfg.dim, rng)
        probs = firing_probabilities(cfg.n_features, cfg.mean_p)
        tr.append(sparse_codes(cfg.n_train, probs, rng)), ev.append(sparse_codes(cfg.n_eval, probs, rng))
        Din.append(Di), Dout.append(Do)
    f = lambda v: torch.tensor(np.stack(v), dtype=torch.float32, device=device)
    x_tr, y_tr = f([a @ D for a, D in zip(tr, Din)]), f([a @ D for a, D in zip(tr, Dout)])
    x_ev, y_ev = f([a @ D for a, D in zip(ev, Din)]), f([a @ D for a, D in zip(ev, Dout)])
    mp = train_mlps(x_tr, y_tr, cfg.hidden, cfg.mlp_steps, cfg.mlp_lr, cfg.batch, seeds[0])
    with torch.no_grad():
        out_tr, h_tr = mlp_forward(mp, x_tr)
        out_ev, h_ev = mlp_forward(mp, x_ev)
    mlp_fvu = K.fvu(y_ev, out_ev).cpu().numpy()
    # members: SAE on the output (seeds...), transcoder input -> output (seeds...), SAE on the hidden layer (seeds...)
    src_tr, src_ev = torch.cat([out_tr, x_tr, h_tr]), torch.cat([out_ev, x_ev, h_ev])
    tgt_tr, tgt_ev = torch.cat([out_tr, out_tr, h_tr]), torch.cat([out_ev, out_ev, h_ev])
    res = train_sae(src_tr, tgt_tr, m=cfg.m, k=cfg.k, steps=cfg.steps, lr=cfg.lr, batch=cfg.batch, seed=seeds[0], device=device)
    p = res["params"]
    z_ev, rec_ev = encode_eval(p, src_ev, "topk", cfg.k, cfg.batch)
    z_tr, _ = encode_eval(p, src_tr, "topk", cfg.k, cfg.batch)
    n_ev, n_tr = z_ev.shape[1], z_tr.shape[1]
    fv = K.fvu(tgt_ev[:, :n_ev], rec_ev).cpu().numpy()

    def detection(fires_tr, fires_ev, i):
        alive = fires_ev.mean(0) > 0.001
        _, score = K.explain_and_score(fires_tr, tr[i][: len(fires_tr)] > 0, fires_ev, ev[i][: len(fires_ev)] > 0)
        return float(score[alive].mean())

    out = {"mlp_fvu": mlp_fvu}
    for j, name in enumerate(("sae", "transcoder", "sae_hidden")):
        rows = []
        for i in range(S):
            mi = j * S + i
            ft, fe = (z_tr[mi] > 0).cpu().numpy(), (z_ev[mi] > 0).cpu().numpy()
            rec = K.fraction_recovered(Dout[i], p["W_dec"][mi]) if j < 2 else np.nan
            rows.append((rec, detection(ft, fe, i), float(fe.sum(1).mean())))
        out[name] = {"fvu": fv[j * S:(j + 1) * S], "recovered": np.array([r[0] for r in rows]),
                     "detection": np.array([r[1] for r in rows]), "l0": np.array([r[2] for r in rows])}
    circuit = []
    for i in range(S):
        # weights-only circuit through the transcoder: which input feature feeds the latent that writes output feature j
        mi = S + i
        cos_out = K.cosine_matrix(Dout[i], p["W_dec"][mi])            # [F, m]
        cos_in = K.cosine_matrix(Din[i], p["W_enc"][mi].T)           # [F, m]
        best_latent = cos_out.argmax(1)
        circuit.append(float((cos_in[:, best_latent].argmax(0) == np.arange(cfg.n_features)).mean()))
    out["transcoder"]["circuit"] = np.array(circuit)
    nd = []
    for i in range(S):
        ht = (K.topk_mask(h_tr[i], cfg.k) & (h_tr[i] > 0)).cpu().numpy()
        he = (K.topk_mask(h_ev[i], cfg.k) & (h_ev[i] > 0)).cpu().numpy()
        nd.append(detection(ht, he, i))
    out["neurons"] = {"detection": np.array(nd)}
    return out


# ---------------------------------------------------------------------------
# experiment 4: codebook features on a state machine
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CodebookConfig(_Preset):
    """Hidden states of a noisy next-state task, with and without a one-code bottleneck."""
    n_states: int = 16
    dim: int = 8
    hidden: int = 32
    codes: int = 32
    k: int = 1
    noise: float = 0.3
    n_train: int = 4096
    n_eval: int = 2048
    steps: int = 400
    batch: int = 128
    lr: float = 3e-3
    beta: float = 0.25

    FULL: ClassVar[dict] = dict(n_states=64, dim=16, hidden=128, codes=128, n_train=32768, n_eval=8192, steps=4000, batch=512)


def next_state(s: np.ndarray, n_states: int) -> np.ndarray:
    """The planted transition ``T(s) = (5 s + 3) mod n`` (a permutation when gcd(5, n) = 1)."""
    return (5 * np.asarray(s) + 3) % n_states


def codebook_forward(p: dict, x: torch.Tensor, use_codebook: torch.Tensor, k: int, force=None):
    """Stacked network ``x → h = relu(W1 x + b1) → [codebook] → logits``.  With the codebook, ``h`` is
    replaced by the sum of its ``k`` nearest codes by cosine (straight-through gradient to ``h``);
    ``force [S, N]`` replaces the chosen code by a given code index.  Returns (logits, h, codes idx, quantised)."""
    h = torch.relu(torch.einsum("snd,sdh->snh", x, p["W1"]) + p["b1"][:, None])
    idx = K.codebook_select(h, p["C"], k)
    if force is not None:
        idx = force[..., None].expand_as(idx)
    q = torch.gather(p["C"][:, None].expand(-1, h.shape[1], -1, -1), 2,
                     idx[..., None].expand(-1, -1, -1, h.shape[-1])).sum(2)
    st = h + (q - h).detach()
    hq = torch.where(use_codebook.view(-1, 1, 1), st, h)
    return torch.einsum("snh,shc->snc", hq, p["W2"]) + p["b2"][:, None], h, idx, q


def run_codebook(cfg: CodebookConfig, seeds, device="cpu") -> dict:
    """Dense and codebook networks on the noisy next-state task (members: dense seeds..., codebook seeds...).
    Measures held-out accuracy, how purely each state maps to one code, and the intervention success:
    forcing the code of state s' makes the network output T(s')."""
    seeds = list(seeds)
    seed_everything(seeds[0])
    S = len(seeds)
    gen = torch.Generator().manual_seed(seeds[0])
    data = {}
    for split, n in (("train", cfg.n_train), ("eval", cfg.n_eval)):
        xs, ss = [], []
        for s in seeds:
            rng = np.random.default_rng([s, 41])
            E = random_dictionary(cfg.n_states, cfg.dim, rng)
            if split == "eval":
                rng = np.random.default_rng([s, 43])
            st = rng.integers(0, cfg.n_states, n)
            xs.append(E[st] + cfg.noise * rng.standard_normal((n, cfg.dim)) / math.sqrt(cfg.dim)), ss.append(st)
        data[split] = (torch.tensor(np.stack(xs * 2), dtype=torch.float32, device=device), np.stack(ss * 2))
    use = torch.tensor([False] * S + [True] * S, device=device)
    u = lambda *sh, fan: ((torch.rand(*sh, generator=gen) * 2 - 1) / math.sqrt(fan))
    p = {"W1": u(2 * S, cfg.dim, cfg.hidden, fan=cfg.dim), "b1": u(2 * S, cfg.hidden, fan=cfg.dim),
         "W2": u(2 * S, cfg.hidden, cfg.n_states, fan=cfg.hidden), "b2": u(2 * S, cfg.n_states, fan=cfg.hidden),
         "C": torch.rand(2 * S, cfg.codes, cfg.hidden, generator=gen)}
    p = {k: v.to(device).requires_grad_(True) for k, v in p.items()}
    x, st = data["train"]
    y = torch.tensor(next_state(st, cfg.n_states), device=device)
    order = torch.randint(0, cfg.n_train, (cfg.steps, 2 * S, cfg.batch), generator=gen).to(device)

    phase = {"use": torch.zeros_like(use)}

    def loss(s):
        idx = order[s]
        xb = torch.gather(x, 1, idx[..., None].expand(-1, -1, cfg.dim))
        yb = torch.gather(y, 1, idx)
        logits, h, _, q = codebook_forward(p, xb, phase["use"], cfg.k)
        ce = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").mean(-1)
        vq = (q - h.detach()).pow(2).sum(-1).mean(-1) + cfg.beta * (h - q.detach()).pow(2).sum(-1).mean(-1)
        return ce + torch.where(phase["use"], vq, torch.zeros_like(vq))

    # pre-train every member densely, then fine-tune with the bottleneck inserted (Tamkin et al.'s recipe);
    # the codebook starts from hidden states of random training inputs; dense members keep training as long
    half = cfg.steps // 2
    train_members(p, loss, steps=half, lr=cfg.lr)
    with torch.no_grad():
        pick = torch.randint(0, cfg.n_train, (2 * S, cfg.codes), generator=gen).to(device)
        h0 = torch.relu(torch.einsum("snd,sdh->snh", torch.gather(x, 1, pick[..., None].expand(-1, -1, cfg.dim)), p["W1"])
                        + p["b1"][:, None])
        p["C"].copy_(h0 + 1e-3 * torch.randn(h0.shape, generator=gen).to(device))
    phase["use"] = use
    order = order[half:]
    train_members(p, loss, steps=cfg.steps - half, lr=cfg.lr)
    p = {k: v.detach() for k, v in p.items()}
    xe, se = data["eval"]
    ye = next_state(se, cfg.n_states)
    with torch.no_grad():
        logits, _, idx, _ = codebook_forward(p, xe, use, cfg.k)
    acc = (logits.argmax(-1).cpu().numpy() == ye).mean(1)
    code = idx[..., 0].cpu().numpy()
    purity, success = [], []
    rng = np.random.default_rng(seeds[0])
    for i in range(S, 2 * S):
        cnt = np.zeros((cfg.n_states, cfg.codes))
        np.add.at(cnt, (se[i], code[i]), 1)
        state_code = cnt.argmax(1)                              # the code each state uses most
        purity.append(float((cnt.max(1) / cnt.sum(1).clip(1)).mean()))
        target = (se[i] + rng.integers(1, cfg.n_states, len(se[i]))) % cfg.n_states   # another state s'
        force = torch.zeros(2 * S, len(se[i]), dtype=torch.long, device=device)
        force[i] = torch.tensor(state_code[target], device=device)
        with torch.no_grad():
            lg, *_ = codebook_forward(p, xe, use, cfg.k, force=force)
        success.append(float((lg[i].argmax(-1).cpu().numpy() == next_state(target, cfg.n_states)).mean()))
    return {"dense_acc": acc[:S], "codebook_acc": acc[S:], "purity": np.array(purity), "intervention": np.array(success)}


# ---------------------------------------------------------------------------
# experiment 5: a one-layer attention model; attention-output SAEs and circuit identification
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AttentionConfig(_Preset):
    """Attention-only model reading two planted variables: the first token (task A) and the
    second-to-last token (task B) of a sequence, predicted at the last position."""
    vocab: int = 8
    length: int = 6
    d_model: int = 16
    heads: int = 4
    n_train: int = 4096
    n_eval: int = 2048
    steps: int = 300
    batch: int = 128
    lr: float = 1e-2
    sae_m: int = 32
    sae_k: int = 2
    sae_steps: int = 300
    head_m: int = 16
    n_examples: int = 64
    ablation_drop: float = 0.05
    unique_threshold: float = 0.5

    FULL: ClassVar[dict] = dict(vocab=16, length=10, d_model=32, heads=8, n_train=32768, n_eval=8192, steps=3000, batch=512,
                       sae_m=128, sae_k=4, sae_steps=3000, head_m=32, n_examples=256)


def attention_forward(p: dict, tokens: torch.Tensor, ablate=None) -> tuple:
    """Stacked one-layer attention-only model read at the last position.  tokens ``[S, N, T]``;
    ``ablate``: (head index, mean output ``[S, d_head]``) replaces that head's output by its mean.
    Returns ``(logits_A [S, N, V], logits_B, head outputs [S, N, H, d_head])``."""
    h = p["E"][torch.arange(tokens.shape[0], device=tokens.device)[:, None, None], tokens] + p["P"][:, None]
    q = torch.einsum("snd,shde->snhe", h[:, :, -1], p["Wq"])
    kk = torch.einsum("sntd,shde->snhte", h, p["Wk"])
    v = torch.einsum("sntd,shde->snhte", h, p["Wv"])
    att = torch.softmax(torch.einsum("snhe,snhte->snht", q, kk) / math.sqrt(q.shape[-1]), -1)
    o = torch.einsum("snht,snhte->snhe", att, v)
    if ablate is not None:
        hd, mean = ablate
        o = o.clone()
        o[:, :, hd] = mean[:, None]
    r = h[:, :, -1] + torch.einsum("snhe,shed->snd", o, p["Wo"])
    return torch.einsum("snd,sdv->snv", r, p["UA"]), torch.einsum("snd,sdv->snv", r, p["UB"]), o


def run_attention(cfg: AttentionConfig, seeds, device="cpu") -> dict:
    """Train the attention model (one member per seed); ground-truth circuit of task A = heads whose
    mean-ablation lowers task-A accuracy by ≥ ``ablation_drop``; the SAE method of O'Neill & Bui =
    heads whose discretised SAE code (argmax latent of a per-head TopK-1 SAE) is unique to positive
    examples in ≥ ``unique_threshold`` of them; and a TopK SAE on the concatenated head outputs
    (Kissane et al.) whose latents are explained by the planted variables."""
    seeds = list(seeds)
    seed_everything(seeds[0])
    S, V, T, d, H = len(seeds), cfg.vocab, cfg.length, cfg.d_model, cfg.heads
    dh = d // H
    gen = torch.Generator().manual_seed(seeds[0])
    toks = {}
    for split, n in (("train", cfg.n_train), ("eval", cfg.n_eval)):
        toks[split] = torch.tensor(np.stack([np.random.default_rng([s, 53, n]).integers(0, V, (n, T)) for s in seeds]),
                                   device=device)
    r = lambda *sh, fan: torch.randn(*sh, generator=gen) / math.sqrt(fan)
    p = {"E": r(S, V + 1, d, fan=1), "P": r(S, T, d, fan=1), "Wq": r(S, H, d, dh, fan=d), "Wk": r(S, H, d, dh, fan=d),
         "Wv": r(S, H, d, dh, fan=d), "Wo": r(S, H, dh, d, fan=dh), "UA": r(S, d, V, fan=d), "UB": r(S, d, V, fan=d)}
    p = {k: v.to(device).requires_grad_(True) for k, v in p.items()}
    order = torch.randint(0, cfg.n_train, (cfg.steps, S, cfg.batch), generator=gen).to(device)
    tt = toks["train"]

    def loss(s):
        tb = torch.gather(tt, 1, order[s][..., None].expand(-1, -1, T))
        la, lb, _ = attention_forward(p, tb)
        return (F.cross_entropy(la.transpose(1, 2), tb[:, :, 0], reduction="none").mean(-1)
                + F.cross_entropy(lb.transpose(1, 2), tb[:, :, -2], reduction="none").mean(-1))

    train_members(p, loss, steps=cfg.steps, lr=cfg.lr)
    p = {k: v.detach() for k, v in p.items()}
    te = toks["eval"]
    with torch.no_grad():
        la, lb, o = attention_forward(p, te)
        acc_a = (la.argmax(-1) == te[:, :, 0]).double().mean(1)
        acc_b = (lb.argmax(-1) == te[:, :, -2]).double().mean(1)
        mean_o = o.mean(1)
        drop = torch.stack([acc_a - (attention_forward(p, te, (hd, mean_o[:, hd]))[0].argmax(-1) == te[:, :, 0]).double().mean(1)
                            for hd in range(H)], 1).cpu().numpy()          # [S, H]
    truth = drop >= cfg.ablation_drop
    # O'Neill & Bui: per-head SAEs on positive (task A answerable) and negative (first token blanked) examples
    pos = te[:, : cfg.n_examples]
    neg = pos.clone()
    neg[:, :, 0] = V
    with torch.no_grad():
        o_pos, o_neg = attention_forward(p, pos)[2], attention_forward(p, neg)[2]
    per_head = torch.cat([o_pos, o_neg], 1).permute(0, 2, 1, 3).reshape(S * H, 2 * cfg.n_examples, dh)
    hs = train_sae(per_head, per_head, m=cfg.head_m, k=1, steps=cfg.sae_steps, lr=cfg.lr / 3, batch=min(cfg.batch, 2 * cfg.n_examples),
                   seed=seeds[0], device=device)
    with torch.no_grad():
        zc, _ = sae_codes(hs["params"], per_head, "topk", 1)
    code = zc.argmax(-1).reshape(S, H, 2 * cfg.n_examples).cpu().numpy()
    unique = np.array([[K.unique_code_fraction(code[i, hd, : cfg.n_examples], code[i, hd, cfg.n_examples:])
                        for hd in range(H)] for i in range(S)])
    pred = unique >= cfg.unique_threshold
    f1 = np.array([K.f1_score(pred[i], truth[i]) for i in range(S)])
    # Kissane et al.: a TopK SAE on the concatenated head outputs (the attention layer's z)
    with torch.no_grad():
        o_tr = attention_forward(p, tt)[2].reshape(S, cfg.n_train, H * dh)
    zcat = o.reshape(S, cfg.n_eval, H * dh)
    sae = train_sae(o_tr, o_tr, m=cfg.sae_m, k=cfg.sae_k, steps=cfg.sae_steps, lr=3e-3, batch=cfg.batch, seed=seeds[0],
                    device=device)
    z_tr, _ = encode_eval(sae["params"], o_tr, "topk", cfg.sae_k, cfg.batch)
    z_ev, rec = encode_eval(sae["params"], zcat, "topk", cfg.sae_k, cfg.batch)
    fv = K.fvu(zcat[:, : z_ev.shape[1]], rec).cpu().numpy()

    def variables(tk):
        tk = tk.cpu().numpy()
        return np.concatenate([tk[..., 0:1] == np.arange(V), tk[..., -2:-1] == np.arange(V)], -1)   # [S, N, 2V]

    vtr, vev = variables(tt), variables(te)
    det, coord, families = [], [], []
    for i in range(S):
        ft, fe = (z_tr[i] > 0).cpu().numpy(), (z_ev[i] > 0).cpu().numpy()
        alive = fe.mean(0) > 0.001
        best, score = K.explain_and_score(ft, vtr[i][: len(ft)], fe, vev[i][: len(fe)])
        det.append(score[alive].mean())
        # baseline: the coordinates of z, top-k sparsified per token
        ct, ce = (K.topk_mask(o_tr[i], cfg.sae_k) & (o_tr[i] > 0)).cpu().numpy(), (K.topk_mask(zcat[i], cfg.sae_k) & (zcat[i] > 0)).cpu().numpy()
        al = ce.mean(0) > 0.001
        coord.append(K.explain_and_score(ct, vtr[i], ce, vev[i])[1][al].mean())
        # heads whose decoder weight serves latents of both variable families (polysemantic heads)
        w = sae["params"]["W_dec"][i].reshape(cfg.sae_m, H, dh).norm(dim=-1).cpu().numpy()   # [m, H]
        fam = best >= V
        share = w / w.sum(1, keepdims=True)
        uses = (share >= 0.2) & alive[:, None]
        families.append(float(np.mean([(uses[~fam, hd].any() and uses[fam, hd].any()) for hd in range(H)])))
    return {"acc_a": acc_a.cpu().numpy(), "acc_b": acc_b.cpu().numpy(), "drop": drop, "truth": truth, "unique": unique,
            "pred": pred, "f1": f1, "sae_fvu": fv, "sae_detection": np.array(det), "coord_detection": np.array(coord),
            "polysemantic_heads": np.array(families)}


# ---------------------------------------------------------------------------
# everything, spread over worker processes
# ---------------------------------------------------------------------------
TASKS = ("allocation", "allocation_sweep", "absorption", "gradient", "mlp", "codebook", "attention")


def run_task(task: int, scale: str, seed: int = 0):
    """Task ``TASKS[task]`` at ``scale`` on the seeds ``seed … seed + N_SEEDS[scale] − 1`` (each runner
    is batched over those seeds and seeds itself from them, so the result does not depend on which
    worker runs it)."""
    name = TASKS[check_int(task, "task", 0, len(TASKS) - 1)]
    seeds, dev = seeds_for(scale, seed), device_for(scale)
    if name.startswith("allocation"):
        return run_allocation(AllocationConfig.preset(scale), seeds, device=dev, part="sweep" if name.endswith("sweep") else "main")
    runner, config = {"absorption": (run_absorption, AbsorptionConfig), "gradient": (run_gradient, GradientConfig), "mlp": (run_mlp, MLPConfig),
                      "codebook": (run_codebook, CodebookConfig), "attention": (run_attention, AttentionConfig)}[name]
    return runner(config.preset(scale), seeds, device=dev)


def run_all(scale: str, seed: int = 0, workers: int | None = None) -> dict:
    """Every experiment of the chapter, the tasks of :data:`TASKS` spread over worker processes
    (:func:`sparsebook.seeding.over_seeds` with the task index in the seed slot).  Returns
    ``{task name: result, "seeds": the seeds}``, the k sweep merged into ``allocation["sweep"]``."""
    from sparsebook.seeding import over_seeds

    seeds = seeds_for(scale, seed)
    out = dict(zip(TASKS, over_seeds(run_task, list(range(len(TASKS))), scale, seed, workers=workers)))
    out["allocation"]["sweep"].update(out.pop("allocation_sweep")["sweep"])
    out["seeds"] = seeds
    return out
