"""Errors a user can act on. Their message is shown as is (CLI: one line on stderr; API: detail)."""

from __future__ import annotations

from pydantic import ValidationError


class PermeabilityError(Exception):
    """Base class: a problem with input, state or configuration, explained in one sentence."""


class InvalidInputError(PermeabilityError):
    """The input (a file, a table, a request, a parameter) is not acceptable; says which and why."""


class NotFoundError(PermeabilityError):
    """A version, table, file or model that was asked for does not exist."""


class ConflictError(PermeabilityError):
    """The request would overwrite something immutable (e.g. an existing version label)."""


class EmptyFeatureStoreError(PermeabilityError):
    """There is no labelled data to work on yet."""


def invalid_input_from(exc: ValidationError, *, prefix: str = "") -> InvalidInputError:
    """One sentence naming the first bad field of a pydantic report (users fix one at a time)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "request"
    message = str(first["msg"]).removeprefix("Value error, ")
    return InvalidInputError(f"{prefix}{where}: {message}")
