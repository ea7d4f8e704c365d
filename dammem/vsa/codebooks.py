"""Value codebooks for VSA clean-up: one small pytree class per kind behind the :class:`Codebook` interface.

Shape legend: ``N`` codebook size (number of codewords and of scores; ``N = D`` except for the dense kinds), ``D``
vector dimension, ``...`` batch.

Clean-up (Liu et al. (2025), slide "Issue During Reading") maps a noisy read-out ``v'`` to the codeword with the
largest inner product, ``argmax_j <C_j, v'>``; the soft clean-up is ``C^T softmax(beta C v')`` (beta multiplies the
scores). Every kind has rows of (expected) unit norm, so scores are comparable across kinds.

=================  =============================  =============================  ==============  =====================
kind               class                          rows ``C_j``                   storage         scores ``C v``
=================  =============================  =============================  ==============  =====================
``gaussian``       :class:`GaussianCodebook`      i.i.d. ``N(0, 1/D)``           ``N D``         dense, O(N D)
``bipolar``        :class:`BipolarCodebook`       i.i.d. ``+-1/sqrt(D)``         ``N D``         dense, O(N D)
``one_hot``        :class:`OneHotCodebook`        ``e_j``                        0               ``v`` itself, O(D)
``hadamard``       :class:`HadamardCodebook`      normalised Sylvester ``H_j``   0               butterfly, O(D log D)
``krop``           :class:`KropCodebook`          ``H_j``, ``H = kron R(t_k)``   ``log2 D``      butterfly, O(D log D)
``krop_signed``    :class:`SignedKropCodebook`    ``H_j * d`` (``C = H D``)      ``log2 D + D``  butterfly, O(D log D)
``unitary_shift``  :class:`UnitaryShiftCodebook`  ``roll(u, j)``, ``|F u| = 1``  ``D``           FFT, O(D log D)
=================  =============================  =============================  ==============  =====================

:func:`make_codebook` samples any kind by name; :class:`DenseCodebook` also wraps codewords of your own. Every
class is a pytree: its arrays (codewords, angles, signs, base vector) are leaves, traced under ``jit`` (new angles
never re-trace), while the sizes are static. Hard clean-up of every kind ends in the same two-level argmax
(block maxima, then one block).

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike
from jaxtyping import Float, Int

from dammem._butterfly import default_group, group_sizes, log2_size
from dammem._types import Array, PRNGKey
from dammem._validate import check_floating, check_int
from dammem.vsa._checks import check_batch_beta, check_index, check_signs, check_theta
from dammem.vsa._codebook_kernels import cleanup_kernel, rows_kernel, scores_kernel, soft_cleanup_kernel
from dammem.vsa._kernels import (
    bind_kernel,
    blockwise_argmax,
    krop_cleanup_kernel,
    krop_rows_kernel,
    krop_scores_kernel,
    krop_soft_cleanup_kernel,
    unbind_kernel,
)
from dammem.vsa.hrr import random_addresses
from dammem.vsa.krop import even_angles, hadamard_angles, krop_signs, uniform_angles

__all__ = [
    "Codebook",
    "DenseCodebook",
    "GaussianCodebook",
    "BipolarCodebook",
    "OneHotCodebook",
    "HadamardCodebook",
    "KropCodebook",
    "SignedKropCodebook",
    "UnitaryShiftCodebook",
    "make_codebook",
    "CodebookKind",
    "CODEBOOK_KINDS",
]

CodebookKind = Literal["gaussian", "bipolar", "one_hot", "hadamard", "krop", "krop_signed", "unitary_shift"]
CODEBOOK_KINDS: tuple[str, ...] = get_args(CodebookKind)
"""The kinds :func:`make_codebook` samples (see the module table)."""

_HIGHEST = lax.Precision.HIGHEST


def _describe(leaf: Any) -> str:
    """``float32[10]`` for an array-like leaf; anything else (a shape, a placeholder) by its repr."""
    shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
    if shape is None or dtype is None:
        return repr(leaf)
    return f"{np.dtype(dtype).name}{list(shape)}"


class Codebook:
    """Interface of a value codebook of ``size`` codewords ``C_j`` in dimension ``dim``.

    Build one with :func:`make_codebook` (or a kind's class). Subclasses are pytrees whose array attributes (listed
    in ``_leaves``) are leaves and whose sizes are static.

    Attributes:
      kind: the kind's name (a class attribute; one of :data:`CODEBOOK_KINDS`, or ``"dense"``).
      size: number of codewords ``N`` (static).
      dim: vector dimension ``D`` (static).
    """

    kind: ClassVar[str] = ""
    _leaves: ClassVar[tuple[str, ...]] = ()
    _any_size: ClassVar[bool] = False  # may N differ from D?
    _takes_angles: ClassVar[bool] = False
    size: int
    dim: int

    def __init__(self, *args: Any, **kwargs: Any):
        raise TypeError("Codebook is an interface: build one with make_codebook(kind, dim, key=...) or a kind's class")

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_with_keys(
            cls, cls._tree_flatten_with_keys, cls._tree_unflatten, flatten_func=cls._tree_flatten
        )

    # -- pytree ----------------------------------------------------------------------------------------------------

    def _tree_flatten(self):
        return tuple(getattr(self, name) for name in self._leaves), (self.size, self.dim)

    def _tree_flatten_with_keys(self):
        children = tuple((jax.tree_util.GetAttrKey(name), getattr(self, name)) for name in self._leaves)
        return children, (self.size, self.dim)

    @classmethod
    def _tree_unflatten(cls, aux, children):
        book = object.__new__(cls)  # leaves may be tracers, shapes or placeholders: no validation here
        book.size, book.dim = aux
        for name, child in zip(cls._leaves, children):
            setattr(book, name, child)
        return book

    def __repr__(self) -> str:
        leaves = "".join(f", {name}={_describe(getattr(self, name))}" for name in self._leaves)
        return f"{type(self).__name__}(size={self.size}, dim={self.dim}{leaves})"

    # -- interface -------------------------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(N, D)``: the shape of :meth:`matrix`."""
        return (self.size, self.dim)

    @property
    def storage_size(self) -> int:
        """Number of stored scalars (entries, angles, signs); 0 for the implicit ``one_hot`` and ``hadamard``."""
        raise NotImplementedError

    def _context(self, method: str) -> str:
        return f"{type(self).__name__}.{method}"

    def _check_vectors(self, x: ArrayLike, method: str) -> Array:
        context = self._context(method)
        x = check_floating(x, "x", context)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{context}: x must have shape (..., D) with D = {self.dim} (the codebook dimension), got {x.shape}"
            )
        return x

    def rows(self, idx: int | Int[ArrayLike, "*idx"]) -> Float[Array, "*idx D"]:
        """Codewords ``C_j`` for integer indices ``idx`` of any shape (checked in ``[0, N)`` when concrete).

        KROP kinds build each row in O(D) from the bits of ``j`` (Liu et al. (2025), slide "Linear Time Vector
        Reconstruction"), ``unitary_shift`` by one gather.

        Returns:
          ``idx.shape + (D,)``.
        """
        return rows_kernel(self, check_index(idx, self.size, self._context("rows")))

    def scores(self, x: Float[ArrayLike, "*batch D"]) -> Float[Array, "*batch N"]:
        """Inner products ``<C_j, x>`` with every codeword: ``(..., D) -> (..., N)``."""
        return scores_kernel(self, self._check_vectors(x, "scores"))

    def cleanup(self, x: Float[ArrayLike, "*batch D"]) -> Int[Array, "*batch"]:
        """Hard clean-up ``argmax_j <C_j, x>``: ``(..., D) -> (...,)`` int32 indices (ties: the first maximum)."""
        return cleanup_kernel(self, self._check_vectors(x, "cleanup"))

    def soft_cleanup(
        self, x: Float[ArrayLike, "*batch D"], beta: float | Float[ArrayLike, ...] = 1.0
    ) -> Float[Array, "*batch D"]:
        """Soft clean-up ``C^T softmax(beta C x)``: ``(..., D) -> (..., D)``, differentiable in ``x``, ``beta`` and
        the codebook's arrays. KROP kinds use two butterflies; ``unitary_shift`` one correlation and one
        convolution (``sum_j p_j roll(u, j) = p (*) u``).

        Args:
          x: ``(..., D)``.
          beta: inverse temperature > 0 (scalar or broadcastable to ``x.shape[:-1]``; multiplies the scores).
        """
        x = self._check_vectors(x, "soft_cleanup")
        return soft_cleanup_kernel(self, x, check_batch_beta(beta, x.shape[:-1], self._context("soft_cleanup")))

    def matrix(self) -> Float[Array, "N D"]:
        """The dense ``(N, D)`` codebook (for tests, small sizes and the dense baselines)."""
        return rows_kernel(self, jnp.arange(self.size))

    # -- what each kind implements (inputs already checked; the kernels of dammem.vsa._codebook_kernels call the
    # -- *_impl hooks) ---------------------------------------------------------------------------------------

    @classmethod
    def _needs_key(cls, angles: Any) -> bool:
        """Does :func:`make_codebook` need a PRNG key for this kind?"""
        return True

    @classmethod
    def _make(cls, dim: int, size: int, key: PRNGKey | None, angles: Any, context: str) -> Codebook:
        """Sample one codebook of this kind for :func:`make_codebook`."""
        raise NotImplementedError

    def _rows_impl(self, idx: Array) -> Array:
        raise NotImplementedError

    def _scores_impl(self, x: Array) -> Array:
        raise NotImplementedError

    def _combine_impl(self, p: Array) -> Array:
        """``C^T p``: the rows weighted by ``p`` (``(..., N) -> (..., D)``)."""
        raise NotImplementedError

    def _cleanup_impl(self, x: Array) -> Array:
        return blockwise_argmax(self._scores_impl(x), axis=-1)

    def _soft_cleanup_impl(self, x: Array, beta: Array) -> Array:
        scores = self._scores_impl(x)
        return self._combine_impl(jax.nn.softmax(beta[..., None].astype(scores.dtype) * scores, axis=-1))


