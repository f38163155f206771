"""The package layout: imports flow one way through the layers, with no circles and no
reaching into another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "scenecls"

# each layer may import only the layers after it in this list (and itself)
LAYERS = [
    ("cli", {"cli", "__main__"}),
    ("applications", {"serve", "archive", "evaluation", "bench", "teaching"}),
    ("video", {"video"}),
    ("model", {"model"}),
    (
        "shared",
        {
            "types",
            "errors",
            "region",
            "atomic",
            "interrupts",
            "version",
            "redact",
            "utc",
            "__init__",
        },
    ),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every scenecls import in ``path``,
    function-level imports included."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "scenecls":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/") / "__init__.py"
                ).exists():
                    found.append((sub, "", node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "scenecls":
                    found.append((alias.name, "", node.lineno))
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def test_every_module_belongs_to_a_layer_and_no_command_module_is_at_the_top() -> None:
    for module in _modules():
        _layer(module)
    assert not list(PACKAGE.glob("*_cli.py"))


def test_imports_flow_down_the_layers() -> None:
    wrong = []
    for module, path in _modules().items():
        if module == "scenecls":
            continue  # the public API re-exports from every layer
        for target, _, line in _imports(path):
            if target != "scenecls" and _layer(target) < _layer(module):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
            if target == "scenecls":
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports the public API")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}.{name}"
        for module, path in _modules().items()
        for target, name, line in _imports(path)
        if name.startswith("_") and name != "__version__" and target != module
    ]
    assert not wrong, "\n".join(wrong)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, _, _ in _imports(path):
            if target in modules and target != module:
                graph[module].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # a package's __init__ re-exporting its own submodules is not a circle
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circles() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", ["load_model", "SceneModel", "Pipeline", "PipelineConfig"])
def test_the_public_api_exports(name: str) -> None:
    import scenecls

    assert name in scenecls.__all__
    assert getattr(scenecls, name) is not None
