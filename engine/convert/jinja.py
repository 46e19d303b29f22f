"""Translate a Sveltos Go template into the Jinja2 Flotilla renders (engine/render.py).

Used by `engine.convert.profiles` (helm values, patches, templated names) and
`engine.convert.documents` (templated ConfigMaps and Secrets). `translate`
returns the new text and a list of problems: an action it cannot translate
is left exactly as written and reported with its text and line:column (the
output then fails to render until someone rewrites it — never silently
wrong); an action translated with a caveat is reported for review.

What maps: `.Cluster` → `cluster` (the WorkloadCluster object);
`(getResource "x")` and `index .MgmtResources "x"` → `getResource("x")`;
`index` → `.get("k")` / `[n]` (a missing key is empty, as in Go); the sprig
functions of `engine.convert.functions`; `if/else if/else/end`, `range` (maps
in key order, as Go does), `with`, `$x := …`, comments and trim markers.
What does not: `define/template/block`, `break/continue`, functions with no
Jinja2 equivalent, and the template data other than `.Cluster`.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re

from engine.convert import functions
from engine.convert import gotemplate as go
from engine.convert.functions import Untranslatable, atom
from engine.convert.report import Report

# Names of dict methods and Jinja keywords: a field with such a name is read with
# ["name"], because Jinja would find the method (or fail to parse) first.
_BRACKETED = frozenset({
    "items", "keys", "values", "get", "pop", "popitem", "update", "clear", "copy",
    "setdefault", "fromkeys", "and", "or", "not", "in", "is", "if", "else", "true", "false",
    "none", "True", "False", "None", "for", "recursive", "loop", "self", "block", "with",
    "cluster", "getResource",
})
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something in a template: left as written (`kept`) or translated with a caveat."""

    line: int
    column: int
    text: str
    message: str
    kept: bool


@dataclasses.dataclass(frozen=True)
class Translation:
    text: str
    problems: tuple[Problem, ...]

    @property
    def complete(self) -> bool:
        """Every action was translated (possibly with notes to review)."""
        return not any(p.kept for p in self.problems)


def has_actions(text: str) -> bool:
    return "{{" in text


def translate(source: str, *, variables: bool = False) -> Translation:
    """The Jinja2 equivalent of a Go template (text without actions is returned unchanged).

    With `variables`, a top-level field other than `.Cluster` is a variable of the same
    name (a kustomization's values: `.Region` → `Region`).
    """
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return Translation(source, ())
    try:
        pieces = go.split(source)
    except go.TemplateSyntaxError as error:
        line, column = _position(source, error.offset)
        return Translation(source, (Problem(line, column, _snippet(source, error.offset),
                                            f"not a valid Go template: {error}", kept=True),))
    return _Translator(source, variables=variables).run(pieces)


@dataclasses.dataclass
class _Frame:
    keyword: str          # if | range | with | verbatim
    closer: str           # the Jinja tag that ends it
    dot_pushed: bool = False


