"""A package's public names loaded on first use (PEP 562), so that importing one light submodule
does not load the package's heavy ones: a build starts its converter before it needs them."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str], namespace: dict) -> Callable[[str], object]:
    """The module `__getattr__` of `package`: `exports` maps a public name to the submodule that
    defines it; the value found is kept in `namespace` (the package's globals())."""
    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value
    return __getattr__
