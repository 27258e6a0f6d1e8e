"""
The package's layout rules, read from its source: no import cycle, the mail
lab's store below its protocol servers and web side, and the greeting server
imported only by its own users.

Every import statement counts, wherever it stands: at the top of a module,
inside a function (the lazy imports that keep a reactor from being
installed), or under C{TYPE_CHECKING}.  A dependency that runs late is still
a dependency, and the rule is that they run one way (a protocol module never
imports the API built on it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import twisted_netlab
from tests.scratch import fresh_path

PACKAGE_ROOT = Path(twisted_netlab.__file__).parent


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """
    Every module of the package in C{root} (the directory of its
    C{__init__.py}), by dotted name; a package is named for its directory.
    """
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported(
    module: str, is_package: bool, tree: ast.AST, modules: Iterable[str]
) -> Iterator[str]:
    """
    The package's modules that the import statements in C{tree} load:
    C{import a.b} loads C{a.b}; C{from a import b} loads C{a.b} if it is a
    module, else C{a} (for its name C{b}).  Relative imports are resolved
    against C{module}.  Packages loaded only as the parents of a module
    loaded do not count: Python imports them first, whoever asks.
    """
    known = set(modules)

    def resolve(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in known else resolve(base)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """
    For each module of the package in C{root}, the other modules of the
    package it imports.
    """
    modules = modules_of(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        graph[name].update(_imported(name, is_package, tree, modules))
        graph[name].discard(name)
        graph[name].discard("")
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """
    The strongly connected components of C{graph} (Tarjan's algorithm).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycle_through(graph: dict[str, set[str]], members: Iterable[str]) -> list[str]:
    """
    One shortest import cycle inside a strongly connected component, as the
    modules along it, the first one repeated at the end.
    """
    inside = set(members)
    start = min(inside)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(graph[node] & inside):
                if other == start:
                    return [*paths[node], start]
                if other not in paths:
                    paths[other] = [*paths[node], other]
                    following.append(other)
        frontier = following
    raise AssertionError(f"{sorted(inside)} is not strongly connected")


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """
    One cycle for each group of modules that import each other, directly or
    through others; empty when the dependencies all run one way.
    """
    return [
        _cycle_through(graph, component)
        for component in _strongly_connected(graph)
        if len(component) > 1
    ]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


class ImportCycleTests(SynchronousTestCase):
    def test_no_cycle_in_the_package(self) -> None:
        """
        No module of twisted_netlab imports, directly or through others, a
        module that imports it back.
        """
        graph = import_graph(PACKAGE_ROOT, "twisted_netlab")
        cycles = [" -> ".join(cycle) for cycle in import_cycles(graph)]
        self.assertFalse(cycles, "import cycles:\n" + "\n".join(cycles))

    def test_graph_sees_the_package(self) -> None:
        """
        The walk finds the package's modules and their imports of each other
        (the API imports its protocol), so an empty list of cycles means
        something.
        """
        graph = import_graph(PACKAGE_ROOT, "twisted_netlab")
        self.assertIn(
            "twisted_netlab.mail.smtpclient", graph["twisted_netlab.mail.send"]
        )
        self.assertIn(
            "twisted_netlab.mail.imapclient", graph["twisted_netlab.mail.fetch"]
        )
        self.assertIn("twisted_netlab.mail.lab", graph)

    def test_cycle_found(self) -> None:
        """
        A cycle is found however its imports are written: absolute or
        relative, C{import a.b} or C{from a import b}, inside a function or
        under TYPE_CHECKING; and it is shown as the modules along it.
        """
        root = fresh_path(self, "pkg")
        _write(
            root,
            {
                "__init__.py": "",
                "api.py": "def send():\n    from pkg.proto import Sender\n",
                "proto.py": "from . import types\n",
                "types.py": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    import pkg.api\n"
                ),
                "sub/__init__.py": "from ..sub import peer\n",
                "sub/peer.py": "from pkg.sub import other\n",
                "sub/other.py": "from .peer import x\n",
            },
        )
        cycles = import_cycles(import_graph(root, "pkg"))
        self.assertEqual(
            sorted(cycles),
            [
                ["pkg.api", "pkg.proto", "pkg.types", "pkg.api"],
                ["pkg.sub.other", "pkg.sub.peer", "pkg.sub.other"],
            ],
        )

    def test_one_way_is_no_cycle(self) -> None:
        """
        Imports that run one way, including a module importing a name from
        its own package, are no cycle.
        """
        root = fresh_path(self, "pkg")
        _write(
            root,
            {
                "__init__.py": "VERSION = 1\n",
                "api.py": "from pkg import VERSION\nfrom pkg.proto import Sender\n",
                "proto.py": "from pkg.types import Envelope\nimport email.message\n",
                "types.py": "",
            },
        )
        graph = import_graph(root, "pkg")
        self.assertEqual(graph["pkg.api"], {"pkg", "pkg.proto"})
        self.assertEqual(import_cycles(graph), [])


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """
    Every module that C{start} imports, directly or through others, each
    with the module that imports it on one shortest path from C{start}.
    """
    seen: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for other in sorted(graph[node]):
                if other != start and other not in seen:
                    seen[other] = node
                    following.append(other)
        frontier = following
    return seen


