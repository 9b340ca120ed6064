"""Just enough of CCTools' JX expression language to filter catalog records.

Catalog clients send a filter as ``GET /query/<base64 of an expression>``; the real worker sends
``true and type=="wq_manager" or type=="wq_master"`` and ``work_queue_status`` sends ``true``.
Supported: literals (numbers, "strings", true, false, null), record fields by name, ``not``/``!``,
``* / %``, ``+ -``, comparisons, ``or``/``||`` and ``and``/``&&``, parentheses. As in CCTools'
``jx_parse.c``, ``and`` binds *more loosely* than ``or`` and binary operators group to the right.
A missing field is null; a comparison that makes no sense is false, not an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|\.\d+)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!()])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)

# loosest first; CCTools: and=5, or=4, comparisons=3, + -=2, * / %=1
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("and", "&&"),
    ("or", "||"),
    ("==", "!=", "<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/", "%"),
)


class JxError(ValueError):
    """An expression that cannot be parsed; says where."""


@dataclass(frozen=True)
class _Node:
    op: str  # "lit", "sym", "not", "neg" or a binary operator
    args: tuple = ()
    value: object = None


def _tokenize(text: str) -> list[str | tuple[str, object]]:
    tokens: list[str | tuple[str, object]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise JxError(f"cannot parse expression {text!r} at position {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m["number"]:
            number = m["number"]
            tokens.append(("lit", float(number) if any(c in number for c in ".eE") else int(number)))
        elif m["string"]:
            tokens.append(("lit", json.loads(m["string"])))
        elif m["op"]:
            tokens.append(m["op"])
        else:
            word = m["name"]
            literals = {"true": True, "false": False, "null": None}
            if word in literals:
                tokens.append(("lit", literals[word]))
            elif word in ("and", "or", "not"):
                tokens.append(word)
            else:
                tokens.append(("sym", word))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> str | tuple[str, object] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | tuple[str, object]:
        token = self.peek()
        if token is None:
            raise JxError(f"expression {self.text!r} ends too early")
        self.pos += 1
        return token

    def parse(self) -> _Node:
        node = self.binary(0)
        if self.peek() is not None:
            raise JxError(f"unexpected {self.peek()!r} in expression {self.text!r}")
        return node

    def binary(self, level: int) -> _Node:
        if level == len(_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        token = self.peek()
        if isinstance(token, str) and token in _LEVELS[level]:
            self.pos += 1
            right = self.binary(level)  # right-associative, as jx_parse_binary
            op = {"&&": "and", "||": "or"}.get(token, token)
            return _Node(op, (left, right))
        return left

    def unary(self) -> _Node:
        token = self.take()
        if token in ("not", "!"):
            return _Node("not", (self.unary(),))
        if token == "-":
            return _Node("neg", (self.unary(),))
        if token == "(":
            node = self.binary(0)
            if self.take() != ")":
                raise JxError(f"missing ')' in expression {self.text!r}")
            return node
        if isinstance(token, tuple):
            return _Node(token[0], value=token[1])
        raise JxError(f"unexpected {token!r} in expression {self.text!r}")


def parse_expression(text: str) -> _Node:
    """Parse a JX expression (raises :class:`JxError` naming the expression)."""
    return _Parser(text).parse()


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(op: str, a: object, b: object) -> bool:
    if op == "==":
        return a == b and type(a) is type(b) or (_is_number(a) and _is_number(b) and a == b)
    if op == "!=":
        return not _compare("==", a, b)
    comparable = (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))
    if not comparable:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]


def _arith(op: str, a: object, b: object) -> object:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (_is_number(a) and _is_number(b)):
        return None
    try:
        if op == "+":
            return a + b  # type: ignore[operator]
        if op == "-":
            return a - b  # type: ignore[operator]
        if op == "*":
            return a * b  # type: ignore[operator]
        if op == "/":
            return a / b if isinstance(a, float) or isinstance(b, float) else int(a / b)  # type: ignore[operator]
        return a % b  # type: ignore[operator]
    except ZeroDivisionError:
        return None


def evaluate(node: _Node, record: dict) -> object:
    """The value of a parsed expression for one record."""
    if node.op == "lit":
        return node.value
    if node.op == "sym":
        return record.get(str(node.value))
    if node.op == "not":
        return not _truthy(evaluate(node.args[0], record))
    if node.op == "neg":
        value = evaluate(node.args[0], record)
        return -value if _is_number(value) else None  # type: ignore[operator]
    if node.op == "and":
        return _truthy(evaluate(node.args[0], record)) and _truthy(evaluate(node.args[1], record))
    if node.op == "or":
        return _truthy(evaluate(node.args[0], record)) or _truthy(evaluate(node.args[1], record))
    a, b = evaluate(node.args[0], record), evaluate(node.args[1], record)
    if node.op in ("==", "!=", "<", "<=", ">", ">="):
        return _compare(node.op, a, b)
    return _arith(node.op, a, b)


def _truthy(value: object) -> bool:
    return value is True


def record_matches(node: _Node, record: dict) -> bool:
    """Whether the expression is exactly ``true`` for ``record`` (CCTools' filter rule)."""
    return evaluate(node, record) is True
