"""A safe evaluator for row filters such as ``--where "params_N > 1e8 and loss < 3"``.

The expression is parsed with :mod:`ast` and *interpreted* node by node over a whitelist;
nothing is ever passed to :func:`eval`. Only these constructs are accepted:

* column names as bare identifiers (``loss``) or back-quoted (```my column` > 1``);
* numbers (``3``, ``2.5``, ``1e8``), string literals (``'pythia-70m'``), ``True``/``False``,
  and the constants ``inf`` and ``nan`` (unless a column has that name);
* comparisons ``== != < <= > >=``, chained (``1e8 <= params_N < 1e10``);
* ``in`` / ``not in`` with a list or tuple literal (``task in ['piqa', 'sciq']``);
* ``and`` / ``or`` / ``not`` and the element-wise ``&`` / ``|`` / ``~``;
* arithmetic ``+ - * / **`` and unary ``-`` / ``+`` on numbers;
* the functions ``log``, ``log10``, ``log2``, ``exp``, ``sqrt``, ``abs``, ``isnan`` and
  ``isfinite``, each with one positional argument.

Attribute access, subscripts, other calls, keyword arguments, lambdas, comprehensions and
every other construct are refused with a :class:`~scalelab.errors.DataError`.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np

from scalelab.errors import DataError

__all__ = ["FUNCTIONS", "evaluate", "evaluate_mask"]

#: Longest accepted expression, in characters (guards the parser against absurd input).
MAX_EXPRESSION_LENGTH = 2000

#: Functions callable inside an expression: name -> (numpy function, returns boolean).
FUNCTIONS: Mapping[str, tuple[Callable[[Any], Any], bool]] = {
    "log": (np.log, False),
    "log10": (np.log10, False),
    "log2": (np.log2, False),
    "exp": (np.exp, False),
    "sqrt": (np.sqrt, False),
    "abs": (np.abs, False),
    "isnan": (np.isnan, True),
    "isfinite": (np.isfinite, True),
}

_CONSTANTS: Mapping[str, float] = {"inf": float("inf"), "nan": float("nan")}

_EXAMPLE = 'e.g. --where "params_N > 1e8 and loss < 3"'

# A value during evaluation: a column-length array or a scalar (str, bool or numpy float).
Value: TypeAlias = "np.ndarray | str | bool | np.floating"

_COMPARE = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_COMPARE_SYMBOL = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_ARITHMETIC = {
    ast.Add: (np.add, "+"),
    ast.Sub: (np.subtract, "-"),
    ast.Mult: (np.multiply, "*"),
    ast.Div: (np.true_divide, "/"),
    ast.Pow: (np.power, "**"),
}
_NODE_NAMES = {
    ast.Attribute: "attribute access ('.')",
    ast.Subscript: "indexing ('[...]')",
    ast.Lambda: "lambda",
    ast.IfExp: "'... if ... else ...'",
    ast.Dict: "a dict literal",
    ast.Set: "a set literal",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string",
    ast.Starred: "'*' unpacking",
    ast.NamedExpr: "':='",
}


def evaluate_mask(
    expression: str,
    columns: Mapping[str, np.ndarray],
    n_rows: int,
    *,
    source: str = "the table",
) -> np.ndarray:
    """Evaluate a filter expression to a boolean row mask.

    Parameters
    ----------
    expression : str
        The condition, e.g. ``"params_N > 1e8 and excluded_by_epoch == 0"``.
    columns : Mapping[str, numpy.ndarray]
        Column name -> 1-D array of length ``n_rows`` (float, bool, or object of str).
    n_rows : int
        Number of rows; a constant condition (``True``) is broadcast to this length.
    source : str, optional
        Name of the data, used in error messages.

    Returns
    -------
    numpy.ndarray
        Boolean array of shape ``(n_rows,)``.

    Raises
    ------
    DataError
        If the expression does not parse, uses a construct outside the whitelist, names an
        unknown column, mixes text and numbers, or does not produce true/false values.
    """
    value = evaluate(expression, columns, source=source)
    if isinstance(value, (bool, np.bool_)):
        return np.full(n_rows, bool(value))
    if isinstance(value, np.ndarray) and value.dtype == np.bool_:
        return np.broadcast_to(value, (n_rows,)).copy()
    kind = "text" if _is_text(value) else "numbers"
    raise DataError(
        f'--where "{expression}" gives {kind}, not true/false for each row; '
        f"write a condition, {_EXAMPLE}"
    )


def evaluate(
    expression: str,
    columns: Mapping[str, np.ndarray],
    *,
    source: str = "the table",
) -> Value:
    """Evaluate an expression over columns and return its value.

    Parameters
    ----------
    expression : str
        Expression in the restricted grammar described in the module docstring.
    columns : Mapping[str, numpy.ndarray]
        Column name -> 1-D array (float, bool, or object of str).
    source : str, optional
        Name of the data, used in error messages.

    Returns
    -------
    numpy.ndarray or scalar
        An array for expressions involving a column, a scalar otherwise.

    Raises
    ------
    DataError
        On any syntax error, refused construct, unknown column or type mismatch.
    """
    if not isinstance(expression, str):
        raise DataError(f"a --where condition must be text, not {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise DataError(f"the --where condition is empty; {_EXAMPLE}")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise DataError(
            f"the --where condition is {len(text)} characters long; "
            f"the limit is {MAX_EXPRESSION_LENGTH}: split it into simpler conditions"
        )
    rewritten, quoted = _replace_backquotes(text, expression)
    try:
        tree = ast.parse(rewritten, mode="eval")
    except SyntaxError as exc:
        where = f" at character {exc.offset}" if exc.offset else ""
        raise DataError(
            f'--where "{expression}" is not a valid expression ({exc.msg}{where}); '
            f"quote text values and back-quote column names with spaces, {_EXAMPLE}"
        ) from None
    except (ValueError, RecursionError, MemoryError):
        raise DataError(f'--where "{expression}" is not a valid expression; {_EXAMPLE}') from None
    interpreter = _Interpreter(expression, columns, quoted, source)
    with np.errstate(all="ignore"):
        try:
            return interpreter.visit(tree.body)
        except RecursionError:
            raise DataError(f'--where "{expression}" is nested too deeply; simplify it') from None


def _replace_backquotes(text: str, expression: str) -> tuple[str, dict[str, str]]:
    """Replace ```name``` by placeholder identifiers, outside string literals."""
    if "`" not in text:
        return text, {}
    out: list[str] = []
    quoted: dict[str, str] = {}
    i = 0
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote is not None:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise DataError(
                    f'--where "{expression}" has an unclosed back-quote; '
                    "write column names with spaces as `my column`"
                )
            placeholder = f"__scalelab_bq{len(quoted)}__"
            quoted[placeholder] = text[i + 1 : end]
            out.append(f" {placeholder} ")
            i = end + 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip(), quoted


def _is_text(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "OUS"


def _is_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    return isinstance(value, np.ndarray) and value.dtype == np.bool_


class _Interpreter:
    """Walks a parsed expression, allowing only whitelisted nodes."""

    def __init__(
        self,
        expression: str,
        columns: Mapping[str, np.ndarray],
        quoted: Mapping[str, str],
        source: str,
    ) -> None:
        self.expression = expression
        self.columns = columns
        self.quoted = quoted
        self.source = source

    # -- helpers --------------------------------------------------------------------------
    def _fail(self, problem: str, fix: str = _EXAMPLE) -> DataError:
        return DataError(f'--where "{self.expression}": {problem}; {fix}')

    def _describe(self, node: ast.AST) -> str:
        try:
            text = ast.unparse(node)
        except Exception:  # pragma: no cover - unparse of a parsed node should not fail
            return type(node).__name__
        for placeholder, name in self.quoted.items():
            text = text.replace(placeholder, f"`{name}`")
        return text if len(text) <= 60 else text[:57] + "..."

    def _numeric(self, value: Value, node: ast.AST, what: str) -> Value:
        if _is_text(value):
            raise self._fail(
                f"{what} needs numbers but {self._describe(node)!s} is text",
                "compare text only with == != in, e.g. model == 'pythia-70m'",
            )
        if isinstance(value, np.ndarray):
            return value.astype(np.float64, copy=False)
        return np.float64(value)

    def _boolean(self, value: Value, node: ast.AST, what: str) -> Value:
        if _is_bool(value):
            return value
        raise self._fail(
            f"{what} needs true/false operands but {self._describe(node)} is not a condition",
            "add parentheses around comparisons, e.g. (loss < 3) & (params_N > 1e8)",
        )

    # -- dispatch -------------------------------------------------------------------------
    def visit(self, node: ast.AST) -> Value:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            what = _NODE_NAMES.get(type(node), f"'{self._describe(node)}'")
            raise self._fail(
                f"{what} is not allowed",
                "use column names, numbers, quoted text, comparisons, and/or/not, "
                f"+ - * / ** and {', '.join(FUNCTIONS)}",
            )
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Value:
        value = node.value
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return np.float64(value)
        if isinstance(value, str):
            return value
        raise self._fail(
            f"the literal {self._describe(node)} is not allowed",
            "use numbers, quoted text, True or False",
        )

    def visit_Name(self, node: ast.Name) -> Value:
        name = self.quoted.get(node.id, node.id)
        if name in self.columns:
            return self.columns[name]
        if node.id not in self.quoted and name in _CONSTANTS:
            return np.float64(_CONSTANTS[name])
        if name in FUNCTIONS:
            raise self._fail(f"{name} is a function", f"call it, e.g. {name}(loss)")
        available = ", ".join(self.columns) or "(none)"
        close = difflib.get_close_matches(name, list(self.columns), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DataError(
            f"--where \"{self.expression}\" names unknown column '{name}' in {self.source}{hint}; "
            f"available: {available}"
        )

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Value:
        operand = self.visit(node.operand)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            symbol = "not" if isinstance(node.op, ast.Not) else "~"
            return np.logical_not(self._boolean(operand, node.operand, f"'{symbol}'"))
        if isinstance(node.op, ast.USub):
            return np.negative(self._numeric(operand, node.operand, "'-'"))
        if isinstance(node.op, ast.UAdd):
            return self._numeric(operand, node.operand, "'+'")
        raise self._fail("this operator is not allowed")  # pragma: no cover

    def visit_BinOp(self, node: ast.BinOp) -> Value:
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            symbol = "&" if isinstance(node.op, ast.BitAnd) else "|"
            left = self._boolean(self.visit(node.left), node.left, f"'{symbol}'")
            right = self._boolean(self.visit(node.right), node.right, f"'{symbol}'")
            if symbol == "&":
                return np.logical_and(left, right)
            return np.logical_or(left, right)
        entry = _ARITHMETIC.get(type(node.op))
        if entry is None:
            raise self._fail(
                f"the operator in {self._describe(node)} is not allowed",
                "use + - * / ** for arithmetic",
            )
        func, symbol = entry
        left = self._numeric(self.visit(node.left), node.left, f"'{symbol}'")
        right = self._numeric(self.visit(node.right), node.right, f"'{symbol}'")
        return func(left, right)

    def visit_BoolOp(self, node: ast.BoolOp) -> Value:
        symbol = "and" if isinstance(node.op, ast.And) else "or"
        func = np.logical_and if symbol == "and" else np.logical_or
        result: Value | None = None
        for operand_node in node.values:
            operand = self._boolean(self.visit(operand_node), operand_node, f"'{symbol}'")
            result = operand if result is None else func(result, operand)
        assert result is not None
        return result

    def visit_Compare(self, node: ast.Compare) -> Value:
        left_node: ast.AST = node.left
        left = self.visit(left_node)
        if len(node.ops) > 1 and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            raise self._fail(
                f"{self._describe(node)} chains 'in' with another comparison",
                "combine them with 'and', e.g. task in ['piqa'] and step > 0",
            )
        for op in node.ops:
            if type(op) not in _COMPARE_SYMBOL or isinstance(op, (ast.Is, ast.IsNot)):
                raise self._fail(
                    f"'{_COMPARE_SYMBOL.get(type(op), type(op).__name__)}' is not allowed",
                    "compare with == != < <= > >= in",
                )
        result: Value | None = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                negate = isinstance(op, ast.NotIn)
                return self._membership(left, left_node, right_node, negate=negate)
            right = self.visit(right_node)
            part = self._compare(op, left, left_node, right, right_node)
            result = part if result is None else np.logical_and(result, part)
            left, left_node = right, right_node
        assert result is not None
        return result

    def _compare(
        self, op: ast.cmpop, left: Value, left_node: ast.AST, right: Value, right_node: ast.AST
    ) -> Value:
        symbol = _COMPARE_SYMBOL.get(type(op), "?")
        func = _COMPARE.get(type(op))
        if func is None:
            raise self._fail(f"'{symbol}' is not allowed", "use == != < <= > >= in")
        if _is_text(left) != _is_text(right):
            text_node, other_node = (
                (left_node, right_node) if _is_text(left) else (right_node, left_node)
            )
            raise self._fail(
                f"{self._describe(text_node)} is text but {self._describe(other_node)} is a number",
                "quote text values and leave numbers unquoted, e.g. size == '70m' or loss < 3",
            )
        if _is_text(left):
            result = func(np.asarray(left, dtype=object), np.asarray(right, dtype=object))
            if isinstance(result, np.ndarray):
                return result.astype(bool)
            return bool(result)
        left_num = (
            left if _is_bool(left) and _is_bool(right) else self._numeric(left, left_node, symbol)
        )
        right_num = (
            right
            if _is_bool(left) and _is_bool(right)
            else self._numeric(right, right_node, symbol)
        )
        out = func(left_num, right_num)
        return out if isinstance(out, np.ndarray) else bool(out)

    def _membership(
        self, left: Value, left_node: ast.AST, right_node: ast.AST, *, negate: bool
    ) -> Value:
        if not isinstance(right_node, (ast.List, ast.Tuple)):
            raise self._fail(
                f"'in' needs a list of values, not {self._describe(right_node)}",
                "e.g. task in ['piqa', 'sciq']",
            )
        items = [self._literal(elt) for elt in right_node.elts]
        text = _is_text(left)
        for item, elt in zip(items, right_node.elts, strict=True):
            if isinstance(item, str) != text:
                expected = "text" if text else "a number"
                raise self._fail(
                    f"{self._describe(elt)} in the list is not {expected} like "
                    f"{self._describe(left_node)}",
                    "list values of the same kind as the column",
                )
        if text:
            values = np.asarray(left, dtype=object)
            result = np.isin(values, np.asarray(items, dtype=object))
        else:
            numeric = self._numeric(left, left_node, "'in'")
            result = np.isin(numeric, np.asarray(items, dtype=np.float64))
        if negate:
            result = np.logical_not(result)
        return result if np.ndim(result) else bool(result)

    def _literal(self, node: ast.AST) -> str | float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
            return node.value if isinstance(node.value, str) else float(node.value)
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))
            and not isinstance(node.operand.value, bool)
        ):
            value = float(node.operand.value)
            return -value if isinstance(node.op, ast.USub) else value
        raise self._fail(
            f"{self._describe(node)} in an 'in' list is not a plain number or quoted text",
            "e.g. task in ['piqa', 'sciq'] or size in [70e6, 160e6]",
        )

    def visit_Call(self, node: ast.Call) -> Value:
        allowed = ", ".join(FUNCTIONS)
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self._fail(
                f"calling {self._describe(node.func)} is not allowed",
                f"the only functions are {allowed}",
            )
        name = node.func.id
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self._fail(f"{name}() takes exactly one argument", f"e.g. {name}(params_N)")
        func, _ = FUNCTIONS[name]
        argument = self._numeric(self.visit(node.args[0]), node.args[0], f"{name}()")
        out = func(argument)
        return (
            out
            if isinstance(out, np.ndarray)
            else (bool(out) if isinstance(out, np.bool_) else np.float64(out))
        )