# ----------------------------------------------------------------------------------------------------------------
# Dense
# ----------------------------------------------------------------------------------------------------------------


class DenseCodebook(Codebook):
    """Any ``(N, D)`` matrix of codewords, stored as given; scores by one dense product, O(N D).

    Args:
      codewords: ``(N, D)`` real matrix, ``N, D >= 1``.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.vsa import DenseCodebook
      >>> book = DenseCodebook(jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
      >>> book.shape, book.cleanup(jnp.array([[0.5, 0.6], [0.1, 0.9]]))
      ((3, 2), Array([1, 2], dtype=int32))
    """

    kind: ClassVar[str] = "dense"
    _leaves = ("codewords",)
    _any_size = True
    codewords: Array

    def __init__(self, codewords: Float[ArrayLike, "N D"]):
        context = type(self).__name__
        codewords = check_floating(codewords, "codewords", context)
        if codewords.ndim != 2 or 0 in codewords.shape:
            raise ValueError(f"{context}: codewords must have shape (N, D) with N, D >= 1, got {codewords.shape}")
        self.codewords = codewords
        self.size, self.dim = codewords.shape

    @property
    def storage_size(self) -> int:
        return self.size * self.dim

    def matrix(self) -> Array:
        return self.codewords

    @classmethod
    def _make(cls, dim, size, key, angles, context):
        return cls.sample(key, dim, size)  # the sampled subclasses (gaussian, bipolar) define sample

    def _rows_impl(self, idx):
        return jnp.take(self.codewords, idx, axis=0)

    def _scores_impl(self, x):
        return jnp.matmul(x, self.codewords.T.astype(x.dtype), precision=_HIGHEST)

    def _combine_impl(self, p):
        return jnp.matmul(p, self.codewords.astype(p.dtype), precision=_HIGHEST)


