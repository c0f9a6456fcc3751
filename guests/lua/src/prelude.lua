-- llmos prelude for Lua artifacts.
--
-- Evaluated once, by the guest's build-time `init` (inside the Wizer
-- snapshot every run starts from), under the chunk name "=<llmos:prelude>":
-- it never shifts an artifact's lines and its frames never appear in
-- reported stacks (only frames of the artifact's own chunk do).
--
-- Called with the native hooks (src/lib.rs, src/kernel.rs) and the debug
-- library, which stays private to this file. It replaces the globals that
-- would reach outside the sandbox (print, io, os, require, load, dofile,
-- warn) and returns the guest's helpers: `inspect` (value display),
-- `describe` (class and message of an error value), `variables` (the
-- artifact's top-level variables for an error report), `seal` (record
-- what is built in) and `exit`.
--
-- Everything it uses is captured in locals now, so an artifact that
-- replaces `string.format`, `tostring` or `pairs` cannot change how its
-- values and errors are reported.

local native, debug = ...

local G = _G
local type, tostring, select, next, error = type, tostring, select, next, error
local rawget, rawequal, rawlen, setmetatable = rawget, rawequal, rawlen, setmetatable
local raw_pcall, raw_xpcall, raw_load = pcall, xpcall, load
local getmetatable = debug.getmetatable -- ignores __metatable
local math_type, math_floor, math_huge = math.type, math.floor, math.huge
local sfmt, ssub, sgsub, sfind, sbyte, srep = string.format, string.sub, string.gsub, string.find, string.byte, string.rep
local tconcat, tsort = table.concat, table.sort
local utf8_len = utf8.len
local co_resume, co_close = coroutine.resume, coroutine.close
local write = native.write

-- ------------------------------------------------------------------ exit

-- `os.exit` and `kernel.exit` raise this value. Once an exit is requested,
-- pcall, xpcall and coroutine.resume/close re-raise whatever they caught,
-- so the artifact cannot catch its own exit; the guest reads the code from
-- the native side whatever happens to the value.
local EXIT = setmetatable({}, {
  __name = "llmos.exit",
  __tostring = function() return "exit" end,
})
local exiting = native.exiting

local function exit(code)
  if code == nil or code == true then
    code = 0
  elseif code == false then
    code = 1
  elseif type(code) == "number" then
    code = math_type(code) == "integer" and code
      or (code == code and code > -2^31 and code < 2^31 and math_floor(code))
      or 1
  else
    error(sfmt("bad argument #1 to 'exit' (number or boolean expected, got %s)", type(code)), 2)
  end
  if code > 2147483647 or code < -2147483648 then code = 1 end
  native.exit(code)
  error(EXIT, 0)
end

local function pass(ok, ...)
  if not ok and exiting() then error(EXIT, 0) end
  return ok, ...
end

G.pcall = function(f, ...)
  return pass(raw_pcall(f, ...))
end

G.xpcall = function(f, msgh, ...)
  if type(msgh) ~= "function" then
    return pass(raw_xpcall(f, msgh, ...))
  end
  return pass(raw_xpcall(f, function(e)
    if exiting() then return e end
    return msgh(e)
  end, ...))
end

coroutine.resume = function(co, ...)
  return pass(co_resume(co, ...))
end

coroutine.close = function(co)
  return pass(co_close(co))
end

-- ------------------------------------------------------------------ inspect

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\v"] = "\\v",
}
local function escape(c)
  return ESCAPES[c] or sfmt("\\%03d", sbyte(c))
end

-- A string as a Lua literal ("a\nb"), at most `max` bytes of it. Bytes
-- that are not UTF-8 are escaped too (\255) when the string is not valid
-- UTF-8; a cut never splits a character of a valid one.
local function quote(s, max)
  local cut = #s > max
  if cut then
    s = ssub(s, 1, max)
    for _ = 1, 3 do
      if utf8_len(s) ~= nil then break end
      s = ssub(s, 1, -2)
    end
  end
  s = sgsub(s, '[%c"\\]', escape)
  if utf8_len(s) == nil then s = sgsub(s, "[\128-\255]", escape) end
  s = '"' .. s .. '"'
  if cut then s = s .. "..." end
  return s
end

local KEYWORDS = {}
for w in ("and break do else elseif end false for function goto if in local nil not or repeat return then true until while"):gmatch("%a+") do
  KEYWORDS[w] = true
end

local TYPE_RANK = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return (TYPE_RANK[ta] or 4) < (TYPE_RANK[tb] or 4)
      or ((TYPE_RANK[ta] or 4) == (TYPE_RANK[tb] or 4) and ta < tb)
  end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return (not a) and b end
  return tostring(a) < tostring(b)
end

local MAX_KEYS = 100
local MAX_SCAN = 200000

