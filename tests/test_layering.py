"""equissl's import graph: no cycles, and the library never imports the tool.

The graph is read statically (ast) from src/equissl: an edge runs from a module to every equissl
module it imports, at module level, inside a function, or under `if TYPE_CHECKING:` alike (all
three are part of the import graph; none is exempt, and none is needed to break a cycle today).
`from a.b import c` is an edge to the module a.b.c when c is a module, else to a.b. The implicit
import of a module's parent packages (running `equissl/data/__init__.py` before
`equissl/data/cifar.py`) is not an edge.

Two layers (DESIGN.md, "Blocks below, the tool on top"):

- LIBRARY: the blocks, with plain arguments, that a researcher's own loop can use: augment,
  transforms, models, objectives, methods, data, eval, reports, photonics' generator and learning code,
  and the small shared modules (errors, warnings, seeds, chunks, distributed gathers, optimisers,
  the version). `data.load.load_data` reads the configuration's `data` section by its fields,
  without importing the schema: the one place data/ reads the config.
- TOOL: the wing `equissl.app` (the command line, the typed config, runs and the one checkpoint
  reader, sweeps, benchmarks, the Lightning glue, the export), the old single-file names of its
  modules (`equissl.cli`, `equissl.runner`, ...: deprecated shims, the same module objects),
  `equissl photonics` (its command and its study runner, workflow) and the package root.

`equissl.encoder` is library: it loads an exported backbone (inference only); writing the export
is `equissl.app.export`.

`equissl.methods` is library: `methods/build.py` is its one place that reads the configuration
(by its fields, without importing the schema); every class below it takes plain arguments.

Every module must belong to a set (the longest matching prefix decides), so a new module is
placed deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
SHIMS = (
    "cli",
    "config",
    "keyhelp",
    "sweep",
    "bench",
    "runner",
    "train",
    "suite",
    "signals",
    "outputs",
)

TOOL = (
    "equissl",  # the package root: a facade that loads Encoder and load_backbone on first use
    "equissl.__main__",
    "equissl.app",  # the tool's wing: cli, config, runner, runs, train, export, sweep, bench...
    # The modules' names before the wing: shims that re-export it (kept for one release).
    *(f"equissl.{name}" for name in SHIMS),
    "equissl.photonics.command",
    "equissl.photonics.workflow",
)
LIBRARY = (
    "equissl.augment",
    "equissl.transforms",
    "equissl.models",
    "equissl.objectives",
    "equissl.data",
    "equissl.eval",
    "equissl.reports",
    "equissl.photonics",
    "equissl.errors",
    "equissl.warn",
    "equissl.finite",
    "equissl.seeds",
    "equissl.step",  # the one training step and its seed rule
    "equissl.chunks",
    "equissl.distributed",  # gathers with gradient, for the losses
    "equissl.optim",
    "equissl.version",
    "equissl.methods",
    "equissl.encoder",  # an exported backbone, loaded for inference
)
PENDING: tuple[str, ...] = ()  # modules not yet placed (none)


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package) for every module under src/equissl."""
    found = {}
    for path in sorted((SRC / "equissl").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path, package)
    return found


def imported(name: str, path: Path, package: bool, known: set[str]) -> set[str]:
    """The equissl modules that module `name` imports anywhere in its file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, pkg, set(found)) for name, (path, pkg) in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.get(step, ())))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def layer(name: str) -> str | None:
    """'tool', 'library' or 'pending' by the longest matching prefix; None when unplaced."""
    best, which = -1, None
    for label, prefixes in (("tool", TOOL), ("library", LIBRARY), ("pending", PENDING)):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, which = len(prefix), label
    return which


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50  # the whole package was read
    assert cycles(graph) == []


def test_every_module_is_placed_in_a_layer():
    unplaced = [name for name in import_graph() if layer(name) is None]
    assert unplaced == [], "add these modules to TOOL or LIBRARY in tests/test_layering.py"


def test_the_library_never_imports_the_tool():
    graph = import_graph()
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if layer(name) == "library"
        for target in targets
        if layer(target) == "tool"
    )
    assert wrong == []


def test_the_shims_only_point_at_the_wing():
    """Each old name imports its module in equissl.app and nothing else, and no module of the
    package imports an old name (they are kept for code outside it)."""
    graph = import_graph()
    old = {f"equissl.{name}" for name in SHIMS}
    for name in old:
        assert graph[name] == {name.replace("equissl.", "equissl.app.", 1)}, name
    assert sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets & old) == []


def test_one_module_reads_checkpoints():
    """`torch.load` (the only way equissl opens a .ckpt) is called in equissl.app.runs alone:
    resume, `equissl eval` and `equissl export` all read through `read_checkpoint`."""
    callers = sorted(
        name
        for name, (path, _) in modules().items()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr == "load"
        if isinstance(node.value, ast.Name) and node.value.id == "torch"
    )
    assert callers == ["equissl.app.runs"]