class _Translator:
    def __init__(self, source: str, *, variables: bool = False) -> None:
        self.source = source
        self.variables = variables
        self.out: list[str] = []
        self.problems: list[Problem] = []
        self.frames: list[_Frame] = []
        # The Jinja expression `.` stands for; None at the top (the template's data).
        self.dots: list[str | None] = [None]
        self.names: dict[str, str] = {}
        self.counter = 0
        self.action: go.Action | None = None

    def run(self, pieces: list[go.Piece]) -> Translation:
        for piece in pieces:
            if isinstance(piece, str):
                self.out.append(_escape_text(piece))
                continue
            self.action = piece
            try:
                self.out.append(self._action(piece))
            except Untranslatable as problem:
                self._problem(piece, str(problem), kept=True)
                self.out.append(piece.source)
        for frame in self.frames:
            if frame.keyword != "verbatim":
                self.problems.append(Problem(0, 0, "", f"a {frame.keyword} is never ended",
                                             kept=True))
        text = "".join(self.out)
        if "{{" not in text and "{%" not in text:
            # Only comments: Flotilla renders nothing without {{ or {%, so drop them here.
            text = _COMMENT.sub(_drop_comment, text)
        return Translation(text, tuple(self.problems))

    # --- actions ----------------------------------------------------------------------------

    def _action(self, action: go.Action) -> str:
        keyword = action.keyword
        if keyword == "invalid":
            if action.chained:
                self.frames.append(_Frame("verbatim", ""))
            raise Untranslatable(f"not a valid Go template action: {action.comment}")
        if keyword == "comment":
            text = (action.comment or "").strip().replace("#}", "# }")
            return self._tag("{#", text, "#}")
        if keyword in ("define", "block", "template"):
            if keyword != "template":
                self.frames.append(_Frame("verbatim", ""))
            raise Untranslatable(f"`{keyword}` (named templates) has no equivalent here")
        if keyword in ("break", "continue"):
            raise Untranslatable(f"`{keyword}` is not available in Flotilla's templates")
        if keyword == "end":
            return self._end(action)
        if keyword == "else":
            return self._else(action)
        pipeline = action.pipeline
        assert pipeline is not None
        if keyword == "if":
            condition = self._guarded(action, lambda: self.pipeline(pipeline))
            self.frames.append(_Frame("if", "endif"))
            return self._tag("{%", f"if {_lenient(pipeline, condition, 'false')}", "%}")
        if keyword == "range":
            return self._range(action, pipeline)
        if keyword == "with":
            return self._with(action, pipeline)
        return self._plain(action, pipeline)

    def _guarded(self, action: go.Action, build: functions.Build) -> str:
        # A block opener that cannot be translated keeps its else/end as written too.
        try:
            return build()
        except Untranslatable:
            self.frames.append(_Frame("verbatim", ""))
            raise

    def _plain(self, action: go.Action, pipeline: go.Pipeline) -> str:
        if not pipeline.declare:
            return self._tag("{{", self.pipeline(pipeline), "}}")
        if len(pipeline.declare) != 1:
            raise Untranslatable("several variables are declared only by range")
        value = self.pipeline(dataclasses.replace(pipeline, declare=()))
        if pipeline.assign and any(f.keyword in ("range", "with", "if") for f in self.frames):
            self._problem(action, "a variable set inside a block keeps its new value only "
                          "inside that block in Jinja2", kept=False)
        name = self._declare(pipeline.declare[0])
        return self._tag("{%", f"set {name} = {value}", "%}")

    def _range(self, action: go.Action, pipeline: go.Pipeline) -> str:
        names = pipeline.declare
        if len(names) > 2 or pipeline.assign:
            self.frames.append(_Frame("verbatim", ""))
            raise Untranslatable("range takes at most two variables, declared with :=")
        value = self._guarded(action, lambda: self.pipeline(
            dataclasses.replace(pipeline, declare=())))
        source = self._fresh("range")
        # A missing value ranges over nothing, as nil does in Go.
        head = self._tag("{%", f"set {source} = {atom(value)} | default([])", "%}", right=False)
        # Go ranges over a map's values (or key/value pairs) in key order and over a list's
        # items (or index/item pairs); Jinja over a dict's keys. Both cases are covered,
        # whatever the value turns out to be.
        self.frames.append(_Frame("range", "endfor", dot_pushed=True))
        if len(names) == 2:
            key, item = self._declare(names[0]), self._declare(names[1])
            pair = self._fresh("entry")
            self.dots.append(item)
            return (head
                    + self._tag("{%", f"for {pair} in ({source} | dictsort if {source} is "
                                f"mapping else {source})", "%}", left=False, right=False)
                    + self._tag("{%", f"set {key}, {item} = ({pair} if {source} is mapping "
                                f"else (loop.index0, {pair}))", "%}", left=False))
        var = self._declare(names[0]) if names else self._fresh("item")
        self.dots.append(var)
        return head + self._tag("{%", f"for {var} in ({source} | dictsort | map(attribute=1) "
                                f"| list if {source} is mapping else {source})", "%}",
                                left=False)

    def _with(self, action: go.Action, pipeline: go.Pipeline) -> str:
        if len(pipeline.declare) > 1 or pipeline.assign:
            self.frames.append(_Frame("verbatim", ""))
            raise Untranslatable("with declares at most one variable, with :=")
        value = self._guarded(action, lambda: self.pipeline(
            dataclasses.replace(pipeline, declare=())))
        var = self._declare(pipeline.declare[0]) if pipeline.declare else self._fresh("value")
        self.frames.append(_Frame("with", "endif", dot_pushed=True))
        self.dots.append(var)
        return (self._tag("{%", f"set {var} = {_lenient(pipeline, value, 'none')}", "%}",
                          right=False)
                + self._tag("{%", f"if {var}", "%}", left=False))

    def _else(self, action: go.Action) -> str:
        if not self.frames:
            raise Untranslatable("else without if, range or with")
        frame = self.frames[-1]
        if frame.keyword == "verbatim":
            raise Untranslatable("part of a block that is kept as written")
        if action.chained == "with":
            raise Untranslatable("`else with` has no equivalent here; nest a with in the else")
        if action.chained == "if":
            if frame.keyword != "if":
                raise Untranslatable("`else if` only follows an if here")
            assert action.pipeline is not None
            condition = _lenient(action.pipeline, self.pipeline(action.pipeline), "false")
            return self._tag("{%", f"elif {condition}", "%}")
        if frame.dot_pushed:
            # The else branch of range and with sees the outer dot again.
            self.dots.pop()
            frame.dot_pushed = False
        return self._tag("{%", "else", "%}")

    def _end(self, action: go.Action) -> str:
        if not self.frames:
            raise Untranslatable("end without if, range or with")
        frame = self.frames.pop()
        if frame.dot_pushed:
            self.dots.pop()
        if frame.keyword == "verbatim":
            raise Untranslatable("ends a block that is kept as written")
        return self._tag("{%", frame.closer, "%}")

    def _tag(self, open_: str, body: str, close: str, *, left: bool = True,
             right: bool = True) -> str:
        assert self.action is not None
        trim_left = "-" if left and self.action.trim_left else ""
        trim_right = "-" if right and self.action.trim_right else ""
        return f"{open_}{trim_left} {body} {trim_right}{close}"

    # --- expressions ------------------------------------------------------------------------

    def pipeline(self, pipeline: go.Pipeline) -> str:
        if pipeline.declare:
            raise Untranslatable("a variable declared inside an expression")
        result: str | None = None
        for command in pipeline.commands:
            result = self._command(command, result)
        assert result is not None
        return result

    def _command(self, command: go.Command, piped: str | None) -> str:
        head = command.args[0]
        if isinstance(head, go.Identifier) and head.name == "index" and \
                len(command.args) > 2 and self._is_mgmt_resources(command.args[1]) and \
                isinstance(command.args[2], go.String) and piped is None:
            # Sveltos's older spelling of getResource: index .MgmtResources "id" ….
            base = f"getResource({json.dumps(command.args[2].value)})"
            rest = command.args[3:]
            if not rest:
                return base
            return functions.call("index", [base, *(self.expr(a) for a in rest)],
                                  (command.args[2], *rest))
        if isinstance(head, go.Identifier) and head.name not in ("true", "false", "nil"):
            args = [self.expr(arg) for arg in command.args[1:]]
            if piped is not None:
                args.append(piped)
            return functions.call(head.name, args, command.args[1:])
        if len(command.args) != 1 or piped is not None:
            raise Untranslatable("only a function can take arguments or piped input")
        return self.expr(head)

    def expr(self, node: go.Node) -> str:
        if isinstance(node, go.String):
            return json.dumps(node.value)
        if isinstance(node, go.Number):
            return node.text
        if isinstance(node, go.Identifier):
            literal = {"true": "true", "false": "false", "nil": "none"}.get(node.name)
            return literal if literal is not None else functions.call(node.name, [], ())
        if isinstance(node, go.Pipeline):
            return atom(self.pipeline(node))
        if isinstance(node, go.Chain):
            return _path(atom(self.expr(node.node)), node.path)
        if isinstance(node, go.Variable):
            if node.name == "$":
                return self._from_root(node.path)
            if node.name not in self.names:
                raise Untranslatable(f"{node.name} is not declared")
            return _path(self.names[node.name], node.path)
        return self._field(node.path)

    def _is_mgmt_resources(self, node: go.Node) -> bool:
        if isinstance(node, go.Field):
            return node.path == ("MgmtResources",) and self.dots[-1] is None
        return isinstance(node, go.Variable) and node.name == "$" and \
            node.path == ("MgmtResources",)

    def _field(self, path: tuple[str, ...]) -> str:
        dot = self.dots[-1]
        if dot is None:
            return self._from_root(path)
        return _path(dot, path)

    def _from_root(self, path: tuple[str, ...]) -> str:
        if not path:
            raise Untranslatable("the whole template data (`.` or `$`) has no equivalent; "
                                 "name what you need, e.g. .Cluster")
        head, rest = path[0], path[1:]
        if head == "Cluster":
            if rest and rest[0] != "metadata" and self.action is not None:
                self._problem(self.action, f".Cluster.{rest[0]} reads the WorkloadCluster's "
                              f"{rest[0]}, which is not Sveltos's cluster object's", kept=False)
            return _path("cluster", rest)
        if head == "MgmtResources" and rest:
            return _path(f"getResource({json.dumps(rest[0])})", rest[1:])
        if self.variables and _IDENT.match(head) and head not in _BRACKETED:
            return _path(head, rest)
        raise Untranslatable(f".{head} is not in Flotilla's template context (cluster and "
                             "getResource)")

    def _declare(self, go_name: str) -> str:
        base = go_name.lstrip("$") or "root"
        name = base if _IDENT.match(base) and base not in _BRACKETED else f"v_{base}"
        self.names[go_name] = name
        return name

    def _fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def _problem(self, action: go.Action, message: str, *, kept: bool) -> None:
        line, column = _position(self.source, action.offset)
        self.problems.append(Problem(line, column, action.source, message, kept=kept))


