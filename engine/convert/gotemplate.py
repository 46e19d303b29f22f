"""Go template source → a list of text pieces and parsed actions (`text/template` syntax).

Used by `engine.convert.jinja`, which translates what this module parses into
Jinja2. Sveltos templates are Go templates with sprig and a few functions of
its own; this module knows only the syntax, not what the functions mean.

The source is split into literal text and actions (`{{ … }}`, with `{{-`/`-}}`
trim markers and `{{/* comments */}}`). Each action is tokenized — strings,
raw strings, numbers, fields (`.A.B`), variables (`$x.A`), identifiers,
`(`, `)`, `|`, `:=`, `=`, `,` — and parsed into a keyword action (if, else,
range, with, end, …) or a pipeline of commands, the way Go's own parser reads
them. A piece that does not parse raises `TemplateSyntaxError` with the
offset of the action, so the caller can leave that action as written and say
where it is. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re

KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                      "break", "continue"})
_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                     r"[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD = re.compile(r"(\.[A-Za-z_][A-Za-z0-9_]*)+")
_VARIABLE = re.compile(r"\$[A-Za-z0-9_]*")
_OPENER = re.compile(r"\{\{-?\s*(if|range|with|define|block)\b")


class TemplateSyntaxError(ValueError):
    """An action this parser cannot read; `offset` is where it starts in the source."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


# --- AST ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Field:
    """`.A.B` (path relative to the dot); `.` alone has an empty path."""

    path: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Variable:
    """`$x.A.B`; `$` alone is the template's root data."""

    name: str
    path: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Identifier:
    """A function name (`default`, `getResource`, …) or a literal true/false/nil."""

    name: str


@dataclasses.dataclass(frozen=True)
class String:
    value: str


@dataclasses.dataclass(frozen=True)
class Number:
    text: str


@dataclasses.dataclass(frozen=True)
class Chain:
    """`(pipeline).A.B`: fields of a parenthesised result."""

    node: Node
    path: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Command:
    """One stage of a pipeline: a function and its arguments, or a single operand."""

    args: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """`$a, $b := cmd | cmd …`; `assign` is true for `=` (re-assignment)."""

    commands: tuple[Command, ...]
    declare: tuple[str, ...] = ()
    assign: bool = False


Node = Field | Variable | Identifier | String | Number | Chain | Pipeline


@dataclasses.dataclass(frozen=True)
class Action:
    """One `{{ … }}`: `keyword` is "" for a plain pipeline, else if/else/range/… .

    An action that does not parse has keyword "invalid", the error in `comment` and,
    when it opens a block, that block's keyword in `chained`.
    """

    keyword: str
    pipeline: Pipeline | None
    source: str            # the action exactly as written, delimiters included
    offset: int            # where it starts in the template
    trim_left: bool
    trim_right: bool
    # `else if` / `else with`: the keyword that follows `else`.
    chained: str = ""
    comment: str | None = None


Piece = str | Action


# --- Splitting ------------------------------------------------------------------------------

def split(source: str) -> list[Piece]:
    """Literal text and actions, in order. An unterminated action raises TemplateSyntaxError."""
    pieces: list[Piece] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            if pos < len(source):
                pieces.append(source[pos:])
            return pieces
        if start > pos:
            pieces.append(source[pos:start])
        end = _action_end(source, start)
        text = source[start:end]
        try:
            pieces.append(parse_action(text, start))
        except TemplateSyntaxError as error:
            # One unreadable action is kept as written; the others still translate.
            opener = _OPENER.match(text)
            pieces.append(Action("invalid", None, text, start, False, False,
                                 chained=opener.group(1) if opener else "", comment=str(error)))
        pos = end


