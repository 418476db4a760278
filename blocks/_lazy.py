"""Module attributes loaded on first use (PEP 562), shared by `blocks` and `flows`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(
    package: str, names: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for a package whose `names` live in other modules."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # found once, then a plain attribute
        return value

    def __dir__() -> list[str]:
        # `prefect block register -m blocks` finds blocks through dir(): list the lazy names.
        return sorted([*namespace, *names])

    return __getattr__, __dir__


__all__ = ["lazy_attributes"]
