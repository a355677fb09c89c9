"""Tier conditions (SPEC sections 5 and 10): tokenizer, recursive-descent parser and compiler to closures.

Grammar (keywords are lowercase)::

    condition  := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | "true" | "false" | comparison | attr_test
    comparison := FEATURE OP NUMBER          OP: < <= > >= == !=    NUMBER: -?[0-9]+(\\.[0-9]+)?
    attr_test  := ATTRIBUTE OP LITERAL | ATTRIBUTE ["not"] "in" "[" LITERAL ("," LITERAL)* "]"
    ATTRIBUTE  := "attr." [a-z][a-z0-9_]{0,31}
    LITERAL    := STRING | NUMBER | "true" | "false"
    STRING     := '"' (any character but '"' and '\\' | escape)* '"'
                  escape: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX (as in JSON)

FEATURE is a built-in feature, a custom feature of the rules file, or (when the file names a model) a
predictive feature. A comparison on a null feature is false (so `not (recency_days >= 90)` holds when recency
is null). Feature numbers are exact (`Fraction`); a money feature's number is in currency units and is
compared with the value in cents as number x 100, exactly.

Attribute tests follow SPEC section 10 exactly. A missing attribute makes every test false (also `!=` and
`not in`). `==` holds for a literal of the same type and value: strings exactly, booleans as booleans (never
equal to a number: `true` is not 1), numbers by value (1985 == 1985.0). Numbers are compared as IEEE doubles:
the attribute as decoded from JSON and the literal as the double nearest its decimal text, so
`attr.score == 0.1` holds for the JSON number 0.1 (an exact comparison of the decimal 0.1 with the double
0.1000000000000000055... would never hold). `!=` is the negation of `==`, `in` holds when some literal is
`==`, `not in` is its negation, and `< <= > >=` hold only between numbers. A test that can never hold as
written (a string or boolean with `<`, `in` on a feature, a string against a feature) is an error, not a
silent false.

Conditions are compiled to plain Python closures; nothing is ever passed to eval.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from segmenter.rules.model import (
    ATTRIBUTE_PREFIX,
    BOOLEAN,
    BUILTIN_CATALOG,
    IN,
    NOT_IN,
    NUMBER,
    OPERATOR_FUNCTIONS,
    ORDERING_OPERATORS,
    PREDICTIVE_FEATURES,
    STRING,
    AttributeTest,
    Comparison,
    Condition,
    FeatureCatalog,
    FeatureMap,
    Literal,
    attribute_number,
    literal_matches,
)

KEYWORDS = frozenset({"and", "or", "not", "true", "false", "in"})
MAX_DEPTH = 64  # nesting of parentheses and `not`
MAX_LIST = 100  # literals of an `in` list (SPEC section 10)
ATTRIBUTE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
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
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERAL_HINT = ' (literals are "double-quoted strings", numbers such as 5 or 12.50, true or false)'


class ConditionError(ValueError):
    """A condition that does not parse. `column` is 1-based within the condition text."""

    SYNTAX = "syntax error"
    NON_NUMBER = "comparison with a non-number"
    UNKNOWN_FEATURE = "unknown feature"
    BAD_LIST = "invalid list"
    BAD_ATTRIBUTE = "invalid attribute name"
    TYPE_MISMATCH = "type mismatch"

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
class AttrTest:
    test: AttributeTest
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


Node = Const | Compare | AttrTest | Not | And | Or


# ------------------------------------------------------------------------------------------------ tokens

_END, _NUMBER, _NAME, _OP, _LPAREN, _RPAREN, _STRING = "end", "number", "name", "op", "(", ")", "string"
_LBRACKET, _RBRACKET, _COMMA = "[", "]", ","
_PUNCTUATION = {"(": _LPAREN, ")": _RPAREN, "[": _LBRACKET, "]": _RBRACKET, ",": _COMMA}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    column: int  # 1-based
    value: str = ""  # a string token's decoded value ('' for single-quoted strings, which are errors)

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
_HEX = frozenset("0123456789abcdefABCDEF")


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
        if char in _PUNCTUATION:
            self.pos = pos + 1
            return _Token(_PUNCTUATION[char], char, start + 1)
        if char in _DIGITS or (char == "-" and pos + 1 < n and text[pos + 1] in _DIGITS):
            return self._number(start)
        if char.isascii() and (char.isalpha() or char == "_"):
            return self._name(start)
        if char in _OPERATOR_CHARS:
            while pos < n and text[pos] in _OPERATOR_CHARS:
                pos += 1
            op = text[start:pos]
            if op not in _OPERATORS:
                hint = _OPERATOR_HINTS.get(op, " (operators are < <= > >= == !=)")
                raise self.error(f"unknown operator '{op}'", start, hint)
            self.pos = pos
            return _Token(_OP, op, start + 1)
        if char == '"':
            return self._string(start)
        if char == "'":
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

    def _name(self, start: int) -> _Token:
        # Names may contain '-' and '.' between word characters so that `recency-days` is reported as
        # one unknown feature (with a suggestion) rather than as a stray character. After `attr.` any run
        # of name characters, '-' and '.' is taken, so that a bad attribute name is reported as such.
        text, n = self.text, len(self.text)
        pos = start + 1
        while pos < n and (
            _is_name_char(text[pos])
            or (text[pos] in "-." and pos + 1 < n and text[pos + 1].isascii() and text[pos + 1].isalnum())
        ):
            pos += 1
        if (text[start:pos] == "attr" and pos < n and text[pos] == ".") or text.startswith("attr.", start):
            while pos < n and (_is_name_char(text[pos]) or text[pos] in "-."):
                pos += 1
        self.pos = pos
        return _Token(_NAME, text[start:pos], start + 1)

    def _string(self, start: int) -> _Token:
        """A double-quoted string with JSON escapes; its decoded value is the token's `value`."""
        text, n = self.text, len(self.text)
        pos = start + 1
        chars: list[str] = []
        while True:
            end = pos
            while end < n and text[end] != '"' and text[end] != "\\":
                end += 1
            chars.append(text[pos:end])
            if end >= n:
                raise self.error('unterminated string (no closing ")', start)
            if text[end] == '"':
                self.pos = end + 1
                return _Token(_STRING, text[start : end + 1], start + 1, "".join(chars))
            pos = self._escape(end, chars)

    def _escape(self, pos: int, chars: list[str]) -> int:
        """Decode the escape at `pos` (a backslash) into `chars`; the position after it."""
        text, n = self.text, len(self.text)
        if pos + 1 >= n:
            raise self.error('unterminated string (no closing ")', pos)
        char = text[pos + 1]
        if char in _ESCAPES:
            chars.append(_ESCAPES[char])
            return pos + 2
        digits = text[pos + 2 : pos + 6]
        if char == "u" and len(digits) == 4 and all(d in _HEX for d in digits):
            chars.append(chr(int(digits, 16)))
            return pos + 6
        raise self.error(
            f"invalid escape '\\{char}' in string",
            pos,
            ' (escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)',
        )

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


