"""The trained model's files: ``artifacts/permeability_model.joblib`` inside a model folder, and
beside it, for linear and compiled tree models, the served form ``artifacts/permeability_served.pkl``.

One place writes and reads them: the MLflow pyfunc wrapper, the model cache and the tests.
A model is pickled by reference to its classes, so a file written before a class moved names
the module the class lived in then. :data:`MOVED_MODULES` says where each of those modules
went; when a file names one, the load is retried with the old names standing in for the new
modules in ``sys.modules`` (for that load only, under a lock; pandas' ``pickle_compat`` maps
its own moved classes the same way). A lab's registered versions keep serving across an
upgrade that moves code, without retraining.

The served file (:func:`save_served_file`, :func:`load_served_file`) is a plain pickle of the
model's :class:`~permeability.modelling.record_scorer.RecordScorer`: everything single-record
inference needs, with no scikit-learn estimator, so loading it imports neither scikit-learn,
SciPy, pandas nor joblib (docs/deploy.md, "Replicas that start fast"). That is why joblib is
imported inside :func:`save_model_file` and :func:`load_model_file` only, and the scorer class
inside the served-file functions. A model whose trees cannot be compiled has no served file:
it is served from the full model.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from permeability.errors import InvalidInputError

if TYPE_CHECKING:
    from permeability.modelling.record_scorer import RecordScorer

MODEL_ARTIFACT_FILE: Final = "permeability_model.joblib"
#: The file inside a saved model folder (the MLflow model's ``artifacts/``).
MODEL_FILE: Final = Path("artifacts") / MODEL_ARTIFACT_FILE
#: The served form (a pickled RecordScorer) beside the model file, for lean models only.
SERVED_ARTIFACT_FILE: Final = "permeability_served.pkl"
SERVED_FILE: Final = Path("artifacts") / SERVED_ARTIFACT_FILE
#: Pickle protocol of the served file (out-of-band buffers, Python 3.8+).
SERVED_PICKLE_PROTOCOL: Final = 5

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
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def load_model_file(path: Path) -> Any:
    """The object in the model file at ``path``, whichever layout wrote it."""
    import joblib

    try:
        return joblib.load(path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not any(old == missing or old.startswith(f"{missing}.") for old in MOVED_MODULES):
            raise
    with _aliasing, _old_module_names():
        return joblib.load(path)


def save_served_file(scorer: RecordScorer, path: Path) -> Path:
    """Write a lean ``scorer`` to ``path`` (a plain pickle, protocol 5); the folder is created
    if missing. A scorer that predicts through its estimator (not ``lean``) is refused: its
    pickle would need scikit-learn, which is what the served file is for avoiding."""
    from permeability.modelling.record_scorer import RecordScorer

    if not isinstance(scorer, RecordScorer):
        raise InvalidInputError(
            f"the served file holds a RecordScorer, got {type(scorer).__module__}."
            f"{type(scorer).__qualname__}"
        )
    if not scorer.lean:
        raise InvalidInputError(
            f"{scorer.model_name} predicts single records through its scikit-learn estimator "
            f"(fast path {scorer.fast_path!r}): it has no served file, serve the model file"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(scorer, protocol=SERVED_PICKLE_PROTOCOL))
    return path


def load_served_file(path: Path) -> RecordScorer:
    """The :class:`~permeability.modelling.record_scorer.RecordScorer` in the served file at
    ``path`` (InvalidInputError naming the file when it holds anything else)."""
    from permeability.modelling.record_scorer import RecordScorer

    with path.open("rb") as stream:
        # The version's own file, as trusted as its joblib model file (which is a pickle too).
        loaded = pickle.load(stream)  # noqa: S301
    if not isinstance(loaded, RecordScorer):
        raise InvalidInputError(
            f"served file {path} holds a {type(loaded).__module__}.{type(loaded).__qualname__}, "
            "not a RecordScorer"
        )
    return loaded


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
