"""Safeguards: stop a sync before it sends anything when its plan would delete or change too much of what the
destination holds.

A bad upstream change (a join that lost its rows, a filter inverted, a source that loaded empty) shows up in the
plan as mass deletes or mass updates. Checked between planning and sending, against the snapshot (the rows the
destination acknowledged), it costs one count and saves a CRM. Limits come from `safeguards:` in dbt_studio.yml
(the project's) and on the sync (key by key over the project's); a `mirror` sync stops at 20% deletes unless told
otherwise. `--allow-large-changes` (or `allow_large_changes: true`) lets one run, or a sync, through.

This module imports only the core: the engine passes the counts and gets the reason to stop, if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIRROR_MAX_DELETE_PERCENT = 20.0  # the default for mirror syncs: a fifth of the destination gone is rarely meant
MIN_ROWS = 100  # percentages of a destination smaller than this say little: only absolute limits apply there


@dataclass(frozen=True)
class Limits:
    """A sync's safeguards: the deletes and changes a run may make before it stops without sending."""

    max_deletes: int | None = None
    max_delete_percent: float | None = None
    max_update_percent: float | None = None
    min_rows: int = MIN_ROWS
    allow_large_changes: bool = False


def limits_for(project: Mapping[str, Any], sync: Mapping[str, Any], mode: str) -> Limits:
    """The sync's limits: its own keys over the project's, and the mirror default for deletes."""
    merged = {**project, **sync}
    delete_percent = merged.get("max_delete_percent")
    if delete_percent is None and mode == "mirror":
        delete_percent = MIRROR_MAX_DELETE_PERCENT
    return Limits(
        max_deletes=None if merged.get("max_deletes") is None else int(merged["max_deletes"]),
        max_delete_percent=None if delete_percent is None else float(delete_percent),
        max_update_percent=None if merged.get("max_update_percent") is None else float(merged["max_update_percent"]),
        min_rows=int(merged.get("min_rows", MIN_ROWS)),
        allow_large_changes=bool(merged.get("allow_large_changes", False)),
    )


def stop_reason(limits: Limits, planned: Mapping[str, int], held: int) -> str | None:
    """Why this plan must not be sent (one line), or None. `held`: rows the destination holds (the snapshot)."""
    if limits.allow_large_changes:
        return None
    deletes = int(planned.get("delete", 0)) + int(planned.get("clear", 0))
    updates = int(planned.get("update", 0))
    if limits.max_deletes is not None and deletes > limits.max_deletes:
        return f"the plan deletes {deletes} rows, over max_deletes {limits.max_deletes}"
    if held >= limits.min_rows and held:
        share = 100.0 * deletes / held
        if limits.max_delete_percent is not None and share > limits.max_delete_percent:
            return (f"the plan deletes {deletes} of the {held} rows the destination holds ({share:.1f}%), over "
                    f"max_delete_percent {limits.max_delete_percent:g}")
        share = 100.0 * updates / held
        if limits.max_update_percent is not None and share > limits.max_update_percent:
            return (f"the plan changes {updates} of the {held} rows the destination holds ({share:.1f}%), over "
                    f"max_update_percent {limits.max_update_percent:g}")
    return None
