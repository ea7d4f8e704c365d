"""Mutable VSA key-value memory: retrieval rate over read-write steps, erase-by-clean-up vs baselines (seed 000).

``M`` slots are stored in one HRR trace ``M = sum_m a_m (*) v_m`` (Gaussian keys, values = rows of a KROP codebook at
random indices). At every step ``t = 1..T`` one random slot gets a new random value by the overwrite rule
``M <- M - a (*) e + a (*) v`` (seed 000's analogue of NVM's store/erase rule), where the erased estimate ``e`` of
the old value is, per :data:`dammem.vsa.ERASE_MODES`:

* ``cleanup`` -- the cleaned-up read (seed 000's rule; exact removal when the clean-up is right);
* ``sign`` -- the sign-quantised read (NVM's ``sigma = sign``, scaled to the read);
* ``raw`` -- the raw read ``a # M``;
* ``none`` -- nothing (values pile up).

After every step the retrieval rate is the fraction of the ``M`` slots whose clean-up ``clean(a_m # M)`` equals the
slot's current value; step 0 is the freshly stored memory. Rates are averaged over trials (vectorised over PRNG
keys); item counts ``M`` are padded to the largest one so that one compilation per (N, codebook) serves all ``M``
and all erase modes.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dammem.experiments._base import Progress, markdown_table, pyplot, save_figure
from dammem.vsa import CODEBOOK_KINDS, ERASE_MODES, KEY_KINDS, make_codebook, random_keys
from dammem.vsa.hrr import _bind, _correlate
from dammem.vsa.memory import _overwrite

__all__ = ["Config", "run", "report"]


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
      key_kind: HRR key distribution.
      target: retrieval rate the clean-up rule should keep (reported as pass/fail per run).
    """

    items: tuple[int, ...] = (8, 32)
    dims: tuple[int, ...] = (256, 512, 1024, 2048)
    curves: tuple[str, ...] = ("8x256", "32x2048")
    codebooks: tuple[str, ...] = ("krop", "krop_signed")
    erase_modes: tuple[str, ...] = ERASE_MODES
    steps: int = 30
    num_trials: int = 10
    key_kind: str = "gaussian"
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
        if self.key_kind not in KEY_KINDS:
            raise ValueError(f"key_kind must be one of {KEY_KINDS}, got {self.key_kind!r}")
        if not 0 < self.target <= 1:
            raise ValueError(f"target must lie in (0, 1], got {self.target}")


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _rates(kind, n, m_max, steps, key_kind, modes, trial_keys, items):
    """(len(items), len(modes), trials, steps + 1) retrieval rates; items padded to m_max slots."""

    def trial(key, m):
        k_cb, k_keys, k_idx, k_slot, k_new = jax.random.split(key, 5)
        cb = make_codebook(kind, n, key=k_cb)
        keys = random_keys(k_keys, (m_max,), n, kind=key_kind)
        live = jnp.arange(m_max) < m
        idx = jax.random.randint(k_idx, (m_max,), 0, n)
        slots = jax.random.randint(k_slot, (steps,), 0, m)  # only the first m slots are used
        new_idx = jax.random.randint(k_new, (steps,), 0, n)
        memory0 = jnp.sum(_bind(keys, cb.rows(idx)) * live[:, None], axis=0)

        def rate(memory, current):
            got = cb.cleanup(_correlate(keys, memory))
            return jnp.sum((got == current) & live) / m

        def run_mode(erase):
            def step(carry, t):
                memory, current = carry
                slot = slots[t]
                memory = _overwrite(memory, keys[slot], cb.rows(new_idx[t]), cb, erase)
                current = current.at[slot].set(new_idx[t])
                return (memory, current), rate(memory, current)

            _, per_step = lax.scan(step, (memory0, idx), jnp.arange(steps))
            return jnp.concatenate([rate(memory0, idx)[None], per_step])

        return jnp.stack([run_mode(erase) for erase in modes])

    per_items = jax.vmap(lambda m: jax.vmap(lambda k: trial(k, m))(trial_keys))(items)  # (I, trials, modes, T+1)
    return jnp.swapaxes(per_items, 1, 2)


def run(config: Config, key: jax.Array, progress: Progress) -> dict:
    progress.total(len(config.dims) * len(config.codebooks))
    modes = tuple(config.erase_modes)
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    for i, n in enumerate(config.dims):
        trial_keys = jax.random.split(jax.random.fold_in(key, i), config.num_trials)
        for kind in config.codebooks:
            rates = np.asarray(
                _rates(
                    kind,
                    n,
                    max(config.items),
                    config.steps,
                    config.key_kind,
                    modes,
                    trial_keys,
                    jnp.asarray(config.items, jnp.int32),
                )
            ).mean(axis=2)  # (items, modes, T + 1), averaged over trials
            for a, m in enumerate(config.items):
                for b, erase in enumerate(modes):
                    curves.setdefault(kind, {}).setdefault(f"{m}x{n}", {})[erase] = rates[a, b].tolist()
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
        "cleanup_meets_target": {
            kind: {shape: per_shape["cleanup"]["min"] >= config.target for shape, per_shape in s.items()}
            for kind, s in summary.items()
            if "cleanup" in modes
        },
    }


def report(config: Config, results: dict, out_dir: Path) -> str:
    plt = pyplot()

    kinds = list(results["curves"])
    modes = list(config.erase_modes)
    ncols = len(config.curves) + len(config.items)
    fig, axes = plt.subplots(len(kinds), ncols, figsize=(4.2 * ncols, 3.4 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, shape in enumerate(config.curves):
            m, n = shape.split("x")
            ax = axes[r, c]
            for erase in modes:
                ax.plot(results["curves"][kind][shape][erase], marker=".", label=erase)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("step t")
            ax.set_ylabel("retrieval rate")
            ax.set_title(f"{kind}: (M, N) = ({m}, {n})")
            ax.legend(fontsize=7)
        for c, m in enumerate(config.items):
            ax = axes[r, len(config.curves) + c]
            for erase in modes:
                means = [results["summary"][kind][f"{m}x{n}"][erase]["mean"] for n in results["dims"]]
                ax.plot(results["dims"], means, marker="o", label=erase)
            ax.set_xscale("log", base=2)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("N")
            ax.set_ylabel(f"mean rate over {config.steps} steps")
            ax.set_title(f"{kind}: M = {m}, averages vs N")
            ax.legend(fontsize=7)
    save_figure(fig, out_dir / "krop_mutable.png", dpi=110)

    rows = []
    for kind in kinds:
        for m in config.items:
            for n in results["dims"]:
                s = results["summary"][kind][f"{m}x{n}"]
                rows.append([kind, m, n] + [f"{s[e]['mean']:.3f} / {s[e]['min']:.3f}" for e in modes])
    lines = [
        f"Retrieval rate after each of {config.steps} overwrite steps, {config.num_trials} trials, "
        f"{config.key_kind} keys: mean / min over the steps.",
        "",
        markdown_table(["codebook", "M", "N"] + modes, rows),
    ]
    if results["cleanup_meets_target"]:
        lines += ["", f"Clean-up erase keeps the rate >= {config.target} at every step:", ""]
        lines += [
            f"- {kind} (M, N) = ({shape.replace('x', ', ')}): {'yes' if ok else 'no'}"
            for kind, per in results["cleanup_meets_target"].items()
            for shape, ok in per.items()
            if shape in config.curves
        ]
    lines += ["", "![mutable](krop_mutable.png)"]
    return "\n".join(lines)
