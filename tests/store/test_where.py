"""Tests for the safe --where evaluator (scalelab.store.where)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalelab.errors import DataError
from scalelab.store import Table
from scalelab.store.where import evaluate


@pytest.fixture
def table() -> Table:
    return Table.from_columns(
        {
            "N": [1e7, 1e8, 1e9, 1e10, 2e10],
            "loss": [4.0, 3.2, 2.6, 2.2, math.nan],
            "task": ["piqa", "sciq", "piqa", "arc_easy", "sciq"],
            "deduped": [True, False, True, False, True],
            "val loss": [1.0, 2.0, 3.0, 4.0, 5.0],
        },
        source="runs",
    )


def rows(table: Table, expression: str) -> list[int]:
    return [int(i) for i in np.flatnonzero(table.mask(expression))]


def test_comparisons_and_scientific_notation(table: Table) -> None:
    assert rows(table, "N > 1e8") == [2, 3, 4]
    assert rows(table, "N >= 1E8") == [1, 2, 3, 4]
    assert rows(table, "N == 1e9") == [2]
    assert rows(table, "N != 1e9") == [0, 1, 3, 4]
    assert rows(table, "loss <= 2.6") == [2, 3]  # NaN compares false
    assert rows(table, "2.5 < loss") == [0, 1, 2]


def test_chained_comparison(table: Table) -> None:
    assert rows(table, "1e8 <= N < 1e10") == [1, 2]
    assert rows(table, "1e8 < N < 1e10 < 2e10") == [2]


def test_precedence(table: Table) -> None:
    # 'and' binds tighter than 'or'
    assert rows(table, "N < 1e8 or N > 1e9 and loss < 3") == [0, 3]
    assert rows(table, "(N < 1e8 or N > 1e9) and loss < 3") == [3]
    # 'not' binds looser than comparisons
    assert rows(table, "not N > 1e8") == [0, 1]
    # arithmetic before comparison, ** before unary minus, * before +
    assert rows(table, "loss * 2 + 1 > 8") == [0]
    assert rows(table, "-2 ** 2 == -4 and N < 1e8") == [0]
    assert rows(table, "(N / 1e9) ** 0.5 >= 1") == [2, 3, 4]
    # & | ~ with parentheses, like pandas
    assert rows(table, "(N > 1e8) & deduped") == [2, 4]
    assert rows(table, "~deduped | (task == 'piqa')") == [0, 1, 2, 3]


def test_bitwise_without_parentheses_explains(table: Table) -> None:
    with pytest.raises(DataError, match=r"'&' needs true/false operands.*add parentheses"):
        table.mask("N > 1e8 & loss < 3")


def test_strings_and_membership(table: Table) -> None:
    assert rows(table, "task == 'piqa'") == [0, 2]
    assert rows(table, 'task != "piqa"') == [1, 3, 4]
    assert rows(table, "task in ['piqa', 'arc_easy']") == [0, 2, 3]
    assert rows(table, "task not in ('piqa', 'arc_easy')") == [1, 4]
    assert rows(table, "N in [1e7, 1e9]") == [0, 2]
    assert rows(table, "N not in [-1, 1e7]") == [1, 2, 3, 4]
    assert rows(table, "task in []") == []
    assert rows(table, "task < 'q'") == [0, 2, 3]


def test_booleans_functions_and_backquotes(table: Table) -> None:
    assert rows(table, "deduped") == [0, 2, 4]
    assert rows(table, "not deduped") == [1, 3]
    assert rows(table, "deduped == False") == [1, 3]
    assert rows(table, "isnan(loss)") == [4]
    assert rows(table, "isfinite(loss) and log10(N) >= 9") == [2, 3]
    assert rows(table, "abs(log(N) - log(1e9)) < 1e-9") == [2]
    assert rows(table, "exp(0) == 1 and sqrt(N) == 1e5") == [3]
    assert rows(table, "`val loss` > 3") == [3, 4]
    assert rows(table, "`val loss` > 3 and task == 'a`b'") == []
    assert rows(table, "True") == [0, 1, 2, 3, 4]
    assert rows(table, "loss < inf") == [0, 1, 2, 3]


def test_evaluate_returns_values(table: Table) -> None:
    columns = {name: table[name] for name in table.columns}
    assert evaluate("1 + 2", columns) == 3.0
    assert evaluate("N / 1e7", columns).tolist() == [1.0, 10.0, 100.0, 1000.0, 2000.0]
    assert evaluate("10 ** 10 ** 10", columns) == math.inf  # no huge Python ints


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("__import__('os')", "calling __import__ is not allowed"),
        ("().__class__", "attribute access"),
        ("loss.__class__.__bases__", "attribute access"),
        ("open('/etc/passwd')", "calling open is not allowed"),
        ("eval('1')", "calling eval is not allowed"),
        ("N.max() > 0", "calling N.max is not allowed"),
        ("[c for c in task]", "comprehension"),
        ("(lambda: 1)()", "calling"),
        ("lambda: 1", "lambda"),
        ("task[0] == 'p'", "indexing"),
        ("{'a': 1}", "dict literal"),
        ("log(x=N) > 0", "exactly one argument"),
        ("log(N, 10) > 0", "exactly one argument"),
        ("N if deduped else loss", "if ... else"),
        ("N is None", "'is' is not allowed"),
        ("(x := 1)", "':='"),
        ("b'abc' == task", "literal b'abc' is not allowed"),
        ("N // 2 > 1", "operator"),
    ],
)
def test_refuses_unsafe_or_unsupported(table: Table, expression: str, expected: str) -> None:
    with pytest.raises(DataError) as info:
        table.mask(expression)
    message = str(info.value)
    assert expected in message
    assert f'--where "{expression}"' in message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("N >", "is not a valid expression"),
        ("N > > 1", "is not a valid expression"),
        ("loss < 3 and", "is not a valid expression"),
        ("`val loss > 3", "unclosed back-quote"),
        ("", "condition is empty"),
        ("   ", "condition is empty"),
        ("N" + " + N" * 1500 + " > 0", "the limit is"),
    ],
)
def test_syntax_errors(table: Table, expression: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        table.mask(expression)


def test_unknown_column_lists_available(table: Table) -> None:
    with pytest.raises(DataError) as info:
        table.mask("los < 3")
    message = str(info.value)
    assert "unknown column 'los' in runs" in message
    assert "did you mean 'loss'" in message
    assert "available: N, loss, task, deduped, val loss" in message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("loss", "gives numbers, not true/false"),
        ("N * 2", "gives numbers, not true/false"),
        ("task", "gives text, not true/false"),
        ("'piqa'", "gives text, not true/false"),
        ("loss and deduped", "'and' needs true/false operands"),
        ("not N", "'not' needs true/false operands"),
        ("task > 3", "task is text but 3 is a number"),
        ("N == '1e9'", "'1e9' is text but N is a number"),
        ("task + 'x' == task", "needs numbers but task is text"),
        ("task in [1, 2]", "is not text like task"),
        ("N in ['a']", "is not a number like N"),
        ("N in [N]", "not a plain number or quoted text"),
        ("task in task", "needs a list of values"),
        ("log > 0", "log is a function"),
        ("task in ['a'] < 2", "chains 'in'"),
    ],
)
def test_type_errors(table: Table, expression: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        table.mask(expression)


def test_where_returns_rows_and_refuses_empty_match(table: Table) -> None:
    kept = table.where("task == 'sciq'")
    assert len(kept) == 2
    assert kept.source == "runs"
    assert list(kept.row_numbers) == [1, 4]
    with pytest.raises(DataError) as info:
        table.where("N > 1e12")
    assert str(info.value) == '--where "N > 1e12" matched none of the 5 rows of runs'


def test_where_never_calls_eval(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert rows(table, "N > 1e9 and task == 'arc_easy'") == [3]
