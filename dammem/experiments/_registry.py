"""Experiments by name (each a module imported on first use) and the error every configuration problem raises.

Both :mod:`dammem.experiments` (the public registry) and :mod:`dammem.experiments._base` (configs and runs) build on
this module, which imports neither.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ConfigError", "EXPERIMENTS", "get_experiment"]


class ConfigError(ValueError):
    """A configuration problem: the message names the key, the value and what is allowed."""


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
        raise ConfigError(f"experiment: unknown experiment {name!r}; known experiments are {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])
