"""How the catalog answers queries: JSON, text (``key value``) and the HTML table, as CCTools."""

from __future__ import annotations

import html
import json
import time

JSON_SEPARATORS = (",", ":")


def records_json(records: list[dict]) -> str:
    """``[\\n{record},\\n{record}\\n]\\n``: one compact record per line, as catalog_server writes."""
    return "[\n" + ",\n".join(json.dumps(r, separators=JSON_SEPARATORS) for r in records) + "\n]\n"


def record_text(record: dict) -> str:
    lines = []
    for key, value in record.items():
        shown = value if isinstance(value, str) else json.dumps(value, separators=JSON_SEPARATORS)
        lines.append(f"{key} {shown}")
    return "\n".join(lines) + "\n"


def records_text(records: list[dict]) -> str:
    """Records as ``key value`` lines, nested values as JSON, separated by blank lines."""
    return "".join(record_text(r) + "\n" for r in records)


def _metric(value: object) -> str:
    """CCTools' string_metric of a size in MB, e.g. ``3.0 G``; ``0.0B`` style for the table."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "???"
    number, suffixes = float(value), ["B", "KB", "MB", "GB", "TB", "PB"]
    index = 0
    while number >= 1024 and index < len(suffixes) - 1:
        number /= 1024
        index += 1
    return f"{number:.1f}{suffixes[index]}"


def records_html(records: list[dict], server_name: str) -> str:
    """The catalog's front page: a table of TYPE NAME PORT OWNER TOTAL AVAIL LOAD5 VERSION."""
    title = html.escape(server_name)
    out = [
        f"<title>{title} catalog server</title>\n<center>\n<h1>{title} catalog server</h1>\n",
        "<a href=/query.text>text</a> - <a href=/query.html>html</a> - <a href=/query.json>json</a><p>\n",
        f"<b>{len(records)} records at {html.escape(time.ctime())}</b><p>\n",
        "<table bgcolor=#bbbbbb>\n<tr bgcolor=#aaaaff>\n",
    ]
    for title_, align in (("TYPE", "left"), ("NAME", "left"), ("PORT", "left"), ("OWNER", "left"),
                          ("TOTAL", "right"), ("AVAIL", "right"), ("LOAD5", "right"), ("VERSION", "left")):  # fmt: skip
        out.append(f"<td align={align}><b>{title_}</b>\n")
    for number, r in enumerate(records):
        color = "#bbbbbb" if number % 2 == 0 else "#aaaaff"
        key = f"{r.get('address')}:{r.get('port', 0)}:{r.get('name')}"
        name = html.escape(str(r.get("project") or r.get("name", "???")))
        out.append(f"<tr bgcolor={color}>\n")
        cells = (
            ("left", html.escape(str(r.get("type", "???")))),
            ("left", f"<a href=/detail/{html.escape(key)}>{name}</a>"),
            ("left", html.escape(str(r.get("port", "???")))),
            ("left", html.escape(str(r.get("owner", "???")))),
            ("right", _metric(r.get("total"))),
            ("right", _metric(r.get("avail"))),
            ("right", html.escape(str(r.get("load5", "???")))),
            ("left", html.escape(str(r.get("version", "???")))),
        )
        out.extend(f"<td align={align}>{cell}\n" for align, cell in cells)
    out.append("</table>\n</center>\n")
    return "".join(out)
