"""Which files of a model directory the pinned converter would run as Python, before it runs.

transformers imports a repository's own modules when a config names them in `auto_map` and the
caller passes `trust_remote_code=True`; the pinned converter passes it for some architectures
(QWen, ChatGLM, MiniMax, HunYuan, Dream, LLaDA, ...). Those architectures are found by reading
the pinned tree's `conversion/*.py` with `ast` (no import: the converter is not ours to run
here): a class registered for an architecture is remote when one of its methods, or a method
or function they call, passes `trust_remote_code=True`. Hand-written because no library answers
"would this converter run this directory's code"; the answer follows the pinned tree.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

from edgepack.errors import RemoteCodeError

_BASES = {"ModelBase", "TextModel", "MmprojModel"}  # shared helpers live here; reached only by a call


def auto_map_files(directory: Path) -> list[tuple[str, str]]:
    """(config file, module file) for every `auto_map` entry of config.json / tokenizer_config.json."""
    found = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if not isinstance(auto_map, dict):
            continue
        for value in auto_map.values():
            for ref in value if isinstance(value, list) else [value]:
                if not isinstance(ref, str) or not ref:
                    continue
                repo, _, dotted = ref.rpartition("--")
                module = dotted.rpartition(".")[0] or dotted
                target = f"{repo} (a hub repository)" if repo else module.replace(".", "/") + ".py"
                if (name, target) not in found:
                    found.append((name, target))
    return found


def check_remote_code(directory: Path, architectures: list[str], conversion_dir: Path, *, trusted: bool) -> None:
    """Refuse a source whose conversion would run code shipped with it, unless `trusted`."""
    if trusted:
        return
    entries = auto_map_files(directory)
    if entries:
        config, target = entries[0]
        raise RemoteCodeError(
            f"{directory / config} maps classes to {target}: converting it would run that code; "
            "pass --trust-remote-code if you trust this model's author")
    scripts = sorted(p.name for p in directory.glob("*.py"))
    if not scripts:
        return  # nothing the converter could import (the hub is off for it)
    remote = [a for a in architectures if a in remote_code_architectures(str(conversion_dir))]
    if remote:
        raise RemoteCodeError(
            f"the pinned converter loads {remote[0]} models with trust_remote_code, so {directory / scripts[0]} "
            "could run during conversion; pass --trust-remote-code if you trust this model's author")


@lru_cache(maxsize=4)
def remote_code_architectures(conversion_dir: str) -> frozenset[str]:
    """Architecture names whose converter class may call transformers with trust_remote_code=True."""
    classes: dict[str, dict] = {}
    functions: dict[str, ast.AST] = {}
    for path in sorted(Path(conversion_dir).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                classes[node.name] = {
                    "bases": [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases],
                    "archs": _registered(node),
                    "methods": {f.name: f for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))},
                }

    def mro(name: str, seen=None) -> list[str]:
        seen = seen if seen is not None else []
        if name in classes and name not in seen:
            seen.append(name)
            for base in classes[name]["bases"]:
                mro(base, seen)
        return seen

    result = set()
    for name, cls in classes.items():
        if not cls["archs"]:
            continue
        chain = mro(name)
        callables = dict(functions)
        for owner in reversed(chain):  # nearer classes override farther ones
            callables.update(classes[owner]["methods"])
        roots = [f for owner in chain if owner not in _BASES for f in classes[owner]["methods"].values()]
        if _reaches_remote(roots, callables):
            result.update(cls["archs"])
    return frozenset(result)


def _registered(node: ast.ClassDef) -> list[str]:
    names = []
    for deco in node.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", None) == "register":
            names += [a.value for a in deco.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return names


def _reaches_remote(roots: list[ast.AST], callables: dict[str, ast.AST]) -> bool:
    todo, seen = list(roots), set()
    while todo:
        fn = todo.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for node in ast.walk(fn):
            if not isinstance(node, ast.Call):
                continue
            if any(k.arg == "trust_remote_code" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                return True
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if callee in callables:
                todo.append(callables[callee])
    return False
