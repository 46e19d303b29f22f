"""Lua health scripts (`validateHealths[].script`), run as Sveltos runs them, in a sandbox.

Used by `engine.health` for checks that carry a `script`. Pure apart from the
embedded Lua runtime (lupa, Lua 5.4): objects come in as plain dicts,
verdicts go out as data.

The contract is Sveltos': the script defines `function evaluate()`, which
sees the live object as the global `obj` (it is also passed as the first
argument) and returns a table `{healthy = bool, message = string}`. Sveltos'
helpers `getLabel(obj, key)`, `getAnnotation(obj, key)`, `base64Encode(s)` and
`base64Decode(s)` are there too.

The sandbox: every evaluation gets a fresh Lua state, and the script sees
only `string` (without `dump`), `table`, `math`, `utf8` and the safe base
functions — no `os`, `io`, `require`, `load`, `dofile`, `debug`, `package`,
`coroutine` or `collectgarbage`. Three budgets keep a script from hurting
the controller, and each ends it with a message that says which was hit:
  - time: a count hook checks a wall-clock deadline every few thousand Lua
    instructions; `pcall` cannot swallow the timeout;
  - memory: the Lua allocator refuses to grow the state past `max_memory`;
  - patterns: `find`/`match`/`gmatch`/`gsub` run in C, where no hook fires,
    so a pattern whose worst case (subject length to the power of its
    repetitions) exceeds a fixed budget is refused before it runs.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from typing import Any

import lupa.lua54 as lua

DEFAULT_TIMEOUT = 1.0  # seconds per object, as a hard wall-clock limit
DEFAULT_MAX_MEMORY = 64 * 1024 * 1024  # bytes of Lua heap, the object's tables included
# Worst-case steps a pattern function may take: (subject length + 1) to the power of its
# repetitions (+1 when unanchored). 1e8 is a few tenths of a second.
PATTERN_BUDGET = 100_000_000
MESSAGE_LEN = 1024  # of a verdict's message: it ends up in status
# How often (in Lua instructions) the hook looks at the clock.
_HOOK_EVERY = 10_000


class LuaScriptError(Exception):
    """The script could not give a verdict: it failed, ran out of time or memory, or
    returned something other than `{healthy = bool, message = string}`."""


class LuaTimeout(LuaScriptError):
    """The script ran past its time limit (the caller need not try more objects)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    message: str


def syntax_error(script: str) -> str | None:
    """The script's syntax error as text, or None when it compiles (cached per text)."""
    return _syntax_error(script)


