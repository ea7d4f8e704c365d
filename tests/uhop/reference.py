"""Float64 NumPy brute-force references for the U-Hop tests (independent of the package's code)."""

from __future__ import annotations

import numpy as np


def unit_features(w, mem):
    z = np.asarray(mem, np.float64) @ np.asarray(w, np.float64).T
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return np.where(norms > 0, z / np.where(norms > 0, norms, 1.0), 0.0)


def separation_loss(w, mem, t=2.0, loss="average"):
    """All ordered pairs i != j by explicit differences ||u_i - u_j||^2 (a K x K x F tensor: small inputs only)."""
    u = unit_features(w, mem)
    k = len(u)
    sq = ((u[:, None, :] - u[None, :, :]) ** 2).sum(-1)  # brute force, no Gram expansion
    off = ~np.eye(k, dtype=bool)
    if loss == "max":
        return float(np.max(-t * sq[off]))
    if loss == "average":
        g = -t * sq[off]
    else:  # deep: 2 t (c^2 - 1), c = 1 - ||u - v||^2 / 2 for unit vectors; computed from the dot product here
        c = (u[:, None, :] * u[None, :, :]).sum(-1)
        g = 2 * t * (c[off] ** 2 - 1)
    m = g.max()
    return float(m + np.log(np.mean(np.exp(g - m))))


def numeric_grad(fn, w, eps=1e-6):
    """Central finite differences of a scalar function of the array ``w`` (float64)."""
    w = np.asarray(w, np.float64)
    grad = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[idx] = eps
        grad[idx] = (fn(w + step) - fn(w - step)) / (2 * eps)
    return grad


def entmax(z, alpha):
    """alpha-entmax of one score vector by bisection (float64); alpha = 1 is softmax."""
    from tests.reference import entmax_bisect

    return entmax_bisect(np.asarray(z, np.float64)[None], alpha)[0]
