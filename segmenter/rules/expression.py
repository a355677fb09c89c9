"""Tier conditions (SPEC section 5): tokenizer, recursive-descent parser and compiler to closures.

Grammar (keywords are lowercase)::

    condition  := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | "true" | "false" | comparison
    comparison := FEATURE OP NUMBER          OP: < <= > >= == !=    NUMBER: -?[0-9]+(\\.[0-9]+)?

A comparison on a null feature is false (so `not (recency_days >= 90)` holds when recency is null). Numbers
are exact (`Fraction`); a money feature's number is in currency units and is compared with the value in cents
as number x 100, exactly. Conditions are compiled to plain Python closures; nothing is ever passed to eval.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from segmenter.rules.model import FEATURES, Comparison, Condition, FeatureMap, scaled_number

KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
MAX_DEPTH = 64  # nesting of parentheses and `not`
_OPERATOR_CHARS = "<>=!"
_OPERATORS = frozenset({"<", "<=", ">", ">=", "==", "!="})
_OPERATOR_HINTS = {
    "=": " (did you mean '=='?)",
    "=>": " (did you mean '>='?)",
    "=<": " (did you mean '<='?)",
    "<>": " (did you mean '!='?)",
    "===": " (did you mean '=='?)",
    "!": " (use 'not' to negate a condition, '!=' to compare)",
}
_FOREIGN = {"&&": "and", "&": "and", "||": "or", "|": "or"}


class ConditionError(ValueError):
    """A condition that does not parse. `column` is 1-based within the condition text."""

    SYNTAX = "syntax error"
    NON_NUMBER = "comparison with a non-number"
    UNKNOWN_FEATURE = "unknown feature"

    def __init__(
        self, kind: str, reason: str, column: int, feature: str | None = None, hint: str = ""
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.column = column
        self.feature = feature
        self.hint = hint
        super().__init__(self.describe("condition"))

    def describe(self, where: str) -> str:
        """One line naming `where` (e.g. "condition of tier 'churned'"), the column and what was found."""
        if self.kind == self.UNKNOWN_FEATURE:
            return f"unknown feature '{self.feature}' in {where}{self.hint}"
        return f"{self.kind} in {where} at column {self.column}: {self.reason}{self.hint}"


# ------------------------------------------------------------------------------------------------ AST


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


@dataclass(frozen=True, slots=True)
class Compare:
    comparison: Comparison
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Const | Compare | Not | And | Or


# ------------------------------------------------------------------------------------------------ tokens

_END, _NUMBER, _NAME, _OP, _LPAREN, _RPAREN, _STRING = "end", "number", "name", "op", "(", ")", "string"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        if self.kind == _END:
            return "end of condition"
        if self.kind == _NUMBER:
            return f"number '{self.text}'"
        if self.kind == _STRING:
            text = self.text if len(self.text) <= 40 else self.text[:36] + "..." + self.text[0]
            return "string " + text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return f"'{self.text}'"


_DIGITS = frozenset("0123456789")


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


class _Lexer:
    """Produces tokens on demand, so that the first error by position is the one reported."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, reason: str, pos: int, hint: str = "") -> ConditionError:
        return ConditionError(ConditionError.SYNTAX, reason, pos + 1, hint=hint)

    def next(self) -> _Token:
        text, n = self.text, len(self.text)
        pos = self.pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            self.pos = pos
            return _Token(_END, "", pos + 1)
        start = pos
        char = text[pos]
        if char == "(" or char == ")":
            self.pos = pos + 1
            return _Token(_LPAREN if char == "(" else _RPAREN, char, start + 1)
        if char in _DIGITS or (char == "-" and pos + 1 < n and text[pos + 1] in _DIGITS):
            return self._number(start)
        if char.isascii() and (char.isalpha() or char == "_"):
            # Names may contain '-' and '.' between word characters so that `recency-days` is reported as
            # one unknown feature (with a suggestion) rather than as a stray character.
            pos += 1
            while pos < n and (
                _is_name_char(text[pos])
                or (text[pos] in "-." and pos + 1 < n and text[pos + 1].isascii() and text[pos + 1].isalnum())
            ):
                pos += 1
            self.pos = pos
            return _Token(_NAME, text[start:pos], start + 1)
        if char in _OPERATOR_CHARS:
            while pos < n and text[pos] in _OPERATOR_CHARS:
                pos += 1
            op = text[start:pos]
            if op not in _OPERATORS:
                hint = _OPERATOR_HINTS.get(op, " (operators are < <= > >= == !=)")
                raise self.error(f"unknown operator '{op}'", start, hint)
            self.pos = pos
            return _Token(_OP, op, start + 1)
        if char in "\"'":
            end = text.find(char, pos + 1)
            if end < 0:
                raise self.error(f"unterminated string starting with {char}", start)
            self.pos = end + 1
            return _Token(_STRING, text[start : end + 1], start + 1)
        if char in "&|":
            while pos < n and text[pos] == char:
                pos += 1
            found = text[start:pos]
            word = _FOREIGN.get(found, _FOREIGN[char])
            raise self.error(f"unexpected '{found}'", start, f" (use '{word}')")
        if char == "." and pos + 1 < n and text[pos + 1] in _DIGITS:
            while pos < n and (_is_name_char(text[pos]) or text[pos] == "."):
                pos += 1
            raise self.error(
                f"invalid number '{text[start:pos]}'", start, " (numbers look like 5, -2 or 12.50)"
            )
        raise self.error(f"unexpected character {char!r}", start)

    def _number(self, start: int) -> _Token:
        text, n = self.text, len(self.text)
        pos = start + 1 if text[start] == "-" else start
        while pos < n and text[pos] in _DIGITS:
            pos += 1
        if pos + 1 < n and text[pos] == "." and text[pos + 1] in _DIGITS:
            pos += 1
            while pos < n and text[pos] in _DIGITS:
                pos += 1
        if pos < n and (_is_name_char(text[pos]) or text[pos] == "."):
            end = pos
            while end < n and (_is_name_char(text[end]) or text[end] in ".-+"):
                end += 1
            raise self.error(
                f"invalid number '{text[start:end]}'", start, " (numbers look like 5, -2 or 12.50)"
            )
        self.pos = pos
        return _Token(_NUMBER, text[start:pos], start + 1)