def _sample_shape(cls: type[Codebook], dim: int, size: int | None) -> tuple[int, int]:
    """The checked ``(size, dim)`` of a sampled dense codebook (``size`` defaults to ``dim``)."""
    context = f"{cls.__name__}.sample"
    dim = check_int(dim, "dim", context, minimum=1)
    return (dim if size is None else check_int(size, "size", context, minimum=1)), dim


class GaussianCodebook(DenseCodebook):
    """Dense codewords with i.i.d. ``N(0, 1/D)`` entries (the reference codebook of Liu et al. (2025))."""

    kind: ClassVar[str] = "gaussian"

    @classmethod
    def sample(cls, key: PRNGKey, dim: int, size: int | None = None) -> GaussianCodebook:
        """``size`` (default ``dim``) rows of i.i.d. ``N(0, 1/dim)`` entries."""
        size, dim = _sample_shape(cls, dim, size)
        return cls(jax.random.normal(key, (size, dim)) / np.sqrt(dim))


class BipolarCodebook(DenseCodebook):
    """Dense codewords with i.i.d. ``+-1/sqrt(D)`` entries."""

    kind: ClassVar[str] = "bipolar"

    @classmethod
    def sample(cls, key: PRNGKey, dim: int, size: int | None = None) -> BipolarCodebook:
        """``size`` (default ``dim``) rows of i.i.d. ``+-1/sqrt(dim)`` entries."""
        size, dim = _sample_shape(cls, dim, size)
        return cls(jax.random.rademacher(key, (size, dim), jnp.float32) / np.sqrt(dim))


