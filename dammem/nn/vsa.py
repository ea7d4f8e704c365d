"""``KropCodebookLayer``: a KROP value codebook with trainable angles, as a Flax NNX module.

Shape legend: ``N = 2^L`` codebook size (= vector dimension), ``L`` angles, ``...`` any leading batch axes.

A thin shell over :mod:`dammem.vsa.krop`. The codebook of Liu et al. (2025) is ``C = H D`` with
``H = R(theta_{L-1}) (x) ... (x) R(theta_0)``, ``R(t) = [[cos t, sin t], [sin t, -cos t]]``, and an optional fixed
``+-1`` column-sign diagonal ``D``. The module holds the ``L`` angles as an ``nnx.Param`` (initialised
``theta_k ~ U(0, 2 pi)``, the paper's choice) and the signs as a non-trainable
:class:`~dammem.nn.variables.FixedSigns` variable, so ``nnx.Optimizer(..., wrt=nnx.Param)`` trains the angles and
never the signs. Clean-up costs one butterfly, ``O(N log N)``:

- hard: ``j = argmax_j <C_j, v>`` and the codeword ``C_j`` (slides "Issue During Reading" and "Linear Time Vector
  Reconstruction");
- soft: ``C^T softmax(beta C v)``, differentiable in ``v``, ``beta`` and the angles.

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from dammem._butterfly import log2_size
from dammem._types import Array, ArrayLike
from dammem._validate import check_floating
from dammem.nn.variables import FixedSigns
from dammem.vsa.krop import krop_cleanup, krop_row, krop_scores, krop_soft_cleanup, krop_signs, uniform_angles

__all__ = ["KropCodebookLayer"]


class KropCodebookLayer(nnx.Module):
    """KROP codebook ``C = H D`` of ``N = 2^L`` codewords of dimension ``N`` with trainable angles.

    The layer form of the pure codebooks :class:`dammem.vsa.KropCodebook` (``signed=False``) and
    :class:`dammem.vsa.SignedKropCodebook` (``signed=True``): the same scores, rows and clean-ups.

    Args:
      size: ``N``, a power of two ``>= 2``.
      signed: draw fixed ``+-1`` column signs ``d`` (:func:`dammem.vsa.krop_signs`); otherwise ``C = H``.
      param_dtype: dtype of the angles.
      rngs: ``nnx.Rngs``; the ``params`` stream draws the angles (then the signs).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from dammem.nn.vsa import KropCodebookLayer
      >>> book = KropCodebookLayer(64, signed=True, rngs=nnx.Rngs(0))
      >>> noisy = book.codewords(jnp.array([5, 17])) + 0.05
      >>> index, codeword = book.cleanup(noisy)
      >>> index
      Array([ 5, 17], dtype=int32)
      >>> bool(jnp.abs(book.soft_cleanup(noisy, 50.0) - codeword).max() < 1e-3)
      True
    """

    def __init__(self, size: int, *, signed: bool = False, param_dtype=jnp.float32, rngs: nnx.Rngs):
        context = "KropCodebookLayer"
        self.num_angles = log2_size(size, "size", context)
        self.size = int(size)
        if not isinstance(signed, bool):
            raise TypeError(f"{context}: signed must be a bool, got {signed!r}")
        self.theta = nnx.Param(uniform_angles(rngs.params(), self.num_angles).astype(param_dtype))
        self.signs = FixedSigns(krop_signs(rngs.params(), self.size)) if signed else None

    def _signs(self) -> Array | None:
        return None if self.signs is None else self.signs[...]

    def _vectors(self, x, context: str) -> Array:
        x = check_floating(x, "x", context)
        if x.ndim < 1 or x.shape[-1] != self.size:
            raise ValueError(f"{context}: x must have shape (..., N) with N = {self.size}, got {tuple(x.shape)}")
        return x

    def scores(self, x: Float[ArrayLike, "*batch N"]) -> Float[Array, "*batch N"]:
        """Clean-up scores ``C x = H (d * x)`` of every codeword (:func:`dammem.vsa.krop_scores`)."""
        x = self._vectors(x, "KropCodebookLayer.scores")
        return krop_scores(self.theta[...], x, signs=self._signs())

    def codewords(self, idx: int | Int[ArrayLike, "*idx"]) -> Float[Array, "*idx N"]:
        """Codewords ``C_j = H_j * d`` in ``O(N)`` each (:func:`dammem.vsa.krop_row`)."""
        return krop_row(self.theta[...], idx, signs=self._signs())

    def cleanup(self, x: Float[ArrayLike, "*batch N"]) -> tuple[Int[Array, "*batch"], Float[Array, "*batch N"]]:
        """Hard clean-up: the index ``argmax_j <C_j, x>`` (ties to the smallest) and its codeword.

        Args:
          x: ``(..., N)`` noisy vectors.

        Returns:
          ``(indices, codewords)``: ``(...,)`` int32 and ``(..., N)``.
        """
        x = self._vectors(x, "KropCodebookLayer.cleanup")
        theta, signs = self.theta[...], self._signs()
        idx = krop_cleanup(theta, x, signs=signs)
        return idx, krop_row(theta, idx, signs=signs)

    def soft_cleanup(self, x: Float[ArrayLike, "*batch N"], beta: float | ArrayLike = 1.0) -> Float[Array, "*batch N"]:
        """Soft clean-up ``C^T softmax(beta C x)`` (:func:`dammem.vsa.krop_soft_cleanup`), differentiable.

        Args:
          x: ``(..., N)`` noisy vectors.
          beta: inverse temperature ``> 0``, a scalar or broadcastable to ``x.shape[:-1]`` (traced).

        Returns:
          ``(..., N)`` convex combinations of codewords.
        """
        x = self._vectors(x, "KropCodebookLayer.soft_cleanup")
        return krop_soft_cleanup(self.theta[...], x, beta, signs=self._signs())
