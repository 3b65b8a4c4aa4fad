"""The layout shows the architecture: read from the import graph (ast), not assumed.

- no module imports another module's underscore names (``from x import _y``, or
  ``mod._y`` on an imported module);
- the dynamics depend only on the problem and the model;
- the core (everything but experiments, plots and the command line) never imports the
  experiments, the plots or the command line;
- no import cycles between modules.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flowsim", "proofs_checks")
TOP = ("experiments", "plots", "cli", "__main__")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(importer: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def modules():
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = path
    return out


MODULES = modules()


def imports(name: str, path: Path):
    """``(imported module, imported names, line)`` triples, plus the private attribute
    uses of imported modules as ``(module, [attr], line)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found, module_aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(name, is_package, node.level, node.module)
            names = [a.name for a in node.names]
            found.append((target, names, node.lineno))
            for a in node.names:
                full = f"{target}.{a.name}"
                if full in MODULES:
                    module_aliases[a.asname or a.name] = full
        elif isinstance(node, ast.Import):
            for a in node.names:
                found.append((a.name, [], node.lineno))
                if a.asname:
                    module_aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append((module_aliases[node.value.id], [node.attr], node.lineno))
    return found


def owner(module: str) -> str | None:
    """The flowsim/proofs_checks module that ``module`` names (itself or a parent)."""
    while module:
        if module in MODULES:
            return module
        module = module.rpartition(".")[0]
    return None


GRAPH = {name: imports(name, path) for name, path in MODULES.items()}


def test_the_graph_is_read():
    assert "flowsim.integration.driver" in GRAPH and len(GRAPH) > 40
    assert any(t == "flowsim.dynamics" for t, _, _ in GRAPH["flowsim.integration.driver"])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_names_across_modules(name):
    bad = []
    for target, names, line in GRAPH[name]:
        for n in names:
            if not (n.startswith("_") and not n.startswith("__")):
                continue
            full = f"{target}.{n}"
            if full in MODULES and target == name.rpartition(".")[0]:
                continue  # a private submodule of one's own package (diffrax's layout)
            if owner(target) not in (None, name):
                bad.append(f"line {line}: {target}.{n}")
    assert not bad, f"{name} imports private names of other modules: {bad}"


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "flowsim" and len(parts) > 1 else parts[0]


@pytest.mark.parametrize("name", sorted(m for m in MODULES if stage(m) == "dynamics"))
def test_dynamics_depend_only_on_problem_and_model(name):
    allowed = {"dynamics", "problem", "parameterization"}
    bad = [(t, line) for t, _, line in GRAPH[name]
           if owner(t) and owner(t).startswith("flowsim") and stage(owner(t)) not in allowed
           and owner(t) != "flowsim"]
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("flowsim.")
                                        and stage(m) not in TOP))
def test_the_core_never_imports_experiments_plots_or_cli(name):
    bad = [(t, line) for t, _, line in GRAPH[name]
           if owner(t) and stage(owner(t)) in TOP and owner(t).startswith("flowsim.")]
    assert not bad, f"{name} imports {bad}"


def targets(target: str, names) -> set:
    """The modules an import statement loads: ``from pkg import submodule`` loads the
    submodule, anything else the module that owns ``target``."""
    subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
    rest = [n for n in names if f"{target}.{n}" not in MODULES]
    return subs | ({owner(target)} if rest or not names else set())


def test_no_import_cycles():
    edges = {name: set().union(*[targets(t, n) for t, n, _ in GRAPH[name]]) - {None, name}
             for name in MODULES}
    # a package's __init__ re-exporting its submodules is not a cycle
    for name in edges:
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(nxt):])}"
                                     f" -> {nxt}")
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name)


def test_private_import_is_detected(tmp_path):
    """The checks above can fail: a module importing a private name is seen."""
    probe = tmp_path / "probe.py"
    probe.write_text("from flowsim.integration.loop import _arrays\n")
    got = imports("flowsim.probe", probe)
    assert got[0][0] == "flowsim.integration.loop" and got[0][1] == ["_arrays"]