def evaluate(
    script: str,
    obj: Mapping[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> Verdict:
    """Run `evaluate()` of `script` against `obj`; raise LuaScriptError if no verdict."""
    runtime = _runtime(max_memory)
    try:
        run = runtime.execute(_SANDBOX)
        table = runtime.table_from(_plain(obj), recursive=True)
        deadline = time.monotonic() + timeout
        outcome = run(script, table, time.monotonic, deadline)
    except lua.LuaMemoryError:
        raise LuaScriptError(_out_of_memory(max_memory)) from None
    except lua.LuaError as error:  # only our own sandbox code can fail this way
        raise LuaScriptError(f"health script failed: {_first_line(error)}") from None
    # Lua's several results arrive as a tuple; pad it so that every outcome has three.
    kind, first, second = (*(outcome if isinstance(outcome, tuple) else (outcome,)), None, None)[:3]
    if kind == "ok":
        return Verdict(healthy=bool(first), message=str(second or "")[:MESSAGE_LEN])
    if kind == "timeout":
        raise LuaTimeout(f"health script ran longer than {timeout:g}s and was stopped")
    if kind == "memory":
        raise LuaScriptError(_out_of_memory(max_memory))
    raise LuaScriptError(f"health script {kind}: {first}")


def _runtime(max_memory: int) -> lua.LuaRuntime:
    return lua.LuaRuntime(
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=False,
        max_memory=max_memory,
        # Integers beyond 64 bits (rare in objects) become floats instead of failing.
        overflow_handler=float,
        attribute_filter=_no_attributes,
    )


def _no_attributes(obj: object, name: object, is_setting: bool) -> str:
    # No Python object is handed to scripts; should one ever be, it stays opaque.
    raise AttributeError("Python attributes are not available to health scripts")


@functools.lru_cache(maxsize=256)
def _syntax_error(script: str) -> str | None:
    runtime = _runtime(DEFAULT_MAX_MEMORY)
    try:
        check = runtime.eval("function(s) local f, e = load(s, '=script', 't', {}) return e end")
        error = check(script)
    except lua.LuaError as failure:
        return _first_line(failure)
    return None if error is None else str(error)


def _plain(value: Any) -> Any:
    """A JSON-like copy for Lua: nulls dropped (from lists too, as Sveltos does)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    return value


def _out_of_memory(max_memory: int) -> str:
    return f"health script used more than {max_memory // (1024 * 1024)} MiB and was stopped"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


# Runs once per fresh Lua state, with the full standard library still in reach; it
# returns the function that runs one script. Everything the script may touch is built
# here; everything it must not touch is kept in locals it cannot see.
_SANDBOX = f"""
local sethook, load, pcall, xpcall, error = debug.sethook, load, pcall, xpcall, error
local type, rawget, rawset, tostring, select, next = type, rawget, rawset, tostring, select, next
local pack, unpack = table.pack, table.unpack
local sub, byte, char, find, match, gmatch, gsub, rep =
  string.sub, string.byte, string.char, string.find, string.match, string.gmatch,
  string.gsub, string.rep
local floor = math.floor
local TIMEOUT = "\\0flotilla: time is up"
local BUDGET = {PATTERN_BUDGET}

-- Index just past a [set] that starts at i.
local function set_end(p, i)
  local j = i + 1
  if sub(p, j, j) == "^" then j = j + 1 end
  repeat
    if sub(p, j, j) == "%" then j = j + 1 end
    j = j + 1
  until sub(p, j, j) == "]" or j > #p
  return j + 1
end

-- Repetitions (*, +, -) in a Lua pattern, and whether it is anchored.
local function repetitions(p)
  local count, i, n = 0, 1, #p
  local anchored = sub(p, 1, 1) == "^"
  if anchored then i = 2 end
  while i <= n do
    local c, next_i = sub(p, i, i), i + 1
    if c == "%" then
      local d = sub(p, i + 1, i + 1)
      if d == "b" then next_i = i + 4
      elseif d == "f" then next_i = set_end(p, i + 2)
      else next_i = i + 2 end
      if d == "b" or d == "f" then i = next_i goto continue end
    elseif c == "[" then next_i = set_end(p, i)
    elseif c == "(" or c == ")" then i = next_i goto continue
    end
    local q = sub(p, next_i, next_i)
    if q == "*" or q == "+" or q == "-" then count = count + 1; next_i = next_i + 1
    elseif q == "?" then next_i = next_i + 1 end
    i = next_i
    ::continue::
  end
  return count, anchored
end

local function guard(name, s, p, init, plain)
  if type(s) == "number" then s = tostring(s) end
  if type(p) == "number" then p = tostring(p) end
  if type(s) ~= "string" or type(p) ~= "string" or plain then return end
  local k, anchored = repetitions(p)
  if not anchored or name == "gmatch" or name == "gsub" then k = k + 1 end
  if (#s + 1.0) ^ k > BUDGET then
    error("string." .. name .. ": pattern '" .. sub(p, 1, 60) .. "' over " .. #s ..
          " characters is too costly for a health script; match a shorter string" ..
          " or use a simpler pattern", 3)
  end
end

local safe_string = {{
  byte = byte, char = char, format = string.format, len = string.len,
  lower = string.lower, upper = string.upper, rep = rep, reverse = string.reverse, sub = sub,
  find = function(s, p, init, plain) guard("find", s, p, init, plain)
    return find(s, p, init, plain) end,
  match = function(s, p, init) guard("match", s, p, init) return match(s, p, init) end,
  gmatch = function(s, p, init) guard("gmatch", s, p, init) return gmatch(s, p, init) end,
  gsub = function(s, p, r, n) guard("gsub", s, p) return gsub(s, p, r, n) end,
}}
-- Method calls on strings ("x"):rep(...) go through the string metatable: point it at
-- the safe table, and hide the metatable itself.
string.dump = nil
local string_meta = getmetatable("")
string_meta.__index = safe_string
string_meta.__metatable = false

local function copy(t)
  local c = {{}}
  for k, v in next, t do c[k] = v end
  return c
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64_encode(s)
  if type(s) ~= "string" or s == "" then return nil, "provided string is empty" end
  local out, n = {{}}, #s
  for i = 1, n, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    for j = 1, 4 do
      if j <= (n - i + 1) + 1 then
        local x = floor(v / 64 ^ (4 - j)) % 64
        out[#out + 1] = sub(B64, x + 1, x + 1)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

local function base64_decode(s)
  if type(s) ~= "string" or s == "" then return nil, "provided string is empty" end
  s = gsub(s, "[^%w%+/=]", "")
  if #s % 4 ~= 0 then return nil, "decoding failed" end
  local out = {{}}
  for i = 1, #s, 4 do
    local v, pad = 0, 0
    for j = i, i + 3 do
      local c = sub(s, j, j)
      local x = find(B64, c, 1, true)
      if c == "=" then pad = pad + 1; x = 1 elseif not x then return nil, "decoding failed" end
      v = v * 64 + (x - 1)
    end
    local bytes = char(floor(v / 65536) % 256, floor(v / 256) % 256, v % 256)
    out[#out + 1] = sub(bytes, 1, 3 - pad)
  end
  return table.concat(out)
end

local function meta_value(field)
  return function(o, key)
    if type(o) ~= "table" then return nil end
    local metadata = rawget(o, "metadata")
    local values = type(metadata) == "table" and rawget(metadata, field) or nil
    local value = type(values) == "table" and rawget(values, key) or nil
    return type(value) == "string" and value or nil
  end
end

return function(source, obj, now, deadline)
  local stopped = false
  local function reraise_if_stopped(...)
    if stopped then error(TIMEOUT, 0) end
    return ...
  end
  local env = {{
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    rawequal = rawequal, rawget = rawget, rawlen = rawlen, rawset = rawset, select = select,
    tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
    getmetatable = getmetatable,
    setmetatable = function(t, mt)
      if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
        error("__gc metamethods are not available to health scripts", 2)
      end
      return setmetatable(t, mt)
    end,
    -- A timeout raised inside pcall/xpcall is raised again as soon as it returns.
    pcall = function(...) return reraise_if_stopped(pcall(...)) end,
    xpcall = function(...) return reraise_if_stopped(xpcall(...)) end,
    print = function() end,
    string = safe_string, table = copy(table), math = copy(math), utf8 = copy(utf8),
    getLabel = meta_value("labels"), getAnnotation = meta_value("annotations"),
    base64Encode = base64_encode, base64Decode = base64_decode,
    obj = obj,
  }}
  env._G = env
  local chunk, syntax = load(source, "=script", "t", env)
  if not chunk then return "syntax error", syntax end
  sethook(function()
    if now() > deadline then stopped = true; error(TIMEOUT, 0) end
  end, "", {_HOOK_EVERY})
  local ok, result = pcall(function()
    chunk()
    local evaluate = rawget(env, "evaluate")
    if type(evaluate) ~= "function" then
      error("the script defines no function evaluate()", 0)
    end
    return evaluate(obj)
  end)
  sethook()
  -- From here on no script code may run (no metamethods, no tostring of its values):
  -- the hook is off.
  if stopped then return "timeout" end
  if not ok then
    if result == "not enough memory" then return "memory" end
    return "failed", type(result) == "string" and result or ("an error of type " .. type(result))
  end
  if type(result) ~= "table" then
    return "failed", "evaluate() must return a table {{healthy = bool, message = string}}, not "
      .. type(result)
  end
  local healthy, message = rawget(result, "healthy"), rawget(result, "message")
  if healthy ~= nil and type(healthy) ~= "boolean" then
    return "failed", "evaluate() returned healthy = " .. type(healthy) .. ", not a boolean"
  end
  if message ~= nil and type(message) ~= "string" and type(message) ~= "number" then
    return "failed", "evaluate() returned message = " .. type(message) .. ", not a string"
  end
  return "ok", healthy == true, message ~= nil and tostring(message) or ""
end
"""
