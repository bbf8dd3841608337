"""The trained model's file: ``artifacts/permeability_model.joblib`` inside a model folder.

One place writes and reads it: the MLflow pyfunc wrapper, the model cache and the tests.
A model is pickled by reference to its classes, so a file written before a class moved names
the module the class lived in then. :data:`MOVED_MODULES` says where each of those modules
went; when a file names one, the load is retried with the old names standing in for the new
modules in ``sys.modules`` (for that load only, under a lock; pandas' ``pickle_compat`` maps
its own moved classes the same way). A lab's registered versions keep serving across an
upgrade that moves code, without retraining.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import joblib

MODEL_ARTIFACT_FILE: Final = "permeability_model.joblib"
#: The file inside a saved model folder (the MLflow model's ``artifacts/``).
MODEL_FILE: Final = Path("artifacts") / MODEL_ARTIFACT_FILE

#: Modules of the layout before 0.2 (``permeability.domain``) whose classes a stored model
#: may name, and where their code lives now (in lookup order when one module became several).
MOVED_MODULES: Final[Mapping[str, tuple[str, ...]]] = {
    "permeability.domain.model": (
        "permeability.modelling.predictor",
        "permeability.modelling.training",
    ),
    "permeability.domain.features": (
        "permeability.features.engineering",
        "permeability.features.inputs",
    ),
    "permeability.domain.pca": ("permeability.features.pca",),
    "permeability.domain.physics": ("permeability.features.physics",),
    "permeability.domain.structure_levels": ("permeability.features.structure_levels",),
    "permeability.domain.structures": ("permeability.record.structures",),
    "permeability.domain.schema": ("permeability.record.schema",),
    "permeability.domain.intervals": ("permeability.modelling.conformal",),
    "permeability.domain.catalogue": ("permeability.modelling.catalogue",),
    "permeability.domain.trees": ("permeability.modelling.trees",),
    "permeability.domain.splits": ("permeability.modelling.splits",),
}

_aliasing = threading.Lock()


def save_model_file(model: Any, path: Path) -> Path:
    """Write ``model`` to ``path`` (a joblib pickle); the folder is created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def load_model_file(path: Path) -> Any:
    """The object in the model file at ``path``, whichever layout wrote it."""
    try:
        return joblib.load(path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not any(old == missing or old.startswith(f"{missing}.") for old in MOVED_MODULES):
            raise
    with _aliasing, _old_module_names():
        return joblib.load(path)


@contextmanager
def _old_module_names() -> Iterator[None]:
    added = [old for old in MOVED_MODULES if old not in sys.modules]
    for old in added:
        sys.modules[old] = _stand_in(old, MOVED_MODULES[old])
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)


def _stand_in(old: str, new: tuple[str, ...]) -> types.ModuleType:
    """A module named ``old`` whose attributes are looked up in the ``new`` modules."""
    targets = [importlib.import_module(name) for name in new]
    module = types.ModuleType(old, f"stands in for {', '.join(new)} while a model loads")

    def lookup(name: str) -> Any:
        for target in targets:
            if hasattr(target, name):
                return getattr(target, name)
        raise AttributeError(f"{old} (now {', '.join(new)}) has no attribute {name!r}")

    module.__getattr__ = lookup  # type: ignore[method-assign]
    return module
