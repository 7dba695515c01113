"""The layout's promises (docs/architecture.md): the pipeline's packages import one way, no module imports another
in a cycle, the library never imports Streamlit, pages import only `xner_ui` (and analysis constants), and modules
stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "xner_core"

# Lowest first. A module may import its own layer or a lower one at module level; imports inside functions (kept
# lazy for start-up time or optional extras) are held to the same order, except the few listed below.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "paths", "numerics", "jsonable"),
    ("corpus",),
    ("models",),
    ("features",),
    ("perturb",),
    ("inference",),
    ("metrics",),
    ("training",),
    ("runs",),
    ("evaluation",),
    ("experiments",),
    ("analysis",),
    ("cli",),
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(module: str) -> str:
    """xner_core.corpus.tags -> corpus; xner_core.config -> config."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, top_level_only: bool) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[tuple[str, int]] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
    return found


def test_every_package_has_a_layer() -> None:
    units = {_unit(m) for m in _modules()} - {""}
    assert units <= set(RANK), f"packages/modules without a layer in LAYERS: {sorted(units - set(RANK))}"


def test_layers_import_downwards_only() -> None:
    modules = _modules()
    bad = []
    for name, path in modules.items():
        unit = _unit(name)
        if not unit:
            continue
        for target, line in _imports(path, top_level_only=False):
            if not target.startswith("xner_core.") or target not in modules:
                continue
            other = _unit(target)
            if other and RANK[other] > RANK[unit]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({unit}) imports {target} ({other})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    graph = {name: {t for t, _ in _imports(path, top_level_only=True) if t in modules and t != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_library_never_imports_streamlit() -> None:
    hits = [f"{p.relative_to(ROOT)}:{line}" for p in CORE.rglob("*.py")
            for t, line in _imports(p, top_level_only=False) if t.split(".")[0] == "streamlit"]
    assert not hits, hits


# What a page may import from the library: constants and labels of the analysis package (axis choices,
# perturbation titles). Everything else goes through xner_ui, where it is cached.
PAGE_ALLOWED = ("xner_core.analysis",)


def test_pages_import_only_xner_ui() -> None:
    bad = []
    for page in sorted((ROOT / "pages").glob("*.py")):
        for target, line in _imports(page, top_level_only=False):
            if target.startswith("xner_core") and not target.startswith(PAGE_ALLOWED):
                bad.append(f"pages/{page.name}:{line} imports {target}")
    assert not bad, "pages must import the library through xner_ui:\n" + "\n".join(bad)


def test_modules_stay_small() -> None:
    # One concept per module; a few cohesive modules may run a little longer.
    limit = 560
    big = {str(p.relative_to(ROOT)): n for p in CORE.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit}
    assert not big, f"modules over {limit} lines: {big}"
