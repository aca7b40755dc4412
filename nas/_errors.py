"""Errors a user can cause when configuring a search."""

from __future__ import annotations


class ConfigError(ValueError):
    """A search option with a value that cannot be used; the message names the option."""
