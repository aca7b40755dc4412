"""Errors a user can cause when describing data or training."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used: the message names the file, field or value and what is accepted."""
