"""Reading JSON and CSV import files into validated models, with errors that name the spot.

Shared by order forms and billing imports; no database access here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# Import documents nest four levels deep (organizations, contacts, subscription); anything
# much deeper is not an import document, and unbounded depth exhausts the parser's stack.
MAX_JSON_DEPTH = 16


class ImportFailed(Exception):
    """The file is invalid; `errors` are human lines naming the line/field. Nothing was written."""

    def __init__(self, errors: Sequence[str]) -> None:
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__("; ".join(errors[:5]) + more)
        self.errors = list(errors)


def field_path(loc: Iterable[int | str]) -> str:
    """A validation error's location as a field path: `organizations[0].contacts[1].email`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for item in error.errors():
        where = field_path(item["loc"])
        lines.append(f"{prefix}{where}: {item['msg']}")
    return lines


BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which some editors write first


def detect_format(name: str, data: bytes) -> str:
    lowered = name.lower()
    if lowered.endswith(".json"):
        return "json"
    if lowered.endswith(".csv"):
        return "csv"
    return "json" if data.removeprefix(BOM).lstrip()[:1] in (b"{", b"[") else "csv"


def parse_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON bytes to Python values; raises `ImportFailed` (one line) for text that is not
    UTF-8, not JSON, or nested deeper than `max_depth` arrays and objects."""
    try:
        # utf-8-sig: a byte order mark (as some editors save) is not part of the JSON
        raw = json.loads(data.decode("utf-8-sig"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        raise ImportFailed([f"the file is not UTF-8 text (byte {exc.start})"]) from exc
    except json.JSONDecodeError as exc:
        raise ImportFailed([f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from exc
    except RecursionError:
        raise ImportFailed([f"nested too deeply (at most {max_depth} levels)"]) from None
    except ValueError:  # an integer of thousands of digits
        raise ImportFailed(["a number is too long"]) from None
    if json_depth(raw) > max_depth:
        raise ImportFailed([f"nested too deeply (at most {max_depth} levels)"])
    return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys differ: one named twice is refused (which one was meant?)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ImportFailed([f"the key {key[:40]!r} appears twice in one object"])
        found[key] = value
    return found


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def load_json(data: bytes, model: type[M]) -> M:
    return validate(parse_json(data), model)


def validate(raw: Any, model: type[M]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ImportFailed(describe(exc)) from exc


def read_csv(
    data: bytes,
    required: Sequence[str],
    rename: Callable[[list[str]], list[str]] | None = None,
) -> list[tuple[int, dict[str, str]]]:
    """Rows with their 1-based file line numbers.

    Header names are trimmed, lower-cased and spaces become underscores; `rename` may then
    map accepted alternative names onto the canonical ones.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed([f"the file is not UTF-8 text (byte {exc.start})"]) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None:
        raise ImportFailed(["line 1: the file is empty (a header row is needed)"])
    headers = [h.strip().lower().replace(" ", "_") for h in reader.fieldnames]
    if rename is not None:
        headers = rename(headers)
    if len(set(headers)) != len(headers):
        repeated = sorted({h for h in headers if headers.count(h) > 1})
        raise ImportFailed([f"line 1: column(s) given twice: {', '.join(repeated)}"])
    reader.fieldnames = headers
    missing = [name for name in required if name not in headers]
    if missing:
        raise ImportFailed([f"line 1: missing column(s) {', '.join(missing)}"])
    rows = []
    try:
        for record in reader:
            if None in record:
                raise ImportFailed([f"line {reader.line_num}: more values than columns"])
            row = {k: (v or "").strip() for k, v in record.items() if k is not None}
            if any(row.values()):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise ImportFailed([f"line {reader.line_num + 1}: {exc}"]) from exc
    return rows


def csv_rows_to_models(
    rows: list[tuple[int, dict[str, str]]],
    model: type[M],
    build: Callable[[dict[str, str]], dict[str, Any]],
) -> list[tuple[int, M]]:
    """Validate each row on its own so that errors name the CSV line."""
    out: list[tuple[int, M]] = []
    errors: list[str] = []
    for line, row in rows:
        try:
            out.append((line, model.model_validate(build(row))))
        except ValidationError as exc:
            errors.extend(describe(exc, prefix=f"line {line}, "))
    if errors:
        raise ImportFailed(errors)
    return out
