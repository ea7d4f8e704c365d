"""Random feature maps for the RBF kernel: ``<phi(sqrt(beta) x), phi(sqrt(beta) y)> ~ exp(-beta/2 ||x - y||^2)``.

Shape legend: ``D`` pattern dimension, ``Y`` random features (projection rows), ``F`` feature width (``Y`` or
``2 Y``), ``R`` rows of one compute chunk, ``...`` any leading batch axes.

The four maps of Hoover et al. (2024), eq. 8 and App. C, with ``p_a = <omega_a, z>`` for ``z = sqrt(beta) x`` and
rows ``omega_a`` from :mod:`dammem.drdam.projections`:

- ``cos`` (F = Y): ``sqrt(2 / Y) cos(p_a + b_a)``, phases ``b_a ~ U(0, 2 pi)`` (Rahimi & Recht (2007)).
- ``sincos`` (F = 2 Y): ``(cos p_a, sin p_a) / sqrt(Y)``, interleaved as in eq. 8.
- ``exp`` (F = Y): ``exp(p_a - ||z||^2) / sqrt(Y)``, positive random features (Choromanski et al. (2021)).
  App. C also adds a phase ``b_a`` inside this exponential; that scales the estimate by ``E exp(2 b)`` (a bias),
  so it is left out here.
- ``expexp`` (F = 2 Y): ``(exp(p_a - ||z||^2), exp(-p_a - ||z||^2)) / sqrt(2 Y)`` (App. C).

Each is unbiased: ``E <phi(x), phi(y)> = exp(-||x - y||^2 / 2)`` over ``omega ~ N(0, I_D)`` (and ``b``); the
trigonometric maps give ``<phi(x), phi(x)> = 1`` exactly (``sincos``), the exponential maps are positive. The
exponential maps are computed in log space (``log phi_a = +-p_a - ||z||^2 - log sqrt(Y)``): a linear-space
``exp(-||z||^2)`` underflows at large ``beta``.

References:
  - B. Hoover, D. H. Chau, H. Strobelt, P. Ram, D. Krotov (2024). Dense Associative Memory Through the Lens of
    Random Features. NeurIPS 2024 (eq. 8, App. C).
  - A. Rahimi, B. Recht (2007). Random Features for Large-Scale Kernel Machines. NeurIPS 2007.
  - K. Choromanski et al. (2021). Rethinking Attention with Performers. ICLR 2021 (positive random features).
  - F. X. Yu, A. T. Suresh, K. Choromanski, D. Holtmann-Rice, S. Kumar (2016). Orthogonal Random Features.
    NeurIPS 2016.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Float

from dammem._types import Array, ArrayLike, PRNGKey
from dammem._validate import check_beta, check_floating, check_int
from dammem.drdam import projections as _proj

__all__ = [
    "FEATURE_KINDS",
    "PROJECTIONS",
    "Features",
    "make_features",
    "feature_map",
    "check_features",
    "check_chunk_size",
    "compute_dtype",
    "sincos",
    "chunk_value_parts",
    "chunk_values",
    "chunk_value_slope_parts",
    "chunk_value_slopes",
    "run_chunks",
    "phases_chunk",
    "padded_input",
    "rows_to_features",
]

FEATURE_KINDS = ("cos", "sincos", "exp", "expexp")
PROJECTIONS = _proj.PROJECTIONS
_WIDTH = {"cos": 1, "sincos": 2, "exp": 1, "expexp": 2}


@dataclasses.dataclass(frozen=True)
class Features:
    """A random feature map (build one with :func:`make_features`); a pytree.

    Attributes:
      kind: one of :data:`FEATURE_KINDS` (static).
      projection: one of :data:`PROJECTIONS` (static).
      dim: input dimension ``D`` (static).
      num_features: number of random projections ``Y`` (static).
      block_size: rows per generation block ``G`` (static).
      params: the traced arrays: ``key`` (gaussian, orthogonal), ``signs`` and ``norms`` (structured), ``matrix``
        (materialized), and ``phases`` ``(Y,)`` for ``cos``.
    """

    kind: str
    projection: str
    dim: int
    num_features: int
    block_size: int
    params: dict[str, Array]

    @property
    def width(self) -> int:
        """Features per projection row: 1 (cos, exp) or 2 (sincos, expexp)."""
        return _WIDTH[self.kind]

    @property
    def size(self) -> int:
        """Feature width ``F = width * Y``: the length of ``feature_map`` outputs and of a memory ``T``."""
        return self.width * self.num_features

    @property
    def positive(self) -> bool:
        """True for the exponential (positive, log-space) kinds."""
        return self.kind in ("exp", "expexp")

    @property
    def input_dim(self) -> int:
        """``P``: ``D``, or ``D`` padded to a power of two for ``structured``."""
        return _proj.input_dim(self.projection, self.dim, self.block_size)

    @property
    def storage_size(self) -> int:
        """Number of stored array elements (the key counts as its 2 words)."""
        return sum(int(jnp.size(jax.random.key_data(v) if k == "key" else v)) for k, v in self.params.items())

    def __repr__(self) -> str:
        return (
            f"Features(kind={self.kind!r}, projection={self.projection!r}, dim={self.dim}, "
            f"num_features={self.num_features}, block_size={self.block_size})"
        )


jax.tree_util.register_dataclass(
    Features, data_fields=["params"], meta_fields=["kind", "projection", "dim", "num_features", "block_size"]
)


def _check_key(key, context: str) -> Array:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{context}: key must be a single PRNG key, got a key array of shape {key.shape}")
        return key
    if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(f"{context}: key must be a jax.random key (jax.random.key(seed)), got {key!r}")


def make_features(
    kind: str,
    dim: int,
    num_features: int,
    *,
    key: PRNGKey,
    projection: str = "gaussian",
    block_size: int | None = None,
) -> Features:
    """Draw a random feature map of ``kind`` for inputs of dimension ``dim``.

    Args:
      kind: ``"cos"``, ``"sincos"``, ``"exp"`` or ``"expexp"`` (Hoover et al. (2024), eq. 8 and App. C).
      dim: input dimension ``D >= 1``.
      num_features: number of random projections ``Y >= 1`` (the map has ``F = Y`` or ``2 Y`` outputs).
      key: a ``jax.random`` key; the same key gives the same features.
      projection: ``"gaussian"`` (regenerated blocks), ``"orthogonal"``, ``"structured"`` (SORF) or
        ``"materialized"`` (see :mod:`dammem.drdam.projections`).
      block_size: rows per generation block; None picks 128 (gaussian, materialized), ``D`` (orthogonal, which
        needs ``<= D``) or the power of two ``>= D`` (structured, which needs a power of two ``>= D``).

    Returns:
      :class:`Features`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.drdam import make_features, feature_map
      >>> features = make_features("sincos", 16, 1024, key=jax.random.key(0))
      >>> feature_map(features, jnp.ones(16) / 4, 2.0).shape
      (2048,)
    """
    context = "make_features"
    if kind not in FEATURE_KINDS:
        raise ValueError(f"{context}: kind must be one of {FEATURE_KINDS}, got {kind!r}")
    if projection not in PROJECTIONS:
        raise ValueError(f"{context}: projection must be one of {PROJECTIONS}, got {projection!r}")
    dim = check_int(dim, "dim", context, minimum=1)
    num_features = check_int(num_features, "num_features", context, minimum=1)
    block_size = _proj.check_block_size(projection, dim, block_size, context)
    params = _sample(_check_key(key, context), kind, projection, dim, num_features, block_size)
    return Features(kind, projection, dim, num_features, block_size, params)


@partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _sample(key: Array, kind: str, projection: str, dim: int, num_features: int, block_size: int) -> dict:
    k_proj, k_phase = jax.random.split(key)
    params = _proj.sample_params(projection, k_proj, dim, num_features, block_size)
    if kind == "cos":
        params["phases"] = jax.random.uniform(k_phase, (num_features,), jnp.result_type(float), 0.0, 2 * math.pi)
    return params


# ----------------------------------------------------------------------------------------------------------------
# kernels shared with dammem.drdam.memory (no validation)


def check_features(features, context: str) -> Features:
    if not isinstance(features, Features):
        raise TypeError(f"{context}: features must be a Features from make_features, got {type(features).__name__}")
    return features


def check_chunk_size(features: Features, chunk_size, context: str) -> int:
    """Rows per compute chunk: a positive multiple of ``features.block_size`` (None: the default)."""
    if chunk_size is None:
        return _proj.default_chunk_rows(features.projection, features.dim, features.num_features, features.block_size)
    g = features.block_size
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1 or chunk_size % g:
        raise ValueError(
            f"{context}: chunk_size must be a positive multiple of block_size = {g} (rows per generation block), "
            f"got {chunk_size!r}"
        )
    return chunk_size


def compute_dtype(*arrays) -> jnp.dtype:
    """float32, or float64 when an input is float64 (with x64 enabled); half precision computes in float32."""
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def phases_chunk(features: Features, index, rows: int, dtype) -> Array | None:
    """The phases ``b_a`` of one chunk (``cos`` only; zero past ``Y``)."""
    if features.kind != "cos":
        return None
    idx = index * rows + jnp.arange(rows)
    return jnp.take(features.params["phases"], idx, mode="fill", fill_value=0).astype(dtype)


# Sine and cosine of float32 projections. A DrDAM descent step takes both of Y projections per query. Profiled on a
# 2-core AMD EPYC (AVX2, XLA:CPU, 16 x 4096 projections): jnp.cos and jnp.sin fusions about 0.85 ms each, the fusion
# of the polynomial below about 0.1 ms for both (one argument reduction shared by the pair).
# Cody & Waite (1980), Ch. 8: k = round(p * 2 / pi), r = p - k pi/2 with pi/2 split into four float32 parts, the
# first three of 8 significant bits (k * part exact for |k| < 2^16, i.e. |p| < 1e5; beyond, r keeps an error of
# about ulp(p), the rounding of p itself); then the minimax polynomials of Moshier (1989), Cephes sinf / cosf, on
# |r| <= pi/4 (error about 1 ulp), and the quadrant k mod 4 picks and signs them.
_PIO2_PARTS = (1.5703125, 4.825592041015625e-4, 1.2665987014770508e-6, 9.92093629470503e-10)
_SIN_COEFFS = (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4)
_COS_COEFFS = (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5)


@jax.custom_jvp
def _sincos32(p: Array) -> tuple[Array, Array]:
    k = jnp.round(p * (2.0 / math.pi))
    r = p
    for part in _PIO2_PARTS:
        r = r - k * part
    z = r * r
    sin_r = r + r * z * (_SIN_COEFFS[0] + z * (_SIN_COEFFS[1] + z * _SIN_COEFFS[2]))
    cos_r = 1.0 - 0.5 * z + z * z * (_COS_COEFFS[0] + z * (_COS_COEFFS[1] + z * _COS_COEFFS[2]))
    q = k - 4.0 * jnp.floor(k * 0.25)  # the quadrant, 0..3
    swap = (q == 1.0) | (q == 3.0)
    sin_p = jnp.where(swap, cos_r, sin_r)
    cos_p = jnp.where(swap, sin_r, cos_r)
    return jnp.where(q >= 2.0, -sin_p, sin_p), jnp.where((q == 1.0) | (q == 2.0), -cos_p, cos_p)


@_sincos32.defjvp
def _sincos32_jvp(primals, tangents):
    sin_p, cos_p = _sincos32(primals[0])
    dp = tangents[0]
    return (sin_p, cos_p), (cos_p * dp, -sin_p * dp)


def sincos(p: Float[ArrayLike, "*shape"]) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
    """``(sin p, cos p)`` from one argument reduction: float32 through a vectorised polynomial (Cody & Waite
    (1980) reduction, Moshier (1989) polynomials; error about 1 ulp for ``|p| < 1e5``, about ``ulp(p)`` beyond),
    other float dtypes through ``jnp.sin`` / ``jnp.cos``. Differentiable: the derivatives are the pair itself.

    Example:
      >>> import jax.numpy as jnp
      >>> from dammem.drdam.features import sincos
      >>> sin_p, cos_p = sincos(jnp.array([0.0, 1.0, -2.5]))
      >>> [round(float(v), 5) for v in sin_p], [round(float(v), 5) for v in cos_p]
      ([0.0, 0.84147, -0.59847], [1.0, 0.5403, -0.80114])
    """
    p = jnp.asarray(p)
    if p.dtype == jnp.float32:
        return _sincos32(p)
    return jnp.sin(p), jnp.cos(p)


def chunk_value_parts(features: Features, p: Array, phases: Array | None, zsq: Array) -> tuple[Array, ...]:
    """Per-row feature values from projections ``p (..., R)``, one ``(..., R)`` array per feature of a row
    (``width`` arrays): ``phi`` for the trigonometric kinds, ``log phi`` for the exponential kinds
    (``zsq = ||z||^2``, shape ``(...)``). Separate arrays, not stacked: a caller that reduces them (the energy)
    reads each once, with no interleaved ``(..., R, width)`` buffer."""
    y = features.num_features
    if features.kind == "cos":
        return (math.sqrt(2.0 / y) * sincos(p + phases)[1],)
    if features.kind == "sincos":
        root = math.sqrt(y)
        sin_p, cos_p = sincos(p)
        return cos_p / root, sin_p / root
    base = -zsq[..., None]
    if features.kind == "exp":
        return (p + base - 0.5 * math.log(y),)
    return p + base - 0.5 * math.log(2 * y), -p + base - 0.5 * math.log(2 * y)


def chunk_values(features: Features, p: Array, phases: Array | None, zsq: Array) -> Array:
    """:func:`chunk_value_parts` stacked: ``(..., R, width)`` in the order ``(row, width)`` of the features."""
    return jnp.stack(chunk_value_parts(features, p, phases, zsq), axis=-1)


def chunk_value_slope_parts(
    features: Features, p: Array, phases: Array | None, values: tuple[Array, ...] | None = None
) -> tuple[Array, ...]:
    """``d value / d p`` per row, one ``(..., R)`` array per feature of a row: ``d phi / d p`` (trigonometric) or
    ``d log phi / d p`` without the ``-||z||^2`` term (exponential: +1 and -1, as Python floats). For ``sincos`` the
    slopes are the values rotated, ``(-sin p, cos p) / sqrt(Y)``: pass ``values`` from :func:`chunk_value_parts` to
    reuse them (no second sine and cosine)."""
    y = features.num_features
    if features.kind == "cos":
        return (-math.sqrt(2.0 / y) * sincos(p + phases)[0],)
    if features.kind == "sincos":
        cos_p, sin_p = values if values is not None else chunk_value_parts(features, p, phases, None)
        return -sin_p, cos_p
    return (1.0,) if features.kind == "exp" else (1.0, -1.0)


def chunk_value_slopes(features: Features, p: Array, phases: Array | None) -> Array:
    """:func:`chunk_value_slope_parts` stacked: ``(..., R, width)`` (the exponential kinds' constants as arrays
    shaped like ``p``)."""
    parts = chunk_value_slope_parts(features, p, phases)
    return jnp.stack([jnp.broadcast_to(jnp.asarray(v, p.dtype), p.shape) for v in parts], axis=-1)


def run_chunks(features: Features, rows: int, dtype, fn: Callable, carry, per_chunk=None) -> tuple:
    """Fold ``fn(carry, index, op, extra) -> (carry, out)`` over the compute chunks (a ``lax.scan``, or one direct
    call when a single chunk covers all rows). ``per_chunk`` is a pytree with a leading ``n_chunks`` axis, sliced as
    ``extra``. Returns ``(carry, outs)`` with ``outs`` stacked on a leading ``n_chunks`` axis."""
    n_chunks = -(-features.num_features // rows)

    def op_at(index):
        return _proj.chunk_operator(
            features.projection,
            features.params,
            features.dim,
            features.num_features,
            features.block_size,
            index,
            rows,
            dtype,
        )

    if n_chunks == 1:
        extra = None if per_chunk is None else jax.tree_util.tree_map(lambda a: a[0], per_chunk)
        carry, out = fn(carry, 0, op_at(0), extra)
        return carry, jax.tree_util.tree_map(lambda a: a[None], out)

    def body(c, xs):
        index, extra = xs
        return fn(c, index, op_at(index), extra)

    return lax.scan(body, carry, (jnp.arange(n_chunks), per_chunk))


def padded_input(features: Features, x: Array, beta, dtype) -> Array:
    """``z = sqrt(beta) x``, zero-padded to ``P`` on the last axis."""
    z = jnp.sqrt(jnp.asarray(beta, dtype)) * x.astype(dtype)
    pad = features.input_dim - features.dim
    return jnp.pad(z, [(0, 0)] * (z.ndim - 1) + [(0, pad)]) if pad else z


def rows_to_features(features: Features, outs: Array) -> Array:
    """Chunk outputs ``(n_chunks, ..., R, width)`` -> ``(..., F)`` in the order ``(row, width)``."""
    outs = jnp.moveaxis(outs, 0, -3)
    lead = outs.shape[:-3]
    outs = outs.reshape(*lead, -1, features.width)[..., : features.num_features, :]
    return outs.reshape(*lead, features.size)


def feature_map(
    features: Features, x: Float[ArrayLike, "*batch D"], beta: ArrayLike, *, chunk_size: int | None = None
) -> Float[Array, "*batch F"]:
    """``phi(sqrt(beta) x)``: the random features of ``x`` for the kernel ``exp(-beta/2 ||x - y||^2)``.

    Hoover et al. (2024), eq. 8 and App. C; ``<feature_map(f, x, b), feature_map(f, y, b)>`` is an unbiased estimate
    of ``exp(-b/2 ||x - y||^2)``.

    Args:
      features: from :func:`make_features`.
      x: ``(..., D)`` inputs.
      beta: inverse temperature ``> 0`` (traced).
      chunk_size: rows per compute chunk (a multiple of ``features.block_size``); the result does not depend on it.

    Returns:
      ``(..., F)`` feature values (for ``exp``/``expexp``: computed in log space, then exponentiated).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.drdam import make_features, feature_map
      >>> f = make_features("sincos", 4, 8, key=jax.random.key(0))
      >>> phi = feature_map(f, jnp.ones(4) / 2, 1.0)
      >>> round(float(phi @ phi), 4)  # sincos features have unit norm
      1.0
    """
    context = "feature_map"
    features = check_features(features, context)
    x = check_floating(x, "x", context)
    if x.ndim < 1 or x.shape[-1] != features.dim:
        raise ValueError(f"{context}: x must have shape (..., D) with D = {features.dim}, got shape {tuple(x.shape)}")
    beta = check_beta(beta, context)
    rows = check_chunk_size(features, chunk_size, context)
    return _feature_map_kernel(features, x, beta, rows)


@partial(jax.jit, static_argnums=3)
def _feature_map_kernel(features: Features, x: Array, beta, rows: int) -> Array:
    dtype = compute_dtype(x)
    z = padded_input(features, x, beta, dtype)
    zsq = jnp.sum(z * z, axis=-1)

    def fn(carry, index, op, _):
        values = chunk_values(features, op.apply(z), phases_chunk(features, index, rows, dtype), zsq)
        return carry, values

    _, outs = run_chunks(features, rows, dtype, fn, None)
    values = rows_to_features(features, outs)
    return jnp.exp(values) if features.positive else values
