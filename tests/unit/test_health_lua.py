"""Unit tests for engine.health_lua: Sveltos' Lua health contract, the sandbox and its budgets."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from engine import health_lua
from engine.health_lua import LuaScriptError, Verdict

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                 "annotations": {"team": "blue"}},
    "spec": {"replicas": 3, "selector": None},
    "status": {"availableReplicas": 3,
               "conditions": [{"type": "Available", "status": "True"}, None,
                              {"type": "Progressing", "status": "True"}]},
}


def run(body: str, obj: dict[str, Any] | None = None, **budget: Any) -> Verdict:
    """Evaluate a script whose evaluate() is `body`."""
    return health_lua.evaluate(f"function evaluate()\n{body}\nend", obj or DEPLOYMENT, **budget)


def fails(body: str, **budget: Any) -> str:
    with pytest.raises(LuaScriptError) as caught:
        run(body, **budget)
    return str(caught.value)


class TestContract:
    """As Sveltos calls it: `evaluate()` sees `obj` and returns {healthy, message}."""

    def test_sveltos_documentation_example(self) -> None:
        script = """
        function evaluate()
          local hs = {healthy = false, message = "available replicas not matching"}
          if obj.status and obj.status.availableReplicas ~= nil and
             obj.status.availableReplicas == obj.spec.replicas then
            hs.healthy = true
          end
          return hs
        end"""
        assert health_lua.evaluate(script, DEPLOYMENT).healthy
        scaled = {**DEPLOYMENT, "spec": {"replicas": 5}}
        assert health_lua.evaluate(script, scaled) == Verdict(
            healthy=False, message="available replicas not matching")

    def test_obj_is_also_the_argument(self) -> None:
        script = "function evaluate(o) return {healthy = o == obj and o.kind == 'Deployment'} end"
        assert health_lua.evaluate(script, DEPLOYMENT).healthy

    @pytest.mark.parametrize(("returned", "verdict"), [
        ("{healthy = true}", Verdict(True, "")),
        ("{healthy = false, message = 'degraded'}", Verdict(False, "degraded")),
        ("{message = 'no verdict'}", Verdict(False, "no verdict")),  # nil healthy = false
        ("{healthy = true, message = 42}", Verdict(True, "42")),
    ])
    def test_verdicts(self, returned: str, verdict: Verdict) -> None:
        assert run(f"return {returned}") == verdict

    @pytest.mark.parametrize(("script", "message"), [
        ("function evaluate() return true end", "must return a table"),
        ("function evaluate() end", "must return a table {healthy = bool, message = string}"),
        ("function evaluate() return {healthy = 'yes'} end", "healthy = string, not a boolean"),
        ("function evaluate() return {healthy = true, message = {}} end", "message = table"),
        ("x = 1", "the script defines no function evaluate()"),
        ("function evaluate() error('boom') end", "boom"),
        ("function evaluate() error({}) end", "an error of type table"),
        ("function evaluate( end", "syntax error"),
    ])
    def test_no_verdict(self, script: str, message: str) -> None:
        with pytest.raises(LuaScriptError, match=message.replace("(", r"\(").replace(")", r"\)")
                           .replace("{", r"\{").replace("}", r"\}")):
            health_lua.evaluate(script, DEPLOYMENT)

    def test_objects_arrive_as_lua_values(self) -> None:
        # Nulls are dropped (from lists too, as Sveltos does), integers stay integers,
        # lists are 1-based sequences.
        verdict = run("""
          local c = obj.status.conditions
          return {healthy = obj.spec.selector == nil and math.type(obj.spec.replicas) ==
                  'integer' and #c == 2 and c[2].type == 'Progressing'}""")
        assert verdict.healthy

    def test_sveltos_helpers(self) -> None:
        verdict = run("""
          return {healthy = getLabel(obj, 'app') == 'web' and getLabel(obj, 'x') == nil
                  and getAnnotation(obj, 'team') == 'blue',
                  message = base64Encode('flotilla!') .. ' ' .. base64Decode('aGVsbG8=')}""")
        assert verdict == Verdict(True, "ZmxvdGlsbGEh hello")

    @pytest.mark.parametrize("text", ["a", "ab", "abc", "abcd", "\x00\xff binary"])
    def test_base64_round_trip(self, text: str) -> None:
        verdict = run(f"local s = {text!r} return {{healthy = base64Decode(base64Encode(s)) == s,"
                      " message = base64Encode(s)}")
        assert verdict.healthy
        assert verdict.message == base64.b64encode(text.encode()).decode()  # UTF-8 source

    def test_every_evaluation_starts_fresh(self) -> None:
        leak = ("function evaluate() counter = (counter or 0) + 1"
                " return {healthy = counter == 1} end")
        assert health_lua.evaluate(leak, DEPLOYMENT).healthy
        assert health_lua.evaluate(leak, DEPLOYMENT).healthy

    def test_syntax_error(self) -> None:
        assert health_lua.syntax_error("function evaluate() return {} end") is None
        assert "near" in (health_lua.syntax_error("function evaluate( end") or "")


class TestSandbox:
    """Nothing outside string/table/math/utf8 and the safe base functions is reachable."""

    @pytest.mark.parametrize("body", [
        "return os.execute('touch /tmp/flotilla-escaped')",
        "return io.open('/etc/passwd')",
        "return load('return 1')()",
        "return loadstring('return 1')()",
        "return dofile('/etc/passwd')",
        "return require('os')",
        "return debug.getinfo(1)",
        "return package.loaded.os",
        "return coroutine.create(print)",
        "return collectgarbage('count')",
        "return string.dump(evaluate)",
        "return ('x').dump(evaluate)",
        "return python.eval('1')",
        "return _G.os.exit()",
    ])
    def test_escapes_are_refused(self, body: str) -> None:
        assert "attempt to" in fails(body)

    def test_the_string_metatable_is_hidden(self) -> None:
        assert run("return {healthy = getmetatable('') == false}").healthy

    def test_methods_on_strings_use_the_safe_library(self) -> None:
        verdict = run("local s = 'Ready' return {healthy = s:lower() == 'ready' and s.dump == nil}")
        assert verdict.healthy

    def test_finalizers_are_refused(self) -> None:
        assert "__gc" in fails("setmetatable({}, {__gc = function() while true do end end})")

    def test_print_goes_nowhere(self, capfd: pytest.CaptureFixture[str]) -> None:
        assert run("print('hello') return {healthy = true}").healthy
        assert "hello" not in capfd.readouterr().out


class TestBudgets:
    """Time, memory and pattern budgets end a runaway script with a clear message."""

    def test_infinite_loop_stops_within_the_default_second(self) -> None:
        started = time.monotonic()
        message = fails("while true do end")
        elapsed = time.monotonic() - started
        assert "ran longer than 1s and was stopped" in message
        assert 0.9 <= elapsed < 2.0

    @pytest.mark.parametrize("body", [
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function() return 1 end) end",
        "local function f() return f() end return f()",  # a tail call loop
        "local t = {} setmetatable(t, {__index = function(t, k) return t[k] end}) return t.x",
        "local s = ('x'):rep(1000) while true do s:gsub('x', 'y') end",
    ])
    def test_loops_cannot_escape_the_deadline(self, body: str) -> None:
        started = time.monotonic()
        message = fails(body, timeout=0.2)
        assert time.monotonic() - started < 1.5
        assert "ran longer than 0.2s" in message or "stack overflow" in message

    @pytest.mark.parametrize("body", [
        "local s = string.rep('x', 1e9) return {healthy = true}",
        "local s = ('x'):rep(2^40) return {healthy = true}",
        "local t = {} for i = 1, 1e9 do t[i] = i end return {healthy = true}",
        "local s = 'x' while true do s = s .. s end",
        "local t = {} while true do t[#t + 1] = ('y'):rep(4096) .. #t end",
    ])
    def test_memory_bombs_are_bounded(self, body: str) -> None:
        started = time.monotonic()
        message = fails(body, max_memory=16 * 1024 * 1024)
        assert time.monotonic() - started < 1.5
        assert "used more than 16 MiB" in message or "too large" in message

    def test_memory_errors_caught_by_pcall_still_end_in_time(self) -> None:
        body = "while true do pcall(string.rep, 'x', 1e9) end"
        assert "ran longer than 0.2s" in fails(body, timeout=0.2)

    @pytest.mark.parametrize("call", [
        "string.find(string.rep('a', 100000), '.-b')",
        "string.match(string.rep('a', 3000), '(.-)(.-)b')",
        "string.gsub(string.rep('a', 50000), 'a*b', '')",
        "(string.rep('a', 20000)):find('a+b')",
    ])
    def test_costly_patterns_are_refused_before_they_run(self, call: str) -> None:
        started = time.monotonic()
        assert "too costly for a health script" in fails(f"return {call}")
        assert time.monotonic() - started < 0.5

    @pytest.mark.parametrize(("call", "expected"), [
        ("('Deployment has minimum availability'):match('^Deployment (%a+)')", "has"),
        ("(obj.metadata.name):gsub('w', 'W')", "Web"),
        ("string.find(('a'):rep(100000), 'b', 1, true)", "nil"),
        ("('%[x]'):rep(750):find('[x]+')", "3"),
    ])
    def test_ordinary_patterns_work(self, call: str, expected: str) -> None:
        assert run(f"return {{healthy = true, message = tostring(({call}))}}").message == expected