# ------------------------------------------------------------------------------------------------ parser


def _suggest(name: str) -> str:
    lowered = name.lower()
    if lowered in KEYWORDS:
        return f" (keywords are lowercase: did you mean '{lowered}'?)"
    if lowered in FEATURES:
        return f" (did you mean '{lowered}'?)"
    candidate = lowered.replace("-", "_").replace(".", "_")
    if candidate in FEATURES:
        return f" (did you mean '{candidate}'?)"
    close = difflib.get_close_matches(candidate, sorted(FEATURES), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (features: {', '.join(sorted(FEATURES))})"


class _Parser:
    def __init__(self, text: str) -> None:
        self.lexer = _Lexer(text)
        self.token = self.lexer.next()
        self.depth = 0

    def advance(self) -> _Token:
        token = self.token
        self.token = self.lexer.next()
        return token

    def error(self, reason: str, token: _Token | None = None, hint: str = "") -> ConditionError:
        token = token or self.token
        return ConditionError(ConditionError.SYNTAX, reason, token.column, hint=hint)

    def is_keyword(self, word: str) -> bool:
        return self.token.kind == _NAME and self.token.text == word

    def parse(self) -> Node:
        if self.token.kind == _END:
            raise self.error("the condition is empty", hint=" (use `true` for a catch-all tier)")
        node = self.or_expr()
        if self.token.kind != _END:
            token = self.token
            if token.kind == _RPAREN:
                raise self.error("unmatched ')'")
            hint = ""
            if token.kind == _NAME and token.text.lower() in ("and", "or"):
                hint = " (keywords are lowercase)"
            raise self.error(f"expected 'and', 'or' or end of condition, found {token.describe()}", hint=hint)
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.is_keyword("or"):
            self.advance()
            operands.append(self.and_expr())
        return _flatten(Or, operands)

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.is_keyword("and"):
            self.advance()
            operands.append(self.not_expr())
        return _flatten(And, operands)

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the condition is nested too deeply (more than {MAX_DEPTH} levels)", token)

    def not_expr(self) -> Node:
        if self.is_keyword("not"):
            self.enter(self.advance())
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand)
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind == _LPAREN:
            self.enter(self.advance())
            node = self.or_expr()
            self.depth -= 1
            if self.token.kind != _RPAREN:
                raise self.error(
                    f"expected ')' to close '(' at column {token.column}, found {self.token.describe()}"
                )
            self.advance()
            return node
        if token.kind == _NAME:
            if token.text == "true" or token.text == "false":
                self.advance()
                return Const(token.text == "true")
            if token.text in KEYWORDS:
                raise self.error(
                    f"expected a comparison, `true`, `false`, `not` or '(', found '{token.text}'"
                )
            return self.comparison()
        if token.kind == _NUMBER:
            raise self.error(
                f"expected a feature name, found {token.describe()}",
                hint=" (comparisons are written FEATURE OP NUMBER, e.g. recency_days >= 90)",
            )
        expected = "expected a comparison, `true`, `false`, `not` or '('"
        if token.kind == _END:
            raise self.error(f"unexpected end of condition, {expected}")
        raise self.error(f"{expected}, found {token.describe()}")

    def comparison(self) -> Node:
        name = self.advance()
        if name.text not in FEATURES:
            raise ConditionError(
                ConditionError.UNKNOWN_FEATURE,
                f"unknown feature '{name.text}'",
                name.column,
                feature=name.text,
                hint=_suggest(name.text),
            )
        op = self.token
        if op.kind != _OP:
            raise self.error(
                f"expected a comparison operator (< <= > >= == !=) after '{name.text}', found {op.describe()}"
            )
        self.advance()
        number = self.token
        if number.kind != _NUMBER:
            raise ConditionError(
                ConditionError.NON_NUMBER,
                f"expected a number after '{name.text} {op.text}', found {number.describe()}",
                number.column,
                hint=" (the right-hand side of a comparison must be a number such as 90 or 12.50)",
            )
        self.advance()
        return Compare(Comparison(name.text, op.text, Fraction(number.text)), name.column)


