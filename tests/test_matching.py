"""Names in a backup find the target's names exactly first, then by their normalised form;
ambiguity is reported as a conflict, never guessed."""

from __future__ import annotations

import pytest

from rowvault.load.matching import match_names, normalize


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("businessProducts", "businessproducts"),
        ("business_products", "businessproducts"),
        ("Created-At 2", "createdat2"),
        ("ORDER_ID", "orderid"),
    ],
)
def test_normalize_keeps_lower_case_letters_and_digits(name: str, form: str) -> None:
    assert normalize(name) == form


def test_an_exact_name_maps_to_itself() -> None:
    match = match_names(["users", "created_at"], ["created_at", "users", "other"])

    assert match.mapping == {"users": "users", "created_at": "created_at"}
    assert match.unknown == []
    assert match.conflicts == []


def test_an_exact_match_wins_over_a_normalised_one() -> None:
    match = match_names(["createdAt"], ["created_at", "createdAt"])

    assert match.mapping == {"createdAt": "createdAt"}
    assert match.conflicts == []


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("businessProducts", "business_products"),
        ("createdAt", "created_at"),
        ("UserID", "user_id"),
        ("order_items", "OrderItems"),
    ],
)
def test_a_differently_cased_name_finds_its_target(source: str, target: str) -> None:
    match = match_names([source], [target, "unrelated"])

    assert match.mapping == {source: target}
    assert match.unknown == []
    assert match.conflicts == []


def test_a_name_matching_several_targets_is_a_conflict_naming_them() -> None:
    match = match_names(["CreatedAt"], ["created_at", "createdat", "id"])

    assert match.mapping == {}
    assert match.unknown == []
    assert len(match.conflicts) == 1
    conflict = match.conflicts[0]
    assert "'CreatedAt'" in conflict
    assert "'created_at'" in conflict
    assert "'createdat'" in conflict


def test_two_source_names_for_one_target_are_a_conflict() -> None:
    match = match_names(["created_at", "createdAt"], ["created_at"])

    assert match.mapping == {"created_at": "created_at"}
    assert match.conflicts == ["'createdAt' and 'created_at' both match 'created_at'"]
    assert match.unknown == []


def test_names_with_no_match_are_listed_as_unknown_in_order() -> None:
    match = match_names(["ghost", "users", "phantom"], ["users", "posts"])

    assert match.mapping == {"users": "users"}
    assert match.unknown == ["ghost", "phantom"]
    assert match.conflicts == []


def test_an_empty_target_leaves_every_name_unknown() -> None:
    match = match_names(["a", "b"], [])

    assert match.mapping == {}
    assert match.unknown == ["a", "b"]