def _action_end(source: str, start: int) -> int:
    """Offset just past the `}}` closing the action at `start`, skipping quoted text."""
    inner = start + 2
    if source.startswith("-", inner) and source[inner + 1:inner + 2] in (" ", "\t", "\n", "\r"):
        inner += 1
    if source[inner:].lstrip(" \t\r\n").startswith("/*"):
        close = source.find("*/", inner)
        if close < 0:
            raise TemplateSyntaxError("unclosed comment", start)
        end = source.find("}}", close)
        if end < 0:
            raise TemplateSyntaxError("unclosed action", start)
        return end + 2
    i = inner
    while i < len(source):
        ch = source[i]
        if ch in "\"'":
            i = _skip_quoted(source, i, start)
        elif ch == "`":
            close = source.find("`", i + 1)
            if close < 0:
                raise TemplateSyntaxError("unterminated raw string", start)
            i = close + 1
        elif source.startswith("}}", i):
            return i + 2
        else:
            i += 1
    raise TemplateSyntaxError("unclosed action", start)


def _skip_quoted(source: str, i: int, start: int) -> int:
    quote = source[i]
    i += 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
        elif source[i] == quote:
            return i + 1
        elif source[i] == "\n":
            break
        else:
            i += 1
    raise TemplateSyntaxError("unterminated quoted string", start)


# --- Tokens ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str   # string raw number field variable ident ( ) | := = , char
    text: str


def _tokens(body: str, offset: int) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch == '"':
            end = _skip_quoted(body, i, offset)
            out.append(_Token("string", body[i:end]))
            i = end
            continue
        if ch == "`":
            end = body.find("`", i + 1)
            out.append(_Token("raw", body[i:end + 1]))
            i = end + 1
            continue
        if ch == "'":
            end = _skip_quoted(body, i, offset)
            out.append(_Token("char", body[i:end]))
            i = end
            continue
        if body.startswith(":=", i):
            out.append(_Token(":=", ":="))
            i += 2
            continue
        if ch in "()|=,":
            out.append(_Token(ch, ch))
            i += 1
            continue
        match = _FIELD.match(body, i)
        if match:
            out.append(_Token("field", match.group()))
            i = match.end()
            continue
        if ch == "." and (i + 1 == len(body) or not body[i + 1].isdigit()):
            out.append(_Token("field", "."))
            i += 1
            continue
        match = _VARIABLE.match(body, i)
        if match:
            out.append(_Token("variable", match.group()))
            i = match.end()
            # `$x.A.B`: the fields belong to the variable.
            field = _FIELD.match(body, i)
            if field:
                out[-1] = _Token("variable", match.group() + field.group())
                i = field.end()
            continue
        match = _NUMBER.match(body, i)
        if match and match.group():
            out.append(_Token("number", match.group()))
            i = match.end()
            continue
        match = _IDENT.match(body, i)
        if match:
            out.append(_Token("ident", match.group()))
            i = match.end()
            continue
        raise TemplateSyntaxError(f"unexpected character {ch!r}", offset)
    return out


# --- Parsing --------------------------------------------------------------------------------

def parse_action(source: str, offset: int) -> Action:
    """Parse one action's text (delimiters included)."""
    body = source[2:-2]
    trim_left = body.startswith("-") and body[1:2] in (" ", "\t", "\n", "\r")
    if trim_left:
        body = body[1:]
    trim_right = body.endswith("-") and body[-2:-1] in (" ", "\t", "\n", "\r")
    if trim_right:
        body = body[:-1]
    stripped = body.strip()
    if stripped.startswith("/*"):
        if not stripped.endswith("*/"):
            raise TemplateSyntaxError("comment must end with */", offset)
        return Action("comment", None, source, offset, trim_left, trim_right,
                      comment=stripped[2:-2])
    tokens = _tokens(body, offset)
    if not tokens:
        raise TemplateSyntaxError("empty action", offset)
    keyword, chained = "", ""
    if tokens[0].kind == "ident" and tokens[0].text in KEYWORDS:
        keyword = tokens[0].text
        tokens = tokens[1:]
        if keyword == "else" and tokens and tokens[0].kind == "ident" and \
                tokens[0].text in ("if", "with"):
            chained = tokens[0].text
            tokens = tokens[1:]
    pipeline: Pipeline | None = None
    if keyword in ("", "if", "range", "with") or chained:
        if not tokens:
            raise TemplateSyntaxError(f"missing value for {keyword or 'action'}", offset)
        parser = _Parser(tokens, offset)
        pipeline = parser.pipeline(allow_declare=True)
        parser.expect_end()
    elif keyword in ("else", "end", "break", "continue") and tokens:
        raise TemplateSyntaxError(f"unexpected text after {keyword}", offset)
    return Action(keyword, pipeline, source, offset, trim_left, trim_right, chained=chained)


