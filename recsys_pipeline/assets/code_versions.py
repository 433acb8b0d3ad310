"""Each asset's code version: a hash of the package code its module runs and of the installed
versions of the libraries that decide its result, so that new code is a new version (and a
retrained model: ``versions.unchanged`` reuses only what the same code built), while a changed
comment, docstring or layout is not.

The code is found statically, from the source on disk: the asset's module, and every module of
the package that an ``import`` or ``from ... import`` anywhere in a counted module names (heavy
modules are imported inside functions), transitively; ``from package import name`` counts
``package.name`` where that is a module. The ``__init__`` of each package above a counted module
runs when it is imported, so its code counts, but not the modules it imports:
``recsys_pipeline.assets`` imports every asset module, which would give all assets one version.
A module counts as its syntax tree without docstrings, so comments and layout are not in it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "recsys_pipeline"
# The package's source folder; a test points it at a modified copy.
SOURCE_ROOT = Path(__file__).resolve().parents[1]
# Import name -> the distributions that provide it (the first one installed counts: the gpu extra
# installs faiss-gpu). Only these libraries' versions are part of a code version.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "faiss": ("faiss-cpu", "faiss-gpu"),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "pyarrow": ("pyarrow",),
    "sentence_transformers": ("sentence-transformers",),
    "tokenizers": ("tokenizers",),
    "torch": ("torch",),
    "transformers": ("transformers",),
    "trl": ("trl",),
}
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class Closure:
    """What an asset module runs: each package module's code hash, and the libraries (import
    names, keys of ``LIBRARIES``) those modules import."""

    modules: dict[str, str]
    libraries: frozenset[str]


def code_version_of(module: str, root: Path | None = None) -> str:
    """16 hex characters that change when the code ``module`` runs, or a library it imports,
    changes; ``root`` is the package's source folder (default ``SOURCE_ROOT``)."""
    closure = closure_of(module, root)
    identity = {
        "modules": closure.modules,
        "libraries": {name: installed_version(name) for name in sorted(closure.libraries)},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def closure_of(module: str, root: Path | None = None) -> Closure:
    """The package modules ``module`` runs (itself included) and the libraries they import."""
    root = root or SOURCE_ROOT
    hashes: dict[str, str] = {}
    followed: set[str] = set()
    libraries: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in followed:
            continue
        followed.add(name)
        hashes[name], imports = parsed(root, name)
        for parent in parents(name):
            if parent not in hashes:
                hashes[parent] = parsed(root, parent)[0]
        for imported in imports:
            top = imported.partition(".")[0]
            if top in LIBRARIES:
                libraries.add(top)
            elif top == PACKAGE and source_path(root, imported) is not None:
                pending.append(imported)
    return Closure(modules=dict(sorted(hashes.items())), libraries=frozenset(libraries))


@functools.cache
def installed_version(library: str) -> str:
    """``distribution==version`` of the first installed distribution that provides ``library``."""
    for distribution in LIBRARIES[library]:
        try:
            return f"{distribution}=={importlib.metadata.version(distribution)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


# Cached: every asset's closure asks about the same imported names again.
@functools.cache
def source_path(root: Path, module: str) -> Path | None:
    """The file of ``module`` (a package module) under ``root``; None when it is not a module,
    such as a class imported from one."""
    relative = Path(*module.split(".")[1:])
    for path in (root / relative / "__init__.py", (root / relative).with_suffix(".py")):
        if path.is_file():
            return path
    return None


def parsed(root: Path, module: str) -> tuple[str, tuple[str, ...]]:
    """(hash of the code, the absolute names it imports) of ``module``'s source under ``root``."""
    path = source_path(root, module)
    if path is None:
        raise ModuleNotFoundError(f"{module}: no source under {root}")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return analysed(path.read_text(encoding="utf-8"), package)


# Keyed by the text, not the path, so an edited file is read afresh while the definitions' many
# visits of one module parse it once.
@functools.cache
def analysed(text: str, package: str) -> tuple[str, tuple[str, ...]]:
    tree = ast.parse(text)
    imports: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, package)
            imports.append(base)
            # a name may be a submodule (from recsys_pipeline.data import vocab)
            imports.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            node.body = without_docstring(node.body)
    digest = hashlib.sha256(ast.dump(tree).encode()).hexdigest()
    return digest, tuple(imports)


def absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.rsplit(".", node.level - 1)[0]
    return f"{base}.{node.module}" if node.module else base


def without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    is_docstring = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return body[1:] if is_docstring else body
