"""Experiments reproducing the source papers' tables and figures; each module is one experiment.

See ``CONTRACT.md`` for the module interface and :func:`dammem.experiments._base.run_experiment` for how the CLI
runs one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXPERIMENTS: dict[str, str] = {
    "quickstart": "dammem.experiments.quickstart",
    "capacity": "dammem.experiments.capacity",
    "krop_timing": "dammem.experiments.krop_timing",
    "krop_capacity": "dammem.experiments.krop_capacity",
    "krop_mutable": "dammem.experiments.krop_mutable",
    "uhop_retrieval": "dammem.experiments.uhop_retrieval",
    "uhop_classification": "dammem.experiments.uhop_classification",
    "drdam_approx": "dammem.experiments.drdam_approx",
    "drdam_retrieval": "dammem.experiments.drdam_retrieval",
    "drdam_images": "dammem.experiments.drdam_images",
    "drdam_basis": "dammem.experiments.drdam_basis",
}


def get_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``."""
    if not isinstance(name, str) or name not in EXPERIMENTS:
        from dammem.experiments._base import ConfigError

        raise ConfigError(f"experiment: unknown experiment {name!r}; known experiments are {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


__all__ = ["EXPERIMENTS", "get_experiment"]
