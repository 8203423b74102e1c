"""The house rules of DESIGN 2, checked on the source: no import circles between modules, no
import that climbs from a lower layer to a higher one, no private name imported from another
module.

Every import statement counts, including those inside functions and under
`if TYPE_CHECKING:`: a lazy import keeps the start-up cost down, and a type-only one never
runs, but each is a design dependency all the same (a reader opening one module is sent to
the other), so both obey the same rules. Two modules that must name each other's types name a
protocol instead (`jobs/subscription.py`'s `SharedWindow`).

An import of a package (`from synth_ai.task import X`) is an edge to the package's
`__init__`, or, when the package exports X lazily, to the module X is loaded from;
`from synth_ai.task import config` is an edge to the module `task/config.py`.
The parent packages Python imports on the way are not edges: they are where a module lives,
not what it depends on.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "synth_ai"
PACKAGE = "synth_ai"

# Top to bottom. A module may import from its own layer or below, never above. Names in one
# layer are siblings and may import each other (the circle check keeps that honest).
LAYERS: tuple[tuple[str, ...], ...] = (
    # `python -m synth_ai` runs the CLI
    ("cli", "__main__"),
    # scaffold writes new projects for `synth-ai init`
    ("eval", "optimize", "scaffold"),
    # examples is the reference task app the demo, deploy and tests serve
    ("jobs", "deploy", "ui", "testing", "examples"),
    ("client",),
    # offline_policy is the stand-in policy server (the one fake, DESIGN 9) that check's
    # probes, eval and the testing fixtures roll out against; it needs only the framework's
    # app references, so it sits beside it. job_events is the job events' wire contract
    # (models, artifact upload) the jobs server and the client share, so neither imports the
    # other; like the task contracts, it needs nothing above it
    ("task", "offline_policy", "job_events"),
    ("tracing_v3",),
    # batch_writer is the bounded write-behind queue the trace store and the event log share
    ("storage", "batch_writer"),
    # the package root holds only `__version__` (and defers httpx's CLI), so every layer may
    # read it; lazy_exports makes the packages' `__init__` cheap to import; httpx_cli keeps
    # httpx's terminal UI out of every process until it is called
    ("settings", "lazy_exports", "httpx_cli", "__init__"),
)

OLD_PATHS = {"synth_ai.task.client", "synth_ai.task.sync_client"}
"""The clients' old paths in the framework, kept for code written against them: thin
re-exports of `synth_ai.client`, the one way up from a layer. Nothing in synth_ai may import
them (that would be a climb through the back door)."""
CLIENT_FREE = ("synth_ai.task", "synth_ai.jobs")
"""The task framework and the jobs server import nothing from the client (DESIGN 2), but for
the old paths above and `synth_ai.jobs.client`/`.watcher`, which are re-exports too."""
CLIENT_RE_EXPORTS = OLD_PATHS | {"synth_ai.jobs.client", "synth_ai.jobs.watcher"}


def layer_of(module: str) -> int:
    """The layer index (0 is the top) of a dotted module name under synth_ai."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: its top-level package is in no layer; add it to LAYERS")


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts) if len(parts) > 1 else f"{PACKAGE}.__init__"


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    name: str | None
    type_only: bool

    def __str__(self) -> str:
        what = f" ({self.name})" if self.name else ""
        kind = " [TYPE_CHECKING]" if self.type_only else ""
        return f"{self.source}:{self.line} -> {self.target}{what}{kind}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def edges_of(source: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every import in one file that lands in synth_ai, with the name it takes."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Edge] = []

    def target_of(dotted: str) -> str:
        return f"{PACKAGE}.__init__" if dotted == PACKAGE else dotted

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append(Edge(source, target_of(alias.name), node.lineno, None, type_only))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(source, is_package, node)
            if base.split(".")[0] == PACKAGE:
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        found.append(Edge(source, submodule, node.lineno, None, type_only))
                    else:
                        edge = Edge(source, target_of(base), node.lineno, alias.name, type_only)
                        found.append(edge)
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