def _lenient(pipeline: go.Pipeline, expr: str, empty: str) -> str:
    """`if .A.b` / `with .A.b` on a missing key is false in Go, not an error: a bare field
    tested by if or with gets a default."""
    command = pipeline.commands[-1]
    if len(pipeline.commands) == 1 and len(command.args) == 1 and \
            isinstance(command.args[0], (go.Field, go.Variable, go.Chain)):
        return f"{atom(expr)} | default({empty})"
    return expr


def _path(base: str, path: tuple[str, ...]) -> str:
    out = base
    for part in path:
        out += f".{part}" if _IDENT.match(part) and part not in _BRACKETED else \
            f"[{json.dumps(part)}]"
    return out


_COMMENT = re.compile(r"(\s*)\{#(-?)(.*?)(-?)#\}(\s*)", re.DOTALL)


def _drop_comment(match: re.Match[str]) -> str:
    before = "" if match.group(2) else match.group(1)
    after = "" if match.group(4) else match.group(5)
    return before + after


def _escape_text(text: str) -> str:
    # Literal text that Jinja would read as a tag or comment opener.
    return re.sub(r"\{([%#])", lambda m: '{{ "{' + m.group(1) + '" }}', text)


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _snippet(source: str, offset: int) -> str:
    return source[offset:offset + 60].split("\n", 1)[0]


def translate_into(text: str, path: str, report: Report, *, secret: bool = False,
                   variables: bool = False) -> str:
    """`translate`, with its problems added to `report` at `path` (Secret text never shown)."""
    result = translate(text, variables=variables)
    for problem in result.problems:
        where = f"{path} (line {problem.line}, column {problem.column})" if problem.line \
            else path
        if secret:
            # The message may quote the template, and the template is Secret data.
            message = "a template action" + (" is kept as written" if problem.kept else
                                             " is translated with a caveat")
            (report.dropped if problem.kept else report.review)(
                where, message + " (Secret content is not shown)")
        elif problem.kept:
            report.dropped(where, f"kept as written: {problem.text} — {problem.message}")
        else:
            report.review(where, f"{problem.message}: {problem.text}" if problem.text
                          else problem.message)
    return result.text
