"""Rows printed on stdout in the format asked for: a table sized to the terminal, or one line per
row (tsv, the default off a terminal, so `| grep` and `| cut` work), csv, json or jsonl."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "jsonl", "csv", "tsv")


def add_format_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, help="table on a terminal, else tsv (one line per row)")
    parser.add_argument("--json", action="store_true", help="the same as --format json")


def output_format(args: argparse.Namespace) -> str | None:
    """The format asked for (`--json` is `--format json`); None when none was."""
    return "json" if getattr(args, "json", False) else getattr(args, "format", None)


def default_format() -> str:
    return "table" if sys.stdout.isatty() else "tsv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _tsv_line(cells: list[str]) -> str:
    """Cells joined by tabs on one line: a tab or line break inside a cell becomes a space."""
    return "\t".join(c.replace("\t", " ").replace("\r", " ").replace("\n", " ") for c in cells) + "\n"


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
            out.write(_tsv_line([_cell(row.get(c)) for c in columns]))
        else:
            writer.writerow([_cell(row.get(c)) for c in columns])
        count += 1
    return count


@dataclass
class Summary:
    """What a command did, as (key, label, value) lines: a two-column table for people, or
    the same keys in the same order as JSON, jsonl, csv or tsv for scripts. A line's `shown`
    stands in for its value in the table (a count for a list of rows)."""

    command: str
    lines: list[tuple[str, str, Any, Any]] = field(default_factory=list)

    def add(self, key: str, label: str, value: Any, shown: Any = None) -> Summary:
        self.lines.append((key, label, value, value if shown is None else shown))
        return self

    def add_fields(self, source: Any, labels: dict[str, str]) -> Summary:
        """A line for each key of `labels`: the report's attribute (or the mapping's item) of that name."""
        for key, label in labels.items():
            self.add(key, label, source[key] if isinstance(source, Mapping) else getattr(source, key))
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command} | {key: for_people(value) for key, _, value, _ in self.lines}


def for_people(value: Any) -> Any:
    """JSON numbers as a person reads them: floats to 4 decimals (no 0.011216999999999994)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: for_people(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [for_people(v) for v in value]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "none"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_shown(count)}" for key, count in value.items())
    return str(value)


def print_summary(summary: Summary, fmt: str | None, quiet: bool = False) -> None:
    """Print a summary on stdout in `fmt` (default: table on a terminal, else tsv); `quiet`
    prints nothing unless a format was asked for."""
    if quiet and fmt is None:
        return
    fmt = fmt or default_format()
    if fmt in ("json", "jsonl"):
        document = json.dumps(
            summary.as_dict(), indent=2 if fmt == "json" else None, ensure_ascii=False, default=str
        )
        sys.stdout.write(document + "\n")
    elif fmt == "table":
        table = Table(
            title=escape(summary.command), title_justify="left", header_style="bold", show_header=False
        )
        table.add_column("", ratio=2)
        table.add_column("", ratio=3, overflow="fold")
        for _, label, _, shown in summary.lines:
            table.add_row(escape(label), escape(_shown(shown)))
        Console(highlight=False, emoji=False).print(table)
    elif fmt == "tsv":
        sys.stdout.writelines(_tsv_line(pair) for pair in _flat_pairs(summary))
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["key", "value"])
        writer.writerows(_flat_pairs(summary))
    sys.stdout.flush()


def _flat_pairs(summary: Summary) -> list[list[str]]:
    """key/value text pairs for tsv and csv: what the table shows (a count for a list of rows),
    a mapping's entries as `key.entry`, so `grep` and `cut` find any figure."""
    pairs = [["command", summary.command]]
    for key, _, _, shown in summary.lines:
        shown = for_people(shown)
        if isinstance(shown, dict):
            pairs += [[f"{key}.{entry}", _cell(value)] for entry, value in shown.items()]
        elif isinstance(shown, list | tuple):
            pairs.append([key, ",".join(map(str, shown))])
        else:
            pairs.append([key, _cell(shown)])
    return pairs