# ----------------------------------------------------------------------------------------------------------------
# Implicit and structured
# ----------------------------------------------------------------------------------------------------------------


class _ParameterFree:
    """Factory hooks of the kinds fixed by their dimension alone (``one_hot``, ``hadamard``): no key, no angles."""

    @classmethod
    def _needs_key(cls, angles):
        return False

    @classmethod
    def _make(cls, dim, size, key, angles, context):
        return cls(dim)


class OneHotCodebook(_ParameterFree, Codebook):
    """The identity: ``C_j = e_j``, nothing stored; the scores are ``x`` itself.

    Args:
      dim: ``D >= 1``.
    """

    kind: ClassVar[str] = "one_hot"

    def __init__(self, dim: int):
        self.size = self.dim = check_int(dim, "dim", type(self).__name__, minimum=1)

    @property
    def storage_size(self) -> int:
        return 0

    def _rows_impl(self, idx):
        return jax.nn.one_hot(idx, self.dim, dtype=jnp.float32)

    def _scores_impl(self, x):
        return x

    def _combine_impl(self, p):
        return p


class KropCodebook(Codebook):
    """KROP codebook ``C = H = kron_{k=1..L} R(theta_{L-k})`` (Liu et al. (2025)): ``L = log2 D`` stored angles,
    rows in O(D), scores and clean-up by one butterfly (:mod:`dammem.vsa.krop`).

    Args:
      theta: ``(L,)`` angles, ``L >= 1`` (``D = 2^L``).

    Example:
      >>> import jax
      >>> from dammem.vsa import KropCodebook, uniform_angles
      >>> book = KropCodebook(uniform_angles(jax.random.key(0), 10))
      >>> book, book.storage_size
      (KropCodebook(size=1024, dim=1024, theta=float32[10]), 10)
    """

    kind: ClassVar[str] = "krop"
    _leaves = ("theta",)
    _takes_angles = True
    theta: Array
    signs: Array | None = None

    def __init__(self, theta: Float[ArrayLike, " L"]):
        self.theta = check_theta(theta, type(self).__name__)
        self.size = self.dim = 1 << self.theta.shape[0]

    @classmethod
    def _needs_key(cls, angles):
        return isinstance(angles, str) and angles == "uniform"

    @classmethod
    def _make(cls, dim, size, key, angles, context):
        return cls(_krop_angles(angles, None if key is None else jax.random.split(key)[0], log2_size(dim), context))

    @property
    def storage_size(self) -> int:
        return log2_size(self.dim) + (0 if self.signs is None else self.dim)

    def _sizes(self) -> tuple[int, ...]:
        return group_sizes(log2_size(self.dim), default_group())

    def _rows_impl(self, idx):
        return krop_rows_kernel(self.theta, idx, self.signs)

    def _scores_impl(self, x):
        return krop_scores_kernel(self.theta, x, self.signs, self._sizes())

    def _cleanup_impl(self, x):
        return krop_cleanup_kernel(self.theta, x, self.signs, self._sizes())

    def _soft_cleanup_impl(self, x, beta):
        return krop_soft_cleanup_kernel(self.theta, x, beta, self.signs, self._sizes())


