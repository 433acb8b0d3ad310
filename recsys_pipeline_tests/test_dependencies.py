"""The dependency set: ranges in pyproject.toml, exact versions in the lock file, one faiss."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from recsys_pipeline_tests.conftest import REPO

LOCK = REPO / "requirements" / "cpu-lock.txt"


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", LOCK.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def requirements() -> list[Requirement]:
    spec = project()
    extras = [r for group in spec["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*spec["dependencies"], *extras]]


def test_faiss_comes_from_one_extra_never_both():
    spec = project()
    faiss = {
        group: {Requirement(r).name for r in reqs if Requirement(r).name.startswith("faiss")}
        for group, reqs in [("base", spec["dependencies"]), *spec["optional-dependencies"].items()]
    }
    assert faiss == {
        "base": set(),
        "cpu": {"faiss-cpu"},
        "gpu": {"faiss-gpu"},
        "k8s": set(),
        "dev": set(),
    }
    assert "faiss-cpu" in locked() and "faiss-gpu" not in locked()


def test_the_lock_holds_a_version_every_range_allows():
    """pyproject.toml changed without `make lock` fails here, before an install drifts."""
    pins = locked()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name(project()["name"]) or name in ("faiss-gpu", "flash-attn"):
            continue  # the project's own extras; the gpu extra is not in the CPU lock
        assert name in pins, f"{name} is not in {LOCK.name}: run make lock"
        version = pins[name].split("+")[0]  # torch's local label (+cpu) is not part of ranges
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside {requirement}: run make lock"
        )


def test_the_lock_names_no_local_path():
    """A lock entry "pkg @ file:///..." (a self-referencing extra makes pip-compile write one)
    pins a folder that exists on one machine only."""
    assert " @ " not in LOCK.read_text()


def test_dependencies_are_ranges_not_pins():
    """Exact versions live in the lock; pyproject.toml pins only what it says why."""
    exact = [r for r in requirements() if any(s.operator == "==" for s in r.specifier)]
    assert [r.name for r in exact] == ["ruff"]
