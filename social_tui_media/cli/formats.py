"""Rows printed on stdout in the format asked for: a table sized to the terminal, or one line per
row (tsv, the default off a terminal, so `| grep` and `| cut` work), csv, json or jsonl."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "jsonl", "csv", "tsv")


def default_format() -> str:
    return "table" if sys.stdout.isatty() else "tsv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def print_rows(
    rows: Iterable[dict], columns: list[str], fmt: str | None, title: str | Callable[[int], str] = ""
) -> int:
    """Print rows on stdout as they come, one at a time (only a table, for a terminal, holds
    them all); `columns` choose the fields of table, csv and tsv (json and jsonl print whole
    rows); `title` heads the table, or makes its title from the row count. Returns the count."""
    fmt = fmt or default_format()
    out = sys.stdout
    count = 0
    if fmt == "json":  # a JSON array, one row per line
        for row in rows:
            out.write(("[\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False, default=str))
            count += 1
        out.write("\n]\n" if count else "[]\n")
        return count
    if fmt == "table":
        table = Table(title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column, overflow="ellipsis", no_wrap=column.endswith("_id"))
        for row in rows:
            table.add_row(*(escape(_cell(row.get(c))) for c in columns))
            count += 1
        text = title(count) if callable(title) else title
        table.title = escape(text) if text else None
        Console(highlight=False, emoji=False).print(table)
        return count
    writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
    if fmt == "csv":
        writer.writerow(columns)
    for row in rows:
        if fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        elif fmt == "tsv":
            out.write(
                "\t".join(_cell(row.get(c)).replace("\t", " ").replace("\n", " ") for c in columns) + "\n"
            )
        else:
            writer.writerow([_cell(row.get(c)) for c in columns])
        count += 1
    return count
