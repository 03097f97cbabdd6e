"""Rendering a preview: the JSON's stable shape, the PR comment's order and escaping, the verdict."""

import json

import pytest

from mesh_core import ProductRef
from mesh_core.operate.diff import ColumnChange, ColumnStats, ProductDiff, SchemaChange
from mesh_core.operate.preview_report import as_json, as_markdown, as_text
from mesh_core.operate.preview_result import CheckChange, Consumer, Preview, ProductPreview

SOURCE, QUIET, CONSUMER, NEW = (ProductRef("sales", "orders"), ProductRef("sales", "refunds"),
                                ProductRef("finance", "revenue"), ProductRef("finance", "forecast"))

PRODUCT_KEYS = {"product", "owners", "status", "message", "rows_before", "rows_after", "added", "removed", "changed",
                "key", "schema", "columns", "samples", "note", "checks", "consumers"}


def price_change() -> ColumnChange:
    return ColumnChange("unit | price", ColumnStats(0.0, 50, min=1.5, max=75.0, mean=20.0),
                        ColumnStats(0.0, 50, min=150.0, max=7500.0, mean=2000.0), changed_values=190)


def renamed_codes() -> ColumnChange:
    return ColumnChange("carrier", ColumnStats(0.0, 3, top=(("AA", 70), ("DL", 70), ("UA", 60))),
                        ColumnStats(0.0, 3, top=(("AA", 70), ("DAL", 70), ("UA", 60))), changed_values=70)


def preview(*, failing: bool) -> Preview:
    expectation = CheckChange("revenue_positive", "ERROR", before=True, after=not failing,
                              consumer=str(CONSUMER), owners=("team:finance",))
    source = ProductPreview(
        SOURCE, ("team:sales",), "published",
        ProductDiff(200, 190, added=0, removed=10, changed=190, key=("order_id",),
                    schema=SchemaChange(added=(("gate", "string"),), retyped=(("qty", "double", "int64"),)),
                    columns=(price_change(), renamed_codes()), sample_removed=({"order_id": 3},)),
        checks=(CheckChange("orders_contract", "ERROR", True, True), expectation,
                CheckChange("late <b>rows</b>", "WARN", False, False)),
        consumers=(Consumer(CONSUMER, ("team:finance", "cfo@example.com")),),
    )
    quiet = ProductPreview(QUIET, ("team:sales",), "published",
                           ProductDiff(5, 5, 0, 0, 0, ("refund_id",)),
                           checks=(CheckChange("refunds_contract", "ERROR", True, True),))
    downstream = ProductPreview(CONSUMER, ("team:finance",), "blocked" if failing else "published",
                                ProductDiff(12, 12, 0, 0, 3, ("month",)), message="blocked by revenue_positive" if failing else "")
    new = ProductPreview(NEW, ("team:finance",), "published", ProductDiff(0, 4, 4, 0, 0, None,
                                                                          schema=SchemaChange(added=(("month", "string"),))))
    return Preview(base="main", changed=(SOURCE,), products=(quiet, source, downstream, new),
                   notes=("a helper module of domain sales changed: all its products count as changed",))


@pytest.mark.parametrize("failing", [True, False])
def test_the_json_has_a_stable_shape_and_plain_values(failing):
    result = as_json(preview(failing=failing))
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {"base", "changed", "notes", "products", "newly_failing", "failed", "remote_consumers", "exit_code"}
    assert result["remote_consumers"] == []  # every consumer's code is here
    assert result["changed"] == ["sales.orders"] and result["exit_code"] == (1 if failing else 0)
    assert [p["product"] for p in result["products"]] == ["sales.refunds", "sales.orders", "finance.revenue", "finance.forecast"]
    for item in result["products"]:
        assert set(item) == PRODUCT_KEYS
    orders = result["products"][1]
    assert (orders["rows_before"], orders["rows_after"], orders["added"], orders["removed"], orders["changed"]) == (200, 190, 0, 10, 190)
    assert orders["key"] == ["order_id"] and orders["schema"]["retyped"] == [{"column": "qty", "before": "double", "after": "int64"}]
    assert [c["column"] for c in orders["columns"]] == ["unit | price", "carrier"]
    assert orders["consumers"] == [{"product": "finance.revenue", "owners": ["team:finance", "cfo@example.com"], "remote": False}]
    states = [(c["check"], c["state"]) for c in orders["checks"]]
    expected = ("revenue_positive", "newly failing" if failing else "passing")
    assert states[0 if failing else -1] == expected and ("late <b>rows</b>", "still failing") in states
    if failing:
        assert result["newly_failing"] == [{"product": "sales.orders", "check": "revenue_positive", "severity": "ERROR",
                                            "before": True, "after": False, "state": "newly failing",
                                            "consumer": "finance.revenue", "owners": ["team:finance"]}]
    else:
        assert result["newly_failing"] == []