def _suggest(name: str, catalog: FeatureCatalog) -> str:
    lowered = name.lower()
    if lowered in KEYWORDS:
        return f" (keywords are lowercase: did you mean '{lowered}'?)"
    if lowered in PREDICTIVE_FEATURES and lowered not in catalog:
        return (
            f" ('{lowered}' is a predictive feature: the rules file must name a model, "
            "e.g. `model: {file: model.json, horizon_days: 90}`)"
        )
    if lowered in catalog:
        return f" (did you mean '{lowered}'?)"
    candidate = lowered.replace("-", "_").replace(".", "_")
    if candidate in catalog:
        return f" (did you mean '{candidate}'?)"
    close = difflib.get_close_matches(candidate, sorted(catalog.names), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (features: {', '.join(sorted(catalog.names))}; attributes are written attr.NAME)"


class _Parser:
    def __init__(self, text: str, catalog: FeatureCatalog) -> None:
        self.lexer = _Lexer(text)
        self.catalog = catalog
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
            if token.text.startswith(ATTRIBUTE_PREFIX):
                return self.attribute_test()
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

    # ---------------------------------------------------------------- features

    def comparison(self) -> Node:
        name = self.advance()
        if name.text not in self.catalog:
            raise ConditionError(
                ConditionError.UNKNOWN_FEATURE,
                f"unknown feature '{name.text}'",
                name.column,
                feature=name.text,
                hint=_suggest(name.text, self.catalog),
            )
        op = self.token
        if op.kind == _NAME and op.text in (IN, "not"):
            raise ConditionError(
                ConditionError.TYPE_MISMATCH,
                f"'{op.text}' after the feature '{name.text}': `in` and `not in` test attributes only",
                op.column,
                hint=f" (write attr.NAME in [...], or compare the feature: {name.text} >= 1)",
            )
        if op.kind != _OP:
            raise self.error(
                f"expected a comparison operator (< <= > >= == !=) after '{name.text}', found {op.describe()}"
            )
        self.advance()
        number = self.token
        if number.kind != _NUMBER:
            hint = " (the right-hand side of a comparison must be a number such as 90 or 12.50)"
            if number.kind == _STRING:
                hint = f" ('{name.text}' is a number: only attributes (attr.NAME) compare with strings)"
            raise ConditionError(
                ConditionError.NON_NUMBER,
                f"expected a number after '{name.text} {op.text}', found {number.describe()}",
                number.column,
                hint=hint,
            )
        self.advance()
        money = name.text in self.catalog.money
        return Compare(Comparison(name.text, op.text, Fraction(number.text), money), name.column)

    # ---------------------------------------------------------------- attributes

    def attribute_test(self) -> Node:
        token = self.advance()
        attribute = token.text[len(ATTRIBUTE_PREFIX) :]
        if not ATTRIBUTE_NAME_RE.fullmatch(attribute):
            raise ConditionError(
                ConditionError.BAD_ATTRIBUTE,
                f"invalid attribute name '{attribute}' in '{token.text}'",
                token.column,
                hint=" (attribute names are a lowercase letter followed by up to 31 of a-z 0-9 _)",
            )
        op = self.token
        if op.kind == _NAME and op.text in (IN, "not"):
            return AttrTest(
                AttributeTest(attribute, self.membership(token.text), self.literal_list()), token.column
            )
        if op.kind != _OP:
            raise self.error(
                f"expected an operator (< <= > >= == != in, not in) after '{token.text}', "
                f"found {op.describe()}"
            )
        self.advance()
        literal_token = self.token
        literal = self.literal(f"after '{token.text} {op.text}'")
        if op.text in ORDERING_OPERATORS and literal.kind != NUMBER:
            raise ConditionError(
                ConditionError.TYPE_MISMATCH,
                f"'{op.text}' with the {literal.kind} {literal}: < <= > >= compare numbers only",
                literal_token.column,
                hint=f" (use == or != to compare {literal.kind}s)",
            )
        return AttrTest(AttributeTest(attribute, op.text, (literal,)), token.column)

    def membership(self, name: str) -> str:
        """`in` or `not in` (the current token is `in` or `not`)."""
        if self.advance().text == IN:
            return IN
        if not self.is_keyword(IN):
            raise self.error(f"expected 'in' after '{name} not', found {self.token.describe()}")
        self.advance()
        return NOT_IN

    def literal(self, where: str) -> Literal:
        token = self.token
        if token.kind == _STRING:
            if token.text.startswith("'"):
                raise self.error(
                    f"strings are double-quoted, found {token.describe()}",
                    hint=f' (write "{token.text[1:-1]}")',
                )
            self.advance()
            return Literal(STRING, token.value)
        if token.kind == _NUMBER:
            number = Fraction(token.text)
            try:
                finite = math.isfinite(float(number))
            except OverflowError:
                finite = False
            if not finite:
                shown = token.text if len(token.text) <= 24 else token.text[:20] + "..."
                raise self.error(f"number '{shown}' is beyond the range of a double")
            self.advance()
            return Literal(NUMBER, number)
        if token.kind == _NAME and token.text in ("true", "false"):
            self.advance()
            return Literal(BOOLEAN, token.text == "true")
        hint = _LITERAL_HINT
        if token.kind == _NAME and token.text not in KEYWORDS:
            hint = f' (strings are double-quoted: "{token.text}")'
        raise self.error(f"expected a literal {where}, found {token.describe()}", hint=hint)

    def literal_list(self) -> tuple[Literal, ...]:
        opening = self.token
        if opening.kind != _LBRACKET:
            raise ConditionError(
                ConditionError.BAD_LIST,
                f"expected '[' to start a list, found {opening.describe()}",
                opening.column,
                hint=' (lists look like ["EU", "UK"])',
            )
        self.advance()
        if self.token.kind == _RBRACKET:
            raise ConditionError(
                ConditionError.BAD_LIST, "the list is empty (it needs 1 to 100 literals)", opening.column
            )
        literals: list[Literal] = []
        while True:
            token = self.token
            if token.kind == _END:
                raise self._unterminated(opening)
            if token.kind not in (_STRING, _NUMBER) and not (
                token.kind == _NAME and token.text in ("true", "false")
            ):
                raise ConditionError(
                    ConditionError.BAD_LIST,
                    f"lists hold literals only, found {token.describe()}",
                    token.column,
                    hint=_LITERAL_HINT
                    if token.kind != _NAME
                    else f' (strings are double-quoted: "{token.text}")',
                )
            literals.append(self.literal("in the list"))
            if len(literals) > MAX_LIST:
                raise ConditionError(
                    ConditionError.BAD_LIST,
                    f"the list has more than {MAX_LIST} literals",
                    opening.column,
                )
            separator = self.token
            if separator.kind == _RBRACKET:
                self.advance()
                return tuple(literals)
            if separator.kind == _END:
                raise self._unterminated(opening)
            if separator.kind != _COMMA:
                raise ConditionError(
                    ConditionError.BAD_LIST,
                    f"expected ',' or ']' in the list, found {separator.describe()}",
                    separator.column,
                )
            self.advance()

    def _unterminated(self, opening: _Token) -> ConditionError:
        return ConditionError(
            ConditionError.BAD_LIST,
            f"unterminated list: '[' at column {opening.column} has no closing ']'",
            self.token.column,
        )


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


def parse_condition(text: str, catalog: FeatureCatalog = BUILTIN_CATALOG) -> Node:
    """Parse a condition into its tree; raises ConditionError (with a 1-based column) on any mistake.

    `catalog` is the features the rules file knows (built-in ones by default). Nested `and`s (and `or`s) are
    flattened: `(a and b) and c` is `And((a, b, c))`.
    """
    if not isinstance(text, str):
        raise TypeError(f"condition must be a string, not {type(text).__name__}")
    return _Parser(text, catalog).parse()


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


_PRECEDENCE = {Or: 1, And: 2, Not: 3, Compare: 4, AttrTest: 4, Const: 4}


def normalise(node: Node) -> str:
    """Canonical text of a condition: single spaces, minimal parentheses, canonical numbers and strings.

    Lists keep the order they were written in. The text parses back to the same tree.
    """
    return _render(node, 0)


def _render(node: Node, context: int) -> str:
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, Compare):
        return str(node.comparison)
    if isinstance(node, AttrTest):
        return str(node.test)
    precedence = _PRECEDENCE[type(node)]
    if isinstance(node, Not):
        text = f"not {_render(node.operand, precedence)}"
    else:
        joiner = " or " if isinstance(node, Or) else " and "
        # `a or (b or c)` is flattened when parsed; operands of the same kind are parenthesised to keep
        # hand-built trees faithful.
        text = joiner.join(_render(operand, precedence + 1) for operand in node.operands)
    return f"({text})" if precedence < context else text


