"""Tables are written parents first, in the file's order wherever the foreign keys allow it;
self-references and cycles defer one foreign key each, preferring a nullable one."""

from __future__ import annotations

import itertools

from rowvault.load.ordering import Edge, Order, plan_order


def fk(child: str, parent: str, *, key: int = 0, nullable: bool = True) -> Edge:
    return Edge(child=child, parent=parent, key=key, nullable=nullable)


def assert_parents_first(order: Order, edges: list[Edge]) -> None:
    """Every foreign key that is not deferred points at a table written earlier."""
    position = {name: i for i, name in enumerate(order.tables)}
    for edge in edges:
        if edge in order.deferred or edge.child not in position or edge.parent not in position:
            continue
        assert position[edge.parent] < position[edge.child], (edge, order.tables)


def test_a_file_already_in_parent_order_is_kept_as_it_is() -> None:
    edges = [fk("posts", "users"), fk("comments", "posts"), fk("comments", "users", key=1)]
    tables = ["users", "tags", "posts", "comments"]

    order = plan_order(tables, edges)

    assert order.tables == tables
    assert order.deferred == frozenset()


def test_a_child_listed_before_its_parent_moves_just_after_it() -> None:
    edges = [fk("orders", "users")]

    order = plan_order(["orders", "products", "users", "reviews"], edges)

    # products keeps its place before users; orders waits only as long as it has to
    assert order.tables == ["products", "users", "orders", "reviews"]
    assert_parents_first(order, edges)


def test_unrelated_tables_keep_the_file_order() -> None:
    tables = ["zebra", "apple", "mango"]

    assert plan_order(tables, []).tables == tables


def test_a_self_reference_is_deferred_and_the_table_still_written() -> None:
    manager = fk("employees", "employees", nullable=True)
    edges = [manager, fk("employees", "departments", key=1)]

    order = plan_order(["employees", "departments"], edges)

    assert order.tables == ["departments", "employees"]
    assert order.deferred == frozenset({manager})
    assert order.deferred_for("employees") == [manager]
    assert order.deferred_for("departments") == []


def test_deferred_keys_of_a_table_come_back_in_key_order() -> None:
    second = fk("nodes", "nodes", key=2)
    first = fk("nodes", "nodes", key=1)

    order = plan_order(["nodes"], [second, first])

    assert order.deferred_for("nodes") == [first, second]


def test_a_two_table_cycle_defers_the_nullable_key_when_it_comes_first() -> None:
    nullable = fk("a", "b", nullable=True)
    required = fk("b", "a", nullable=False)

    order = plan_order(["a", "b"], [nullable, required])

    assert order.deferred == frozenset({nullable})
    assert order.tables == ["a", "b"]
    assert_parents_first(order, [nullable, required])


def test_a_two_table_cycle_defers_the_nullable_key_even_against_the_file_order() -> None:
    required = fk("a", "b", nullable=False)
    nullable = fk("b", "a", nullable=True)

    order = plan_order(["a", "b"], [required, nullable])

    assert order.deferred == frozenset({nullable})
    assert order.tables == ["b", "a"]
    assert_parents_first(order, [required, nullable])


def test_a_two_table_cycle_of_nullable_keys_defers_exactly_one() -> None:
    edges = [fk("users", "teams"), fk("teams", "users", key=1)]

    order = plan_order(["users", "teams"], edges)

    assert len(order.deferred) == 1
    assert sorted(order.tables) == ["teams", "users"]
    assert_parents_first(order, edges)


def test_a_cycle_of_not_null_keys_still_returns_every_table() -> None:
    edges = [
        fk("a", "b", nullable=False),
        fk("b", "c", nullable=False),
        fk("c", "a", nullable=False),
    ]

    order = plan_order(["a", "b", "c", "d"], edges)

    assert sorted(order.tables) == ["a", "b", "c", "d"]
    assert order.deferred, "some key of a NOT NULL cycle has to wait"
    assert order.deferred < frozenset(edges), "not every key of the cycle is deferred"
    assert_parents_first(order, edges)


def test_a_cycle_defers_only_keys_inside_the_cycle() -> None:
    outside = fk("a", "root", key=1, nullable=True)
    cycle = [fk("a", "b"), fk("b", "a")]

    order = plan_order(["a", "b", "root"], [outside, *cycle])

    assert outside not in order.deferred
    assert len(order.deferred) == 1
    assert order.tables.index("root") < order.tables.index("a")
    assert_parents_first(order, [outside, *cycle])


def test_a_long_chain_given_in_reverse_comes_out_parents_first() -> None:
    names = [f"t{i:02d}" for i in range(50)]
    edges = [fk(child, parent) for parent, child in itertools.pairwise(names)]

    order = plan_order(list(reversed(names)), edges)

    assert order.tables == names
    assert order.deferred == frozenset()


def test_keys_to_tables_not_in_the_list_are_ignored() -> None:
    edges = [
        fk("orders", "audit_log"),
        fk("audit_log", "orders"),
        fk("orders", "users", key=1),
    ]

    order = plan_order(["orders", "users"], edges)

    assert order.tables == ["users", "orders"]
    assert order.deferred == frozenset()
