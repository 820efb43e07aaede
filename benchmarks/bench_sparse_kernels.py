"""Benchmarks for the sparse_kernels chapter (each kernel against its peer, same run, medians).

- CPU: a 1×1 convolution of MobileNet v1 (512 → 512 channels, 14×14 pixels) at 90% weight
  sparsity, CSR ``torch.sparse.mm`` (MKL sparse BLAS) against dense ``torch.mm`` (MKL SGEMM), one thread.
- CPU: the same layer against ``torch.nn.functional.conv2d`` (oneDNN), the call a model would make.
- CPU: CHESS's channel-wise thresholds from 4096 calibration tokens × 1024 channels (one importance
  quantile by ``torch.kthvalue``) against the same rule in NumPy (``np.partition``).
- GPU (only where CUDA and Triton are present): the activation-sparse GEMV at 50% and 90% sparsity
  against cuBLAS ``F.linear`` (LLaMA-70B's down projection, fp16).  The stored H200 numbers with
  all repeats are in ``book/data/sparse_kernels_h200.json`` and in the chapter.
"""
from __future__ import annotations

import torch

from benchmarks.harness import Benchmark
from sparsebook.sparse_kernels import kernels as K


def _one_thread(fn):
    def run():
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(old)
    return run


def _check_close(a, b, tol=1e-4):
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    err = float((a - b).norm() / b.norm())
    if err > tol:
        raise AssertionError(f"results differ: rel err {err:.2e}")
    return f"rel err {err:.1e}"


def benchmarks() -> list[Benchmark]:
    g = torch.Generator().manual_seed(0)
    w = K.random_sparse_weight(512, 512, 0.9, g)
    csr = w.to_sparse_csr()
    x = torch.randn(512, 14, 14, generator=g)
    x2 = x.reshape(512, -1)
    out = [
        Benchmark("sparse_kernels", "1x1 conv 512>512 @14x14, s=0.9, CSR (1 thread)",
                  _one_thread(lambda: torch.sparse.mm(csr, x2)), _one_thread(lambda: torch.mm(w, x2)),
                  "torch.mm (MKL dense)", repeats=21, check=_check_close),
        Benchmark("sparse_kernels", "1x1 conv 512>512 @14x14, s=0.9, CSR vs conv2d (1 thread)",
                  _one_thread(lambda: K.conv1x1_as_matmul(csr, x)),
                  _one_thread(lambda: torch.nn.functional.conv2d(x[None], w[:, :, None, None])[0]),
                  "F.conv2d (oneDNN)", repeats=21, check=_check_close),
    ]
    import numpy as np

    a, u = torch.randn(4096, 1024, generator=g), torch.randn(4096, 1024, generator=g)

    def chess_numpy():
        an, un = a.numpy().astype(np.float64), u.numpy().astype(np.float64)
        mu = np.abs(un).mean(0)
        imp = (np.abs(an) * mu).ravel()
        k = int(np.floor(0.5 * imp.size + 0.5))
        return torch.from_numpy(np.partition(imp, k - 1)[k - 1] / mu)

    out.append(Benchmark("sparse_kernels", "CHESS channel thresholds, 4096 tokens x 1024 channels, s=0.5",
                         lambda: K.chess_thresholds(a, u, 0.5), chess_numpy, "NumPy (np.partition)", repeats=11,
                         check=lambda x, y: _check_close(x, y, tol=1e-12)))
    try:
        import triton  # noqa: F401
        gpu_ok = torch.cuda.is_available()
    except ImportError:
        gpu_ok = False
    if gpu_ok:
        from sparsebook.sparse_kernels import gpu

        def sync(fn):
            def run():
                r = fn()
                torch.cuda.synchronize()
                return r
            return run

        kk, n = 28672, 8192
        gg = torch.Generator(device="cuda").manual_seed(0)
        wl = torch.randn(n, kk, device="cuda", dtype=torch.float16, generator=gg) / kk ** 0.5
        wt = wl.t().contiguous()
        for s in (0.5, 0.9):
            xv = torch.randn(kk, device="cuda", dtype=torch.float16, generator=gg)
            t = K.threshold_for_sparsity(xv.float().cpu(), s)
            cfg = gpu.GemvConfig(2048, 256, 8, False, 8, 2, "compact")
            out.append(Benchmark("sparse_kernels", f"sparse GEMV {kk}->{n} fp16, s={s}",
                                 sync(lambda xv=xv, t=t, cfg=cfg: gpu.sparse_gemv(xv, wt, t, cfg)),
                                 sync(lambda xv=xv, t=t: torch.nn.functional.linear(torch.nn.functional.hardshrink(xv, t), wl)),
                                 "cuBLAS F.linear (threshold applied)", repeats=50,
                                 check=lambda a, b: _check_close(a.float().cpu(), b.float().cpu(), tol=3e-3)))
    return out
