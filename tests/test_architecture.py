"""The repository's three systems and the direction of their imports.

- ``course_lib`` — the teaching library notebooks and assignments import;
- ``course_grading`` — the grading system (``course check``, ``course grade``);
- ``course_site`` — the course build, the book and the measurements.

The teaching library imports neither of the others; the grading system never imports torch
(nor the site); nothing imports in a cycle. The graph is read from the source with ``ast``
(every ``import``, also inside functions), and the torch rule is also checked the way a user
meets it: the ``course`` command's module imported in a fresh interpreter.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import paths

PACKAGES = ("course_lib", "course_grading", "course_site")
# what each system may import of the other two
ALLOWED = {"course_lib": set(), "course_grading": {"course_lib.paths"}, "course_site": set(PACKAGES)}


def module_name(path: Path) -> str:
    parts = path.relative_to(paths.REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from pkg import module` imports a module too
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def files() -> dict[str, Path]:
    """Module name → its source file, over the three packages."""
    return {module_name(p): p for pkg in PACKAGES for p in (paths.REPO / pkg).rglob("*.py")}


def graph() -> dict[str, set[str]]:
    """Module → the course modules it imports."""
    modules = files()
    # a package is loaded before any of its modules: that is no edge of the module's own
    return {name: {m for m in imports_of(path)
                   if m in modules and m != name and not name.startswith(m + ".")}
            for name, path in modules.items()}


def system(module: str) -> str:
    return module.split(".")[0]


def test_graph_sees_every_module():
    """checks the graph covers all three packages and finds known edges (so the rules below
    are not vacuously true)."""
    g = graph()
    assert {system(m) for m in g} == set(PACKAGES)
    assert "course_lib.paths" in g["course_grading.course"]
    assert "course_lib.training" in g["course_lib.maml"]
    assert "course_site.book" in g["course_site.build"]


def test_teaching_library_imports_neither_grading_nor_site():
    """checks no module of course_lib imports course_grading or course_site."""
    edges = [(m, d) for m, deps in graph().items() if system(m) == "course_lib"
             for d in deps if system(d) != "course_lib"]
    assert edges == []


@pytest.mark.parametrize("package", ["course_grading", "course_site"])
def test_cross_system_imports_follow_the_rules(package):
    """checks each system imports only what it may of the others (grading: the paths module)."""
    allowed = ALLOWED[package]
    edges = [(m, d) for m, deps in graph().items() if system(m) == package
             for d in deps if system(d) != package
             and not any(d == a or d.startswith(a + ".") for a in allowed)]
    assert edges == []


# the one module that imports torch on purpose: the warm server runs as a process of its own,
# the kernels' side (a graded kernel imports torch anyway), never in the grader's process
KERNEL_PRELOAD = {"course_grading.kernel.warm"}


def test_grading_system_never_imports_torch_in_its_source():
    """checks no module of course_grading (nor the course_lib modules it uses) names torch, but
    the warm-kernel server, which no module of the grader imports."""
    modules = files()
    grading = [m for m in modules if system(m) == "course_grading" and m not in KERNEL_PRELOAD]
    grading += ["course_lib", "course_lib.paths"]
    assert not any(imports_of(modules[m]) & KERNEL_PRELOAD for m in grading), \
        "the warm server is started as a process, never imported"
    offenders = {m: sorted(i for i in imports_of(modules[m]) if i.split(".")[0] == "torch")
                 for m in grading}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_course_command_starts_without_torch():
    """checks `course` (course_grading.cli) and the grader load in a fresh interpreter without
    importing torch, matplotlib or the site."""
    code = ("import sys, course_grading.cli, course_grading.grade.batch; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'matplotlib', 'course_site', 'sphinx')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=paths.REPO)
    assert out.stdout.strip() == "[]", out.stdout


def test_no_import_cycle():
    """checks the module graph of all three packages has no cycle (e.g. book ↔ build)."""
    g, state, cycles = graph(), {}, []

    def visit(module, stack):
        state[module] = "open"
        for dep in sorted(g[module]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[module] = "done"

    for module in sorted(g):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_one_module_owns_each_path():
    """checks REPO is defined only in course_lib.paths, and the name "results.json" appears as a
    value only in course_site.record, its one writer (every other module asks record)."""
    defines_repo, names_results = [], []
    for module, path in files().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "REPO"
                                                    for t in node.targets):
                defines_repo.append(module)
            if isinstance(node, ast.Constant) and node.value == "results.json":
                names_results.append(module)
    assert defines_repo == ["course_lib.paths"]
    assert names_results == ["course_site.record"]
