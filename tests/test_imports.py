"""The house's import rules, read from the source with `ast` (nothing is imported):

- no import cycles between modules (imports inside functions and under TYPE_CHECKING count);
- `duplex_steer` never imports `zbb` or `demos` (layers read downward);
- no private name (leading underscore) is imported from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("duplex_steer", "zbb", "demos")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the three packages by dotted name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative levels resolved against `importer`)."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(known: dict[str, Path]) -> dict[str, set[tuple[str, str | None]]]:
    """module -> {(imported module, imported name or None)} over the whole file, functions included."""
    out: dict[str, set[tuple[str, str | None]]] = {}
    for name, path in known.items():
        found: set[tuple[str, str | None]] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found |= {(a.name, None) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add((sub, None) if sub in known else (target, alias.name))
        out[name] = found
    return out


def owner(target: str, known: dict[str, Path]) -> str | None:
    """The known module a dotted import lands in (its longest known prefix), or None for third parties."""
    parts = target.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in known:
            return ".".join(parts[:k])
    return None


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports. A package's __init__ re-exporting its own submodules
    is not counted as an edge from the submodule back up (importing `a.b` runs `a/__init__`, but a
    submodule importing a sibling through the package is an edge like any other)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for mod, found in imports(known).items():
        edges[mod] = {t for t in (owner(m, known) for m, _ in found) if t and t != mod}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions() -> None:
    edges = graph()
    assert "duplex_steer.errors" in edges["duplex_steer.cli"]
    assert len(edges) >= 80


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_duplex_steer_never_imports_zbb_or_demos() -> None:
    bad = sorted(f"{mod} -> {dep}" for mod, deps in graph().items() if mod.split(".")[0] == "duplex_steer"
                 for dep in deps if dep.split(".")[0] in ("zbb", "demos"))
    assert bad == []


def test_no_private_names_cross_modules() -> None:
    known = modules()
    bad = sorted(f"{mod} imports {name} from {target}" for mod, found in imports(known).items()
                 for target, name in found
                 if name and name.startswith("_") and not name.startswith("__") and owner(target, known)
                 and owner(target, known) != mod)
    assert bad == []


def private_attributes(tree: ast.AST) -> set[str]:
    """Private names a module defines on its own objects: `self._x = ...` and methods `def _x`."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr.startswith("_") \
                and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            names.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            names |= {f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and f.name.startswith("_") and not f.name.startswith("__")}
    return names


def test_no_private_attributes_of_project_objects_used_elsewhere() -> None:
    """`obj._x` outside the module that defines `_x`. Third-party privates are not judged: names the
    project never defines (transformers' `_attn_implementation`), and torch modules' own (`_buffers`)."""
    import torch

    trees = {mod: ast.parse(path.read_text(encoding="utf-8")) for mod, path in modules().items()}
    own = {mod: private_attributes(tree) for mod, tree in trees.items()}
    project = set().union(*own.values()) - set(dir(torch.nn.Module()))
    bad = sorted({f"{mod}: {ast.unparse(node)}" for mod, tree in trees.items() for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and node.attr in project and node.attr not in own[mod]
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))})
    assert bad == []
