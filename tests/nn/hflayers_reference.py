"""An independent float64 NumPy forward pass of hopfield-layers' ``Hopfield`` (Ramsauer et al. 2021, the PyTorch
package ``hflayers``), written from its documented equations and argument descriptions, for porting tests.

Batch-first inputs: ``state`` (the queries, N x L x E), ``stored`` (the stored patterns, N x S x E_k) and
``projection`` (the pattern projection, i.e. the values, N x S x E_v). The forward pass, in hflayers' order:

1. optional LayerNorm of each input over its feature axis (``normalize_stored_pattern``,
   ``normalize_state_pattern``, ``normalize_pattern_projection``; affine or not; eps 1e-5 by default);
2. per-head projections ``q = x W_q + b_q`` etc. (``input_bias``), or, for an input ``*_as_static``, the input
   itself repeated for every head (its width is then the head width). With ``pattern_projection_as_connected`` the
   pattern projection passes the stored patterns' projection first: ``v = (y W_k + b_k) W_v + b_v`` (``W_v`` of
   shape ``(H * D, H * D)``, mixing the heads), or ``v = y W_k + b_k`` when the projection is static;
3. optional LayerNorm of ``q`` and ``k`` per head (``normalize_hopfield_space``, one set of affine weights shared
   by both);
4. ``add_zero_association``: a zero stored pattern and a zero projection appended after the projections;
5. the update of Ramsauer et al. (2021), eq. (3): ``xi_0 = softmax(beta q k^T)``; while a head is active,
   ``q <- xi k`` (unscaled keys) and ``xi_{t+1} = softmax(beta q k^T)``. A head stays active while
   ``t < update_steps_max`` (None: no limit) and, from the second association on, while the Frobenius norm of
   ``xi_{t+1} - xi_t`` over (L, S), maximised over the batch, exceeds ``update_steps_eps``. So
   ``update_steps_max=n`` gives at most ``n + 1`` associations (softmaxes). Both may be one value per head (an
   array of H): a stopped head keeps its state and association matrix while the others go on;
6. masks are True = ignore: ``stored_pattern_padding_mask`` (N, S), ``association_mask`` (L, S); the appended
   zero pattern is never masked;
7. ``out = xi v``, heads concatenated, then ``W_o`` (unless ``disable_out_projection``), then the optional
   ``association_activation`` (a NumPy function here, e.g. ``np.tanh``).

``scaling`` (beta) defaults to ``1 / sqrt(head_dim)``, or 1.0 when every input is static and there is no output
projection (hflayers' "static execution").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def layer_norm(x: np.ndarray, affine: tuple[np.ndarray, np.ndarray] | None, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as ``torch.nn.LayerNorm``); ``affine`` = (weight, bias)."""
    x = np.asarray(x, np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y if affine is None else y * affine[0] + affine[1]


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row softmax over the last axis; ``-inf`` entries get weight 0."""
    shifted = scores - scores.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


@dataclass
class HflayersParams:
    """The parameters of one hflayers ``Hopfield`` (float64, ``(in, out)`` matrices, so ``x @ W``).

    A LayerNorm entry is None when that normalisation is off, ``"plain"`` when on without affine weights, or the pair
    ``(weight, bias)`` when affine. A projection entry is None for a static input (or no output projection).
    """

    num_heads: int
    w_q: np.ndarray | None = None
    b_q: np.ndarray | None = None
    w_k: np.ndarray | None = None
    b_k: np.ndarray | None = None
    w_v: np.ndarray | None = None
    b_v: np.ndarray | None = None
    w_o: np.ndarray | None = None
    b_o: np.ndarray | None = None
    norm_stored: object = None
    norm_state: object = None
    norm_projection: object = None
    norm_hopfield_space: object = None
    norm_eps: float = 1e-5  # the LayerNorms' epsilon (hflayers' ``normalize_*_eps``)


def _maybe_norm(x: np.ndarray, spec, eps: float) -> np.ndarray:
    if spec is None:
        return np.asarray(x, np.float64)
    return layer_norm(x, None if isinstance(spec, str) else spec, eps)


def _heads(x: np.ndarray, w, b, num_heads: int) -> np.ndarray:
    """(N, L, E) -> (N, H, L, D): projected and split into heads, or repeated for every head when static (w None)."""
    x = np.asarray(x, np.float64)
    if w is None:
        return np.repeat(x[:, None], num_heads, axis=1)
    y = x @ w + (0.0 if b is None else b)
    n, length, width = y.shape
    return y.reshape(n, length, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def hopfield_forward(
    p: HflayersParams,
    stored: np.ndarray,
    state: np.ndarray,
    projection: np.ndarray,
    *,
    scaling: float | np.ndarray | None = None,
    update_steps_max: int | np.ndarray | None = 0,
    update_steps_eps: float | np.ndarray = 1e-4,
    add_zero_association: bool = False,
    association_activation=None,
    pattern_projection_as_connected: bool = False,
    stored_pattern_padding_mask: np.ndarray | None = None,
    association_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """hflayers' ``Hopfield.forward((stored, state, projection))`` in float64.

    Returns:
      ``(output, xi, associations)``: the output (N, L, out), the final association matrix (N, H, L, S[+1]) and the
      number of associations (softmaxes) computed.
    """
    h = p.num_heads
    stored = _maybe_norm(stored, p.norm_stored, p.norm_eps)
    state = _maybe_norm(state, p.norm_state, p.norm_eps)
    projection = _maybe_norm(projection, p.norm_projection, p.norm_eps)
    q = _heads(state, p.w_q, p.b_q, h)
    k = _heads(stored, p.w_k, p.b_k, h)
    if pattern_projection_as_connected:  # the stored patterns' projection first, then (unless static) W_v
        assert p.w_k is not None, "pattern_projection_as_connected needs the stored patterns' projection"
        connected = np.asarray(projection, np.float64) @ p.w_k + (0.0 if p.b_k is None else p.b_k)
        if p.w_v is not None:
            connected = connected @ p.w_v + (0.0 if p.b_v is None else p.b_v)
        n, length, width = connected.shape
        v = connected.reshape(n, length, h, width // h).transpose(0, 2, 1, 3)
    else:
        v = _heads(projection, p.w_v, p.b_v, h)
    if p.norm_hopfield_space is not None:
        q, k = _maybe_norm(q, p.norm_hopfield_space, p.norm_eps), _maybe_norm(k, p.norm_hopfield_space, p.norm_eps)
    if scaling is None:
        static = p.w_q is None and p.w_k is None and p.w_v is None and p.w_o is None
        scaling = 1.0 if static else 1.0 / np.sqrt(q.shape[-1])
    beta = np.broadcast_to(np.asarray(scaling, np.float64), (h,))[None, :, None, None]

    ignore = np.zeros((q.shape[0], h, q.shape[2], k.shape[2]), bool)
    if stored_pattern_padding_mask is not None:
        ignore |= np.asarray(stored_pattern_padding_mask, bool)[:, None, None, :]
    if association_mask is not None:
        ignore |= np.asarray(association_mask, bool)[None, None]
    if add_zero_association:
        k = np.concatenate([k, np.zeros_like(k[..., :1, :])], axis=-2)
        v = np.concatenate([v, np.zeros_like(v[..., :1, :])], axis=-2)
        ignore = np.concatenate([ignore, np.zeros_like(ignore[..., :1])], axis=-1)

    limit = np.inf if update_steps_max is None else update_steps_max
    active = np.ones(h, bool)
    xi = None
    step = associations = 0
    while active.any():
        if xi is not None:
            q = np.where(active[None, :, None, None], xi @ k, q)
        scores = np.where(ignore, -np.inf, beta * q @ np.swapaxes(k, -1, -2))
        new = softmax(scores)
        associations += 1
        old = xi
        xi = new if xi is None else np.where(active[None, :, None, None], new, xi)
        active = np.broadcast_to(step < np.asarray(limit), (h,)).copy()  # the limit: one, or one per head
        if old is not None:
            change = np.sqrt(((old - xi) ** 2).sum(axis=(-2, -1))).max(axis=0)  # per head, max over the batch
            active &= change > update_steps_eps
        step += 1

    out = xi @ v  # (N, H, L, Dv)
    n, _, length, _ = out.shape
    out = out.transpose(0, 2, 1, 3).reshape(n, length, -1)
    if p.w_o is not None:
        out = out @ p.w_o + (0.0 if p.b_o is None else p.b_o)
    if association_activation is not None:
        out = association_activation(out)
    return out, xi, associations
