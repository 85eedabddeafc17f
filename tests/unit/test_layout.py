"""The package's shape, pinned: no import cycles, the code shipped to other hosts is standard-library
Python 3.9, and the README's layout section names what is really there."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "harness"
#: What runs on a client or server host (a container, a Pi): standard library only, Python 3.9+.
SHIPPED = [*sorted((HARNESS / "remote").glob("*.py")), *sorted((ROOT / "echo").glob("*.py"))]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (TYPE_CHECKING blocks included)."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from harness import wire`
    return found


def harness_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in HARNESS.rglob("*.py")}
    return {name: {dep for dep in imports(path) if dep in modules and dep != name} for name, path in modules.items()}


def test_no_harness_modules_import_each_other_even_indirectly():
    graph = harness_graph()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycle = [*path[path.index(dep) :], dep] if dep in path else [name, dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_what_is_shipped_to_other_hosts_is_standard_library_python_3_9():
    assert any(path.parent.name == "remote" for path in SHIPPED), "harness/remote/ holds the shipped programs"
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    siblings = {path.stem for path in SHIPPED if path.parent.name == "remote"}  # shipped together
    for path in SHIPPED:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))
        outside = {name.split(".")[0] for name in imports(path)} - stdlib - {"echo"} - siblings
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}: only the standard library runs there"


def test_the_readme_layout_names_what_is_there():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    named = {match for match in re.findall(r"^(\S+/)", block, re.MULTILINE)}
    for folder in named:
        assert (ROOT / folder).is_dir(), f"the README's layout names {folder}, which is not there"
    packages = {f"{p.parent.relative_to(ROOT)}/" for p in HARNESS.rglob("__init__.py")}
    missing = sorted(p for p in packages if p not in named and p != "harness/")
    assert not missing, f"the README's layout leaves out {missing}"


def test_every_package_is_installed_with_the_plugin():
    """pyproject's package list names every package: one left out is missing from an installed echolab
    (a grader's container, a wheel) though a checkout's tests pass."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in (HARNESS, ROOT / "echo")
        for init in top.rglob("__init__.py")
    }
    assert found - listed == set(), f"pyproject.toml [tool.setuptools] packages leaves out {sorted(found - listed)}"