def all_edges() -> list[Edge]:
    """Every edge; a name a package exports lazily (`lazy_exports`: imported in its `__init__`
    only under `TYPE_CHECKING`) is an edge to the module it loads from, as it is at run time."""
    modules = all_modules()
    edges = [edge for name, path in modules.items() for edge in edges_of(name, path, modules)]
    lazy = {
        (edge.source, edge.name): edge.target
        for edge in edges
        if edge.type_only and edge.name and modules[edge.source].name == "__init__.py"
    }
    return [
        dataclasses.replace(edge, target=lazy[edge.target, edge.name])
        if not edge.type_only and (edge.target, edge.name) in lazy
        else edge
        for edge in edges
    ]


def circles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.source != edge.target:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
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
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_circles() -> None:
    edges = all_edges()
    report = []
    for component in circles(edges):
        members = set(component)
        inner = [str(e) for e in edges if e.source in members and e.target in members]
        report.append("circle of " + ", ".join(component) + ":\n    " + "\n    ".join(inner))
    assert not report, "import circles:\n" + "\n".join(report)


def test_no_import_climbs_a_layer() -> None:
    climbs = [
        str(e)
        for e in all_edges()
        if layer_of(e.target) < layer_of(e.source) and e.source not in OLD_PATHS
    ]
    assert not climbs, "imports from a lower layer to a higher one:\n" + "\n".join(climbs)


def test_nothing_imports_the_old_paths() -> None:
    used = [str(e) for e in all_edges() if e.target in OLD_PATHS and e.source != "synth_ai.task"]
    assert not used, "imports of an old path (import synth_ai.client instead):\n" + "\n".join(used)


def test_the_framework_and_the_jobs_server_import_no_client() -> None:
    found = [
        str(e)
        for e in all_edges()
        if e.source.startswith(CLIENT_FREE)
        and e.source not in CLIENT_RE_EXPORTS
        and (e.target == "synth_ai.client" or e.target.startswith("synth_ai.client."))
    ]
    assert not found, "the framework or the jobs server imports the client:\n" + "\n".join(found)


def test_no_private_name_crosses_modules() -> None:
    private = [
        str(e)
        for e in all_edges()
        if e.name and e.name.startswith("_") and not e.name.startswith("__")
    ]
    assert not private, "private names imported from another module:\n" + "\n".join(private)


def test_every_module_has_a_layer() -> None:
    for name in all_modules():
        layer_of(name)


def test_the_clients_are_where_users_look_and_at_their_old_paths() -> None:
    """`synth_ai.client` is the clients' home; the paths code was written against still work."""
    from synth_ai import client
    from synth_ai.jobs.client import stream_job
    from synth_ai.jobs.watcher import JobsWatcher
    from synth_ai.task import SyncTaskAppClient, TaskAppClient
    from synth_ai.task.client import TaskAppClient as OldTaskAppClient
    from synth_ai.task.sync_client import SyncTaskAppClient as OldSyncTaskAppClient

    assert client.TaskAppClient is TaskAppClient is OldTaskAppClient
    assert client.SyncTaskAppClient is SyncTaskAppClient is OldSyncTaskAppClient
    assert client.stream_job is stream_job and client.JobsWatcher is JobsWatcher
    for route in ("rollout", "task_info", "create_job", "status", "events", "stream_job"):
        assert callable(getattr(client.TaskAppClient, route))


def test_the_circle_finder_finds_circles_type_only_ones_too() -> None:
    def edge(source: str, target: str, type_only: bool = False) -> Edge:
        return Edge(source, target, 1, None, type_only)

    edges = [
        edge("a", "b"),
        edge("b", "c"),
        edge("c", "a"),
        edge("d", "a"),
        edge("d", "e"),
        edge("e", "d", type_only=True),
        edge("f", "f"),
        edge("g", "h"),
    ]
    assert circles(edges) == [["a", "b", "c"], ["d", "e"]]
