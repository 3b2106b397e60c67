"""Match the names in a backup to the names in the target database.

A name matches exactly first, then by its normalised form (lower case, letters and digits
only), so `businessProducts` finds `business_products` and `createdAt` finds `created_at`.
Names from a backup are only ever matched against reflected names; they never reach SQL as
they were given.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

_NOT_ALNUM = re.compile(r"[^0-9a-z]")


def normalize(name: str) -> str:
    return _NOT_ALNUM.sub("", name.lower())


@dataclass
class NameMatch:
    """Source name -> target name, plus what could not be matched and why."""

    mapping: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def match_names(source: Iterable[str], target: Iterable[str]) -> NameMatch:
    targets = list(target)
    exact = set(targets)
    by_form: dict[str, list[str]] = defaultdict(list)
    for name in targets:
        by_form[normalize(name)].append(name)
    result = NameMatch()
    taken: dict[str, str] = {}
    for name in source:
        found: str | None = None
        if name in exact:
            found = name
        else:
            candidates = by_form.get(normalize(name), [])
            if len(candidates) == 1:
                found = candidates[0]
            elif len(candidates) > 1:
                result.conflicts.append(
                    f"{name!r} matches several names in the target: "
                    + ", ".join(repr(c) for c in sorted(candidates))
                )
                continue
        if found is None:
            result.unknown.append(name)
        elif found in taken:
            result.conflicts.append(f"{name!r} and {taken[found]!r} both match {found!r}")
        else:
            taken[found] = name
            result.mapping[name] = found
    return result