def _leaves(node: Node) -> list[Compare | AttrTest]:
    """Comparisons and attribute tests of a condition, in order of appearance."""
    found: list[Compare | AttrTest] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Compare | AttrTest):
            found.append(current)
        elif isinstance(current, Not):
            stack.append(current.operand)
        elif isinstance(current, And | Or):
            stack.extend(reversed(current.operands))
    return found


def comparisons_of(node: Node) -> tuple[Comparison, ...]:
    """The distinct feature comparisons of a condition, in order of appearance."""
    return tuple(dict.fromkeys(leaf.comparison for leaf in _leaves(node) if isinstance(leaf, Compare)))


def attribute_tests_of(node: Node) -> tuple[AttributeTest, ...]:
    """The distinct attribute tests of a condition, in order of appearance."""
    return tuple(dict.fromkeys(leaf.test for leaf in _leaves(node) if isinstance(leaf, AttrTest)))


def reads(node: Node) -> tuple[str, ...]:
    """The mapping keys a condition reads (features, and `attr.NAME` for attributes), in order, distinct."""
    keys = (leaf.comparison.feature if isinstance(leaf, Compare) else leaf.test.key for leaf in _leaves(node))
    return tuple(dict.fromkeys(keys))


def evaluate(node: Node, features: FeatureMap) -> bool:
    """Interpret the tree directly (slow, for explanations and tests; classification uses the closures)."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Compare):
        return node.comparison.holds(features)
    if isinstance(node, AttrTest):
        return node.test.holds(features)
    if isinstance(node, Not):
        return not evaluate(node.operand, features)
    if isinstance(node, And):
        return all(evaluate(operand, features) for operand in node.operands)
    return any(evaluate(operand, features) for operand in node.operands)


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


def _literal_sets(literals: tuple[Literal, ...]) -> tuple[frozenset[str], frozenset[float], frozenset[bool]]:
    """Literals split by type, so that `True in {1.0}` cannot happen."""
    strings = frozenset(str(lit.value) for lit in literals if lit.kind == STRING)
    numbers = frozenset(lit.number for lit in literals if lit.kind == NUMBER)
    booleans = frozenset(bool(lit.value) for lit in literals if lit.kind == BOOLEAN)
    return strings, numbers, booleans


def _compile_membership(key: str, literals: tuple[Literal, ...], negated: bool) -> Condition:
    strings, numbers, booleans = _literal_sets(literals)

    def check(features: FeatureMap) -> bool:
        value = features.get(key)
        if value is None:
            return False  # a missing attribute: false for `in` and `not in` alike
        if isinstance(value, str):
            found = value in strings
        elif isinstance(value, bool):
            found = value in booleans
        else:
            number = attribute_number(value)
            found = number is not None and number in numbers
        return found is not negated

    return check


def _compile_equality(key: str, literal: Literal, negated: bool) -> Condition:
    if literal.kind == STRING:
        text = literal.value

        def check(features: FeatureMap) -> bool:
            value = features.get(key)
            if value is None:
                return False
            return (isinstance(value, str) and value == text) is not negated

        return check

    def check_other(features: FeatureMap) -> bool:
        value = features.get(key)
        if value is None:
            return False
        return literal_matches(literal, value) is not negated

    return check_other


def _compile_ordering(key: str, op: str, bound: float) -> Condition:
    compare = OPERATOR_FUNCTIONS[op]

    def check(features: FeatureMap) -> bool:
        number = attribute_number(features.get(key))
        return number is not None and compare(number, bound)

    return check


def compile_attribute_test(test: AttributeTest) -> Condition:
    """A closure for one attribute test, with SPEC section 10 semantics (see `AttributeTest.holds`)."""
    key, op = test.key, test.op
    if op in (IN, NOT_IN):
        check = _compile_membership(key, test.literals, op == NOT_IN)
    elif op == "==" or op == "!=":
        check = _compile_equality(key, test.literals[0], op == "!=")
    else:  # the parser only builds orderings with a number literal
        check = _compile_ordering(key, op, test.literals[0].number)
    check.__qualname__ = f"<{test}>"
    return check


def compile_node(node: Node) -> Condition:
    """A closure `features -> bool` equivalent to the tree (short-circuit, left to right)."""
    if isinstance(node, Const):
        return _always_true if node.value else _always_false
    if isinstance(node, Compare):
        comparison = node.comparison
        return _compile_comparison(comparison.feature, comparison.op, comparison.threshold)
    if isinstance(node, AttrTest):
        return compile_attribute_test(node.test)
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
    attribute_tests: tuple[AttributeTest, ...] = ()

    def __call__(self, features: FeatureMap) -> bool:
        return self.evaluate(features)


def compile_condition(text: str, catalog: FeatureCatalog = BUILTIN_CATALOG) -> CompiledCondition:
    """Parse and compile `text` against the features of `catalog`; raises ConditionError."""
    tree = parse_condition(text, catalog)
    return CompiledCondition(
        text, tree, normalise(tree), comparisons_of(tree), compile_node(tree), attribute_tests_of(tree)
    )