class SignedKropCodebook(KropCodebook):
    """Signed KROP codebook ``C = H D`` (rows ``H_j * d``): the fixed +-1 column signs flatten the rows' spectra and
    restore full capacity in an HRR memory, at the same O(D log D) clean-up (:mod:`dammem.vsa.krop`).

    Args:
      theta: ``(L,)`` angles.
      signs: ``(D,)`` +-1 diagonal ``d`` (:func:`~dammem.vsa.krop_signs`), ``D = 2^L``.
    """

    kind: ClassVar[str] = "krop_signed"
    _leaves = ("theta", "signs")

    def __init__(self, theta: Float[ArrayLike, " L"], signs: Float[ArrayLike, " D"]):
        super().__init__(theta)
        self.signs = check_signs(signs, self.dim, type(self).__name__)

    @classmethod
    def _needs_key(cls, angles):
        return True

    @classmethod
    def _make(cls, dim, size, key, angles, context):
        k_theta, k_signs = jax.random.split(key)
        return cls(_krop_angles(angles, k_theta, log2_size(dim), context), krop_signs(k_signs, dim))


class HadamardCodebook(_ParameterFree, KropCodebook):
    """The normalised Sylvester-Hadamard matrix: KROP with ``theta = pi / 4`` everywhere, nothing stored.

    Args:
      dim: ``D``, a power of two >= 2.
    """

    kind: ClassVar[str] = "hadamard"
    _leaves = ()
    _takes_angles = False

    def __init__(self, dim: int):
        log2_size(dim, "dim", type(self).__name__)
        self.size = self.dim = int(dim)

    @property
    def theta(self) -> Array:  # a constant, so it is not a leaf
        return hadamard_angles(log2_size(self.dim))

    @property
    def storage_size(self) -> int:
        return 0


class UnitaryShiftCodebook(Codebook):
    """All cyclic shifts of one unitary vector ``u``: ``C_j = roll(u, j)``, ``|F u| = 1``; scores ``u # x`` by FFT.

    Args:
      base: ``(D,)`` base vector ``u`` (:func:`~dammem.vsa.random_addresses` with ``kind="unitary"``).
    """

    kind: ClassVar[str] = "unitary_shift"
    _leaves = ("base",)
    base: Array

    def __init__(self, base: Float[ArrayLike, " D"]):
        context = type(self).__name__
        base = check_floating(base, "base", context)
        if base.ndim != 1 or base.shape[0] < 1:
            raise ValueError(f"{context}: base must be a vector of shape (D,) with D >= 1, got {base.shape}")
        self.base = base
        self.size = self.dim = base.shape[0]

    @property
    def storage_size(self) -> int:
        return self.dim

    @classmethod
    def _make(cls, dim, size, key, angles, context):
        return cls(random_addresses(key, (), dim, kind="unitary"))

    def _rows_impl(self, idx):
        return self.base[(jnp.arange(self.dim) - idx[..., None]) % self.dim]  # C_j[i] = u[(i - j) mod D]

    def _scores_impl(self, x):
        return unbind_kernel(x, self.base.astype(x.dtype))  # <roll(u, j), x> = (u # x)_j

    def _combine_impl(self, p):
        return bind_kernel(p, self.base.astype(p.dtype))  # sum_j p_j roll(u, j) = p (*) u


