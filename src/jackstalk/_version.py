"""The package version, kept in one place for setuptools and for users."""

from __future__ import annotations

__version__ = "0.1.0"
