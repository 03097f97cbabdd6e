"""`mesh preview` output people read in review: a terminal summary, a JSON document, a PR comment.

All three render one `Preview`. The JSON has a stable shape: every product carries every key
(`null` where a product was not diffed). The Markdown puts newly failing checks first, in bold,
then a table per product, biggest change first, with the consumers and owners it affects. Consumers
known from the contract registry only are listed apart: affected, not previewed here.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from mesh_core.operate.preview_result import CheckChange, Preview, ProductPreview, RemoteConsumer

TOP_COLUMNS = 3  # column changes shown per product in the terminal
MARKDOWN_COLUMNS = 10  # and in the PR comment


# -- JSON --------------------------------------------------------------------------------


def as_json(preview: Preview) -> dict:
    """The preview as plain JSON values, for machines (`mesh preview --json`)."""
    return {
        "base": preview.base,
        "changed": [str(ref) for ref in preview.changed],
        "notes": list(preview.notes),
        "products": [_product_json(item) for item in preview.products],
        "newly_failing": [{"product": str(ref), **_check_json(check)} for ref, check in preview.newly_failing],
        "failed": [{"product": str(item.ref), "message": item.message, "owners": list(item.owners)} for item in preview.failed],
        "remote_consumers": [{"consumer": str(c.ref), "owners": list(c.owners), "reads": [str(ref) for ref in c.reads],
                              "previewed": False, "note": remote_text(c),
                              "checks": [{"product": str(ref), **_check_json(check)} for ref, check in c.checks]}
                             for c in preview.remote_consumers],
        "exit_code": preview.exit_code,
    }


def _product_json(item: ProductPreview) -> dict:
    diff = item.diff
    found = diff.as_dict() if diff is not None else {}
    return {
        "product": str(item.ref),
        "owners": list(item.owners),
        "status": item.status,
        "message": item.message,
        **{name: found.get(name) for name in ("rows_before", "rows_after", "added", "removed", "changed", "key", "schema")},
        "columns": found.get("columns", []),
        "samples": found.get("samples"),
        "note": found.get("note", ""),
        "checks": [_check_json(check) for check in _checks_in_order(item.checks)],
        "consumers": [{"product": str(consumer.ref), "owners": list(consumer.owners), "remote": consumer.remote}
                      for consumer in item.consumers],
    }


def _check_json(check: CheckChange) -> dict:
    return {"check": check.name, "severity": check.severity, "before": check.before, "after": check.after,
            "state": check.state, "consumer": check.consumer, "owners": list(check.owners)}


# -- terminal ----------------------------------------------------------------------------


def as_text(preview: Preview) -> str:
    """The terminal summary: per product its status, rows, row changes, top column changes and
    newly failing checks (with the consumer and owners they belong to), then a one-line verdict."""
    lines = [f"mesh preview against {preview.base or 'the named products'}: "
             f"{_count(len(preview.changed), 'product')} changed ({_refs(preview.changed) or 'none'}), "
             f"{_count(len(preview.products), 'product')} previewed"]
    lines += [f"  note: {note}" for note in preview.notes]
    for item in preview.products:
        lines.append("")
        lines.append(f"{item.ref}  [{item.status}]  owners: {', '.join(item.owners) or '-'}")
        if item.message:
            lines.append(f"    {item.message}")
        diff = item.diff
        if diff is None:
            lines.append(f"    no diff ({_no_diff(item)})")
        elif diff.is_empty:
            lines.append(f"    rows {diff.rows_before:,} -> {diff.rows_after:,}  no data change")
        else:
            key = f"by key ({', '.join(diff.key)})" if diff.key else "by row hash"
            lines.append(f"    rows {diff.rows_before:,} -> {diff.rows_after:,}  "
                         f"+{diff.added:,} -{diff.removed:,} ~{diff.changed:,} {key}")
            if diff.note:
                lines.append(f"    note: {diff.note}")
            lines += [f"    schema: {text}" for text in _schema_lines(diff.schema)]
            for column in diff.columns[:TOP_COLUMNS]:
                lines.append(f"    {column.name}: {describe_column(column)}")
            if len(diff.columns) > TOP_COLUMNS:
                lines.append(f"    ... and {_count(len(diff.columns) - TOP_COLUMNS, 'more column')}")
        for check in _checks_in_order(item.checks):
            if check.state in ("newly failing", "newly passing", "still failing"):
                lines.append(f"    {check.state.upper()}: {_check_text(check)}")
        if item.consumers:
            lines.append("    consumers: " + "; ".join(f"{c.ref} ({', '.join(c.owners) or 'no owner'}"
                                                     + (", not previewed here)" if c.remote else ")")
                                                     for c in item.consumers))
    if preview.remote_consumers:
        lines += ["", "Consumers known from the registry only (code in their own repositories):"]
        for consumer in preview.remote_consumers:
            lines.append(f"  {consumer.ref} ({', '.join(consumer.owners) or 'no owner'}), reads "
                         f"{_refs(consumer.reads)}: {remote_text(consumer)}")
            lines += [f"    {check.state.upper()}: {ref} {_check_text(check)}" for ref, check in consumer.checks]
    lines += ["", verdict(preview)]
    return "\n".join(lines)


def verdict(preview: Preview) -> str:
    failing = preview.newly_failing
    broken = "; ".join(f"{item.ref} ({item.message or 'it raised'})" for item in preview.failed)
    if broken:
        checks = f"; and {_count(len(failing), 'check')} would newly fail" if failing else ""
        return f"FAIL: {_count(len(preview.failed), 'product')} failed in the sandbox: {broken}{checks} (exit {preview.exit_code})."
    if not failing:
        changed = sum(1 for item in preview.products if item.diff is not None and not item.diff.is_empty)
        return (f"OK: no check would newly fail; {_count(changed, 'product')} with data changes "
                f"(exit {preview.exit_code}).")
    named = "; ".join(f"{ref} {_check_text(check)}" for ref, check in failing)
    return f"FAIL: {_count(len(failing), 'check')} would newly fail: {named} (exit {preview.exit_code})."


def remote_text(consumer: RemoteConsumer) -> str:
    """What a preview says of a consumer whose code is in its own repository."""
    if not consumer.checks:
        ran = "it registered no expectations on them"
    elif consumer.ran:
        ran = "its registered expectations ran"
    else:
        ran = "its registered expectations did not run (the product failed before its checks)"
    return f"affected, not previewed here (code in its own repository); {ran}"


def _check_text(check: CheckChange) -> str:
    whose = f", expectation of {check.consumer}" if check.consumer else ""
    owners = f", owners {', '.join(check.owners)}" if check.owners else ""
    return f"{check.name} [{check.severity}]{whose}{owners}"


# -- Markdown ----------------------------------------------------------------------------


def as_markdown(preview: Preview) -> str:
    """A pull-request comment: a summary line, newly failing checks first and bold, then a table
    per product (biggest change first) with the consumers and owners it affects."""
    failing = preview.newly_failing
    if preview.failed:
        headline = f"**{_count(len(preview.failed), 'product')} failed in the sandbox**" + (
            f", **{_count(len(failing), 'check')} would newly fail**" if failing else "")
    elif failing:
        headline = f"**{_count(len(failing), 'check')} would newly fail**"
    else:
        headline = "No check would newly fail"
    changed_data = sum(1 for item in preview.products if item.diff is not None and not item.diff.is_empty)
    out = [f"## `mesh preview`: {headline}", "",
           f"Compared with `{_md(preview.base or 'the published versions')}`. Changed: "
           f"{', '.join(f'`{ref}`' for ref in preview.changed) or 'nothing'}. "
           f"{_count(len(preview.products), 'product')} previewed, {changed_data} with data changes.", ""]
    out += [f"> {_md(note)}" for note in preview.notes] + ([""] if preview.notes else [])
    if preview.failed:
        out += ["### Failed in the sandbox", ""]
        out += [f"- **`{item.ref}`**: {_md(item.message or 'it raised')}, owners {_md(', '.join(item.owners)) or 'none'}"
                for item in preview.failed]
        out.append("")
    if failing:
        out += ["### Newly failing checks", ""]
        out += [f"- **`{ref}` {_md(check.name)} ({check.severity})**"
                + (f": expectation of `{check.consumer}`" if check.consumer else "")
                + (f", owners {_md(', '.join(check.owners))}" if check.owners else "")
                for ref, check in failing]
        out.append("")
    affected = _affected(preview)
    if affected:
        out += ["### Consumers and owners affected", ""]
        out += [f"- `{consumer}`: {_md(', '.join(owners)) or 'no owner'}" for consumer, owners in affected]
        out.append("")
    if preview.remote_consumers:
        out += ["### Affected, not previewed here (code in their own repositories)", ""]
        for consumer in preview.remote_consumers:
            checks = "; ".join(f"{_md(check.name)} on `{ref}`: " + (f"**{check.state}**" if check.newly_failing else check.state)
                               for ref, check in consumer.checks)
            out.append(f"- `{consumer.ref}` ({_md(', '.join(consumer.owners)) or 'no owner'}), reads "
                       f"{', '.join(f'`{ref}`' for ref in consumer.reads)}: {_md(remote_text(consumer))}"
                       + (f" ({checks})" if checks else ""))
        out.append("")
    for item in sorted(preview.products, key=_biggest_first):
        out += _product_markdown(item)
    return "\n".join(out).rstrip() + "\n"


def _product_markdown(item: ProductPreview) -> list[str]:
    diff = item.diff
    out = [f"### `{item.ref}` ({item.status})", ""]
    consumers = ", ".join(f"`{c.ref}` ({_md(', '.join(c.owners)) or 'no owner'}{', not previewed here' if c.remote else ''})"
                          for c in item.consumers)
    out.append(f"Owners: {_md(', '.join(item.owners)) or 'none'}" + (f" · consumers: {consumers}" if consumers else ""))
    if item.message:
        out += ["", _md(item.message)]
    out.append("")
    if diff is None:
        out += [f"No diff: {_md(_no_diff(item))}.", ""]
    else:
        key = ", ".join(diff.key) if diff.key else "row hash"
        out += ["| rows before | rows after | added | removed | changed | matched by |",
                "|---:|---:|---:|---:|---:|---|",
                f"| {diff.rows_before:,} | {diff.rows_after:,} | {diff.added:,} | {diff.removed:,} | "
                f"{diff.changed:,} | {_cell(key)} |", ""]
        if diff.note:
            out += [f"_{_md(diff.note)}_", ""]
        out += [f"- schema: {_md(text)}" for text in _schema_lines(diff.schema)]
        if not diff.schema.is_empty:
            out.append("")
        if diff.columns:
            out += ["| column | what changed |", "|---|---|"]
            out += [f"| {_cell(c.name)} | {_cell(describe_column(c))} |" for c in diff.columns[:MARKDOWN_COLUMNS]]
            if len(diff.columns) > MARKDOWN_COLUMNS:
                out.append(f"| … | {len(diff.columns) - MARKDOWN_COLUMNS} more |")
            out.append("")
        elif diff.is_empty:
            out += ["No data change.", ""]
    checks = [c for c in _checks_in_order(item.checks) if c.state != "passing"]
    if checks:
        out += ["| check | severity | today | preview | state | consumer | owners |", "|---|---|---|---|---|---|---|"]
        for check in checks:
            cells = [check.name, check.severity, _result(check.before), _result(check.after), check.state,
                     check.consumer or "", ", ".join(check.owners)]
            row = " | ".join(_cell(cell) for cell in cells)
            out.append(f"| {' | '.join(f'**{_cell(cell)}**' if cell else '' for cell in cells)} |"
                       if check.newly_failing else f"| {row} |")
        out.append("")
    return out


def _biggest_first(item: ProductPreview) -> tuple:
    diff = item.diff
    share = 0.0
    if diff is not None:
        rows = max(diff.rows_before, diff.rows_after, 1)
        share = (diff.added + diff.removed + diff.changed) / rows
        share += 0 if diff.schema.is_empty else 1
        share += max((c.magnitude for c in diff.columns), default=0.0) / 10
    return (item.status != "failed", -len(item.newly_failing), item.status == "published", -share, str(item.ref))


def _affected(preview: Preview) -> list[tuple[str, tuple[str, ...]]]:
    """Every consumer of a product whose data changed or whose check newly fails, with its owners."""
    found: dict[str, dict[str, None]] = {}  # consumer -> its owners, in order, each once
    for item in preview.products:
        for check in item.newly_failing:
            if check.consumer:
                found.setdefault(check.consumer, {}).update(dict.fromkeys(check.owners))
        if (item.diff is not None and not item.diff.is_empty) or item.status != "published":
            for consumer in item.consumers:
                found.setdefault(str(consumer.ref), {}).update(dict.fromkeys(consumer.owners))
    return sorted((consumer, tuple(owners)) for consumer, owners in found.items())


# -- shared ------------------------------------------------------------------------------


def describe_column(column) -> str:
    """One column's change in words: 'N values changed; mean 1.5 -> 150; top: -DL +DAL'."""
    b, a, parts = column.before, column.after, []
    changes = column.changes
    if "values" in changes:
        parts.append(f"{column.changed_values:,} values changed")
    if "null_share" in changes:
        parts.append("nulls " + " -> ".join(_shares(b.null_share, a.null_share)))
    if "distinct" in changes:
        parts.append(f"distinct {b.distinct:,} -> {a.distinct:,}")
    for stat in ("mean", "min", "max"):
        if stat in changes:
            parts.append(f"{stat} {_value(getattr(b, stat))} -> {_value(getattr(a, stat))}")
    if "top" in changes:
        before, after = [v for v, _ in b.top], [v for v, _ in a.top]
        left = [_value(v) for v in before if v not in after]
        came = [_value(v) for v in after if v not in before]
        if left or came:
            parts.append("top values " + " ".join([*(f"-{v}" for v in left), *(f"+{v}" for v in came)]))
        else:
            parts.append("top counts " + ", ".join(f"{_value(v)} {dict(b.top).get(v, 0):,} -> {n:,}"
                                                   for v, n in a.top if dict(b.top).get(v) != n))
    return "; ".join(parts)


