"""A first Pandera contract and GX suite inferred from real data: a starting point to edit.

Types and nullability come from the data; ranges and allowed values from what it holds (a
sample says what was, not what may be: review them); uniqueness where the data shows it.
Dirty data is reported as warnings, never silently promoted into the contract. Text that is
all ISO 8601 dates or timestamps (as a CSV holds them) is typed as timestamps, marked `from_text`
so the product parses it.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Mapping

import pandas as pd

MAX_CATEGORIES = 12  # a text column with at most this many distinct values gets an `isin`
# A date, or a date and time, as ISO 8601 writes it; with a zone (Z or an offset) or without.
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?P<zone>Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class InferredColumn:
    name: str  # the snake-case name the product publishes
    source: str  # the name in the data
    annotation: str  # pandera.typing annotation
    field_args: tuple[str, ...]  # pa.Field(...) arguments
    required: bool
    from_text: bool = False  # timestamps the data holds as text: the product parses them (utc: with a zone)


@dataclass
class Inference:
    columns: list[InferredColumn] = field(default_factory=list)
    unique: bool = False  # some column is unique
    warnings: list[str] = field(default_factory=list)

    @property
    def renames(self) -> dict[str, str]:
        return {c.source: c.name for c in self.columns if c.source != c.name}


def snake_case(name: str) -> str:
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()  # Ünïcode -> Unicode
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not text or not text[0].isalpha():
        text = f"column_{text}" if text else "column"
    text = text[:62]
    return f"{text}_" if keyword.iskeyword(text) or keyword.issoftkeyword(text) else text


def infer(frame: pd.DataFrame) -> Inference:
    result = Inference()
    seen: dict[str, str] = {}
    rows = len(frame)
    for source in frame.columns:
        name = base = snake_case(source)
        suffix = 2
        while name in seen or name in {str(c) for c in frame.columns if snake_case(c) == str(c) and c != source}:
            name, suffix = f"{base[:60]}_{suffix}", suffix + 1
        if name != base:
            result.warnings.append(f"column {source!r} and {seen.get(base, base)!r} both become {base!r}; "
                                   f"{source!r} is published as {name!r}")
        seen[name] = str(source)
        series = frame[source]
        if series.map(lambda v: isinstance(v, (list, dict, tuple, set)) or hasattr(v, "__array__") and not isinstance(v, str)).any():
            raise ValueError(f"column {source!r} holds lists or records; a contract holds flat columns: flatten it first")
        nulls = int(series.isna().sum())
        args: list[str] = []
        from_text = False
        if nulls:
            args.append("nullable=True")
        values = series.dropna()
        if values.empty:
            result.warnings.append(f"column {source!r} holds no value at all: its type is a guess (str)")
            annotation = "str"
        elif pd.api.types.is_bool_dtype(series):
            annotation = "bool"
        elif (pd.api.types.is_integer_dtype(series) or (pd.api.types.is_float_dtype(series) and (values % 1 == 0).all()
                                                         and nulls == 0)) and not _fits_int64(values):
            annotation = "str"
            result.warnings.append(f"column {source!r} holds whole numbers beyond what a 64-bit integer (or a float, "
                                   "exactly) holds: published as text")
        elif pd.api.types.is_integer_dtype(series) or (pd.api.types.is_float_dtype(series) and (values % 1 == 0).all()
                                                       and nulls == 0):
            annotation = "int"
            args += [f"ge={int(values.min())}", f"le={int(values.max())}"]
        elif pd.api.types.is_float_dtype(series):
            annotation = "float"
            args += [f"ge={float(values.min())!r}", f"le={float(values.max())!r}"]
            if (values % 1 == 0).all():
                result.warnings.append(f"column {source!r} holds whole numbers but has nulls, so it is a float")
        elif isinstance(series.dtype, pd.DatetimeTZDtype):
            zone = getattr(series.dtype.tz, "key", None) or getattr(series.dtype.tz, "zone", None) or str(series.dtype.tz)
            if zone != "UTC" and "/" not in zone:
                raise ValueError(f"column {source!r} uses the fixed offset {series.dtype.tz}; convert it to a named "
                                 "time zone (e.g. Europe/Paris) or to UTC first")
            annotation = f'pd.DatetimeTZDtype("ns", "{zone}")'
            _warn_nanoseconds(result, source, values)
        elif pd.api.types.is_datetime64_any_dtype(series):
            annotation = "pd.Timestamp"
            _warn_nanoseconds(result, source, values)
        elif (zoned := _iso_datetimes(values)) is not None:
            annotation = 'pd.DatetimeTZDtype("ns", "UTC")' if zoned else "pd.Timestamp"
            from_text = True
            if zoned:
                result.warnings.append(f"column {source!r} holds timestamps with a zone: published in UTC")
        else:
            annotation = "str"
            texts = values.astype(str)
            kinds = {type(v).__name__ for v in values}
            if len(kinds) > 1:
                result.warnings.append(f"column {source!r} mixes {', '.join(sorted(kinds))} values; published as text")
            numeric = pd.to_numeric(texts, errors="coerce").notna().mean()
            if 0 < numeric < 1 and numeric > 0.8:
                result.warnings.append(f"column {source!r} is {numeric:.0%} numbers stored as text: check the other values")
            distinct = texts.unique()
            if len(distinct) <= MAX_CATEGORIES and len(distinct) <= max(rows / 2, 2):
                args.append(f"isin={sorted(distinct.tolist())!r}")
            blank = int((texts.str.strip() == "").sum())
            if blank:
                result.warnings.append(f"column {source!r} has {blank} blank text value(s)")
        if annotation in ("int", "str") and nulls == 0 and rows > 1 and series.is_unique and "isin=" not in " ".join(args):
            args.append("unique=True")
            result.unique = True
        if nulls and nulls < rows:
            result.warnings.append(f"column {source!r} has {nulls} null(s) of {rows}: declared nullable")
        result.columns.append(InferredColumn(name, str(source), annotation, tuple(args), nulls == 0, from_text))
    return result


def _iso_datetimes(values: pd.Series) -> bool | None:
    """For text that is all ISO 8601 dates or timestamps that parse: whether they carry a zone;
    None for any other text (or a mix of zoned and naive values, which stays text)."""
    if not all(isinstance(v, str) for v in values):
        return None
    matches = [_ISO_DATETIME.match(v.strip()) for v in values]
    if not all(matches):
        return None
    zones = {m["zone"] is not None for m in matches}
    if len(zones) > 1:
        return None
    [zoned] = zones
    if pd.to_datetime(values.str.strip(), format="ISO8601", utc=zoned, errors="coerce").isna().any():
        return None  # e.g. 2024-02-30
    return zoned


def _fits_int64(values: pd.Series) -> bool:
    low, high = values.min(), values.max()
    if pd.api.types.is_float_dtype(values):
        return -(2**53) <= low and high <= 2**53  # beyond that a float is not an exact whole number
    return -(2**63) <= int(low) and int(high) < 2**63


def _warn_nanoseconds(result: Inference, source, values: pd.Series) -> None:
    if (values.astype("int64") % 1000 != 0).any():
        result.warnings.append(f"column {source!r} holds nanoseconds, which output ports do not keep (microseconds): "
                               f"round it in the product, e.g. .dt.floor('us'), or the publish is refused")


def contract_source(class_name: str, inference: Inference, descriptions: Mapping[str, str] | None = None) -> str:
    """The contract's source; `descriptions` (by column name in the data) are kept, the rest are TODOs."""
    lines = [f"class {class_name}(pa.DataFrameModel):"]
    for column in inference.columns:
        description = (descriptions or {}).get(column.source) or (
            "TODO: what this column means." if column.source == column.name else
            f"TODO: what this column means (from {column.source!r}).")
        args = ", ".join([*column.field_args, f"description={description!r}"])
        lines.append(f"    {column.name}: Series[{column.annotation}] = pa.Field({args})")
    lines += ["", "    class Config:", "        strict = True", "        coerce = True"]
    return "\n".join(lines) + "\n"


def suite_source(constant: str, inference: Inference) -> str:
    required = [c.name for c in inference.columns if c.required][:3]
    items = [f'    Expectation("ExpectColumnValuesToNotBeNull", column={name!r}),' for name in required]
    items.append('    Expectation("ExpectTableRowCountToBeBetween", min_value=1, severity="warning"),')
    return f"{constant} = [\n" + "\n".join(items) + "\n]\n"