def test_a_product_without_a_diff_keeps_every_key():
    skipped = Preview("main", (SOURCE,), (ProductPreview(SOURCE, ("team:sales",), "failed", None, message="boom"),))
    item = as_json(skipped)["products"][0]
    assert set(item) == PRODUCT_KEYS and item["added"] is None and item["columns"] == [] and item["message"] == "boom"
    assert "no diff" in as_text(skipped) and "No diff" in as_markdown(skipped)


def test_the_markdown_puts_newly_failing_checks_first_in_bold_and_the_biggest_change_first():
    markdown = as_markdown(preview(failing=True))
    lines = markdown.splitlines()
    assert lines[0] == "## `mesh preview`: **1 check would newly fail**"
    failing = next(i for i, line in enumerate(lines) if line.startswith("- **`sales.orders` revenue_positive (ERROR)**"))
    sections = [line for line in lines if line.startswith("### `")]
    assert failing < lines.index(sections[0])
    assert "expectation of `finance.revenue`, owners team:finance" in lines[failing]
    # the product with the newly failing check, then the blocked one, then the rest by size of change
    assert sections == ["### `sales.orders` (published)", "### `finance.revenue` (blocked)",
                        "### `finance.forecast` (published)", "### `sales.refunds` (published)"]
    assert "- `finance.revenue`: team:finance, cfo@example.com" in lines  # consumers and owners affected
    # the newly failing check's row is bold, cell by cell, and comes before the still failing one
    bold = next(line for line in lines if "revenue_positive" in line and line.startswith("| **"))
    assert bold == "| **revenue_positive** | **ERROR** | **pass** | **fail** | **newly failing** | **finance.revenue** | **team:finance** |"
    assert lines.index(bold) < next(i for i, line in enumerate(lines) if "still failing" in line)
    # data never breaks the table or injects HTML
    assert "| unit \\| price | 190 values changed; mean 20 -> 2,000; min 1.5 -> 150; max 75 -> 7,500 |" in lines
    assert "late &lt;b>rows&lt;/b>" in markdown and "<b>" not in markdown
    assert "top values -'DL' +'DAL'" in markdown
    assert "- schema: retyped qty double -> int64" in lines
    tables, block = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            block.append(line.replace("\\|", "").count("|"))
        elif block:
            tables.append(block)
            block = []
    assert len(tables) == 6 and all(len(set(widths)) == 1 for widths in tables), tables  # every row as wide as its header


def test_the_markdown_says_when_nothing_would_fail():
    markdown = as_markdown(preview(failing=False))
    assert markdown.startswith("## `mesh preview`: No check would newly fail\n")
    assert "Newly failing" not in markdown and "No data change." in markdown


def test_the_terminal_summary_ends_in_a_verdict():
    text = as_text(preview(failing=True))
    lines = text.splitlines()
    assert lines[0] == ("mesh preview against main: 1 product changed (sales.orders), 4 products previewed")
    assert "sales.orders  [published]  owners: team:sales" in lines
    assert "    rows 200 -> 190  +0 -10 ~190 by key (order_id)" in lines
    assert "    NEWLY FAILING: revenue_positive [ERROR], expectation of finance.revenue, owners team:finance" in lines
    assert "    rows 5 -> 5  no data change" in lines
    assert lines[-1] == ("FAIL: 1 check would newly fail: sales.orders revenue_positive [ERROR], expectation of "
                         "finance.revenue, owners team:finance (exit 1).")
    assert as_text(preview(failing=False)).splitlines()[-1] == "OK: no check would newly fail; 3 products with data changes (exit 0)."


def test_a_check_that_never_ran_today_and_fails_now_counts_as_newly_failing():
    check = CheckChange("new_rule", "WARN", before=None, after=False)
    assert check.newly_failing and check.state == "newly failing"
    assert not CheckChange("x", "ERROR", before=False, after=False).newly_failing
    assert CheckChange("x", "ERROR", before=True, after=None).state == "not run"
    with pytest.raises(ValueError, match="Invalid preview status 'done'"):
        ProductPreview(SOURCE, (), "done", None)


