"""The shape of the code, checked on its import graph (grimp, which import-linter uses).

The layer contract (`lint-imports`) says which app may import which; these promises say what it
cannot: no two modules of the project depend on each other, even through a function-level import,
and the code that talks to a payment provider or to Django stays where the design puts it.
"""

from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("core", "accounts", "audit", "training", "licensing", "inference", "billing", "marketplace",
        "compliance", "config", "imprint_cli")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*[app for app in APPS if (ROOT / app).is_dir()], cache_dir=None)


def _project_modules(graph) -> set[str]:
    # Migrations import each other by design (a chain of dependencies), never at run time.
    return {m for m in graph.modules if ".migrations." not in m}


def _import_cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = _project_modules(graph)
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if child < len(edges[node]):
                work.append((node, child + 1))
                nxt = edges[node][child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _importers_of(graph, external: str) -> set[str]:
    return {m for m in _project_modules(graph)
            if any(i == external or i.startswith(external + ".")
                   for i in graph.find_modules_directly_imported_by(m))}


def test_no_two_modules_of_the_project_import_each_other(graph):
    assert _import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    # The check above is only worth something if it can fail.
    class Graph:
        modules = {"a.x", "a.y", "a.z", "a.migrations.0001"}

        def find_modules_directly_imported_by(self, module):
            return {"a.x": {"a.y"}, "a.y": {"a.x", "a.z"}, "a.z": set(), "a.migrations.0001": set()}[module]

    assert _import_cycles(Graph()) == [["a.x", "a.y"]]


def test_only_the_billing_gateway_imports_stripe():
    graph = grimp.build_graph(*[app for app in APPS if (ROOT / app).is_dir()], include_external_packages=True,
                              cache_dir=None)
    assert {m for m in _importers_of(graph, "stripe")} <= {"billing.gateway"}


def test_nothing_in_the_engine_package_imports_django():
    graph = grimp.build_graph("inference", include_external_packages=True, cache_dir=None)
    engine = {m for m in graph.modules if m == "inference.engine" or m.startswith("inference.engine.")}
    assert engine, "inference.engine is a package"
    reached = set().union(*(graph.find_upstream_modules(m) for m in engine)) | engine
    assert sorted(m for m in reached if m == "django" or m.startswith("django.")) == []
