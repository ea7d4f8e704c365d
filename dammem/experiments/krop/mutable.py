"""Mutable VSA key-value memory: retrieval rate over read-write steps, erase-by-clean-up vs baselines.

Liu et al. (2025), experiment "Mutable memory" (after the store/erase rule of Katz et al.'s neural virtual machine).
``M`` slots are stored in one HRR trace ``M = sum_m a_m (*) v_m`` (Gaussian addresses ``a_m``, values = rows of a
KROP codebook at random indices). At every step ``t = 1..T`` one random slot gets a new random value by the
overwrite rule ``M <- M - a (*) e + a (*) v``, where the erased estimate ``e`` of the old value is, per
:data:`dammem.vsa.ERASE_MODES`:

* ``cleanup`` -- the cleaned-up read ``clean(a # M)`` (Liu et al. (2025); exact removal when the clean-up is right);
* ``sign`` -- the sign-quantised read ``mean(|r|) sign(r)``, ``r = a # M`` (NVM's ``sigma = sign``);
* ``raw`` -- the raw read ``r = a # M``;
* ``none`` -- nothing (values pile up).

Why the raw and sign reads erase too much: for a Gaussian address with i.i.d. ``N(0, 1/N)`` entries every Fourier
coefficient has ``E |a_k|^2 = 1``, so ``a (*) (a # M)`` (each coefficient of ``M`` times ``|a_k|^2``) equals ``M``
in expectation: ``M - a (*) (a # M)`` removes the whole memory in expectation and leaves ``(1 - |a_k|^2) M_k``, a
scrambled copy uncorrelated with the stored pairs (Plate (1995) on the noise of correlation reads). The experiment
measures this directly: after the first overwrite, the cosine between what remains of the other slots,
``M_1 - a (*) v_new``, and what should remain, ``M_0 - a (*) v_old``.

After every step the retrieval rate is the fraction of the ``M`` slots whose clean-up ``clean(a_m # M)`` equals the
slot's current value; step 0 is the freshly stored memory. Rates are averaged over trials (vectorised over PRNG
keys); item counts ``M`` are padded to the largest one so that one compilation per (N, codebook) serves all ``M``
and all erase modes.

References:
  - R. Liu, Q. Qiu, S. Khan, G. E. Katz (2025). Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
    Kronecker Rotation Products. NeSy 2025.
  - G. E. Katz, G. P. Davis, R. J. Gentili, J. A. Reggia (2019). A programmable neural virtual machine based on a
    fast store-erase learning rule. Neural Networks 119, 10-30.
  - T. A. Plate (1995). Holographic Reduced Representations. IEEE Trans. Neural Networks 6(3), 623-641.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem.experiments._base import Progress
from dammem.vsa import ADDRESS_KINDS, CODEBOOK_KINDS, ERASE_MODES, make_codebook, random_addresses
from dammem.vsa._kernels import bind_kernel, unbind_kernel
from dammem.vsa._memory_kernels import overwrite_kernel

__all__ = ["Config", "run", "RULE_NAMES", "ERASE_DEFINITIONS"]

RULE_NAMES = {
    "cleanup": "clean-up erase (Liu et al. 2025)",
    "sign": "NVM write rule, sigma = sign (Katz et al. 2019)",
    "raw": "NVM write rule, sigma = identity (raw read)",
    "none": "write without erase",
}
"""The rule each erase mode implements, as the report names it. The slides of Liu et al. (2025) map the NVM write
rule ``M <- M - sigma(M a) a^T / N + v a^T / N`` (Katz et al. 2019) onto HRR as ``M - a (*) sigma(a # M) + a (*) v``;
``sign`` is that rule with sigma = sign, scaled by ``mean(|r|)`` to the read's size."""

ERASE_DEFINITIONS = {
    "cleanup": "subtracts a (*) clean(a # M), the cleaned-up read (Liu et al. 2025)",
    "sign": "subtracts a (*) (mean(|r|) sign(r)) with r = a # M, the sign-quantised read (NVM's sigma = sign)",
    "raw": "subtracts a (*) (a # M), the raw read",
    "none": "subtracts nothing: the new value is added on top of the old one",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Mutable-memory sweep.

    Attributes:
      items: numbers of stored slots M.
      dims: vector dimensions N (powers of two); every (M, N) pair is run.
      curves: ``"MxN"`` pairs (e.g. ``"32x2048"``) whose per-step curves are plotted (M in items, N in dims).
      codebooks: value codebook kinds.
      erase_modes: overwrite rules compared (from ``dammem.vsa.ERASE_MODES``).
      steps: read-write steps T.
      num_trials: independent trials, vectorised.
      address_kind: HRR address distribution (from ``dammem.vsa.ADDRESS_KINDS``).
      target: retrieval rate the clean-up rule should keep (reported as pass/fail per run).
    """

    items: tuple[int, ...] = (8, 32)
    dims: tuple[int, ...] = (256, 512, 1024, 2048)
    curves: tuple[str, ...] = ("8x256", "32x2048")
    codebooks: tuple[str, ...] = ("krop", "krop_signed")
    erase_modes: tuple[str, ...] = ERASE_MODES
    steps: int = 30
    num_trials: int = 10
    address_kind: str = "gaussian"
    target: float = 0.99

    def __post_init__(self):
        if not self.items or any(m < 1 for m in self.items) or list(self.items) != sorted(set(self.items)):
            raise ValueError(f"items must be increasing positive integers, got {list(self.items)}")
        if not self.dims or any(d < 16 or d & (d - 1) for d in self.dims) or list(self.dims) != sorted(set(self.dims)):
            raise ValueError(f"dims must be increasing powers of two >= 16, got {list(self.dims)}")
        for pair in self.curves:
            parts = pair.split("x")
            if (
                len(parts) != 2
                or not all(p.isdigit() for p in parts)
                or int(parts[0]) not in self.items
                or int(parts[1]) not in self.dims
            ):
                raise ValueError(f"curves must be 'MxN' strings with M in items and N in dims, got {pair!r}")
        if not self.codebooks or any(k not in CODEBOOK_KINDS for k in self.codebooks):
            raise ValueError(f"codebooks must be names from {CODEBOOK_KINDS}, got {list(self.codebooks)}")
        if not self.erase_modes or any(e not in ERASE_MODES for e in self.erase_modes):
            raise ValueError(f"erase_modes must be names from {ERASE_MODES}, got {list(self.erase_modes)}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.num_trials < 1:
            raise ValueError(f"num_trials must be >= 1, got {self.num_trials}")
        if self.address_kind not in ADDRESS_KINDS:
            raise ValueError(f"address_kind must be one of {ADDRESS_KINDS}, got {self.address_kind!r}")
        if not 0 < self.target <= 1:
            raise ValueError(f"target must lie in (0, 1], got {self.target}")


def _cosine(u: jax.Array, v: jax.Array) -> jax.Array:
    return jnp.dot(u, v) / jnp.maximum(jnp.linalg.norm(u) * jnp.linalg.norm(v), 1e-30)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _rates(kind, n, m_max, steps, address_kind, modes, trial_keys, items):
    """(len(items), len(modes), trials, steps + 1) retrieval rates and (len(items), len(modes), trials) cosines of the
    other slots' memory after the first overwrite with what it should be; items padded to m_max slots."""

    def trial(key, m):
        k_cb, k_addr, k_idx, k_slot, k_new = jax.random.split(key, 5)
        cb = make_codebook(kind, n, key=k_cb)
        addresses = random_addresses(k_addr, (m_max,), n, kind=address_kind)
        live = jnp.arange(m_max) < m
        idx = jax.random.randint(k_idx, (m_max,), 0, n)
        slots = jax.random.randint(k_slot, (steps,), 0, m)  # only the first m slots are used
        new_idx = jax.random.randint(k_new, (steps,), 0, n)
        memory0 = jnp.sum(bind_kernel(addresses, cb.rows(idx)) * live[:, None], axis=0)
        a0, v_old, v_new = addresses[slots[0]], cb.rows(idx[slots[0]]), cb.rows(new_idx[0])
        should_remain = memory0 - bind_kernel(a0, v_old)

        def rate(memory, current):
            got = cb.cleanup(unbind_kernel(memory, addresses))
            return jnp.sum((got == current) & live) / m

        def run_mode(erase):
            def step(carry, t):
                memory, current = carry
                slot = slots[t]
                memory = overwrite_kernel(memory, addresses[slot], cb.rows(new_idx[t]), cb, erase)
                current = current.at[slot].set(new_idx[t])
                return (memory, current), rate(memory, current)

            _, per_step = lax.scan(step, (memory0, idx), jnp.arange(steps))
            first = overwrite_kernel(memory0, a0, v_new, cb, erase)
            retained = _cosine(first - bind_kernel(a0, v_new), should_remain)
            return jnp.concatenate([rate(memory0, idx)[None], per_step]), retained

        curves, retained = zip(*(run_mode(erase) for erase in modes))
        return jnp.stack(curves), jnp.stack(retained)

    per_items = jax.vmap(lambda m: jax.vmap(lambda k: trial(k, m))(trial_keys))(items)
    curves, retained = per_items  # (I, trials, modes, T+1), (I, trials, modes)
    return jnp.swapaxes(curves, 1, 2), jnp.swapaxes(retained, 1, 2)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.dims) * len(config.codebooks))
    modes = tuple(config.erase_modes)
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    retained: dict[str, dict[str, dict[str, float]]] = {}
    for i, n in enumerate(config.dims):
        trial_keys = jax.random.split(jax.random.fold_in(key, i), config.num_trials)
        for kind in config.codebooks:
            progress.point(f"{kind} N={n}, M in {list(config.items)}, {config.steps} steps")
            rates, cosines = _rates(
                kind,
                n,
                max(config.items),
                config.steps,
                config.address_kind,
                modes,
                trial_keys,
                jnp.asarray(config.items, jnp.int32),
            )
            rates = np.asarray(rates).mean(axis=2)  # (items, modes, T + 1), averaged over trials
            cosines = np.asarray(cosines).mean(axis=2)  # (items, modes)
            for a, m in enumerate(config.items):
                for b, erase in enumerate(modes):
                    curves.setdefault(kind, {}).setdefault(f"{m}x{n}", {})[erase] = rates[a, b].tolist()
                    retained.setdefault(kind, {}).setdefault(f"{m}x{n}", {})[erase] = float(cosines[a, b])
            progress.update(1)
    summary = {}
    for kind, per_shape in curves.items():
        for shape, per_mode in per_shape.items():
            for erase, curve in per_mode.items():
                after = np.asarray(curve[1:])
                summary.setdefault(kind, {}).setdefault(shape, {})[erase] = {
                    "mean": float(after.mean()),
                    "min": float(after.min()),
                    "last": float(after[-1]),
                    "initial": float(curve[0]),
                }
    return {
        "items": list(config.items),
        "dims": list(config.dims),
        "curves": curves,
        "summary": summary,
        "retained_cosine": retained,
        "cleanup_meets_target": {
            kind: {shape: per_shape["cleanup"]["min"] >= config.target for shape, per_shape in s.items()}
            for kind, s in summary.items()
            if "cleanup" in modes
        },
    }
