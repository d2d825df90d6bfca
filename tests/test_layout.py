"""The package's layout: no import cycles, modules of a readable length, one convention for figures.

The import graph is read from the source, not from a running interpreter: every ``import`` and
``from ... import`` statement of every module under ``nclab/``, at module level or inside a
function, is an edge to the nclab module it names. Run as a script to print the graph's cycles of
another checkout: ``python tests/test_layout.py path/to/nclab``.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nclab"
MAX_LINES = 700


def module_names(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``package`` (a package is its __init__)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that the file of module ``name`` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            # "from a import b" imports the module a.b when there is one, else a name of a
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # "import nclab.plots.theory as t" names a module
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    found.discard(name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = module_names(package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


# imports ------------------------------------------------------------------------------------------


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "nclab.hessian" in graph["nclab.descent"] and "nclab.ufm" in graph["nclab.hessian"]
    assert cycles(graph) == []


def test_the_ufm_is_the_model_alone():
    """Chapter 6's module needs nothing of chapter 7's: the Hessian side imports the model, not back."""
    graph = import_graph()
    assert graph["nclab.ufm"] <= {"nclab.metrics", "nclab._checks"}


def test_the_cycle_check_finds_cycles_at_any_depth(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .sub import b\n")   # inside a function
    (package / "sub" / "__init__.py").write_text("from .b import g\n")
    (package / "sub" / "b.py").write_text("from .. import a\nimport pkg.c\n")
    (package / "c.py").write_text("import os\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a", "pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]


# module length --------------------------------------------------------------------------------------


def _length_cases():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        marks = []
        yield pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("path", list(_length_cases()))
def test_no_module_is_longer_than_700_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it by job (at most {MAX_LINES})"


# figures ----------------------------------------------------------------------------------------------


def test_no_figure_module_uses_pyplot():
    for path in sorted((PACKAGE / "plots").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any("pyplot" in n for n in names), f"{path.name} imports pyplot"


def test_every_drawing_function_takes_fig_and_is_exported_once():
    import nclab.plots as plots
    from nclab.plots import empirical, report, theory

    exported = []
    for module in (report, empirical, theory):
        for name in module.__all__:
            obj = getattr(module, name)
            assert getattr(plots, name) is obj, f"nclab.plots.{name} is not {module.__name__}.{name}"
            if inspect.isfunction(obj):
                fig = inspect.signature(obj).parameters.get("fig")
                assert fig is not None and fig.default is None, f"{module.__name__}.{name} needs fig=None"
            exported.append(name)
    assert sorted(plots.__all__) == sorted(exported) and len(set(exported)) == len(exported)
    init = ast.parse((PACKAGE / "plots" / "__init__.py").read_text())
    assert not any(isinstance(node, ast.AugAssign) for node in ast.walk(init)), "build __all__ in one place"


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE
    graph = import_graph(root)
    print(f"{len(graph)} modules, {sum(len(v) for v in graph.values())} import edges")
    for cycle in cycles(graph):
        print("cycle:", " <-> ".join(cycle))
