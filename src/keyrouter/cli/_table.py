"""Plain-text tables for the terminal (no dependency needed for a few columns)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from keyrouter.core.usage import UsageTotals

__all__ = ["cost_cell", "render_table"]

_NUMBER = re.compile(r"^-?[\d.,/]+(%|s)?$|^-$")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; a column of numbers is right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        bool(rows) and all(_NUMBER.match(row[i]) for row in cells[1:]) for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def cost_cell(totals: UsageTotals) -> str:
    """A cost in USD, marked as a lower bound (or unknown) when some calls had no price."""
    if totals.calls and totals.unpriced_calls == totals.calls:
        return "unknown"
    amount = f"{totals.cost_usd:.6f}" if totals.cost_usd < 0.01 else f"{totals.cost_usd:.2f}"
    return ("≥" if totals.unpriced_calls else "") + amount