-- The display of a value in Lua's idiom: strings quoted, tables as
-- constructors ({1, 2, x = 3}, keys sorted), at most `limit` bytes and
-- `depth` levels of tables; cycles show as <cycle>. A table whose
-- metatable has __tostring shows as tostring() says (when that works).
local function inspect(v, limit, depth)
  limit = limit or 4096
  depth = depth or 4
  local out, n, size, full = {}, 0, 0, false
  local function put(s)
    if full then return end
    local room = limit - size
    if #s > room then
      -- Cut before a character, not inside one.
      local b = sbyte(s, room + 1)
      while room > 0 and b >= 0x80 and b < 0xC0 do
        room = room - 1
        b = sbyte(s, room + 1)
      end
      s = ssub(s, 1, room) .. "..."
      full = true
    end
    n = n + 1
    out[n] = s
    size = size + #s
  end
  local seen = {}
  local value
  local function key(k)
    if type(k) == "string" and sfind(k, "^[%a_][%w_]*$") and not KEYWORDS[k] then
      put(k)
    else
      put("[")
      value(k, 0)
      put("]")
    end
    put(" = ")
  end
  function value(x, d)
    if full then return end
    local t = type(x)
    if t == "string" then
      put(quote(x, limit - size))
    elseif t == "table" then
      local mt = getmetatable(x)
      if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
        local ok, s = raw_pcall(tostring, x)
        if ok and type(s) == "string" then
          put(s)
          return
        end
      end
      if seen[x] then
        put("<cycle>")
        return
      end
      if d <= 0 then
        put(next(x) == nil and "{}" or "{...}")
        return
      end
      seen[x] = true
      put("{")
      -- The sequence part 1..#x (holes show as nil), then the other keys,
      -- sorted; at most MAX_KEYS entries, and a bounded scan of the keys.
      local count, border, more = 0, rawlen(x), false
      for i = 1, border do
        if full then break end
        if count >= MAX_KEYS then
          more = true
          break
        end
        if count > 0 then put(", ") end
        count = count + 1
        value(rawget(x, i), d - 1)
      end
      local keys, nk, steps = {}, 0, 0
      local k = next(x)
      while k ~= nil and not more do
        if not (math_type(k) == "integer" and k >= 1 and k <= border) then
          if count + nk >= MAX_KEYS then
            more = true
            break
          end
          nk = nk + 1
          keys[nk] = k
        end
        steps = steps + 1
        if steps > MAX_SCAN then
          more = true
          break
        end
        k = next(x, k)
      end
      raw_pcall(tsort, keys, key_less)
      for i = 1, nk do
        if full then break end
        if count > 0 then put(", ") end
        count = count + 1
        key(keys[i])
        value(rawget(x, keys[i]), d - 1)
      end
      if more and not full then put(", ...") end
      seen[x] = nil
      put("}")
    else
      -- numbers (3, 3.0, 1e+100, inf, nan), booleans, nil, functions,
      -- coroutines and userdata (their type and address).
      local ok, s = raw_pcall(tostring, x)
      put(ok and type(s) == "string" and s or t)
    end
  end
  value(v, depth)
  return tconcat(out)
end

-- ------------------------------------------------------------------ output

local function tostr(v)
  local s = tostring(v)
  if type(s) ~= "string" then error("'__tostring' must return a string", 3) end
  return s
end

G.print = function(...)
  local n = select("#", ...)
  if n == 0 then
    write(1, "\n")
  elseif n == 1 then
    write(1, tostr((...)) .. "\n")
  else
    local parts = { ... }
    for i = 1, n do parts[i] = tostr(parts[i]) end
    write(1, tconcat(parts, "\t") .. "\n")
  end
end

-- io.write writes numbers as C's "%.14g" does (io.write(1.0) prints 1).
local function write_args(fd, first, ...)
  local n = select("#", ...)
  local parts = { ... }
  for i = 1, n do
    local v = parts[i]
    local t = type(v)
    if t == "number" then
      parts[i] = math_type(v) == "integer" and sfmt("%d", v) or sfmt("%.14g", v)
    elseif t ~= "string" then
      error(sfmt("bad argument #%d to 'write' (string expected, got %s)", i - 1 + first, t), 3)
    end
  end
  if n > 0 then write(fd, tconcat(parts)) end
end

local File = {}
File.__index = File
File.__name = "FILE*"
File.__tostring = function(f) return f.fd == 1 and "file (stdout)" or "file (stderr)" end
function File:write(...)
  write_args(self.fd, 1, ...)
  return self
end
function File:flush() return self end
function File:setvbuf() return true end
function File:close() return nil, "cannot close standard file" end
function File:read() return nil end
function File:lines() return function() return nil end end
function File:seek() return nil, "cannot seek a standard stream" end
local stdout = setmetatable({ fd = 1 }, File)
local stderr = setmetatable({ fd = 2 }, File)
local stdin = setmetatable({ fd = 0 }, {
  __index = File, __name = "FILE*",
  __tostring = function() return "file (stdin)" end,
})

-- A sandbox has no files: only standard output and error (stdin is empty).
G.io = {
  write = function(...)
    write_args(1, 1, ...)
    return stdout
  end,
  read = function() return nil end,
  lines = function(name)
    if name ~= nil then error("io.lines: there are no files in the sandbox", 2) end
    return function() return nil end
  end,
  open = function(name) return nil, tostring(name) .. ": there are no files in the sandbox", 2 end,
  output = function() return stdout end,
  input = function() return stdin end,
  type = function(f)
    if rawequal(f, stdout) or rawequal(f, stderr) or rawequal(f, stdin) then return "file" end
    return nil
  end,
  stdout = stdout,
  stderr = stderr,
  stdin = stdin,
}