def _flatten(kind: type[And] | type[Or], operands: list[Node]) -> Node:
    if len(operands) == 1:
        return operands[0]
    flat: list[Node] = []
    for operand in operands:
        if isinstance(operand, kind):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return kind(tuple(flat))


def parse_condition(text: str) -> Node:
    """Parse a condition into its tree; raises ConditionError (with a 1-based column) on any mistake.

    Nested `and`s (and `or`s) are flattened: `(a and b) and c` is `And((a, b, c))`.
    """
    if not isinstance(text, str):
        raise TypeError(f"condition must be a string, not {type(text).__name__}")
    return _Parser(text).parse()


# ------------------------------------------------------------------------------------------------ rendering


def format_number(number: Fraction) -> str:
    """Canonical decimal text of an exact number: `1000`, `12.5`, `-0.25` (p/q if not a finite decimal)."""
    if number.denominator == 1:
        return str(number.numerator)
    denominator = number.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{number.numerator}/{number.denominator}"
    sign = "-" if number < 0 else ""
    whole, rest = divmod(abs(number.numerator), number.denominator)
    digits = []
    while rest:
        digit, rest = divmod(rest * 10, number.denominator)
        digits.append(str(digit))
    return f"{sign}{whole}.{''.join(digits)}"


_PRECEDENCE = {Or: 1, And: 2, Not: 3, Compare: 4, Const: 4}


def normalise(node: Node) -> str:
    """Canonical text of a condition: single spaces, minimal parentheses, canonical numbers."""
    return _render(node, 0)


