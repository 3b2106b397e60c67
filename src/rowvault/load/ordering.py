"""Parents-first table order, and which foreign keys must wait until the end.

Tables are ordered so every parent is written before its children, keeping the backup file's
order wherever the foreign keys allow it (so a well-ordered file streams straight through).
Self-references and cycles cannot be ordered away: one foreign key per cycle is *deferred* -
its columns are written as NULL with the row and filled in by an UPDATE once every table is
in. Nullable foreign keys are chosen for that whenever the cycle allows it.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """A foreign key from `child` to `parent`; `key` tells the child's foreign keys apart."""

    child: str
    parent: str
    key: int
    nullable: bool


@dataclass(frozen=True)
class Order:
    tables: list[str]
    deferred: frozenset[Edge]

    def deferred_for(self, table: str) -> list[Edge]:
        return sorted((e for e in self.deferred if e.child == table), key=lambda e: e.key)


def plan_order(tables: Sequence[str], edges: Sequence[Edge]) -> Order:
    """Order `tables` parents-first; `tables` gives the preferred (file) order."""
    position = {name: i for i, name in enumerate(tables)}
    inside = [e for e in edges if e.child in position and e.parent in position]
    deferred = {e for e in inside if e.child == e.parent}
    for component in _cycles(tables, [e for e in inside if e.child != e.parent]):
        deferred |= _break_cycle(component, inside, position)
    kept = [e for e in inside if e not in deferred]
    return Order(_topological(tables, kept, position), frozenset(deferred))


def _topological(tables: Sequence[str], edges: Sequence[Edge], position: dict[str, int]) -> list[str]:
    waiting = {name: 0 for name in tables}
    children: dict[str, list[str]] = {name: [] for name in tables}
    for e in edges:
        waiting[e.child] += 1
        children[e.parent].append(e.child)
    ready = [(position[n], n) for n in tables if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (position[child], child))
    if len(order) != len(tables):  # cannot happen once cycles are broken; be loud if it does
        raise AssertionError(f"foreign-key cycle left unbroken among {set(tables) - set(order)}")
    return order


def _break_cycle(component: set[str], edges: Sequence[Edge], position: dict[str, int]) -> set[Edge]:
    """Pick the edges to defer inside one strongly connected component."""
    inner = [e for e in edges if e.child in component and e.parent in component]
    inner = [e for e in inner if e.child != e.parent]
    members = sorted(component, key=position.__getitem__)
    strict = [e for e in inner if not e.nullable]
    # a cycle of NOT NULL keys keeps the file's order: the database will refuse some rows
    order = _topological(members, strict, position) if not _cycles(members, strict) else members
    rank = {name: i for i, name in enumerate(order)}
    return {e for e in inner if rank[e.parent] > rank[e.child]}


def _cycles(nodes: Sequence[str], edges: Sequence[Edge]) -> list[set[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        if e.child in graph and e.parent in graph:
            graph[e.child].append(e.parent)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found
