"""Errors a user can cause when naming storage, studies or trials."""

from __future__ import annotations


class StudyError(ValueError):
    """Base class: a storage URL, study or trial that cannot be used; the message says why."""


class StorageError(StudyError):
    """A storage URL that is malformed, unsupported or unreachable."""


class StudyNotFoundError(StudyError, LookupError):
    """A study name that the storage does not hold."""


class StudyExistsError(StudyError):
    """A study name that is already taken in the storage."""


class ExportError(StudyError):
    """A trial that cannot be exported (not complete, no weights, target not empty)."""