def _render(node: Node, context: int) -> str:
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, Compare):
        return str(node.comparison)
    precedence = _PRECEDENCE[type(node)]
    if isinstance(node, Not):
        text = f"not {_render(node.operand, precedence)}"
    else:
        joiner = " or " if isinstance(node, Or) else " and "
        # `a or (b or c)` is flattened when parsed; operands of the same kind are parenthesised to keep
        # hand-built trees faithful.
        text = joiner.join(_render(operand, precedence + 1) for operand in node.operands)
    return f"({text})" if precedence < context else text


def comparisons_of(node: Node) -> tuple[Comparison, ...]:
    """The distinct comparisons of a condition, in order of appearance."""
    found: dict[Comparison, None] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Compare):
            found.setdefault(current.comparison)
        elif isinstance(current, Not):
            stack.append(current.operand)
        elif isinstance(current, And | Or):
            stack.extend(reversed(current.operands))
    return tuple(found)


# ------------------------------------------------------------------------------------------------ compiler


def _always_true(features: FeatureMap) -> bool:
    return True


def _always_false(features: FeatureMap) -> bool:
    return False


def _compile_comparison(feature: str, op: str, threshold: int | Fraction) -> Condition:
    # One specialised closure per operator: no operator-function call on the hot path. A feature missing
    # from the mapping counts as null.
    if op == "<":

        def check(features: FeatureMap) -> bool:
            try:
                value = features[feature]
            except KeyError:
                return False
            return value is not None and value < threshold

    elif op == "<=":

        def check(features: FeatureMap) -> bool:
            try:
                value = features[feature]
            except KeyError:
                return False
            return value is not None and value <= threshold

    elif op == ">":

        def check(features: FeatureMap) -> bool:
            try:
                value = features[feature]
            except KeyError:
                return False
            return value is not None and value > threshold

    elif op == ">=":

        def check(features: FeatureMap) -> bool:
            try:
                value = features[feature]
            except KeyError:
                return False
            return value is not None and value >= threshold

    elif op == "==":

        def check(features: FeatureMap) -> bool:
            try:
                value = features[feature]
            except KeyError:
                return False
            return value is not None and value == threshold

    elif op == "!=":

        def check(features: FeatureMap) -> bool:
            try:
                value = features[feature]
            except KeyError:
                return False
            return value is not None and value != threshold

    else:
        raise ValueError(f"unknown operator {op!r}")
    check.__qualname__ = f"<{feature} {op} {threshold}>"
    return check


def compile_node(node: Node) -> Condition:
    """A closure `features -> bool` equivalent to the tree (short-circuit, left to right)."""
    if isinstance(node, Const):
        return _always_true if node.value else _always_false
    if isinstance(node, Compare):
        comparison = node.comparison
        return _compile_comparison(
            comparison.feature, comparison.op, scaled_number(comparison.feature, comparison.number)
        )
    if isinstance(node, Not):
        inner = compile_node(node.operand)
        return lambda features: not inner(features)
    parts = tuple(compile_node(operand) for operand in node.operands)
    if isinstance(node, And):
        if len(parts) == 2:
            a, b = parts
            return lambda features: a(features) and b(features)
        if len(parts) == 3:
            a, b, c = parts
            return lambda features: a(features) and b(features) and c(features)

        def all_hold(features: FeatureMap) -> bool:
            return all(part(features) for part in parts)

        return all_hold
    if len(parts) == 2:
        a, b = parts
        return lambda features: a(features) or b(features)
    if len(parts) == 3:
        a, b, c = parts
        return lambda features: a(features) or b(features) or c(features)

    def any_holds(features: FeatureMap) -> bool:
        return any(part(features) for part in parts)

    return any_holds


@dataclass(frozen=True)
class CompiledCondition:
    text: str
    tree: Node
    normalised: str
    comparisons: tuple[Comparison, ...]
    evaluate: Callable[[FeatureMap], bool] = field(compare=False, repr=False)

    def __call__(self, features: FeatureMap) -> bool:
        return self.evaluate(features)


def compile_condition(text: str) -> CompiledCondition:
    """Parse and compile `text`; raises ConditionError."""
    tree = parse_condition(text)
    return CompiledCondition(text, tree, normalise(tree), comparisons_of(tree), compile_node(tree))
