"""Independent float64 NumPy reference implementations used across the tests."""

import numpy as np


def entmax_bisect(z, alpha, iters=200):
    """alpha-entmax along the last axis by bisection on tau (float64); alpha = 1 is softmax."""
    z = np.asarray(z, np.float64)
    if alpha == 1.0:
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    y = (alpha - 1.0) * z
    m = 1.0 / (alpha - 1.0)
    lo = y.max(-1, keepdims=True) - 1.0
    hi = y.max(-1, keepdims=True)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        s = (np.maximum(y - mid, 0.0) ** m).sum(-1, keepdims=True)
        lo = np.where(s >= 1.0, mid, lo)
        hi = np.where(s < 1.0, mid, hi)
    p = np.maximum(y - lo, 0.0) ** m
    return p / p.sum(-1, keepdims=True)


def sylvester(n: int, normalize: bool = True) -> np.ndarray:
    """Sylvester's construction H_1 = [1], H_2n = [[H, H], [H, -H]] (float64), divided by sqrt(n) unless
    ``normalize`` is False."""
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n) if normalize else h


def tsallis_conjugate(z, alpha):
    """Psi*_alpha(z) = <p, z> + H_alpha(p) at p = alpha-entmax(z); alpha = 1: logsumexp."""
    z = np.asarray(z, np.float64)
    if alpha == 1.0:
        m = z.max(-1)
        return m + np.log(np.exp(z - m[..., None]).sum(-1))
    p = entmax_bisect(z, alpha)
    entropy = (1.0 - (p**alpha).sum(-1)) / (alpha * (alpha - 1.0))
    return (p * np.where(p > 0, z, 0.0)).sum(-1) + entropy
