"""The report as one long-format CSV (``crm-bridge report --format csv``).

Why long format: one row per (section, dimension, segment, reason) loads straight into a
spreadsheet pivot table or a BI tool, and new dimensions add rows, not columns.
"""

from __future__ import annotations

import csv
import io

from crm_bridge.reports.model import COLUMNS, ReportModel

__all__ = ["render_csv"]


def render_csv(model: ReportModel) -> str:
    """CSV text with a header row; rates are fractions with four decimals."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(model.flat_rows())
    return buffer.getvalue()
