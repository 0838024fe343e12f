"""The registry of input formats: every module in this package that defines FORMATS."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from .base import Conversion, Converter, Format, FormatError, MappingRow

__all__ = [
    "Conversion",
    "Converter",
    "Format",
    "FormatError",
    "MappingRow",
    "all_formats",
    "detect_format",
    "get_format",
]


@cache
def all_formats() -> tuple[Format, ...]:
    """Every known format, in detection order (most specific signatures first)."""
    found: list[Format] = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found.extend(getattr(module, "FORMATS", ()))
    return tuple(sorted(found, key=lambda f: (getattr(f, "detect_priority", 100), f.name)))


def get_format(name: str) -> Format:
    for candidate in all_formats():
        if candidate.name == name:
            return candidate
    known = ", ".join(f.name for f in all_formats())
    raise FormatError(f"unknown format {name!r}; known formats: {known}")


def detect_format(sample: Mapping[str, Any], columns: Sequence[str] | None) -> Format | None:
    for candidate in all_formats():
        if not getattr(candidate, "detectable", True):
            continue
        try:
            if candidate.matches(sample, columns):
                return candidate
        except Exception:  # a signature check must never end a run on odd input
            continue
    return None