# ----------------------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------------------

_KIND_CLASSES: dict[str, type[Codebook]] = {
    cls.kind: cls
    for cls in (
        GaussianCodebook,
        BipolarCodebook,
        OneHotCodebook,
        HadamardCodebook,
        KropCodebook,
        SignedKropCodebook,
        UnitaryShiftCodebook,
    )
}
assert tuple(_KIND_CLASSES) == CODEBOOK_KINDS


def _krop_angles(angles: Any, key: PRNGKey | None, k: int, context: str) -> Array:
    if isinstance(angles, str):
        if angles == "uniform":
            return uniform_angles(key, k)
        if angles == "even":
            return even_angles(k)
        raise ValueError(f"{context}: angles must be 'uniform', 'even' or an array of {k} angles, got {angles!r}")
    theta = check_theta(angles, context)
    if theta.shape[0] != k:
        raise ValueError(f"{context}: angles must have length log2(dim) = {k}, got shape {theta.shape}")
    return theta


def make_codebook(
    kind: CodebookKind,
    dim: int,
    *,
    key: PRNGKey | None = None,
    size: int | None = None,
    angles: Literal["uniform", "even"] | Float[ArrayLike, " L"] | None = None,
) -> Codebook:
    """Sample a value codebook of one of :data:`CODEBOOK_KINDS`.

    Args:
      kind: ``"gaussian"``, ``"bipolar"``, ``"one_hot"``, ``"hadamard"``, ``"krop"``, ``"krop_signed"`` or
        ``"unitary_shift"`` (see the module table).
      dim: vector dimension ``D`` (a power of two for the KROP kinds and ``hadamard``).
      key: ``jax.random`` key; required by the random kinds (``gaussian``, ``bipolar``, ``unitary_shift``,
        ``krop_signed``, and ``krop`` with uniform angles), ignored by the deterministic ones so that one key can
        drive a sweep over kinds. Same key -> bit-identical codebook.
      size: number of codewords ``N``; only the dense kinds allow ``N != D`` (default ``D``).
      angles: KROP kinds only: ``"uniform"`` (default; ``theta_k ~ U(0, 2 pi)``, Liu et al. (2025)), ``"even"``
        (:func:`~dammem.vsa.even_angles`, warns on degenerate factors) or an explicit ``(log2 D,)`` array.

    Returns:
      An instance of the kind's class (a :class:`Codebook`).

    Example:
      >>> import jax
      >>> from dammem.vsa import make_codebook
      >>> book = make_codebook("krop_signed", 1024, key=jax.random.key(0))
      >>> book
      SignedKropCodebook(size=1024, dim=1024, theta=float32[10], signs=float32[1024])
      >>> book.cleanup(book.rows(jax.numpy.array([5, 9])))
      Array([5, 9], dtype=int32)
    """
    context = "make_codebook"
    cls = _KIND_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"{context}: kind must be one of {CODEBOOK_KINDS}, got {kind!r}")
    dim = check_int(dim, "dim", context, minimum=1)
    size = dim if size is None else check_int(size, "size", context, minimum=1)
    if size != dim and not cls._any_size:
        raise ValueError(f"{context}: kind {kind!r} has exactly dim = {dim} codewords; got size = {size}")
    if angles is not None and not cls._takes_angles:
        raise ValueError(f"{context}: angles applies to the kinds 'krop' and 'krop_signed' only, got kind {kind!r}")
    if issubclass(cls, KropCodebook):
        log2_size(dim, "dim", context)
    if cls._takes_angles and angles is None:
        angles = "uniform"
    if key is None and cls._needs_key(angles):
        raise ValueError(f"{context}: kind {kind!r} is random and needs key=jax.random.key(...), got key=None")
    return cls._make(dim, size, key, angles, context)
