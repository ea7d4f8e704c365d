"""Value codebooks for VSA clean-up behind one interface: rows, scores, hard and soft clean-up, storage size.

Shape legend: ``S`` codewords (rows; ``S = D`` except for the dense kinds), ``D`` vector dimension, ``...`` batch.

Clean-up (seed 000) maps a noisy read-out ``v'`` to the codeword with the largest inner product,
``argmax_j <C_j, v'>``; the soft clean-up is ``C^T softmax(beta C v')`` (beta multiplies the scores). Every kind has
rows of (expected) unit norm, so scores are comparable across kinds.

==================  ====================================  ============  =============================
kind                rows ``C_j``                          storage       scores ``C v``
==================  ====================================  ============  =============================
``gaussian``        i.i.d. ``N(0, 1/D)``                  ``S D``       dense product, O(S D)
``bipolar``         i.i.d. ``+-1/sqrt(D)``                ``S D``       dense product, O(S D)
``one_hot``         ``e_j``                               0             ``v`` itself, O(D)
``hadamard``        normalised Sylvester ``H_j``          0             butterfly, O(D log D)
``krop``            ``H_j``, ``H = kron R(theta_k)``      ``log2 D``    butterfly, O(D log D)
``krop_signed``     ``H_j * d`` (``C = H D``)             ``log2 D+D``  ``H (d * v)``, O(D log D)
``unitary_shift``   ``roll(u, j)``, ``|F u| = 1``         ``D``         ``u # v`` by FFT, O(D log D)
==================  ====================================  ============  =============================

The :class:`Codebook` is a pytree: its arrays (matrix, angles, signs, base vector) are leaves, traced under ``jit``
(new angles never re-trace), while ``kind``, ``size`` and ``dim`` are static.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_floating, check_int, check_positive
from dammem.vsa import krop as _krop
from dammem.vsa.hrr import _bind, _correlate, random_keys

__all__ = ["Codebook", "make_codebook", "CODEBOOK_KINDS"]

CODEBOOK_KINDS = ("gaussian", "bipolar", "one_hot", "hadamard", "krop", "krop_signed", "unitary_shift")
_DENSE = ("gaussian", "bipolar")
_KROP = ("hadamard", "krop", "krop_signed")
_ARGMAX_BLOCK = 128
_HIGHEST = lax.Precision.HIGHEST


def _argmax_last(scores: Array) -> Array:
    """``jnp.argmax(scores, -1)`` (first maximum) as block maxima then one block: several times faster on XLA:CPU."""
    n = scores.shape[-1]
    if n % _ARGMAX_BLOCK or n < 4 * _ARGMAX_BLOCK:
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)
    lead = scores.shape[:-1]
    blocks = scores.reshape(-1, n // _ARGMAX_BLOCK, _ARGMAX_BLOCK)
    best = jnp.argmax(jnp.max(blocks, axis=-1), axis=-1)  # (B,)
    inside = jnp.take_along_axis(blocks, best[:, None, None], axis=1)[:, 0]
    return (best * _ARGMAX_BLOCK + jnp.argmax(inside, axis=-1)).astype(jnp.int32).reshape(lead)


@jax.tree_util.register_pytree_node_class
class Codebook:
    """A value codebook of ``size`` codewords in dimension ``dim`` (build one with :func:`make_codebook`).

    Attributes:
      kind: one of :data:`CODEBOOK_KINDS` (static).
      size: number of codewords ``S`` (static).
      dim: vector dimension ``D`` (static).
      params: the stored arrays: ``matrix`` (dense kinds), ``theta`` (krop kinds), ``signs`` (``krop_signed``),
        ``base`` (``unitary_shift``).
    """

    def __init__(self, kind: str, size: int, dim: int, params: dict[str, Array]):
        self.kind = kind
        self.size = size
        self.dim = dim
        self.params = dict(params)

    def tree_flatten(self):
        names = tuple(sorted(self.params))
        return tuple(self.params[k] for k in names), (self.kind, self.size, self.dim, names)

    @classmethod
    def tree_unflatten(cls, aux, children):
        kind, size, dim, names = aux
        return cls(kind, size, dim, dict(zip(names, children)))

    def __repr__(self) -> str:
        return f"Codebook(kind={self.kind!r}, size={self.size}, dim={self.dim}, storage_size={self.storage_size})"

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _theta(self) -> Array:
        if self.kind == "hadamard":
            return _krop.hadamard_angles(_krop.log2_size(self.dim))
        return self.params["theta"]

    def _check_vectors(self, x: ArrayLike, where: str) -> Array:
        x = check_floating(x, "x", where)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{where}: x must have shape (..., D) with D = {self.dim} (the codebook dimension), got {x.shape}"
            )
        return x

    # -- interface -------------------------------------------------------------------------------------------------

    @property
    def storage_size(self) -> int:
        """Number of stored scalars (angles, signs, entries); 0 for the implicit ``one_hot`` and ``hadamard``."""
        return int(sum(int(np.prod(v.shape)) for v in self.params.values()))

    def rows(self, idx: ArrayLike) -> Array:
        """Codewords ``C_j`` for integer indices ``idx`` of any shape (checked in ``[0, S)`` when concrete).

        Returns:
          ``idx.shape + (D,)``. KROP kinds build each row in O(D) (seed 000), ``unitary_shift`` by one gather.
        """
        idx = _krop._check_index(idx, self.size, f"Codebook({self.kind}).rows")
        if self.kind in _DENSE:
            return jnp.take(self.params["matrix"], idx, axis=0)
        if self.kind == "one_hot":
            return jax.nn.one_hot(idx, self.dim, dtype=jnp.float32)
        if self.kind in _KROP:
            return _krop._row_kernel(self._theta(), idx, self.params.get("signs"))
        base = self.params["base"]  # unitary_shift: C_j[i] = u[(i - j) mod D]
        return base[(jnp.arange(self.dim) - idx[..., None]) % self.dim]

    def scores(self, x: ArrayLike) -> Array:
        """Inner products ``<C_j, x>`` with every codeword: ``(..., D) -> (..., S)``."""
        where = f"Codebook({self.kind}).scores"
        x = self._check_vectors(x, where)
        if self.kind in _DENSE:
            return _dense_scores(self.params["matrix"], x)
        if self.kind == "one_hot":
            return x
        if self.kind in _KROP:
            return _krop.krop_scores(self._theta(), x, signs=self.params.get("signs"))
        return _correlate(self.params["base"].astype(x.dtype), x)

    def cleanup(self, x: ArrayLike) -> Array:
        """Hard clean-up ``argmax_j <C_j, x>`` (seed 000): ``(..., D) -> (...,)`` int32 indices (first maximum)."""
        where = f"Codebook({self.kind}).cleanup"
        x = self._check_vectors(x, where)
        if self.kind in _KROP:
            return _krop.krop_cleanup(self._theta(), x, signs=self.params.get("signs"))
        return _argmax_last(self.scores(x))

    def soft_cleanup(self, x: ArrayLike, beta: ArrayLike = 1.0) -> Array:
        """Soft clean-up ``C^T softmax(beta C x)``: ``(..., D) -> (..., D)``, differentiable in ``x``, ``beta`` and
        the codebook's arrays. KROP kinds use two butterflies; ``unitary_shift`` one correlation and one
        convolution (``sum_j p_j roll(u, j) = p (*) u``).

        Args:
          x: ``(..., D)``.
          beta: inverse temperature > 0 (scalar or broadcastable to ``x.shape[:-1]``; multiplies the scores).
        """
        where = f"Codebook({self.kind}).soft_cleanup"
        x = self._check_vectors(x, where)
        if self.kind in _KROP:
            return _krop.krop_soft_cleanup(self._theta(), x, beta, signs=self.params.get("signs"))
        beta = check_floating(beta, "beta", where)
        check_positive(beta, "beta", where)
        try:
            beta = jnp.broadcast_to(beta, x.shape[:-1])[..., None]
        except ValueError as err:
            raise ValueError(
                f"{where}: beta must be a scalar or broadcastable to the batch shape {x.shape[:-1]}, got {beta.shape}"
            ) from err
        p = jax.nn.softmax(beta * self.scores(x), axis=-1)
        if self.kind in _DENSE:
            return jnp.matmul(p, self.params["matrix"].astype(p.dtype), precision=_HIGHEST)
        if self.kind == "one_hot":
            return p
        return _bind(p, self.params["base"].astype(p.dtype))

    def matrix(self) -> Array:
        """The dense ``(S, D)`` codebook (for tests, small sizes and the dense baselines)."""
        if self.kind in _DENSE:
            return self.params["matrix"]
        return self.rows(jnp.arange(self.size))


@jax.jit
def _dense_scores(matrix: Array, x: Array) -> Array:
    return jnp.matmul(x, matrix.T.astype(x.dtype), precision=_HIGHEST)


def make_codebook(
    kind: str,
    dim: int,
    *,
    key: PRNGKey | None = None,
    size: int | None = None,
    angles: str | ArrayLike | None = None,
) -> Codebook:
    """Build a value codebook of one of :data:`CODEBOOK_KINDS`.

    Args:
      kind: ``"gaussian"``, ``"bipolar"``, ``"one_hot"``, ``"hadamard"``, ``"krop"``, ``"krop_signed"`` or
        ``"unitary_shift"`` (see the module table).
      dim: vector dimension ``D`` (a power of two for the KROP kinds and ``hadamard``).
      key: ``jax.random`` key; required by the random kinds (``gaussian``, ``bipolar``, ``unitary_shift``,
        ``krop_signed``, and ``krop`` with uniform angles), ignored by the deterministic ones so that one key can
        drive a sweep over kinds. Same key -> bit-identical codebook.
      size: number of codewords ``S``; only the dense kinds allow ``S != D`` (default ``D``).
      angles: KROP kinds only: ``"uniform"`` (default; ``theta_k ~ U(0, 2 pi)``, seed 000), ``"even"``
        (:func:`~dammem.vsa.krop.even_angles`, warns on degenerate factors) or an explicit ``(log2 D,)`` array.

    Returns:
      A :class:`Codebook`.

    Example:
      >>> cb = make_codebook("krop_signed", 1024, key=jax.random.key(0))
      >>> cb.cleanup(cb.rows(jnp.array([5, 9])))  # [5, 9]
    """
    where = "make_codebook"
    if kind not in CODEBOOK_KINDS:
        raise ValueError(f"{where}: kind must be one of {CODEBOOK_KINDS}, got {kind!r}")
    dim = check_int(dim, "dim", where, minimum=1)
    if size is None:
        size = dim
    size = check_int(size, "size", where, minimum=1)
    if kind not in _DENSE and size != dim:
        raise ValueError(f"{where}: kind {kind!r} has exactly dim = {dim} codewords; got size = {size}")
    if angles is not None and kind not in ("krop", "krop_signed"):
        raise ValueError(f"{where}: angles applies to the kinds 'krop' and 'krop_signed' only, got kind {kind!r}")
    if kind in _KROP:
        k = _krop.log2_size(dim, "dim", where)
    angles = "uniform" if angles is None else angles
    needs_key = kind in ("gaussian", "bipolar", "unitary_shift", "krop_signed") or (
        kind == "krop" and isinstance(angles, str) and angles == "uniform"
    )
    if needs_key and key is None:
        raise ValueError(f"{where}: kind {kind!r} is random and needs key=jax.random.key(...), got key=None")
    if needs_key:
        k_theta, k_signs = jax.random.split(key)

    if kind == "gaussian":
        return Codebook(kind, size, dim, {"matrix": jax.random.normal(key, (size, dim)) / np.sqrt(dim)})
    if kind == "bipolar":
        signs = jax.random.rademacher(key, (size, dim), jnp.float32)
        return Codebook(kind, size, dim, {"matrix": signs / np.sqrt(dim)})
    if kind == "one_hot":
        return Codebook(kind, size, dim, {})
    if kind == "hadamard":
        return Codebook(kind, size, dim, {})
    if kind == "unitary_shift":
        return Codebook(kind, size, dim, {"base": random_keys(key, (), dim, kind="unitary")})
    # krop, krop_signed
    if isinstance(angles, str):
        if angles == "uniform":
            theta = _krop.uniform_angles(k_theta, k)
        elif angles == "even":
            theta = _krop.even_angles(k)
        else:
            raise ValueError(f"{where}: angles must be 'uniform', 'even' or an array of {k} angles, got {angles!r}")
    else:
        theta = _krop._check_theta(angles, where)
        if theta.shape[0] != k:
            raise ValueError(f"{where}: angles must have length log2(dim) = {k}, got shape {theta.shape}")
    params = {"theta": theta}
    if kind == "krop_signed":
        params["signs"] = _krop.krop_signs(k_signs, dim)
    return Codebook(kind, size, dim, params)