-- Lua's warn() (off until "@on"), to stderr.
local warn_on, warn_parts = false, {}
G.warn = function(msg, ...)
  local parts = { msg, ... }
  for i = 1, select("#", ...) + 1 do
    if type(parts[i]) ~= "string" then
      error(sfmt("bad argument #%d to 'warn' (string expected, got %s)", i, type(parts[i])), 2)
    end
  end
  if select("#", ...) == 0 and ssub(msg, 1, 1) == "@" then
    if msg == "@on" then warn_on = true elseif msg == "@off" then warn_on = false end
    return
  end
  if warn_on then write(2, "Lua warning: " .. tconcat(parts) .. "\n") end
end

-- ------------------------------------------------------------------ os

local os_lib = G.os
G.os = {
  time = os_lib.time,
  date = os_lib.date,
  difftime = os_lib.difftime,
  clock = native.clock,
  exit = exit,
  getenv = function() return nil end,
}

-- ------------------------------------------------------------------ loading

-- Text chunks only: precompiled (binary) chunks can crash the VM.
G.load = function(...)
  local chunk, name, _, env = ...
  if select("#", ...) >= 4 then return raw_load(chunk, name, "t", env) end
  return raw_load(chunk, name, "t")
end
G.dofile = nil
G.loadfile = nil

local loaded = {
  _G = G, string = string, table = table, math = math, utf8 = utf8,
  coroutine = coroutine, os = G.os, io = G.io,
}
local preload = {}
G.package = {
  loaded = loaded,
  preload = preload,
  path = "",
  cpath = "",
  config = "/\n;\n?\n!\n-\n",
}
G.require = function(name)
  if type(name) ~= "string" then
    error(sfmt("bad argument #1 to 'require' (string expected, got %s)", type(name)), 2)
  end
  local v = loaded[name]
  if v ~= nil then return v end
  local f = preload[name]
  if f == nil then
    error(sfmt("module '%s' not found: only the built-in modules (\"kernel\", \"string\", \"table\", ...) can be required", name), 2)
  end
  v = f(name, ":preload:")
  if v == nil then v = true end
  loaded[name] = v
  return v, ":preload:"
end

-- ------------------------------------------------------------------ reports

-- Class (nil for a string: the guest classifies those) and message of an
-- error value. Tables: `class` field, else the metatable's __name; the
-- `message` field, else __tostring, else the table's display.
local function describe(e)
  local t = type(e)
  if t == "string" then return nil, e end
  if t == "table" or t == "userdata" then
    local mt = getmetatable(e)
    local cls = t == "table" and rawget(e, "class") or nil
    if type(cls) ~= "string" and type(mt) == "table" then cls = rawget(mt, "__name") end
    if type(cls) ~= "string" or cls == "" then cls = "RuntimeError" end
    local msg = t == "table" and rawget(e, "message") or nil
    if type(msg) == "number" then msg = tostring(msg) end
    if type(msg) ~= "string" and type(mt) == "table" and rawget(mt, "__tostring") ~= nil then
      local ok, s = raw_pcall(tostring, e)
      if ok and type(s) == "string" then msg = s end
    end
    if type(msg) ~= "string" then msg = inspect(e, 4096, 2) end
    return cls, msg
  end
  return "RuntimeError", inspect(e, 4096, 1)
end

local builtins = {}

-- Record every global that exists now (the standard library, `kernel`):
-- error reports list only the artifact's own globals.
local function seal()
  builtins = {}
  for k, v in next, G do builtins[k] = v end
end

-- The artifact's top-level variables when an error was raised: the main
-- chunk's locals (`locals`: {name1, value1, name2, value2, ..., n = 2k},
-- captured by the guest's message handler), then the globals it defined
-- or replaced; no functions; at most 50, each {name, type, preview}.
local function variables(locals)
  local out, count = {}, 0
  local function add(name, v)
    if count >= 50 then return end
    local t = type(v)
    if t == "function" then return end
    count = count + 1
    out[count] = { name, t, inspect(v, 200, 2) }
  end
  if type(locals) == "table" then
    local n = rawget(locals, "n") or 0
    local last = {}
    for i = 1, n, 2 do last[rawget(locals, i)] = i end
    for i = 1, n, 2 do
      local name = rawget(locals, i)
      if last[name] == i then add(name, rawget(locals, i + 1)) end
    end
  end
  local names, nn = {}, 0
  local k, v = next(G)
  while k ~= nil and nn < 200 do
    if type(k) == "string" and not rawequal(builtins[k], v) and type(v) ~= "function" then
      nn = nn + 1
      names[nn] = k
    end
    k, v = next(G, k)
  end
  tsort(names)
  for i = 1, nn do add(names[i], rawget(G, names[i])) end
  return out
end

return {
  inspect = inspect,
  describe = describe,
  variables = variables,
  seal = seal,
  exit = exit,
  EXIT = EXIT,
  preload = preload,
  loaded = loaded,
}