def layer_violations(
    graph: dict[str, set[str]], lower: str, upper: Iterable[str]
) -> list[str]:
    """
    Each import chain by which a module of the package C{lower} reaches a
    module in (or under) one of C{upper}, as C{"a -> b -> c"}.
    """
    above = tuple(upper)

    def is_above(name: str) -> bool:
        return any(name == top or name.startswith(top + ".") for top in above)

    found = []
    for module in sorted(graph):
        if module != lower and not module.startswith(lower + "."):
            continue
        via = reachable(graph, module)
        for target in sorted(via):
            if is_above(target):
                chain = [target]
                while chain[-1] != module:
                    chain.append(via[chain[-1]])
                found.append(" -> ".join(reversed(chain)))
    return found


LAB = "twisted_netlab.mail.lab"
#: What the lab's store must never import: the protocol servers built on it,
#: the web side, the fault model the listeners consult, and the service that
#: assembles them all.
ABOVE_THE_STORE = tuple(
    f"{LAB}.{name}" for name in ("imap", "smtp", "pop3", "web", "faults", "service")
)


class LayerTests(SynchronousTestCase):
    def test_store_below_the_protocols(self) -> None:
        """
        Nothing under C{mail.lab.store} imports, directly or through other
        modules, a protocol server (IMAP, SMTP, POP3), the web side, the
        fault model or the service: the store sits below them.
        """
        graph = import_graph(PACKAGE_ROOT, "twisted_netlab")
        self.assertIn(f"{LAB}.store.maildir", graph)
        violations = layer_violations(graph, f"{LAB}.store", ABOVE_THE_STORE)
        self.assertFalse(violations, "the store imports:\n" + "\n".join(violations))

    def test_protocols_use_the_store(self) -> None:
        """
        The rule has something to hold: the protocol servers and the web API
        import the store.
        """
        graph = import_graph(PACKAGE_ROOT, "twisted_netlab")
        for user in (f"{LAB}.imap.account", f"{LAB}.smtp.server", f"{LAB}.web.api"):
            self.assertTrue(
                any(t.startswith(f"{LAB}.store.") for t in graph[user]), user
            )

    def test_violation_found_through_another_module(self) -> None:
        """
        A store module that reaches a protocol module through a third module
        (here a lazy import inside a function) breaks the rule, and the chain
        is shown.
        """
        root = fresh_path(self, "pkg")
        _write(
            root,
            {
                "__init__.py": "",
                "store/__init__.py": "",
                "store/folder.py": "from pkg import helper\n",
                "store/clean.py": "import os\n",
                "helper.py": "def f():\n    from pkg.imap import server\n",
                "imap/__init__.py": "",
                "imap/server.py": "from pkg.store import folder\n",
            },
        )
        graph = import_graph(root, "pkg")
        self.assertEqual(
            layer_violations(graph, "pkg.store", ["pkg.imap"]),
            ["pkg.store.folder -> pkg.helper -> pkg.imap.server"],
        )


class HelloImportTests(SynchronousTestCase):
    def test_hello_imported_only_by_its_users(self) -> None:
        """
        The greeting server is imported only where it is served (its tap and
        the suite's) and by the package's table of public names; nothing
        imports it for a helper.
        """
        graph = import_graph(PACKAGE_ROOT, "twisted_netlab")
        users = {
            name for name, targets in graph.items() if "twisted_netlab.hello" in targets
        }
        self.assertEqual(
            users,
            {"twisted_netlab", "twisted_netlab.tap.hello", "twisted_netlab.tap.suite"},
        )
