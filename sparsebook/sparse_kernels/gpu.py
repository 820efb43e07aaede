"""GPU kernels of the chapter (Triton), imported lazily: nothing here imports Triton at module load.

- :func:`sparse_gemv`: the activation-sparse GEMV ``y = Wᵀ (x ⊙ 1[|x| > t])`` for one token
  (batch 1), with the weight stored input-major, ``wt`` of shape ``[K, N]`` (row ``k`` holds the
  ``N`` weights that input ``k`` feeds).  The threshold test and the selection of rows are fused
  into the kernel: each program loads a block of ``x``, forms the mask and issues predicated loads
  for the weight rows of the active inputs only; the loads of inactive rows are switched off, so
  their bytes are never read from memory.  No ``nonzero``/``topk`` pass precedes it.
  Four layouts of the work: ``kind="compact"`` (the selection proper: each program sorts the
  indices of its ``block_k`` rows active-first and visits only the active rows, ``split`` at a time,
  so that its work, not only its memory traffic, is proportional to the active rows), ``kind="tile"`` (each program reads ``split × block_k`` rows in an
  unrolled block with no loop-carried dependency, so that many programs keep many loads in flight;
  partial sums added atomically in float32, then cast), and two looping ones: ``split == 1`` (one program per block of ``BLOCK_N`` outputs, over all
  of ``K``; one launch, output written in the input dtype) and ``split > 1`` (split-K: partial sums
  added atomically in float32, then cast).  Inner product on CUDA cores (``dot=False``: an
  element-wise multiply-accumulate reduced once at the end) or tensor cores (``dot=True``: ``x``
  broadcast to 16 rows and ``tl.dot``).
- :func:`sparse_rows_gemv`: the output-sparse GEMV of CATS's up projection,
  ``h_i = m_i · a_i · (W_up[i] · x)`` with ``m_i = 1[|a_i| > t]``, reading only the rows of active
  outputs.
- :func:`dispatch_gemv`: the layer a model would call: the sparse kernel when the calibrated
  sparsity is at or above the crossover measured for the shape, else dense cuBLAS (the fallback).

Semantics are those of :func:`sparsebook.sparse_kernels.kernels.sparse_gemv_reference` and
:func:`~sparsebook.sparse_kernels.kernels.sparse_rows_reference` (tested on the CPU in CI; the
kernels themselves are tested by ``-m gpu`` tests).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

_KERNELS: dict | None = None


@dataclass(frozen=True)
class GemvConfig:
    """One launch configuration of :func:`sparse_gemv` (see the module docstring)."""

    block_n: int = 32
    block_k: int = 128
    split: int = 1
    dot: bool = False
    warps: int = 4
    stages: int = 4
    kind: str = "loop"

    def record(self) -> dict:
        return asdict(self)


#: the configurations the measurement tries for every (shape, dtype, sparsity); the best is kept.
CONFIGS = (
    # "loop": one program per (block of N outputs, K split), looping over its K range
    GemvConfig(32, 128, 1, False, 4, 4),
    GemvConfig(256, 32, 16, False, 8, 3),
    GemvConfig(128, 64, 8, True, 4, 4),
    # "tile": no loop-carried dependency; each program reads split x block_k rows (unrolled), atomics
    GemvConfig(64, 64, 4, False, 4, 1, "tile"),
    GemvConfig(64, 64, 8, False, 4, 1, "tile"),
    GemvConfig(512, 32, 4, False, 8, 1, "tile"),
    GemvConfig(1024, 16, 4, False, 8, 1, "tile"),
    GemvConfig(2048, 8, 4, False, 8, 1, "tile"),
    # "compact": the selection inside the kernel: sort the block's row indices active-first, then
    # visit only the active rows, ``split`` (CB) rows at a time: work proportional to the active rows
    GemvConfig(128, 512, 32, False, 4, 2, "compact"),
    GemvConfig(512, 256, 16, False, 4, 2, "compact"),
    GemvConfig(1024, 256, 16, False, 8, 2, "compact"),
    GemvConfig(1024, 512, 16, False, 8, 2, "compact"),
    GemvConfig(2048, 128, 8, False, 8, 2, "compact"),
    GemvConfig(2048, 256, 8, False, 8, 2, "compact"),
    GemvConfig(4096, 128, 4, False, 8, 2, "compact"),
    GemvConfig(2048, 512, 8, False, 8, 2, "compact"),
    GemvConfig(4096, 256, 4, False, 8, 2, "compact"),
)


def _kernels() -> dict:
    """Compile-on-first-use Triton kernels (the import of Triton happens here)."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit
    def _gemv(x_ptr, w_ptr, y_ptr, t, K, N, stride_wk, k_per_split,
              BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr, ATOMIC: tl.constexpr):
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        nmask = offs_n < N
        rk = tl.arange(0, BLOCK_K)
        if DOT:
            acc = tl.zeros([16, BLOCK_N], dtype=tl.float32)
        else:
            acc = tl.zeros([BLOCK_K, BLOCK_N], dtype=tl.float32)
        k_lo = pid_k * k_per_split
        for k0 in range(k_lo, k_lo + k_per_split, BLOCK_K):
            offs_k = k0 + rk
            kin = offs_k < K
            xk = tl.load(x_ptr + offs_k, mask=kin, other=0.0)
            act = (tl.abs(xk.to(tl.float32)) > t) & kin
            w = tl.load(w_ptr + offs_k[:, None] * stride_wk + offs_n[None, :],
                        mask=act[:, None] & nmask[None, :], other=0.0)
            xs = tl.where(act, xk.to(tl.float32), 0.0)
            if DOT:
                xb = tl.broadcast_to(xs.to(w.dtype)[None, :], (16, BLOCK_K))
                acc = tl.dot(xb, w, acc)
            else:
                acc += w.to(tl.float32) * xs[:, None]
        if DOT:
            rows = tl.arange(0, 16)
            y = tl.sum(tl.where(rows[:, None] == 0, acc, 0.0), axis=0)
        else:
            y = tl.sum(acc, axis=0)
        if ATOMIC:
            tl.atomic_add(y_ptr + offs_n, y, mask=nmask, sem="relaxed")
        else:
            tl.store(y_ptr + offs_n, y.to(y_ptr.dtype.element_ty), mask=nmask)

    @triton.jit
    def _rows(x_ptr, a_ptr, w_ptr, h_ptr, t, F, D, stride_wf,
              BLOCK_F: tl.constexpr, BLOCK_D: tl.constexpr, SUB: tl.constexpr):
        pid_f = tl.program_id(0)
        pid_d = tl.program_id(1)
        offs_f = pid_f * BLOCK_F + tl.arange(0, BLOCK_F)
        fin = offs_f < F
        a = tl.load(a_ptr + offs_f, mask=fin, other=0.0).to(tl.float32)
        act = (tl.abs(a) > t) & fin
        acc = tl.zeros([BLOCK_F, BLOCK_D], dtype=tl.float32)
        for i in tl.static_range(SUB):
            offs_d = (pid_d * SUB + i) * BLOCK_D + tl.arange(0, BLOCK_D)
            din = offs_d < D
            xv = tl.load(x_ptr + offs_d, mask=din, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + offs_f[:, None] * stride_wf + offs_d[None, :],
                        mask=act[:, None] & din[None, :], other=0.0)
            acc += w.to(tl.float32) * xv[None, :]
        tl.atomic_add(h_ptr + offs_f, a * tl.sum(acc, axis=1), mask=act, sem="relaxed")

    @triton.jit
    def _gemv_tile(x_ptr, w_ptr, y_ptr, t, K, N, stride_wk,
                   BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, SUB: tl.constexpr):
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        nmask = offs_n < N
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros([BLOCK_K, BLOCK_N], dtype=tl.float32)
        for i in tl.static_range(SUB):
            offs_k = (pid_k * SUB + i) * BLOCK_K + rk
            kin = offs_k < K
            xk = tl.load(x_ptr + offs_k, mask=kin, other=0.0).to(tl.float32)
            act = (tl.abs(xk) > t) & kin
            w = tl.load(w_ptr + offs_k[:, None] * stride_wk + offs_n[None, :],
                        mask=act[:, None] & nmask[None, :], other=0.0)
            acc += w.to(tl.float32) * tl.where(act, xk, 0.0)[:, None]
        tl.atomic_add(y_ptr + offs_n, tl.sum(acc, axis=0), mask=nmask, sem="relaxed")

    @triton.jit
    def _gemv_compact(x_ptr, w_ptr, y_ptr, t, K, N, stride_wk,
                      ROWS: tl.constexpr, CB: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_n = tl.program_id(0)
        pid_k = tl.program_id(1)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        nmask = offs_n < N
        loc = tl.arange(0, ROWS)
        offs_k = pid_k * ROWS + loc
        kin = offs_k < K
        xk = tl.load(x_ptr + offs_k, mask=kin, other=0.0).to(tl.float32)
        act = (tl.abs(xk) > t) & kin
        cnt = tl.sum(act.to(tl.int32), axis=0)
        # selection: sort the local indices with the active ones first (in order), then walk them CB at a time
        srt = tl.sort(tl.where(act, loc, loc + ROWS))
        s2 = tl.reshape(srt, (ROWS // CB, CB))
        chunk = tl.arange(0, ROWS // CB)
        acc = tl.zeros([CB, BLOCK_N], dtype=tl.float32)
        for j in range(0, (cnt + CB - 1) // CB):
            ids = tl.sum(tl.where(chunk[:, None] == j, s2, 0), axis=0)
            valid = ids < ROWS
            rows = pid_k * ROWS + ids
            xv = tl.load(x_ptr + rows, mask=valid, other=0.0).to(tl.float32)
            w = tl.load(w_ptr + rows[:, None] * stride_wk + offs_n[None, :],
                        mask=valid[:, None] & nmask[None, :], other=0.0)
            acc += w.to(tl.float32) * xv[:, None]
        tl.atomic_add(y_ptr + offs_n, tl.sum(acc, axis=0), mask=nmask & (cnt > 0), sem="relaxed")

    _KERNELS = {"gemv": _gemv, "tile": _gemv_tile, "compact": _gemv_compact, "rows": _rows, "triton": triton}
    return _KERNELS


def triton_version() -> str:
    return _kernels()["triton"].__version__


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_gemv_args(x, wt, name_w="wt"):
    if not (isinstance(x, torch.Tensor) and isinstance(wt, torch.Tensor)):
        raise TypeError("x and wt must be torch tensors")
    if x.ndim != 1 or wt.ndim != 2 or wt.shape[0] != x.shape[0]:
        raise ValueError(f"x must be [K] and {name_w} [K, N]; got {tuple(x.shape)} and {tuple(wt.shape)}")
    if not (x.is_cuda and wt.is_cuda):
        raise ValueError("x and wt must be CUDA tensors (the CPU reference is kernels.sparse_gemv_reference)")
    if wt.dtype not in (torch.float16, torch.bfloat16) or x.dtype not in (wt.dtype, torch.float32):
        raise TypeError(f"wt must be float16 or bfloat16 and x of its dtype or float32; got {x.dtype}, {wt.dtype}")
    if wt.stride(1) != 1 or not x.is_contiguous():
        raise ValueError("wt must be row-major ([K, N] with unit stride along N) and x contiguous")


def sparse_gemv(x: torch.Tensor, wt: torch.Tensor, threshold: float, config: GemvConfig | None = None,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """``y[n] = Σ_k wt[k, n] · x[k] · 1[|x[k]| > threshold]`` on the GPU (Triton), float32 accumulation.

    ``x``: ``[K]``, ``wt``: ``[K, N]`` row-major, float16 or bfloat16 (``x`` of the same dtype or
    float32) on one CUDA device; returns ``[N]`` in ``wt``'s dtype.  ``out`` (optional, ``[N]``, same dtype) is written in full.
    """
    _check_gemv_args(x, wt)
    cfg = config or CONFIGS[0]
    k = _kernels()["gemv"]
    K, N = wt.shape
    if cfg.kind in ("tile", "compact"):
        y32 = torch.zeros(N, dtype=torch.float32, device=x.device)
        if cfg.kind == "tile":
            grid = (_cdiv(N, cfg.block_n), _cdiv(K, cfg.block_k * cfg.split))
            _kernels()["tile"][grid](x, wt, y32, float(threshold), K, N, wt.stride(0), BLOCK_K=cfg.block_k,
                                     BLOCK_N=cfg.block_n, SUB=cfg.split, num_warps=cfg.warps, num_stages=cfg.stages)
        else:
            grid = (_cdiv(N, cfg.block_n), _cdiv(K, cfg.block_k))
            _kernels()["compact"][grid](x, wt, y32, float(threshold), K, N, wt.stride(0), ROWS=cfg.block_k,
                                        CB=cfg.split, BLOCK_N=cfg.block_n, num_warps=cfg.warps, num_stages=cfg.stages)
        if out is not None:
            out.copy_(y32)
            return out
        return y32.to(wt.dtype)
    if cfg.split == 1:
        y = out if out is not None else torch.empty(N, dtype=wt.dtype, device=x.device)
        grid = (_cdiv(N, cfg.block_n), 1)
        k[grid](x, wt, y, float(threshold), K, N, wt.stride(0), _cdiv(K, cfg.block_k) * cfg.block_k,
                BLOCK_K=cfg.block_k, BLOCK_N=cfg.block_n, DOT=cfg.dot, ATOMIC=False,
                num_warps=cfg.warps, num_stages=cfg.stages)
        return y
    kps = _cdiv(_cdiv(K, cfg.split), cfg.block_k) * cfg.block_k
    y32 = torch.zeros(N, dtype=torch.float32, device=x.device)
    grid = (_cdiv(N, cfg.block_n), _cdiv(K, kps))
    k[grid](x, wt, y32, float(threshold), K, N, wt.stride(0), kps,
            BLOCK_K=cfg.block_k, BLOCK_N=cfg.block_n, DOT=cfg.dot, ATOMIC=True,
            num_warps=cfg.warps, num_stages=cfg.stages)
    if out is not None:
        out.copy_(y32)
        return out
    return y32.to(wt.dtype)


def sparse_rows_gemv(x: torch.Tensor, a: torch.Tensor, w: torch.Tensor, threshold: float,
                     block_f: int = 32, block_d: int = 128, sub: int = 4, warps: int = 4) -> torch.Tensor:
    """CATS's up projection: ``h[i] = a[i] · (w[i] · x) · 1[|a[i]| > threshold]``, rows of inactive ``i`` unread.

    ``x``: ``[D]``, ``a``: ``[F]`` (the gate activations, SiLU applied), ``w``: ``[F, D]`` row-major
    (``nn.Linear`` layout of the up projection).  Each program reads ``block_f`` rows over
    ``sub × block_d`` columns and adds its partial dot products atomically; returns ``h``: ``[F]``
    in float32 (the down projection's :func:`sparse_gemv` reads it as is, no cast).
    """
    if w.ndim != 2 or x.ndim != 1 or a.ndim != 1 or w.shape != (a.shape[0], x.shape[0]):
        raise ValueError(f"need x [D], a [F], w [F, D]; got {tuple(x.shape)}, {tuple(a.shape)}, {tuple(w.shape)}")
    if not (x.is_cuda and a.is_cuda and w.is_cuda) or w.stride(1) != 1:
        raise ValueError("x, a, w must be CUDA tensors and w row-major")
    F, D = w.shape
    h = torch.zeros(F, dtype=torch.float32, device=x.device)
    grid = (_cdiv(F, block_f), _cdiv(D, block_d * sub))
    _kernels()["rows"][grid](x, a, w, h, float(threshold), F, D, w.stride(0),
                             BLOCK_F=block_f, BLOCK_D=block_d, SUB=sub, num_warps=warps, num_stages=1)
    return h


def dispatch_gemv(x: torch.Tensor, wt: torch.Tensor, threshold: float, sparsity: float, crossover: float,
                  config: GemvConfig | None = None) -> torch.Tensor:
    """The layer's call: :func:`sparse_gemv` if the calibrated ``sparsity >= crossover``, else dense.

    The dense fallback is :func:`dense_gemv`, cuBLAS on the same ``wt``.  The decision
    uses the calibrated sparsity, a property of the layer, so it needs no host synchronisation.
    """
    if sparsity >= crossover:
        return sparse_gemv(x, wt, threshold, config)
    return dense_gemv(x, wt, threshold)


def dense_gemv(x: torch.Tensor, wt: torch.Tensor, threshold: float) -> torch.Tensor:
    """The dense fallback: ``hardshrink_t(x) @ wt`` through cuBLAS (one element-wise kernel, then the GEMV).

    ``hardshrink_t(x) = x · 1[|x| > t]`` is the mask's semantics in a single kernel; at ``t <= 0``
    no input can be cut and the call is the bare GEMV.
    """
    if threshold > 0:
        x = torch.nn.functional.hardshrink(x, threshold)
    return x @ wt


def time_calls(fn, n: int, flush: torch.Tensor | None = None) -> list[float]:
    """``n`` GPU times (ms) of ``fn()``, each between two CUDA events, after a warm-up call.

    With ``flush`` (a buffer larger than the L2 cache) the buffer is read (summed) before every
    call, so that each call reads its weights from device memory, as a decode step does when the
    other layers' weights have passed through the cache in between.  Reading, not zeroing as
    Triton's ``do_bench`` does: a zeroed buffer leaves the L2 full of dirty lines whose write-back
    (about 15 µs on an H200) would be charged to the next call.
    """
    fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        if flush is not None:
            flush.sum()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]
