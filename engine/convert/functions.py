"""The Go template functions `flotilla convert` translates, and into what Jinja2.

Used by `engine.convert.jinja` for every function call it meets. Each entry
takes the Jinja2 expressions of the call's arguments in Go's order (a piped
value is the last argument, as in Go) and returns one Jinja2 expression.
A function missing from the table — or called in a form the entry does not
handle — raises `Untranslatable`, and the action is kept as written and
reported. Adding a function is one entry here.

Sveltos's templates have sprig plus its own functions; Flotilla's sandbox has
Jinja2's filters, the non-mutating methods of strings and dicts, and
`getResource`. `toYaml` becomes `tojson`: JSON is YAML, so the value reads
back the same wherever YAML is parsed (a block or flow position).
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

Build = Callable[[], str]
Handler = Callable[[list[str], Sequence[Any]], str]

_ATOM = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[[^\[\]]*\]|'
                   r'\([^()]*\))*|-?[0-9][0-9_.eE+-]*|"([^"\\]|\\.)*")$')


class Untranslatable(Exception):
    """An action (or part of one) with no Jinja2 equivalent; the message says why."""


def atom(expr: str) -> str:
    """`expr`, parenthesised unless it is a name, attribute chain, call or literal."""
    if _ATOM.match(expr) or (expr.startswith("(") and _balanced_group(expr)):
        return expr
    return f"({expr})"


def _balanced_group(expr: str) -> bool:
    # "(a) | f(b)" starts and ends with parentheses but is not one group.
    depth = 0
    in_string = False
    for i, ch in enumerate(expr):
        if in_string:
            if ch == "\\":
                continue
            in_string = ch != '"'
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(expr) - 1:
                return False
    return depth == 0 and expr.endswith(")")


def _arity(name: str, args: list[str], *counts: int) -> None:
    if len(args) not in counts:
        wanted = " or ".join(str(c) for c in counts)
        raise Untranslatable(f"{name} takes {wanted} argument(s) here, got {len(args)}")


def _filter(name: str, jinja: str, extra: str = "") -> Handler:
    def handler(args: list[str], nodes: Sequence[Any]) -> str:
        _arity(name, args, 1)
        return f"{atom(args[0])} | {jinja}{extra}"
    return handler


def _method(name: str, method: str) -> Handler:
    # sprig's `trimSuffix SUFFIX S` → S.removesuffix(SUFFIX), on the string form of S.
    def handler(args: list[str], nodes: Sequence[Any]) -> str:
        _arity(name, args, 2)
        return f"({atom(args[1])} | string).{method}({args[0]})"
    return handler


def _compare(name: str, op: str) -> Handler:
    def handler(args: list[str], nodes: Sequence[Any]) -> str:
        _arity(name, args, 2)
        return f"{atom(args[0])} {op} {atom(args[1])}"
    return handler


def _default(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("default", args, 2)
    # sprig treats "", 0, false, nil and empty collections as unset: Jinja's boolean=true.
    return f"{atom(args[1])} | default({args[0]}, true)"


def _eq(args: list[str], nodes: Sequence[Any]) -> str:
    if len(args) < 2:
        raise Untranslatable("eq takes two or more arguments")
    if len(args) == 2:
        return f"{atom(args[0])} == {atom(args[1])}"
    return f"{atom(args[0])} in [{', '.join(args[1:])}]"


def _logic(op: str) -> Handler:
    def handler(args: list[str], nodes: Sequence[Any]) -> str:
        if len(args) < 2:
            raise Untranslatable(f"{op} takes two or more arguments")
        return f" {op} ".join(atom(a) for a in args)
    return handler


def _not(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("not", args, 1)
    return f"not {atom(args[0])}"


def _index(args: list[str], nodes: Sequence[Any]) -> str:
    if len(args) < 2 or len(args) != len(nodes):
        raise Untranslatable("index needs a collection and at least one key, not piped")
    out = atom(args[0])
    for expr, node in zip(args[1:], nodes[1:], strict=True):
        kind = type(node).__name__
        if kind == "String":
            # Go's index gives the zero value for a missing key: empty, and false in an if.
            out += f'.get({expr}, "")'
        else:
            out += f"[{expr}]"
    return out


def _indent(newline: bool) -> Handler:
    def handler(args: list[str], nodes: Sequence[Any]) -> str:
        _arity("nindent" if newline else "indent", args, 2)
        indented = f"{atom(args[1])} | indent({args[0]}, true)"
        return f'"\\n" ~ ({indented})' if newline else indented
    return handler


def _printf(args: list[str], nodes: Sequence[Any]) -> str:
    if not args or type(nodes[0]).__name__ != "String":
        raise Untranslatable("printf needs a literal format string")
    fmt = json.loads(args[0])
    if re.search(r"%[^%sdvf]|%[0-9.+-]+[a-z]", fmt.replace("%%", "")):
        raise Untranslatable("printf verbs other than %s, %d, %v, %f")
    fmt = fmt.replace("%v", "%s")
    return f"{json.dumps(fmt)} | format({', '.join(args[1:])})"


def _get_resource(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("getResource", args, 1)
    return f"getResource({args[0]})"


def _quote(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("quote", args, 1)
    # A JSON string is a YAML double-quoted string with the same value.
    return f"{atom(args[0])} | string | tojson"


def _squote(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("squote", args, 1)
    return f"\"'\" ~ ({atom(args[0])} | string) ~ \"'\""


def _contains(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("contains", args, 2)
    return f"{atom(args[0])} in ({atom(args[1])} | string)"


def _has_key(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("hasKey", args, 2)
    return f"{atom(args[1])} in {atom(args[0])}"


def _replace(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("replace", args, 3)
    return f"{atom(args[2])} | string | replace({args[0]}, {args[1]})"


def _join(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("join", args, 2)
    return f"{atom(args[1])} | join({args[0]})"


def _split_list(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("splitList", args, 2)
    return f"({atom(args[1])} | string).split({args[0]})"


def _ternary(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("ternary", args, 3)
    return f"{atom(args[0])} if {atom(args[2])} else {atom(args[1])}"


def _list(args: list[str], nodes: Sequence[Any]) -> str:
    return f"[{', '.join(args)}]"


def _dict(args: list[str], nodes: Sequence[Any]) -> str:
    if len(args) % 2:
        raise Untranslatable("dict takes key/value pairs")
    return "{" + ", ".join(f"{args[i]}: {args[i + 1]}" for i in range(0, len(args), 2)) + "}"


def _identity(name: str) -> Handler:
    # `required "message" X` is X: a missing X already fails the render here.
    def handler(args: list[str], nodes: Sequence[Any]) -> str:
        _arity(name, args, 2)
        return args[1]
    return handler


def _get(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("get", args, 2)
    # sprig's get gives "" for a missing key.
    return f'{atom(args[0])}.get({args[1]}, "")'


def _empty(args: list[str], nodes: Sequence[Any]) -> str:
    _arity("empty", args, 1)
    return f"not {atom(args[0])}"


_TABLE: dict[str, Handler] = {
    "default": _default,
    "quote": _quote,
    "squote": _squote,
    "upper": _filter("upper", "upper"),
    "lower": _filter("lower", "lower"),
    "title": _filter("title", "title"),
    "trim": _filter("trim", "trim"),
    "toString": _filter("toString", "string"),
    "int": _filter("int", "int"),
    "int64": _filter("int64", "int"),
    "atoi": _filter("atoi", "int"),
    "float64": _filter("float64", "float"),
    "len": _filter("len", "length"),
    "toYaml": _filter("toYaml", "tojson"),
    "toJson": _filter("toJson", "tojson"),
    "toPrettyJson": _filter("toPrettyJson", "tojson", "(2)"),
    "toRawJson": _filter("toRawJson", "tojson"),
    "indent": _indent(newline=False),
    "nindent": _indent(newline=True),
    "trimSuffix": _method("trimSuffix", "removesuffix"),
    "trimPrefix": _method("trimPrefix", "removeprefix"),
    "hasPrefix": _method("hasPrefix", "startswith"),
    "hasSuffix": _method("hasSuffix", "endswith"),
    "contains": _contains,
    "hasKey": _has_key,
    "replace": _replace,
    "join": _join,
    "splitList": _split_list,
    "index": _index,
    "get": _get,
    "printf": _printf,
    "getResource": _get_resource,
    "eq": _eq,
    "ne": _compare("ne", "!="),
    "lt": _compare("lt", "<"),
    "le": _compare("le", "<="),
    "gt": _compare("gt", ">"),
    "ge": _compare("ge", ">="),
    "and": _logic("and"),
    "or": _logic("or"),
    "not": _not,
    "empty": _empty,
    "coalesce": _logic("or"),
    "ternary": _ternary,
    "list": _list,
    "dict": _dict,
    "required": _identity("required"),
}

# Named so the report can say why, not only that.
_SVELTOS_MUTATORS = frozenset({"getField", "setField", "removeField", "chainSetField",
                               "chainRemoveField", "copy"})


def call(name: str, args: list[str], nodes: Sequence[Any]) -> str:
    """The Jinja2 expression of Go's `name arg…` (args in Go's order, piped value last)."""
    handler = _TABLE.get(name)
    if handler is None:
        if name in _SVELTOS_MUTATORS:
            raise Untranslatable(f"Sveltos's {name} (object editing) has no equivalent here; "
                                 "use patches")
        raise Untranslatable(f"function {name} has no equivalent in Flotilla's templates")
    return handler(args, nodes)


def names() -> list[str]:
    """The functions translated, for docs and tests."""
    return sorted(_TABLE)
