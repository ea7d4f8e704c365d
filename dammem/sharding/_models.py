"""The per-device pieces of the memory-parallel models and the ONE preparation of their arguments.

Shape legend: ``K`` memories, ``D`` pattern dimension, ``B`` queries; ``K_loc = K / n`` memories on each of the ``n``
devices of the memories' mesh axis.

A model is an energy form of :mod:`dammem.energies` (``E = 1/2 sim(x, x) - c Psi*_alpha(beta, k sim(Xi, x))``, Wu
et al. (2024), eqs. 2.2-2.4; Hoover et al. (2024), eq. 11 for ``rbf``): its scale ``k``, its ``c``, its self term
and the combination of the two terms come from there; this module adds the batched matrix-product form of the
scores (``(B, D) @ (D, K_loc)``; ``-||xi - x||^2 = 2 <xi, x> - ||xi||^2 - ||x||^2``, clipped at 0) and the
reductions across devices.

References:
  - Wu, Hu, Hsiao, Liu (2024). Uniform Memory Retrieval with Larger Capacity for Modern Hopfield Models. ICML.
  - Hoover, Chau, Strobelt, Ram, Krotov (2024). Dense Associative Memory Through the Lens of Random Features.
    NeurIPS.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dammem._entmax_solver import GENERAL, SOFTMAX
from dammem._types import Array
from dammem._validate import check_beta, check_bool_vector, check_floating, is_concrete
from dammem.energies._common import ENERGY_FORMS, EnergyForm, check_alpha
from dammem.sharding._mesh import check_axis, check_batch_axis, check_divides, check_mesh, onto
from dammem.separations import closed_form_kernel
from dammem.sharding._separation import separation_local
from dammem.similarities import SIMILARITIES

__all__ = ["MODELS", "ModelSpec", "LocalModel", "Prepared", "prepare", "specs", "compute_dtype"]

MODELS = tuple(ENERGY_FORMS)
"""The energies of the memory-parallel functions, the names of :data:`dammem.energies._common.ENERGY_FORMS`:
``rbf`` (:func:`dammem.energies.rbf_energy` and ``rbf_update``), ``modern_hopfield``
(:func:`dammem.energies.modern_hopfield_energy`, the update with alpha = 1) and ``sparse_hopfield``
(:func:`dammem.energies.sparse_hopfield_energy` and ``sparse_hopfield_update``)."""

_MATRIX_SIMILARITIES = ("dot", "neg_sq_l2")  # the similarities with a batched matrix-product form here


class ModelSpec(NamedTuple):
    """A static (hashable) model: the name of its similarity, its energy form's scales and its separation kernel."""

    similarity: str
    score_scale: float
    energy_scale: float
    kind: str

    @property
    def form(self) -> EnergyForm:
        return EnergyForm(SIMILARITIES[self.similarity], self.score_scale, self.energy_scale)


def _resolve_model(model: Any, alpha: Any, similarity: Any, context: str) -> tuple[ModelSpec, Any]:
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"{context}: model must be one of {list(MODELS)}, got {model!r}")
    form = ENERGY_FORMS[model]
    if model != "sparse_hopfield":
        for name, value in (("alpha", alpha), ("similarity", similarity)):
            if value is not None:
                raise ValueError(
                    f"{context}: {name} is only used with model='sparse_hopfield'; model={model!r} fixes its own "
                    f"(got {name}={value!r})"
                )
        return ModelSpec(form.similarity.name, form.score_scale, form.energy_scale, SOFTMAX), None
    similarity = "dot" if similarity is None else similarity
    if not isinstance(similarity, str) or similarity not in _MATRIX_SIMILARITIES:
        raise ValueError(
            f"{context}: similarity must be 'dot' or 'neg_sq_l2' (the similarities with a sparse Hopfield energy and a "
            f"matrix-product form), got {similarity!r}"
        )
    form = form.with_similarity(SIMILARITIES[similarity])
    if alpha is None:
        raise ValueError(f"{context}: alpha is required: a real scalar in [1, 2], got None")
    alpha = check_alpha(alpha, context)
    kind = closed_form_kernel(alpha)
    spec = ModelSpec(similarity, form.score_scale, form.energy_scale, kind)
    return spec, (jnp.asarray(alpha) if kind == GENERAL else None)


