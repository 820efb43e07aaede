"""Tests for sparsebook.mixture_of_experts: routing, balance losses, capacity, dispatch against the
dense-masked reference, tree gates, alignment and merging, scores, the Gaussian MoE and the runners."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsebook import mixture_of_experts as moe
from sparsebook.claims import AtLeast, ClaimSet
from sparsebook.stats import from_seeds, paired_difference

FAST = settings(max_examples=25, deadline=None)


def _experts(seed, lead=(), e=4, d=3, h=5, o=2):
    g = torch.Generator().manual_seed(seed)
    return {"w1": torch.randn(*lead, e, d, h, generator=g), "b1": torch.randn(*lead, e, h, generator=g),
            "w2": torch.randn(*lead, e, h, o, generator=g), "b2": torch.randn(*lead, e, o, generator=g)}


# ---------------------------------------------------------------------------
# known values
# ---------------------------------------------------------------------------
def test_top_k_routing_hand_made_logits():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 3.0, 0.0]])
    probs, idx, gates = moe.top_k_routing(logits, 2)
    assert idx.tolist() == [[0, 1], [1, 2]]                     # tie: lower index first
    e = math.e
    assert gates[0].tolist() == pytest.approx([e**2 / (e**2 + e), e / (e**2 + e)])
    assert gates[1].tolist() == pytest.approx([0.5, 0.5])
    _, _, raw = moe.top_k_routing(logits, 2, renormalize=False)
    assert raw[0].tolist() == pytest.approx(probs[0, :2].tolist())


def test_load_balancing_loss_against_its_formula():
    n_exp = 4
    uniform = torch.full((8, n_exp), 1 / n_exp)
    idx = torch.arange(8).remainder(n_exp).unsqueeze(-1)
    assert float(moe.load_balancing_loss(uniform, idx)) == pytest.approx(1.0)
    onehot = torch.zeros(8, n_exp)
    onehot[:, 2] = 1
    assert float(moe.load_balancing_loss(onehot, torch.full((8, 1), 2))) == pytest.approx(n_exp)
    # hand case: f = (3/4, 1/4, 0), P = column means
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
    idx = torch.tensor([[0], [0], [0], [1]])
    f, p = np.array([0.75, 0.25, 0.0]), probs.mean(0).numpy()
    assert float(moe.load_balancing_loss(probs, idx)) == pytest.approx(3 * float((f * p).sum()))


def test_router_z_loss_and_capacity_known_values():
    assert float(moe.router_z_loss(torch.zeros(5, 4))) == pytest.approx(math.log(4) ** 2)
    assert moe.expert_capacity(256, 8, 2, 1.25) == 80
    assert moe.expert_capacity(10, 4, 1, 1.0) == 3
    assert moe.expert_capacity(10, 4, 1, None) == 10


def test_assign_slots_drops_in_priority_order():
    idx = torch.tensor([[0, 1], [0, 1], [0, 2], [1, 0]])      # 4 tokens, top-2
    pos, kept = moe.assign_slots(idx, 3, capacity=2)
    # first choices in token order: expert 0 gets tokens 0, 1, 2 (slots 0, 1, 2), expert 1 token 3 (slot 0)
    # then second choices: expert 1 gets tokens 0, 1 (slots 1, 2), expert 2 token 2 (0), expert 0 token 3 (3)
    assert pos.tolist() == [[0, 1], [1, 2], [2, 0], [0, 3]]
    assert kept.tolist() == [[True, True], [True, False], [False, True], [True, False]]


def test_flops_by_hand():
    f = moe.moe_flops(d=2, h=3, o=2, n_experts=4, k=2)
    expert = 2 * 2 * 3 + 2 * 3 * 2 + 3 + 2
    assert f["moe_flops"] == 2 * 2 * 4 + 2 * expert + 2 * 2 * 2
    assert f["dense_flops"] == 2 * 2 * 6 + 2 * 6 * 2 + 6 + 2
    assert f["moe_flops"] - f["dense_flops"] == 2 * 2 * 4 + (3 * 2 - 1) * 2


def test_smooth_step_known_values():
    t = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.5, 2.0])
    s = moe.smooth_step(t, gamma=1.0)
    assert s.tolist() == pytest.approx([0.0, 0.0, 0.5, -2 * 0.25**3 + 1.5 * 0.25 + 0.5, 1.0, 1.0])


def test_auroc_matrix_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    z = rng.random((200, 3)) < 0.3
    acts = np.maximum(0, rng.normal(size=(200, 4)) + z[:, [0, 1, 2, 0]])
    acts[:, 3] = np.round(acts[:, 3], 1)                      # ties
    au = moe.auroc_matrix(acts, z.astype(int))
    for u in range(4):
        for j in range(3):
            assert au[u, j] == pytest.approx(roc_auc_score(z[:, j], acts[:, u]))


def test_gaussian_moe_logpdf_is_a_density():
    theta = {"beta1": torch.tensor(1.5), "beta0": torch.tensor(0.3), "tau": torch.tensor(0.5),
             "a": torch.tensor([1.0, -1.0]), "b": torch.tensor([0.5, -0.5]), "nu": torch.tensor([0.1, 0.2])}
    ys = torch.linspace(-8, 8, 4001)
    for gate in moe.kernels.GATES:
        for x in (-1.0, 0.7):
            dens = torch.exp(moe.gaussian_moe_logpdf(torch.full_like(ys, x), ys, theta, gate))
            assert float(torch.trapezoid(dens, ys)) == pytest.approx(1.0, abs=1e-4)
    # the temperature gate sees only (beta/tau): scaling both leaves the density unchanged
    scaled = {**theta, "beta1": 2 * theta["beta1"], "beta0": 2 * theta["beta0"], "tau": 2 * theta["tau"]}
    x = torch.linspace(-2, 2, 7)
    assert torch.allclose(moe.gaussian_moe_logpdf(x, x, theta), moe.gaussian_moe_logpdf(x, x, scaled))
    assert not torch.allclose(moe.gaussian_moe_logpdf(x, x, theta, "activation"),
                              moe.gaussian_moe_logpdf(x, x, scaled, "activation"))


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 10_000), t=st.integers(1, 40), e=st.integers(1, 6), k=st.integers(1, 3),
       cap=st.one_of(st.none(), st.integers(1, 20)))
def test_dispatch_equals_dense_masked_reference(seed, t, e, k, cap):
    k = min(k, e)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, t, 3, generator=g)
    ex = _experts(seed, (2,), e=e)
    _, idx, gates = moe.top_k_routing(torch.randn(2, t, e, generator=g), k)
    y, kept = moe.moe_dispatch(x, ex, idx, gates, cap)
    ref = moe.moe_dense_reference(x, ex, moe.gate_matrix(idx, gates, e, kept))
    assert torch.allclose(y, ref, atol=1e-5)
    if cap is not None:
        per_expert = torch.nn.functional.one_hot(idx, e).mul(kept.unsqueeze(-1)).sum(dim=(1, 2))
        assert int(per_expert.max()) <= cap
    else:
        assert bool(kept.all())


@FAST
@given(seed=st.integers(0, 10_000), e=st.integers(1, 9), k=st.integers(1, 9))
def test_routing_keeps_exactly_k_distinct_experts_with_gates_summing_to_one(seed, e, k):
    k = min(k, e)
    logits = torch.randn(3, 7, e, generator=torch.Generator().manual_seed(seed))
    probs, idx, gates = moe.top_k_routing(logits, k)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 7))
    assert torch.allclose(gates.sum(-1), torch.ones(3, 7))
    assert all(len(set(row)) == k for row in idx.reshape(-1, k).tolist())
    chosen = torch.gather(probs, -1, idx).min(-1).values
    others = probs.masked_fill(torch.nn.functional.one_hot(idx, e).sum(-2).bool(), -1).max(-1).values
    assert bool((chosen >= others).all())


@FAST
@given(seed=st.integers(0, 10_000), depth=st.integers(1, 4), k=st.integers(1, 3), scale=st.floats(0.01, 50))
def test_comet_gate_is_a_distribution_and_sparse_when_saturated(seed, depth, k, scale):
    g = torch.Generator().manual_seed(seed)
    e = 2**depth
    x = torch.randn(6, 4, generator=g)
    gm = moe.comet_gate(x, scale * torch.randn(k, 4, e - 1, generator=g), torch.zeros(k, e - 1),
                        torch.randn(4, k, generator=g))
    assert torch.allclose(gm.sum(-1), torch.ones(6), atol=1e-5)
    assert bool((gm >= 0).all())
    # with every split saturated (|logit| >= gamma/2) each tree picks one leaf: at most k non-zero gates
    logits = torch.einsum("td,jdn->tjn", x, scale * torch.randn(k, 4, e - 1, generator=g))
    sat = (logits.abs() >= 0.5).all(-1).all(-1)
    leaves = moe.tree_leaf_probs(logits)
    assert bool(((leaves > 0).sum(-1) == 1)[sat].all())


def test_planted_permutation_merges_back_only_when_aligned():
    g = torch.Generator().manual_seed(0)
    a = {"w1": torch.randn(6, 16, generator=g), "b1": torch.randn(16, generator=g),
         "w2": torch.randn(16, 3, generator=g), "b2": torch.randn(3, generator=g)}
    perm = torch.randperm(16, generator=g)
    b = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in moe.permute_units(a, perm).items()}
    pi = moe.align_permutation(a, b)
    assert torch.equal(perm[torch.as_tensor(pi)], torch.arange(16))   # recovers the planted permutation
    aligned = moe.merge_experts([a, b], [0.5, 0.5], align=True)
    naive = moe.merge_experts([a, b], [0.5, 0.5], align=False)
    assert max(float((aligned[k] - a[k]).abs().max()) for k in moe.kernels.EXPERT_KEYS) < 0.05
    assert max(float((naive[k] - a[k]).abs().max()) for k in ("w1", "w2")) > 0.5
    # usage weighting: a weight of 0 returns the dominant expert
    assert torch.equal(moe.merge_experts([a, b], [1.0, 0.0])["w1"], a["w1"])


def test_group_experts_hand_case():
    usage = [0.4, 0.1, 0.3, 0.2]
    sim = np.array([[1, 0.9, 0.1, 0.0], [0.9, 1, 0.2, 0.1], [0.1, 0.2, 1, 0.8], [0.0, 0.1, 0.8, 1]])
    assert moe.group_experts(usage, sim, 2).tolist() == [0, 0, 1, 1]
    assert moe.group_experts(usage, sim, 4).tolist() == [0, 3, 1, 2]


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="k must be an int in \\[1, 4\\]"):
        moe.top_k_routing(torch.zeros(3, 4), 5)
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        moe.top_k_routing(np.zeros((3, 4)), 1)
    with pytest.raises(ValueError, match="factor must be > 0"):
        moe.expert_capacity(10, 4, 1, 0.0)
    with pytest.raises(ValueError, match="idx must hold expert indices"):
        moe.assign_slots(torch.tensor([[5]]), 3, 2)
    with pytest.raises(ValueError, match="2\\^D - 1"):
        moe.tree_leaf_probs(torch.zeros(4))
    with pytest.raises(ValueError, match="gamma must be > 0"):
        moe.smooth_step(torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="perm must be a permutation"):
        moe.permute_units(_single(), [0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="weights must be one non-negative"):
        moe.merge_experts([_single()], [-1.0])
    with pytest.raises(ValueError, match="every label column"):
        moe.auroc_matrix(np.zeros((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="gate must be one of"):
        moe.gaussian_moe_logpdf(torch.zeros(2), torch.zeros(2), {}, "relu")
    with pytest.raises(ValueError, match="router must be one of"):
        moe.NetSpec(d_in=2, d_out=1, router="hash")
    with pytest.raises(ValueError, match="comet needs n_experts = 2\\^D"):
        moe.NetSpec(d_in=2, d_out=1, n_experts=6, router="comet")
    with pytest.raises(ValueError, match="scale must be one of"):
        moe.RoutingConfig.preset("huge")


def _single():
    ex = _experts(1, e=1)
    return {k: v[0] for k, v in ex.items()}


# ---------------------------------------------------------------------------
# the network and the runners (tiny configs)
# ---------------------------------------------------------------------------
def test_net_forward_dispatch_equals_dense_path_and_seeds_are_independent():
    spec = moe.NetSpec(d_in=3, d_out=2, d_model=4, n_experts=4, k=2, hidden=3, layers=2)
    x = torch.randn(3, 20, 3, generator=torch.Generator().manual_seed(0))
    p = moe.init_net(spec, [0, 1, 2])
    with torch.no_grad():
        a, _ = moe.net_forward(p, spec, x)
        b, _ = moe.net_forward(p, spec, x, dense_path=True)
        q = moe.init_net(spec, [1])
        c, _ = moe.net_forward(q, spec, x[1:2])
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a[1:2], c, atol=1e-6)              # member 1 of the stack = a network drawn from seed 1


TINY = moe.RoutingConfig(n_seeds=2, n_train=256, n_test=128, n_clusters=4, dim=4, out_dim=2, d_model=8, n_experts=4,
                         k=2, hidden=4, steps=6, batch=64, every=3)


def test_routing_merging_pruning_runners_feed_from_seeds():
    rt = moe.run_routing(TINY, 0)
    assert rt["dispatch_max_abs_diff"] < 1e-5
    for name in ("balanced", "unbalanced", "dense"):
        assert rt[name]["nmse"].shape == (2,)
    e = paired_difference(rt["dense"]["nmse"], rt["balanced"]["nmse"])
    assert e.kind == "seeds" and e.n == 2
    assert rt["balanced"]["curve_nmi"].shape == (2, 3)
    mg = moe.run_merging(moe.MergeConfig(n_keep=(2,), compare_at=2, distill_steps=3, batch=32), rt)
    assert mg["aligned"].shape == (2, 1) and np.isfinite(mg["naive"]).all()
    # compression at compare_at, parameters by hand (d_model 8, hidden 4, rank 2, 1 column)
    assert mg["compressed"].shape == (2,) and np.isfinite(mg["compressed"]).all()
    w1 = 2 * (8 + 4) + 1 * 8                                   # [8, 4]: rank 2 + one column of 8
    w2 = 2 * (4 + 8) + 1 * 4                                   # [4, 8]: rank 2 + one column of 4
    assert mg["compressed_params"] == {"merged": 2 * (8 * 4 + 4 + 4 * 8 + 8), "compressed": 2 * (w1 + w2 + 4 + 8)}
    assert mg["stable_rank_members"].shape == (2,) and (mg["stable_rank_merged"] >= 1 - 1e-9).all()
    for name in ("distilled", "finetuned"):                    # the compressed model trained further, per seed
        assert mg[name].shape == (2,) and np.isfinite(mg[name]).all()
    pr = moe.run_pruning(moe.PruneConfig(task_clusters=(0,), keep=(4, 1)), rt)
    assert pr["task"].shape == (2, 2)
    rt2 = moe.run_routing(TINY, 0)                           # same seed, same numbers
    assert np.array_equal(rt["balanced"]["nmse"], rt2["balanced"]["nmse"])


def test_gaussian_and_moex_runners_tiny():
    g = moe.run_gaussian_moe(moe.GaussianMoEConfig(n_seeds=2, ns=(50, 100), steps=3), 0)
    assert g["temperature"]["gate_error"].shape == (2, 2) and g["activation"]["slope_gate_error"].shape == (2,)
    x = moe.run_moex(moe.MoeXConfig(n_seeds=2, n_train=128, n_test=256, n_vars=4, dim=3, p=0.3, n_experts=2, k=1,
                                    hidden=2, steps=3, batch=32), 0)
    assert x["moex"]["units"] == 4 and x["dense"]["units"] == 2
    assert np.all((x["moex"]["coverage"] >= 0) & (x["moex"]["coverage"] <= 1))
    assert x["sparse_router"]["units"] == 4 and x["sparse_router"]["nmse"].shape == (2,)
    for name in ("moex", "sparse_router"):                     # at most k experts × h units active per token
        assert np.all((x[name]["l0"] >= 0) & (x[name]["l0"] <= 1 * 2))


def test_a_claim_on_a_straddling_interval_is_inconclusive():
    cs = ClaimSet("mixture_of_experts")
    c = cs.add("toy", paper="li2024merge", statement="s", quantity="q", paper_value="v",
               measured=from_seeds([0.02, -0.01, 0.03, -0.02, 0.01]), criterion=AtLeast(0.0))
    assert c.verdict == "inconclusive"


def test_presets_construct_at_both_scales():
    for cfg in (moe.RoutingConfig, moe.MoeXConfig, moe.GaussianMoEConfig, moe.MergeConfig, moe.PruneConfig,
                moe.ReadMeConfig, moe.CometConfig, moe.LanguageConfig):
        for scale in ("ci", "full"):
            assert cfg.preset(scale) is not None
    full = moe.RoutingConfig.preset("full")
    assert full.spec().n_experts == 16 and replace(full, device="cpu").dense_spec().hidden == 2 * full.hidden


# ---------------------------------------------------------------------------
# the language model: Markov sources, the MoE feed-forward layer, the runner
# ---------------------------------------------------------------------------
def test_markov_sources_follow_their_transitions_and_the_oracle_loss_is_theirs():
    d = moe.markov_sources(400, 12, 3, vocab=6, n_sources=2, alpha=0.05)
    assert d["tokens"].shape == (400, 13) and d["oracle_nll"].shape == (400, 12)
    assert int(d["tokens"].min()) >= 0 and int(d["tokens"].max()) < 6 and set(d["source"].tolist()) == {0, 1}
    # rebuild the sources from the same task seed: the oracle loss is -log P_s(next | current)
    trans = np.random.default_rng(3).dirichlet(np.full(6, 0.05), size=(2, 6))
    trans = np.maximum(trans, 1e-12)
    trans /= trans.sum(-1, keepdims=True)
    x, s = d["tokens"].numpy(), d["source"].numpy()
    expect = -np.log(trans[s[:, None], x[:, :-1], x[:, 1:]])
    assert np.allclose(d["oracle_nll"].numpy(), expect)
    # the empirical transition frequencies of one source approach its matrix
    pairs = np.zeros((6, 6))
    np.add.at(pairs, (x[s == 0][:, :-1].ravel(), x[s == 0][:, 1:].ravel()), 1)
    rows = pairs.sum(1) > 200
    assert np.abs(pairs[rows] / pairs[rows].sum(1, keepdims=True) - trans[0][rows]).max() < 0.1
    again = moe.markov_sources(400, 12, 3, vocab=6, n_sources=2, alpha=0.05)
    assert torch.equal(again["tokens"], d["tokens"])
    with pytest.raises(ValueError, match="alpha"):
        moe.markov_sources(10, 4, 0, alpha=0.0)
    with pytest.raises(ValueError, match="vocab"):
        moe.markov_sources(10, 4, 0, vocab=1)


def test_moe_ffn_equals_the_dense_masked_reference_and_respects_pruning():
    torch.manual_seed(0)
    layer = moe.MoEFFN(6, 4, 2, 5)
    x = torch.randn(3, 7, 6)
    y = layer(x)
    bal, z, idx = layer.aux
    assert y.shape == x.shape and idx.shape == (3, 7, 2) and bal.shape == () and float(bal.detach()) > 0
    _, idx2, gates = moe.top_k_routing(x.reshape(21, 6) @ layer.router, 2)
    ex = {"w1": layer.w1, "b1": layer.b1, "w2": layer.w2, "b2": layer.b2}
    ref = moe.moe_dense_reference(x.reshape(21, 6), ex, moe.gate_matrix(idx2, gates, 4)).reshape(3, 7, 6)
    assert torch.allclose(y, ref, atol=1e-5)
    layer.keep = torch.tensor([False, True, False, True])
    layer(x)
    assert set(layer.aux[2].unique().tolist()) <= {1, 3}
    layer.keep = torch.tensor([False, False, True, False])           # one expert left: k drops to 1
    layer(x)
    assert layer.aux[2].shape == (3, 7, 1) and set(layer.aux[2].unique().tolist()) == {2}


def test_moe_transformer_has_the_dense_models_active_ffn_width():
    torch.manual_seed(0)
    dense = moe.moe_transformer(10, 8, 12, 2, 2, 1, 2, 6)
    sparse = moe.moe_transformer(10, 8, 12, 2, 2, 4, 2, 6)
    assert not any(isinstance(b.up, moe.MoEFFN) for b in dense.blocks)
    kinds = [isinstance(b.up, moe.MoEFFN) for b in sparse.blocks]
    assert kinds == [False, True]                                    # every second FFN, as in Switch
    assert dense.blocks[1].up.out_features == 2 * 6                  # k * hidden units
    one = moe.moe_transformer(10, 8, 12, 1, 2, 4, 2, 6)
    assert isinstance(one.blocks[0].up, moe.MoEFFN)
    assert one(torch.zeros(2, 8, dtype=torch.long)).shape == (2, 8, 10)


def test_language_runner_tiny_is_deterministic():
    cfg = moe.LanguageConfig(n_seeds=2, n_train=64, n_test=32, seq_len=6, vocab=5, n_sources=2, d_model=8, heads=2,
                             n_experts=4, hidden=4, steps=3, batch=8, every=2, keep=(4, 2, 1))
    a = moe.run_language_seed(cfg, 0, "moe")
    assert a["task_ce"].shape == (3,) and a["load"].shape == (4,) and abs(a["load"].sum() - 1) < 1e-9
    assert a["nmi_curve"].shape == a["curve_steps"].shape == (3,) and a["task_ce"][0] == pytest.approx(a["random_ce"][0])
    assert moe.run_language_seed(cfg, 0, "moe")["ce"] == a["ce"]
    d = moe.run_language_seed(cfg, 1, "dense")
    assert set(d) == {"ce", "oracle_ce", "ce_by_source"}
    stacked = moe.collect_language([a, moe.run_language_seed(cfg, 1, "moe")], cfg, variants=("moe",))
    assert stacked["moe"]["ce"].shape == (2,)
    with pytest.raises(ValueError, match="variant"):
        moe.run_language_seed(cfg, 0, "sparse")


# ---------------------------------------------------------------------------
# MC-SMoE's compression stage
# ---------------------------------------------------------------------------
def test_stable_rank_known_values():
    assert float(moe.stable_rank(torch.diag(torch.tensor([3.0, 4.0])))) == pytest.approx(25 / 16)
    assert float(moe.stable_rank(torch.ones(4, 3))) == pytest.approx(1.0)            # rank one
    assert float(moe.stable_rank(torch.eye(5))) == pytest.approx(5.0)
    batch = moe.stable_rank(torch.stack([torch.eye(3), 2 * torch.eye(3)]))
    assert batch.shape == (2,) and torch.allclose(batch, torch.tensor([3.0, 3.0]))
    with pytest.raises(ValueError, match="all-zero"):
        moe.stable_rank(torch.zeros(2, 2))


@FAST
@given(st.integers(0, 2**31 - 1), st.integers(2, 7), st.integers(2, 7))
def test_low_rank_plus_sparse_is_exact_at_full_rank_and_counts_its_parameters(seed, m, n):
    w = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    full, stored = moe.low_rank_plus_sparse(w, min(m, n))
    assert torch.allclose(full, w) and stored == min(m, n) * (m + n)
    # rank r plus c columns: the residual is zero on the kept columns and the error never exceeds rank r alone
    r, c = 1, min(2, n)
    approx, stored = moe.low_rank_plus_sparse(w, r, c)
    low, _ = moe.low_rank_plus_sparse(w, r, 0)
    assert stored == r * (m + n) + c * m
    assert int(((approx - w).abs().amax(0) < 1e-9).sum()) >= c
    assert float((approx - w).norm()) <= float((low - w).norm()) + 1e-9
    assert torch.linalg.matrix_rank(low) <= r


def test_low_rank_plus_sparse_bad_input():
    with pytest.raises(ValueError, match="rank"):
        moe.low_rank_plus_sparse(torch.eye(3), 4)
    with pytest.raises(ValueError, match="columns"):
        moe.low_rank_plus_sparse(torch.eye(3), 1, 5)
    with pytest.raises(ValueError, match="one matrix"):
        moe.low_rank_plus_sparse(torch.ones(2, 3, 3), 1)


# ---------------------------------------------------------------------------
# MoE-X's sparsity-aware router and MC-SMoE's compressed factors
# ---------------------------------------------------------------------------
def test_expected_active_fraction_known_values():
    # x = 0: the pre-activations are the biases, mean 1 and variance 1 -> Φ(1)
    w1 = torch.randn(1, 3, 2, generator=torch.Generator().manual_seed(0))
    b1 = torch.tensor([[0.0, 2.0]])
    a = moe.expected_active_fraction(torch.zeros(1, 3), w1, b1)
    assert a.shape == (1, 1) and abs(float(a) - 0.5 * (1 + math.erf(1 / math.sqrt(2)))) < 1e-6
    # all-positive and all-negative biases with zero weights: every unit on / off
    z = torch.zeros(2, 3, 4)
    a = moe.expected_active_fraction(torch.ones(5, 3), z, torch.tensor([[5.0, 6, 7, 8], [-5.0, -6, -7, -8]]))
    assert torch.allclose(a[:, 0], torch.ones(5)) and torch.allclose(a[:, 1], torch.zeros(5), atol=1e-6)


def test_expected_active_fraction_matches_the_count_for_many_gaussian_units():
    g = torch.Generator().manual_seed(1)
    d, h = 6, 20000
    mu, sd = torch.tensor([0.3, -0.2, 0.1, 0.0, 0.5, -0.4]), torch.tensor([1.0, 0.5, 2.0, 1.0, 0.3, 1.5])
    w1 = (mu[:, None] + sd[:, None] * torch.randn(d, h, generator=g)).unsqueeze(0)
    b1 = 0.2 + 0.5 * torch.randn(1, h, generator=g)
    x = torch.randn(7, d, generator=g)
    counted = ((x @ w1[0] + b1[0]) > 0).double().mean(-1)
    est = moe.expected_active_fraction(x, w1, b1)[:, 0].double()
    assert torch.allclose(est, counted, atol=0.02)


def test_sparsity_routing_prefers_the_sparser_expert_and_validates():
    w1 = torch.zeros(3, 2, 4)
    b1 = torch.stack([torch.full((4,), 1.0), torch.full((4,), -1.0), torch.tensor([1.0, -1.0, 1.0, -1.0])])
    logits, probs, idx, gates = moe.sparsity_routing(torch.randn(5, 2), w1, b1, k=2)
    assert (idx[:, 0] == 1).all() and (idx[:, 1] == 2).all()            # all off, then half on
    assert torch.allclose(gates.sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match="temperature"):
        moe.sparsity_routing(torch.randn(5, 2), w1, b1, k=1, temperature=0.0)
    with pytest.raises(ValueError, match="shapes"):
        moe.expected_active_fraction(torch.randn(5, 3), w1, b1)
    with pytest.raises(TypeError, match="x"):
        moe.expected_active_fraction(np.ones((5, 2)), w1, b1)


def test_net_with_the_sparsity_router_has_no_router_parameters_and_trains():
    spec = moe.NetSpec(d_in=3, d_out=2, d_model=4, n_experts=4, k=2, hidden=3, router="sparsity")
    params = moe.init_net(spec, [0, 1])
    assert not any(k.startswith("router") for k in params)
    x = torch.randn(2, 16, 3)
    a, _ = moe.net_forward(params, spec, x)
    b, _ = moe.net_forward(params, spec, x, dense_path=True)
    assert torch.allclose(a, b, atol=1e-5)
    a.sum().backward()
    assert params["w1_0"].grad is not None and params["w1_0"].grad.abs().sum() > 0


@FAST
@given(st.integers(0, 10**6), st.integers(2, 6), st.integers(2, 6))
def test_low_rank_sparse_factors_reassemble_the_compression(seed, m, n):
    w = torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    r, c = 1, 1
    f = moe.low_rank_sparse_factors(w, r, c)
    approx, _ = moe.low_rank_plus_sparse(w, r, c)
    assert f["a"].shape == (m, r) and f["b"].shape == (r, n) and int(f["mask"].sum()) == c
    assert torch.allclose(f["a"] @ f["b"] + f["s"] * f["mask"], approx)
    assert torch.all(f["s"][:, f["mask"] == 0] == 0)


# ---------------------------------------------------------------------------
# COMET's permutation-based local search (our reading)
# ---------------------------------------------------------------------------
def test_permute_gates_hand_case_and_swap_neighbourhood():
    g = torch.tensor([[0.7, 0.3, 0.0]])
    out = moe.permute_gates(g, torch.tensor([2, 0, 1]))       # gate 0 -> expert 2, gate 1 -> expert 0
    assert torch.equal(out, torch.tensor([[0.3, 0.0, 0.7]]))
    nb = moe.swap_neighbourhood(torch.tensor([0, 1, 2]))
    assert nb.tolist() == [[1, 0, 2], [2, 1, 0], [0, 2, 1]]
    with pytest.raises(ValueError, match="perm"):
        moe.permute_gates(g, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="at least 2"):
        moe.swap_neighbourhood(torch.tensor([0]))


@FAST
@given(st.integers(0, 10**6), st.integers(2, 6))
def test_permute_gates_is_a_bijection_on_columns(seed, e):
    g = torch.Generator().manual_seed(seed)
    gm = torch.rand(2, 5, e, generator=g)
    perm = torch.stack([torch.randperm(e, generator=g) for _ in range(2)])
    out = moe.permute_gates(gm, perm)
    assert torch.allclose(out.sum(-1), gm.sum(-1))
    for s in range(2):
        for j in range(e):
            assert torch.equal(out[s, :, perm[s, j]], gm[s, :, j])


def test_local_search_undoes_a_planted_swap():
    # a network whose experts have been swapped relative to its gate: the best transposition restores it
    spec = moe.NetSpec(d_in=3, d_out=2, d_model=4, n_experts=4, k=2, hidden=3, router="comet")
    params = moe.init_net(spec, [0])
    with torch.no_grad():
        params["node_w_0"].mul_(20)                             # saturated splits: a sharp gate
    x = torch.randn(1, 256, 3, generator=torch.Generator().manual_seed(1))
    ident = torch.arange(4).view(1, 1, 4)
    with torch.no_grad():
        y, _ = moe.net_forward(params, spec, x, expert_perm=ident)
        perm = torch.tensor([[[1, 0, 2, 3]]])
        moved = moe.local_search_step(params, spec, perm, x, y)
    assert moved.tolist() == [1] and perm.tolist() == [[[0, 1, 2, 3]]]
    again = moe.local_search_step(params, spec, perm, x, y)   # at the optimum: no move
    assert again.tolist() == [0]


def test_comet_runner_tiny_pairs_with_and_without_search():
    rc = moe.RoutingConfig(n_seeds=2, n_train=256, n_test=128, n_clusters=2, dim=3, out_dim=2, d_model=4, n_experts=4,
                           hidden=2, steps=4, batch=32)
    seeds = [0, 1]
    tr, te = rc.data(seeds)
    r = moe.run_comet(moe.CometConfig(search_every=2, search_tokens=64), rc, {"seeds": seeds, "train": tr, "test": te})
    assert r["comet"]["nmse"].shape == (2,) and r["plus"]["moves"].shape == (2,)
    assert np.array_equal(r["nmse"], r["comet"]["nmse"])


def test_full_presets_run_their_code_path_with_tiny_sizes():
    """Every full preset, shrunk in size only (expert counts, layers, merge and prune targets, sweeps kept),
    runs on the CPU: the full code path without its cost.  The presets ask for the GPU when one is present."""
    from sparsebook.mixture_of_experts.experiments import device_for

    dev = str(device_for("full"))
    for cfg in (moe.RoutingConfig, moe.MoeXConfig, moe.GaussianMoEConfig, moe.LanguageConfig):
        assert cfg.preset("full").device == dev and cfg.preset("ci").device == "cpu"
    rc = replace(moe.RoutingConfig.preset("full"), n_seeds=2, n_train=2048, n_test=256, dim=8, out_dim=2, d_model=16,
                 hidden=4, steps=3, batch=64, every=2, device="cpu")
    rt = moe.run_routing(rc, 0)
    assert rt["balanced"]["usage"].shape == (2, 16)
    mg = moe.run_merging(replace(moe.MergeConfig.preset("full"), distill_steps=2, batch=64), rt)
    assert mg["aligned"].shape == (2, 4) and np.isfinite(mg["distilled"]).all()
    assert moe.run_pruning(moe.PruneConfig.preset("full"), rt)["task"].shape == (2, 5)
    data = {"seeds": rt["seeds"], "train": rt["train"], "test": rt["test"]}
    assert moe.run_readme(moe.ReadMeConfig.preset("full"), rc, data)["pregate"].shape == (2,)
    cm = moe.run_comet(replace(moe.CometConfig.preset("full"), search_every=2, search_tokens=64), rc, data)
    assert cm["plus"]["moves"].shape == (2,)
    mx = moe.run_moex(replace(moe.MoeXConfig.preset("full"), n_seeds=2, n_train=256, n_test=256, n_vars=4, dim=3,
                              hidden=2, steps=3, batch=64, device="cpu"), 0)
    assert mx["moex"]["units"] == 16 * 2
    g = moe.run_gaussian_moe(replace(moe.GaussianMoEConfig.preset("full"), n_seeds=2, ns=(50, 100), steps=3,
                                     device="cpu"), 0)
    assert g["activation"]["gate_error"].shape == (2, 2)
    lc = replace(moe.LanguageConfig.preset("full"), n_train=64, n_test=32, seq_len=8, vocab=8, n_sources=4, d_model=8,
                 heads=2, hidden=4, steps=3, batch=8, every=2, device="cpu")
    a = moe.run_language_seed(lc, 0, "moe")
    assert a["task_ce"].shape == (4,) and a["load"].shape == (16,)
    assert set(moe.run_language_seed(lc, 0, "dense")) == {"ce", "oracle_ce", "ce_by_source"}


def test_merging_survives_a_group_that_no_token_routes_to():
    """With 16 experts on a 4-dimensional router some experts never win a token; a group made only of such
    experts is merged with plain weights instead of failing (the full preset's 16 experts)."""
    rc = replace(moe.RoutingConfig.preset("full"), n_seeds=2, n_train=512, n_test=256, dim=3, out_dim=2, d_model=4,
                 hidden=4, steps=3, batch=64, every=2, device="cpu")
    rt = moe.run_routing(rc, 0)
    assert (rt["balanced"]["usage"] == 0).any()                   # the case this guards
    mg = moe.run_merging(replace(moe.MergeConfig.preset("full"), distill_steps=2, batch=64), rt)
    assert np.isfinite(mg["aligned"]).all() and np.isfinite(mg["uniform"]).all()