def _shares(before: float, after: float) -> tuple[str, str]:
    """Two shares as percentages with as many decimals as it takes to tell them apart (0.7% -> 0.7% told nothing)."""
    for digits in range(1, 7):
        shown = f"{before:.{digits}%}", f"{after:.{digits}%}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _no_diff(item: ProductPreview) -> str:
    """Why a product has no diff: the sandbox published nothing of it (a product the sandbox published
    always has one, every row added when it was never published for real)."""
    return {"failed": "it raised in the sandbox", "skipped": "not run in the sandbox",
            "blocked": "blocked in the sandbox and its output was not kept"}.get(item.status, "nothing to compare")


def _schema_lines(schema) -> list[str]:
    lines = []
    if schema.added:
        lines.append("added " + ", ".join(f"{n} ({t})" for n, t in schema.added))
    if schema.removed:
        lines.append("removed " + ", ".join(f"{n} ({t})" for n, t in schema.removed))
    if schema.retyped:
        lines.append("retyped " + ", ".join(f"{n} {b} -> {a}" for n, b, a in schema.retyped))
    return lines


def _checks_in_order(checks: Iterable[CheckChange]) -> list[CheckChange]:
    rank = {"newly failing": 0, "still failing": 1, "newly passing": 2, "not run": 3, "passing": 4}
    return sorted(checks, key=lambda c: (rank[c.state], c.name))


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value) if isinstance(value, str) else str(value)


def _result(value: bool | None) -> str:
    return "pass" if value is True else "fail" if value is False else "-"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _refs(refs) -> str:
    return ", ".join(str(ref) for ref in refs)


_MARKUP = re.compile(r"([\\`*\[\]|])")  # code spans, emphasis, links and images, table cells
_MENTION = re.compile(r"(?<![\w`])@(?=[\w-])")  # '@someone' / '@org/team' would notify them


def _md(text: str) -> str:
    """Text from data or code, safe in Markdown prose: no HTML tag or entity, no line break, no link or
    image (a data value's tracking pixel or phishing link), no code span or bold, and no @-mention
    (a data value must not notify anyone on the pull request)."""
    text = " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;")
    return _MENTION.sub("@\u2060", _MARKUP.sub(r"\\\1", text))


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell (pipes are escaped by `_md`)."""
    return _md(text)
