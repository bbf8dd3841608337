"""Errors a user can act on. Their message is shown as is (CLI: one line on stderr; API: detail)."""

from __future__ import annotations


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