def test_a_product_that_raises_in_the_sandbox_fails_the_preview_with_exit_1():
    # No check of it ran (so none "newly fails"), yet the change breaks it: CI must not read that as OK.
    failed = ProductPreview(SOURCE, ("team:sales",), "failed", None, message="RuntimeError: boom")
    skipped = ProductPreview(CONSUMER, ("team:finance",), "skipped", None, message="not run: sales.orders was not published")
    result = Preview("main", (SOURCE,), (failed, skipped))
    assert result.exit_code == 1 and result.failed == (failed,) and not result.newly_failing
    text = as_text(result)
    assert text.splitlines()[-1] == "FAIL: 1 product failed in the sandbox: sales.orders (RuntimeError: boom) (exit 1)."
    assert "nothing published" not in text and "no diff (it raised in the sandbox)" in text
    assert as_json(result)["failed"] == [{"product": "sales.orders", "message": "RuntimeError: boom", "owners": ["team:sales"]}]
    markdown = as_markdown(result)
    assert markdown.startswith("## `mesh preview`: **1 product failed in the sandbox**\n")
    assert "- **`sales.orders`**: RuntimeError: boom, owners team:sales" in markdown
    assert Preview("main", (SOURCE,), (skipped,)).exit_code == 0  # skipped alone: what it waited for is reported


def test_data_values_in_the_pr_comment_cannot_link_embed_or_mention():
    # Text values of a product land in the comment (top values, column names): they must stay text.
    hostile = ColumnChange("[x](https://phish.example)", ColumnStats(0.0, 2, top=(("ok", 2),)),
                           ColumnStats(0.0, 2, top=(("![t](https://evil.example/t.png)", 1), ("@octocat hi", 1),
                                                    ("@acme/everyone", 1), ("`a|b`", 1))), changed_values=2)
    item = ProductPreview(SOURCE, ("team:sales", "cfo@example.com"), "published",
                          ProductDiff(2, 2, 0, 0, 2, ("order_id",), columns=(hostile,)),
                          message="RuntimeError: see [here](https://phish.example) @octocat")
    markdown = as_markdown(Preview("main", (SOURCE,), (item,)))
    assert "](" in markdown and "\\](" in markdown
    assert "](https" not in markdown.replace("\\](https", ""), markdown  # every link or image opener escaped
    assert "@octocat" not in markdown and "@acme/" not in markdown and "@\u2060octocat" in markdown
    assert "cfo@example.com" in markdown  # an address is no mention: left as it is
    assert "`a" not in markdown.replace("\\`a", "")


def test_a_null_share_that_moved_a_little_shows_enough_decimals_to_see_it():
    from mesh_core.operate.preview_report import describe_column

    column = ColumnChange("tailnum", ColumnStats(0.007486, 4044), ColumnStats(0.007494, 4044), changed_values=0)
    assert describe_column(column) == "nulls 0.7486% -> 0.7494%"
    assert describe_column(ColumnChange("x", ColumnStats(0.1, 3), ColumnStats(0.25, 3))) == "nulls 10.0% -> 25.0%"


def test_a_consumer_known_from_the_registry_only_is_affected_not_previewed_with_its_expectations():
    remote, silent = ProductRef("billing", "invoices"), ProductRef("billing", "ledger")
    check = CheckChange("billing__invoices__orders__paid", "WARN", before=True, after=False,
                        consumer=str(remote), owners=("team:billing",))
    source = ProductPreview(SOURCE, ("team:sales",), "published", ProductDiff(5, 5, 0, 0, 1, ("order_id",)),
                            checks=(check,), consumers=(Consumer(CONSUMER, ("team:finance",)),
                                                        Consumer(remote, ("team:billing",), remote=True),
                                                        Consumer(silent, ("team:billing",), remote=True)))
    result = Preview("main", (SOURCE,), (source,))
    assert result.exit_code == 1 and [c.ref for c in result.remote_consumers] == [remote, silent]
    listed = {c["consumer"]: c for c in as_json(result)["remote_consumers"]}
    assert listed["billing.invoices"]["reads"] == ["sales.orders"] and not listed["billing.invoices"]["previewed"]
    assert listed["billing.invoices"]["note"].endswith("not previewed here (code in its own repository); "
                                                       "its registered expectations ran")
    assert [c["state"] for c in listed["billing.invoices"]["checks"]] == ["newly failing"]
    assert "registered no expectations" in listed["billing.ledger"]["note"] and listed["billing.ledger"]["checks"] == []
    text = as_text(result)
    assert "billing.invoices (team:billing), reads sales.orders: affected, not previewed here" in text
    assert "finance.revenue (team:finance); billing.invoices (team:billing, not previewed here)" in text
    markdown = as_markdown(result)
    assert "### Affected, not previewed here (code in their own repositories)" in markdown
    assert "- `billing.invoices` (team:billing), reads `sales.orders`" in markdown and "**newly failing**" in markdown