class _Parser:
    def __init__(self, tokens: list[_Token], offset: int) -> None:
        self.tokens, self.pos, self.offset = tokens, 0, offset

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise TemplateSyntaxError("unexpected end of action", self.offset)
        self.pos += 1
        return token

    def expect_end(self) -> None:
        token = self.peek()
        if token is not None:
            raise TemplateSyntaxError(f"unexpected {token.text!r}", self.offset)

    def pipeline(self, *, allow_declare: bool) -> Pipeline:
        declare: tuple[str, ...] = ()
        assign = False
        if allow_declare:
            declare, assign = self._declaration()
        commands = [self.command()]
        while (token := self.peek()) is not None and token.kind == "|":
            self.take()
            commands.append(self.command())
        return Pipeline(tuple(commands), declare, assign)

    def _declaration(self) -> tuple[tuple[str, ...], bool]:
        # `$x :=`, `$x =`, `$k, $v :=` — only plain variables, no fields.
        names: list[str] = []
        i = self.pos
        while i < len(self.tokens) and self.tokens[i].kind == "variable" and \
                "." not in self.tokens[i].text:
            names.append(self.tokens[i].text)
            if i + 1 < len(self.tokens) and self.tokens[i + 1].kind == ",":
                i += 2
                continue
            if i + 1 < len(self.tokens) and self.tokens[i + 1].kind in (":=", "="):
                self.pos = i + 2
                return tuple(names), self.tokens[i + 1].kind == "="
            break
        return (), False

    def command(self) -> Command:
        args: list[Node] = []
        while (token := self.peek()) is not None and token.kind not in ("|", ")"):
            args.append(self.operand())
        if not args:
            raise TemplateSyntaxError("empty command", self.offset)
        return Command(tuple(args))

    def operand(self) -> Node:
        token = self.take()
        node: Node
        if token.kind == "(":
            node = self.pipeline(allow_declare=False)
            closing = self.take()
            if closing.kind != ")":
                raise TemplateSyntaxError("missing )", self.offset)
            nxt = self.peek()
            if nxt is not None and nxt.kind == "field" and nxt.text != ".":
                self.take()
                node = Chain(node, tuple(nxt.text.split(".")[1:]))
            return node
        if token.kind == "field":
            return Field(() if token.text == "." else tuple(token.text.split(".")[1:]))
        if token.kind == "variable":
            name, *path = token.text.split(".")
            return Variable(name, tuple(path))
        if token.kind == "string":
            return String(_go_string(token.text, self.offset))
        if token.kind == "raw":
            return String(token.text[1:-1])
        if token.kind == "number":
            return Number(token.text)
        if token.kind == "ident" and token.text not in KEYWORDS:
            return Identifier(token.text)
        raise TemplateSyntaxError(f"unexpected {token.text!r}", self.offset)


def _go_string(text: str, offset: int) -> str:
    """The value of a Go interpreted string literal (the escapes JSON shares, plus \\x, \\a…)."""
    body = text[1:-1]
    body = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: "\\u00" + m.group(1), body)
    body = body.replace("\\a", "\\u0007").replace("\\v", "\\u000b").replace("\\'", "'")
    body = re.sub(r"\\U([0-9a-fA-F]{8})", lambda m: _astral(m.group(1)), body)
    try:
        value = json.loads(f'"{body}"')
    except json.JSONDecodeError as error:
        raise TemplateSyntaxError(f"bad string literal {text}", offset) from error
    return str(value)


def _astral(hex_digits: str) -> str:
    char = chr(int(hex_digits, 16))
    return json.dumps(char)[1:-1]