def _check_memory_args(x, memories, mask, mesh, axis, batch_axis, context, x_name):
    mesh = check_mesh(mesh, context)
    n = check_axis(mesh, axis, "axis", context)
    memories = check_floating(memories, "memories", context)
    x = check_floating(x, x_name, context)
    if memories.ndim != 2:
        raise ValueError(f"{context}: memories must have shape (K, D), got {tuple(memories.shape)}")
    if x.ndim not in (1, 2) or x.shape[-1] != memories.shape[1]:
        raise ValueError(
            f"{context}: {x_name} must have shape (D,) or (B, D) with D = {memories.shape[1]} (the memories' D), got "
            f"{tuple(x.shape)}"
        )
    check_divides(memories.shape[0], n, "the number of memories K", axis, context)
    batch = 1 if x.ndim == 1 else x.shape[0]
    if batch_axis is not None and x.ndim == 1:
        raise ValueError(f"{context}: batch_axis={batch_axis!r} needs a batch of queries (B, D), got one query")
    check_batch_axis(mesh, batch_axis, axis, batch, context)
    mask = check_bool_vector(mask, memories.shape[0], context, meaning="True = memory present")
    if mask is not None:
        if is_concrete(mask) and not np.asarray(mask).any():
            raise ValueError(f"{context}: mask hides every memory (all False); at least one must be present")
    return mesh, x, memories, mask


def specs(axis: str, batch_axis: str | None, with_mask: bool) -> tuple[P, P, P | None]:
    """The partition specs of the queries, the memories and the memory mask."""
    xs = P(batch_axis, None) if batch_axis else P()
    return xs, P(axis, None), (P(axis) if with_mask else None)


def compute_dtype(*arrays) -> Any:
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


class Prepared(NamedTuple):
    """Checked arguments of a memory-parallel call, placed on the mesh (queries always batched, ``(B, D)``)."""

    spec: ModelSpec
    mesh: Mesh
    x: Array
    memories: Array
    mask: Array | None
    beta: Array
    alpha: Array | None
    single: bool


def prepare(x, memories, beta, mesh, axis, model, alpha, similarity, mask, batch_axis, context, x_name="x") -> Prepared:
    """Check and place the arguments shared by :func:`sharded_update`, :func:`sharded_energy` and
    :func:`sharded_retrieve`."""
    spec, alpha = _resolve_model(model, alpha, similarity, context)
    mesh, x, memories, mask = _check_memory_args(x, memories, mask, mesh, axis, batch_axis, context, x_name)
    beta = jnp.asarray(check_beta(beta, context))
    single = x.ndim == 1
    xb = x[None] if single else x
    xs, ms, ks = specs(axis, batch_axis, mask is not None)
    xb, memories, mask = onto(mesh, xb, xs), onto(mesh, memories, ms), onto(mesh, mask, ks)
    beta, alpha = onto(mesh, beta, P()), onto(mesh, alpha, P())
    return Prepared(spec, mesh, xb, memories, mask, beta, alpha, single)


class LocalModel:
    """The per-device pieces of a model: scores, weights with the energy, and the read-out (inside shard_map)."""

    def __init__(self, spec: ModelSpec, axis: str, n: int, memories, mask, beta, alpha):
        self.spec, self.form, self.axis, self.n = spec, spec.form, axis, n
        self.memories, self.mask, self.beta, self.alpha = memories, mask, beta, alpha
        self.l2 = spec.similarity == "neg_sq_l2"
        self.sq_norms = jnp.sum(memories * memories, axis=-1) if self.l2 else None

    def scores(self, x: Array) -> Array:
        """(B, K_loc) ``k sim(Xi_loc, x)`` in matrix-product form; neg_sq_l2 as ``2 <xi, x> - ||xi||^2 - ||x||^2``."""
        dots = x @ self.memories.T
        if self.l2:
            dots = jnp.minimum(2.0 * dots - self.sq_norms - jnp.sum(x * x, axis=-1, keepdims=True), 0.0)
        s = self.spec.score_scale * dots
        return s if self.mask is None else jnp.where(self.mask, s, -jnp.inf)

    def weights_and_energy(self, x: Array) -> tuple[Array, Array]:
        beta = self.beta.astype(x.dtype)
        p, psi = separation_local(beta * self.scores(x), self.axis, self.n, self.spec.kind, self.alpha, "both")
        own = jax.vmap(lambda q: self.form.self_term(q, "sharded_energy"))(x)
        return p, self.form.combine(own, psi / beta)

    def read(self, p: Array) -> Array:
        return lax.psum(p @ self.memories, self.axis)
