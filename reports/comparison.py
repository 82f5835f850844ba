"""Predicted against observed, laid out for people (shared by the Markdown and HTML reports)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class ComparisonRow:
    field: str
    predicted: str  # compact JSON, or "—" when that side lacks the field
    observed: str
    differs: bool


def pretty_json(value: Any) -> str:
    """Indented, key-sorted JSON; anything JSON cannot hold is shown with str()."""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def field_rows(predicted: Any, observed: Any) -> list[ComparisonRow] | None:
    """One row per top-level field when both sides are JSON objects, else None (the caller
    then shows the two values whole, side by side)."""
    if not isinstance(predicted, dict) or not isinstance(observed, dict):
        return None
    keys = sorted(set(predicted) | set(observed), key=str)
    return [_row(str(k), predicted.get(k, _MISSING), observed.get(k, _MISSING)) for k in keys]


def _row(key: str, predicted: Any, observed: Any) -> ComparisonRow:
    return ComparisonRow(
        field=key,
        predicted=_cell(predicted),
        observed=_cell(observed),
        differs=predicted is _MISSING or observed is _MISSING or predicted != observed,
    )


def _cell(value: Any) -> str:
    return "—" if value is _MISSING else compact_json(value)
