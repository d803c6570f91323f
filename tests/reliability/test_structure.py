"""The structure holds: the serving half never imports the making half, the core imports neither, and no module
imports itself back through others."""
import ast

from app.core.paths import ROOT


def imports() -> dict:
    """module name -> the app modules it imports (relative imports resolved), read from the source."""
    graph = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                found.update(f"{base}.{alias.name}" for alias in node.names)
                found.add(base)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m.split(".")[0] == "app"}
    modules = set(graph)
    # keep only names that are modules ("from . import compare" names app.serve.compare;
    # "from .x import f" names app.serve.x)
    return {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}


def test_halves_are_apart():
    for module, targets in imports().items():
        if module.startswith("app.serve"):
            assert not any(t.startswith("app.make") for t in targets), (module, targets)
        if module.startswith("app.make"):
            assert not any(t.startswith("app.serve") for t in targets), (module, targets)
        if module.startswith("app.core"):
            assert all(t.startswith("app.core") for t in targets), (module, targets)


def test_no_import_loops():
    graph = imports()
    state = {}

    def visit(module, trail):
        if state.get(module) == "open":
            raise AssertionError("import loop: " + " -> ".join(trail + [module]))
        if state.get(module) == "done":
            return
        state[module] = "open"
        for target in graph.get(module, ()):
            if not module.startswith(target + "."):  # a package's own __init__ is not a loop
                visit(target, trail + [module])
        state[module] = "done"

    for module in graph:
        visit(module, [])
    assert {"app.serve.engine", "app.make.pipeline", "app.core.datastore"} <= set(graph)
    assert "app.core.datastore" in graph["app.make.pipeline"] and "app.core.datastore" in graph["app.serve.engine"]
