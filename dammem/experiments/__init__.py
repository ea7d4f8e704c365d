"""Experiments reproducing the source papers' tables and figures, grouped by paper; each module is one experiment.

``quickstart`` and ``capacity`` stand alone; ``drdam/`` follows Hoover et al. (2024), ``uhop/`` Wu et al. (2024)
and ``krop/`` Liu et al. (2025), with a ``common`` module where a paper's experiments share code. The names users type
(``dammem run uhop_retrieval_mnist``, ``dammem list``) are the keys of :data:`EXPERIMENTS` and the packaged configs.

See ``CONTRACT.md`` for the module interface and :func:`dammem.experiments._base.run_experiment` for how the CLI
runs one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXPERIMENTS: dict[str, str] = {
    "quickstart": "dammem.experiments.quickstart",
    "capacity": "dammem.experiments.capacity",
    "krop_timing": "dammem.experiments.krop.timing",
    "krop_capacity": "dammem.experiments.krop.capacity",
    "krop_mutable": "dammem.experiments.krop.mutable",
    "uhop_retrieval": "dammem.experiments.uhop.retrieval",
    "uhop_classification": "dammem.experiments.uhop.classification",
    "drdam_approx": "dammem.experiments.drdam.approx",
    "drdam_retrieval": "dammem.experiments.drdam.retrieval",
    "drdam_images": "dammem.experiments.drdam.images",
    "drdam_basis": "dammem.experiments.drdam.basis",
}


def get_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``."""
    if not isinstance(name, str) or name not in EXPERIMENTS:
        from dammem.experiments._base import ConfigError

        raise ConfigError(f"experiment: unknown experiment {name!r}; known experiments are {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


__all__ = ["EXPERIMENTS", "get_experiment"]
