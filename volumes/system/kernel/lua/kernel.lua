-- llmos standard library for Lua artifacts: the `kernel` module.
--
-- Embedded into the Lua component at build time and evaluated once, when
-- the component's interpreter snapshot is built (never per run), under its
-- own chunk name ("=<llmos:kernel>"), so it cannot shift an artifact's line
-- numbers and its frames are dropped from reported stacks.
--
-- The chunk is called with the native hooks (thin bridges to the WIT
-- imports, in guests/lua/src/kernel.rs) and the prelude's helpers; it
-- returns the `kernel` table, which becomes the global `kernel` and what
-- `require("kernel")` returns.
--
-- Natives never raise for a kernel error: they return `false, code,
-- message`, and this module raises the typed error (a table with `class`,
-- `code` and `message`) at the artifact's call.
--
-- Every public function has a doc block (a long comment) whose first line
-- is its qualified signature; `llmos api lua` prints them and the repair
-- loop gives them to the LLM. Keep them exact. Methods are written
-- `Class#method` there and called with a colon: `canvas:rect(...)`.

local native, helpers = ...

local type, tostring, tonumber, select, next, error, setmetatable, getmetatable =
  type, tostring, tonumber, select, next, error, setmetatable, getmetatable
local rawget, rawequal, pcall = rawget, rawequal, pcall
local math_type, math_huge, math_floor, math_tointeger = math.type, math.huge, math.floor, math.tointeger
local sfmt, ssub, sbyte, schar, sfind, sgsub, smatch = string.format, string.sub, string.byte, string.char, string.find, string.gsub, string.match
local tconcat, tsort = table.concat, table.sort
local utf8_char = utf8.char
local inspect = helpers.inspect

local kernel = {}

-- ------------------------------------------------------------------ errors

--[[ kernel.KernelError
The metatable of every error a kernel function raises. An error is a
table with `class` ("StorageError", "VizError", "DomError" or
"QuantumError"), `code` (the interface's error code, e.g.
"quota-exceeded") and `message` (what was wrong and what is allowed);
tostring(err) gives "Class: message". Catch one with pcall:
  local ok, err = pcall(kernel.storage.set, "k", big)
  if not ok and type(err) == "table" and err.code == "quota-exceeded" then ... end
]]
local KernelError = {
  __name = "KernelError",
  __tostring = function(e)
    return tostring(rawget(e, "class")) .. ": " .. tostring(rawget(e, "message"))
  end,
}
kernel.KernelError = KernelError

local function raise(class, code, message)
  error(setmetatable({ class = class, code = code, message = message }, KernelError), 3)
end

--[[ kernel.is_error(value, class?) -> boolean
Whether `value` is an error raised by a kernel function (of `class`, e.g.
"StorageError", when given).
]]
function kernel.is_error(value, class)
  return type(value) == "table" and getmetatable(value) == KernelError
    and (class == nil or rawget(value, "class") == class)
end

-- `ok, a, b` from a native, or raise `class` with `code`, `message`.
local function check(class, ok, a, b)
  if not ok then raise(class, a, b) end
  return a, b
end

local function arg_error(fname, n, expected, v)
  error(sfmt("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected, type(v)), 3)
end

local function need_string(fname, n, v)
  if type(v) ~= "string" then arg_error(fname, n, "string", v) end
  return v
end

local function need_number(fname, n, v)
  if type(v) ~= "number" then arg_error(fname, n, "number", v) end
  if v ~= v or v == math_huge or v == -math_huge then
    error(sfmt("bad argument #%d to '%s' (finite number expected, got %s)", n, fname, tostring(v)), 3)
  end
  return v
end

local function text_of(v)
  if type(v) == "string" then return v end
  if type(v) == "number" or type(v) == "boolean" or v == nil then return tostring(v) end
  return inspect(v, 4096, 3)
end

-- ------------------------------------------------------------------ json

local json = {}

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function esc(c)
  return ESC[c] or sfmt("\\u%04x", sbyte(c))
end

local function encode_number(x)
  if math_type(x) == "integer" then return sfmt("%d", x) end
  if x ~= x or x == math_huge or x == -math_huge then
    error("kernel.json.encode: cannot encode " .. tostring(x) .. " (JSON has no NaN or infinity)", 0)
  end
  local s = sfmt("%.14g", x)
  if tonumber(s) ~= x then s = sfmt("%.17g", x) end
  if not sfind(s, "[%.eEn]") then s = s .. ".0" end
  return s
end

local function encode(v, out, n, stack, depth)
  local t = type(v)
  if t == "nil" then
    n = n + 1; out[n] = "null"
  elseif t == "boolean" then
    n = n + 1; out[n] = v and "true" or "false"
  elseif t == "number" then
    n = n + 1; out[n] = encode_number(v)
  elseif t == "string" then
    n = n + 1; out[n] = '"' .. sgsub(v, '[%c"\\]', esc) .. '"'
  elseif t == "table" then
    if stack[v] then error("kernel.json.encode: cannot encode a table that contains itself", 0) end
    if depth > 200 then error("kernel.json.encode: tables nested more than 200 deep", 0) end
    stack[v] = true
    -- A sequence 1..n (n >= 1) is an array; anything else is an object.
    local count, max, array = 0, 0, true
    for k in next, v do
      count = count + 1
      if math_type(k) == "integer" and k >= 1 then
        if k > max then max = k end
      else
        array = false
      end
    end
    if array and count > 0 and max == count then
      n = n + 1; out[n] = "["
      for i = 1, max do
        if i > 1 then n = n + 1; out[n] = "," end
        n = encode(rawget(v, i), out, n, stack, depth + 1)
      end
      n = n + 1; out[n] = "]"
    else
      local keys, nk = {}, 0
      for k in next, v do
        local tk = type(k)
        if tk == "string" then
          nk = nk + 1; keys[nk] = k
        elseif tk == "number" then
          nk = nk + 1; keys[nk] = k
        else
          error("kernel.json.encode: cannot encode a table key of type " .. tk, 0)
        end
      end
      -- Sorted keys: the same table always encodes to the same text.
      pcall(tsort, keys, function(a, b)
        if type(a) == type(b) then return a < b end
        return type(a) == "number"
      end)
      n = n + 1; out[n] = "{"
      for i = 1, nk do
        local k = keys[i]
        if i > 1 then n = n + 1; out[n] = "," end
        local ks = type(k) == "string" and k or encode_number(k)
        n = n + 1; out[n] = '"' .. sgsub(ks, '[%c"\\]', esc) .. '":'
        n = encode(rawget(v, k), out, n, stack, depth + 1)
      end
      n = n + 1; out[n] = "}"
    end
    stack[v] = nil
  else
    error("kernel.json.encode: cannot encode a " .. t, 0)
  end
  return n
end

--[[ kernel.json.encode(value) -> string
JSON text of `value`: nil (null), booleans, numbers (finite), strings,
and tables: a sequence {1, 2, 3} is an array, any other table an object
with its keys sorted (number keys become strings); an empty table is {}.
Raises an error for functions, cycles, NaN or infinity.
]]
function json.encode(value)
  local out = {}
  local ok, err = pcall(encode, value, out, 0, {}, 0)
  if not ok then error(err, 2) end
  return tconcat(out)
end

local decode_value

local function decode_error(s, i, what)
  local line = 1
  for _ in sgsub(ssub(s, 1, i - 1), "[^\n]", ""):gmatch("\n") do line = line + 1 end
  error(sfmt("kernel.json.decode: %s at line %d (byte %d)", what, line, i), 0)
end

local function skip(s, i)
  local _, e = sfind(s, "^[ \t\r\n]*", i)
  return e + 1
end

local function codepoint(s, i)
  local hex = smatch(s, "^%x%x%x%x", i)
  if not hex then decode_error(s, i, "bad \\u escape") end
  return tonumber(hex, 16)
end

local UNESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode_string(s, i)
  -- s[i] is the opening quote
  local parts, n = {}, 0
  local j = i + 1
  while true do
    local a, b = sfind(s, '^[^"\\%c]+', j)
    if a then
      n = n + 1; parts[n] = ssub(s, a, b)
      j = b + 1
    end
    local c = ssub(s, j, j)
    if c == '"' then
      return tconcat(parts), j + 1
    elseif c == "\\" then
      local e = ssub(s, j + 1, j + 1)
      if e == "u" then
        local cp = codepoint(s, j + 2)
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and ssub(s, j, j + 1) == "\\u" then
          local lo = codepoint(s, j + 2)
          if lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            j = j + 6
          end
        end
        n = n + 1; parts[n] = utf8_char(cp)
      elseif UNESC[e] then
        n = n + 1; parts[n] = UNESC[e]
        j = j + 2
      else
        decode_error(s, j, "bad escape")
      end
    elseif c == "" then
      decode_error(s, j, "unterminated string")
    else
      decode_error(s, j, "control character in string")
    end
  end
end

function decode_value(s, i, depth)
  if depth > 500 then decode_error(s, i, "nesting too deep") end
  i = skip(s, i)
  local c = ssub(s, i, i)
  if c == "{" then
    local obj = {}
    i = skip(s, i + 1)
    if ssub(s, i, i) == "}" then return obj, i + 1 end
    while true do
      if ssub(s, i, i) ~= '"' then decode_error(s, i, "expected a string key") end
      local k
      k, i = decode_string(s, i)
      i = skip(s, i)
      if ssub(s, i, i) ~= ":" then decode_error(s, i, "expected ':'") end
      local v
      v, i = decode_value(s, i + 1, depth + 1)
      obj[k] = v
      i = skip(s, i)
      c = ssub(s, i, i)
      if c == "}" then return obj, i + 1 end
      if c ~= "," then decode_error(s, i, "expected ',' or '}'") end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local arr, n = {}, 0
    i = skip(s, i + 1)
    if ssub(s, i, i) == "]" then return arr, i + 1 end
    while true do
      local v
      v, i = decode_value(s, i, depth + 1)
      n = n + 1
      arr[n] = v
      i = skip(s, i)
      c = ssub(s, i, i)
      if c == "]" then return arr, i + 1 end
      if c ~= "," then decode_error(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif c == "t" and ssub(s, i, i + 3) == "true" then
    return true, i + 4
  elseif c == "f" and ssub(s, i, i + 4) == "false" then
    return false, i + 5
  elseif c == "n" and ssub(s, i, i + 3) == "null" then
    return nil, i + 4
  else
    local num = smatch(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" or num == "-" then decode_error(s, i, "unexpected character") end
    local v
    if sfind(num, "[%.eE]") then
      v = tonumber(num)
    else
      v = math_tointeger(tonumber(num)) or tonumber(num)
    end
    if v == nil then decode_error(s, i, "bad number") end
    return v, i + #num
  end
end

--[[ kernel.json.decode(text) -> value
The value of JSON `text`: objects and arrays become tables (arrays
1-based), null becomes nil (so it leaves a hole in an array), numbers
with a fraction or exponent are floats, the others integers.
Raises an error on invalid JSON.
]]
function json.decode(text)
  need_string("decode", 1, text)
  local ok, v, i = pcall(decode_value, text, 1, 0)
  if not ok then error(v, 2) end
  i = skip(text, i)
  if i <= #text then
    local ok2, err = pcall(decode_error, text, i, "trailing characters")
    error(err, 2)
  end
  return v
end

kernel.json = json

local function to_json(fname, v)
  local out = {}
  local ok, err = pcall(encode, v, out, 0, {}, 0)
  if not ok then error(sfmt("%s: %s", fname, (sgsub(tostring(err), "^kernel%.json%.encode: ", ""))), 3) end
  return tconcat(out)
end

-- ------------------------------------------------------------------ log

local function log_fn(level, name)
  return function(message, fields)
    local flat, n = {}, 0
    if fields ~= nil then
      if type(fields) ~= "table" then arg_error(name, 2, "table", fields) end
      local keys = {}
      for k in next, fields do keys[#keys + 1] = tostring(k) end
      tsort(keys)
      for i = 1, #keys do
        local k = keys[i]
        local v = fields[k]
        if v == nil then v = fields[tonumber(k)] end
        flat[n + 1] = k
        flat[n + 2] = text_of(v)
        n = n + 2
      end
    end
    native.log(level, text_of(message), flat)
  end
end

kernel.log = {
  --[[ kernel.log.debug(message, fields?)
  Record a debug log line. `fields` is a table of structured values
  (each displayed as the REPL would): kernel.log.debug("step", {i = 3}).
  ]]
  debug = log_fn(0, "debug"),
  --[[ kernel.log.info(message, fields?)
  Record an info log line: kernel.log.info("loaded", {rows = 12}).
  ]]
  info = log_fn(1, "info"),
  --[[ kernel.log.warn(message, fields?)
  Record a warning.
  ]]
  warn = log_fn(2, "warn"),
  --[[ kernel.log.error(message, fields?)
  Record an error (it does not stop the artifact; call error() for that).
  ]]
  error = log_fn(3, "error"),
}

-- ------------------------------------------------------------------ storage

local storage = {}

--[[ kernel.storage.get(key, default) -> value
The value stored under `key` (decoded from JSON), or `default` (nil if
not given) when the key does not exist. Storage is private to this
artifact and persists across runs. Raises StorageError "invalid-key" for
an empty key, one over the length limit, or one with a NUL byte.
]]
function storage.get(key, default)
  need_string("get", 1, key)
  local text = check("StorageError", native.storage_get(key))
  if text == nil then return default end
  return json.decode(text)
end

--[[ kernel.storage.set(key, value)
Store `value` (anything kernel.json.encode accepts: nil, booleans,
numbers, strings, tables of those) under `key`, replacing any earlier
value. Durable when it returns. Raises StorageError "quota-exceeded"
past the namespace quotas, "invalid-key" for a bad key.
]]
function storage.set(key, value)
  need_string("set", 1, key)
  local text = to_json("kernel.storage.set", value)
  check("StorageError", native.storage_set(key, text))
end

--[[ kernel.storage.has(key) -> boolean
Whether `key` exists.
]]
function storage.has(key)
  need_string("has", 1, key)
  return check("StorageError", native.storage_get(key)) ~= nil
end

--[[ kernel.storage.delete(key) -> boolean
Remove `key`; true if it existed.
]]
function storage.delete(key)
  need_string("delete", 1, key)
  return (check("StorageError", native.storage_delete(key)))
end

--[[ kernel.storage.list(prefix) -> {string, ...}
The keys starting with `prefix` (all keys when nil or ""), sorted, as a
sequence.
]]
function storage.list(prefix)
  if prefix == nil then prefix = "" end
  need_string("list", 1, prefix)
  return (check("StorageError", native.storage_keys(prefix)))
end

--[[ kernel.storage.clear() -> integer
Remove every key of this artifact; returns how many were removed.
]]
function storage.clear()
  return (check("StorageError", native.storage_clear()))
end

kernel.storage = storage

-- ------------------------------------------------------------------ viz

local viz = {}

local PAINT = { fill = 0, stroke = 1, both = 2, ["fill-and-stroke"] = 2 }
local function paint_of(fname, n, paint, default)
  if paint == nil then return default end
  local p = PAINT[paint]
  if p == nil then
    error(sfmt("bad argument #%d to '%s' (paint must be \"fill\", \"stroke\" or \"both\", got %s)", n, fname, inspect(paint, 60, 1)), 3)
  end
  return p
end

--[[ kernel.viz.Canvas
A drawing surface of at most 2000x2000 pixels, white to start with, made
by kernel.viz.canvas(width, height). Drawing methods return the canvas,
so calls chain with colons:
  kernel.viz.canvas(200, 100):fill_color("navy"):rect(10, 10, 50, 30):show()
`canvas.width` and `canvas.height` are its size.
]]
local Canvas = { __name = "Canvas" }
Canvas.__index = Canvas
Canvas.__tostring = function(c) return sfmt("Canvas(%dx%d)", c.width, c.height) end
local canvas_handles = setmetatable({}, { __mode = "k" })

local function canvas_op(c, fname, op, ...)
  local h = canvas_handles[c]
  if h == nil then error(sfmt("bad self to '%s' (Canvas expected)", fname), 3) end
  local ok, a, b = native.canvas_op(h, op, ...)
  if not ok then raise("VizError", a, b) end
  return a
end

--[[ kernel.viz.Canvas#fill_color(color) -> canvas
Set the fill colour (also used for text): a CSS colour name, "#rgb",
"#rrggbb", "#rrggbbaa", "rgb(r, g, b)" or "rgba(r, g, b, a)".
]]
function Canvas:fill_color(color)
  canvas_op(self, "fill_color", "fill_color", need_string("fill_color", 1, color))
  return self
end

--[[ kernel.viz.Canvas#stroke_color(color) -> canvas
Set the stroke colour (same syntax as fill_color).
]]
function Canvas:stroke_color(color)
  canvas_op(self, "stroke_color", "stroke_color", need_string("stroke_color", 1, color))
  return self
end

--[[ kernel.viz.Canvas#line_width(width) -> canvas
Set the stroke width in pixels (0 < width <= 1000).
]]
function Canvas:line_width(width)
  canvas_op(self, "line_width", "line_width", need_number("line_width", 1, width))
  return self
end

--[[ kernel.viz.Canvas#rect(x, y, width, height, paint) -> canvas
A rectangle with its top-left corner at (x, y). `paint` is "fill" (the
default), "stroke" or "both".
]]
function Canvas:rect(x, y, width, height, paint)
  canvas_op(self, "rect", "rect", need_number("rect", 1, x), need_number("rect", 2, y),
    need_number("rect", 3, width), need_number("rect", 4, height), paint_of("rect", 5, paint, 0))
  return self
end

--[[ kernel.viz.Canvas#line(x1, y1, x2, y2) -> canvas
A straight line in the stroke colour.
]]
function Canvas:line(x1, y1, x2, y2)
  canvas_op(self, "line", "line", need_number("line", 1, x1), need_number("line", 2, y1),
    need_number("line", 3, x2), need_number("line", 4, y2))
  return self
end

--[[ kernel.viz.Canvas#circle(cx, cy, r, paint) -> canvas
A circle centred on (cx, cy) with radius r; `paint` as for rect
("fill" by default).
]]
function Canvas:circle(cx, cy, r, paint)
  canvas_op(self, "circle", "circle", need_number("circle", 1, cx), need_number("circle", 2, cy),
    need_number("circle", 3, r), paint_of("circle", 4, paint, 0))
  return self
end

--[[ kernel.viz.Canvas#path(points, closed, paint) -> canvas
A polyline through `points`, a sequence of {x, y} pairs or {x = , y = }
tables; closed into a polygon when `closed` is true. `paint` defaults to
"stroke".
]]
function Canvas:path(points, closed, paint)
  if type(points) ~= "table" then arg_error("path", 1, "table", points) end
  local flat, n = {}, 0
  for i = 1, #points do
    local p = points[i]
    if type(p) ~= "table" then
      error(sfmt("bad argument #1 to 'path' (points[%d] must be {x, y}, got %s)", i, type(p)), 2)
    end
    local x, y = p[1], p[2]
    if x == nil then x, y = p.x, p.y end
    flat[n + 1] = need_number("path", 1, x)
    flat[n + 2] = need_number("path", 1, y)
    n = n + 2
  end
  canvas_op(self, "path", "path", flat, closed and true or false, paint_of("path", 3, paint, 1))
  return self
end

--[[ kernel.viz.Canvas#text(x, y, text, size) -> canvas
Text in the fill colour with its baseline starting at (x, y), `size`
pixels high (16 by default).
]]
function Canvas:text(x, y, text, size)
  if size == nil then size = 16 end
  canvas_op(self, "text", "text", need_number("text", 1, x), need_number("text", 2, y),
    text_of(text), need_number("text", 4, size))
  return self
end

--[[ kernel.viz.Canvas#show() -> integer
Render the canvas (SVG and PNG) as a run output; returns the output's
index. The canvas stays usable: later drawing goes on top.
]]
function Canvas:show()
  return canvas_op(self, "show", "show")
end

--[[ kernel.viz.canvas(width, height) -> Canvas
A new blank canvas of at most 2000x2000 pixels.
]]
function viz.canvas(width, height)
  need_number("canvas", 1, width)
  need_number("canvas", 2, height)
  local h = check("VizError", native.canvas_new(width, height))
  local c = setmetatable({ width = width, height = height }, Canvas)
  canvas_handles[c] = h
  return c
end

--[[ kernel.viz.plot(data, options) -> integer
Draw a chart as a run output (SVG + PNG); returns the output index. The
data's shape picks the chart: {1, 4, 9} (line), {{x, y}, ...} or
{{x = 1, y = 2}, ...} (scatter), {x = {...}, y = {...}} (line),
{a = {...}, b = {...}} (several series with a legend), {label = number,
...} (bar). Options (a table): kind ("line", "scatter", "bar",
"histogram"), title, x_label, y_label, width, height, bins (histogram),
legend (boolean). Raises VizError "invalid-data" or "invalid-options".
]]
function viz.plot(data, options)
  local d = to_json("kernel.viz.plot", data)
  if options ~= nil and type(options) ~= "table" then arg_error("plot", 2, "table", options) end
  local o = options == nil and "{}" or to_json("kernel.viz.plot", options)
  if o == "[]" then o = "{}" end
  return (check("VizError", native.viz_plot(d, o)))
end

--[[ kernel.viz.render3d(scene) -> integer
Validate a 3D scene and add it as an output for the dashboard:
{ camera = { position = {x, y, z}, target = {x, y, z}, fov = 60 },
  objects = { { type = "mesh", vertices = {{x, y, z}, ...}, faces = {{1, 2, 3}, ...}, color = "red" },
              { type = "points", points = {{x, y, z}, ...}, color = "blue", size = 2 },
              { type = "lines", points = {{x, y, z}, ...}, closed = true } } }
Face indices are 0-based vertex indices, as the scene format says.
]]
function viz.render3d(scene)
  if type(scene) ~= "table" then arg_error("render3d", 1, "table", scene) end
  return (check("VizError", native.viz_render3d(to_json("kernel.viz.render3d", scene))))
end

viz.Canvas = Canvas
kernel.viz = viz

-- ------------------------------------------------------------------ dom

local dom = {}

--[[ kernel.dom.Element
An element of the artifact's own output document (made by
kernel.dom.create_element, or found with query_selector). Only safe tags
and attributes exist: a forbidden one raises DomError, it is never
dropped. Methods are called with a colon: el:set_text("hi").
]]
local Element = { __name = "Element" }
Element.__index = Element
local element_handles = setmetatable({}, { __mode = "k" })

local function wrap(h)
  if h == nil then return nil end
  local el = setmetatable({}, Element)
  element_handles[el] = h
  return el
end

local function handle_of(fname, n, el)
  local h = type(el) == "table" and element_handles[el] or nil
  if h == nil then
    error(sfmt("bad argument #%d to '%s' (Element expected, got %s)", n, fname, type(el)), 3)
  end
  return h
end

local function dom_op(el, fname, op, a, b)
  local h = type(el) == "table" and element_handles[el] or nil
  if h == nil then error(sfmt("bad self to '%s' (Element expected)", fname), 3) end
  local ok, x, y = native.dom_op(h, op, a, b)
  if not ok then raise("DomError", x, y) end
  return x
end

Element.__tostring = function(el)
  local ok, tag = pcall(dom_op, el, "tostring", "tag_name")
  return "Element<" .. (ok and tostring(tag) or "?") .. ">"
end

--[[ kernel.dom.Element#tag_name() -> string
The lower-case tag name.
]]
function Element:tag_name() return dom_op(self, "tag_name", "tag_name") end

--[[ kernel.dom.Element#text() -> string
The text of the element and its descendants.
]]
function Element:text() return dom_op(self, "text", "text") end

--[[ kernel.dom.Element#set_text(text) -> element
Replace the element's children with `text` (escaped, never parsed as
HTML). Returns the element.
]]
function Element:set_text(text)
  dom_op(self, "set_text", "set_text", text_of(text))
  return self
end

--[[ kernel.dom.Element#set_attribute(name, value) -> element
Set an allowlisted attribute (id, class, title, href, src, alt, width,
height, colspan, data-*, aria-*, SVG geometry and paint...). on*
handlers, style and javascript: URLs raise DomError. Returns the element.
]]
function Element:set_attribute(name, value)
  dom_op(self, "set_attribute", "set_attribute", need_string("set_attribute", 1, name), text_of(value))
  return self
end

--[[ kernel.dom.Element#get_attribute(name) -> string or nil
]]
function Element:get_attribute(name)
  return dom_op(self, "get_attribute", "get_attribute", need_string("get_attribute", 1, name))
end

--[[ kernel.dom.Element#remove_attribute(name) -> boolean
Remove an attribute; true if it was set.
]]
function Element:remove_attribute(name)
  return dom_op(self, "remove_attribute", "remove_attribute", need_string("remove_attribute", 1, name))
end

--[[ kernel.dom.Element#append_child(child) -> child
Append `child` as the last child (moving it from its old parent).
]]
function Element:append_child(child)
  dom_op(self, "append_child", "append_child", handle_of("append_child", 1, child))
  return child
end

--[[ kernel.dom.Element#append(...) -> element
Append several children: elements, or strings and numbers (each becomes
a <span> with that text). Returns the element.
]]
function Element:append(...)
  for i = 1, select("#", ...) do
    local c = select(i, ...)
    if type(c) == "table" and element_handles[c] ~= nil then
      self:append_child(c)
    else
      self:append_child(dom.create_element("span", { text = text_of(c) }))
    end
  end
  return self
end

--[[ kernel.dom.Element#remove_child(child) -> child
Remove `child` from this element's children.
]]
function Element:remove_child(child)
  dom_op(self, "remove_child", "remove_child", handle_of("remove_child", 1, child))
  return child
end

local function wrap_all(hs)
  local out = {}
  for i = 1, #hs do out[i] = wrap(hs[i]) end
  return out
end

--[[ kernel.dom.Element#children() -> {Element, ...}
The element children, in order, as a sequence.
]]
function Element:children()
  return wrap_all(dom_op(self, "children", "children"))
end

--[[ kernel.dom.Element#query_selector(selector) -> Element or nil
The first descendant matching a CSS selector (tag, #id, .class, [attr],
[attr=value], descendant and child combinators, lists).
]]
function Element:query_selector(selector)
  return wrap(dom_op(self, "query_selector", "query_selector", need_string("query_selector", 1, selector)))
end

--[[ kernel.dom.Element#query_selector_all(selector) -> {Element, ...}
Every descendant matching `selector`, in document order.
]]
function Element:query_selector_all(selector)
  return wrap_all(dom_op(self, "query_selector_all", "query_selector_all", need_string("query_selector_all", 1, selector)))
end

local root_element = nil

--[[ kernel.dom.root() -> Element
The artifact's container (a div). What is appended to it becomes the
run's sanitized text/html output.
]]
function dom.root()
  if root_element == nil then root_element = wrap(native.dom_root()) end
  return root_element
end

--[[ kernel.dom.create_element(tag, props) -> Element
A new detached element. `props` (optional) sets attributes, plus `text`
(the text content) and `children` (a sequence of elements or strings to
append): kernel.dom.create_element("a", {href = "https://example.com", text = "link"}).
]]
function dom.create_element(tag, props)
  need_string("create_element", 1, tag)
  if props ~= nil and type(props) ~= "table" then arg_error("create_element", 2, "table", props) end
  local el = wrap(check("DomError", native.dom_create(tag)))
  if props ~= nil then
    local keys = {}
    for k in next, props do
      if type(k) == "string" then keys[#keys + 1] = k end
    end
    tsort(keys)
    for i = 1, #keys do
      local k = keys[i]
      local v = props[k]
      if k == "text" then
        el:set_text(v)
      elseif k == "children" then
        if type(v) ~= "table" then error("bad argument #2 to 'create_element' (children must be a sequence)", 2) end
        el:append(table.unpack(v, 1, #v))
      else
        el:set_attribute(k == "class_name" and "class" or k, v)
      end
    end
  end
  return el
end

--[[ kernel.dom.query_selector(selector) -> Element or nil
Same as kernel.dom.root():query_selector(selector).
]]
function dom.query_selector(selector)
  return dom.root():query_selector(selector)
end

--[[ kernel.dom.query_selector_all(selector) -> {Element, ...}
Same as kernel.dom.root():query_selector_all(selector).
]]
function dom.query_selector_all(selector)
  return dom.root():query_selector_all(selector)
end

dom.Element = Element
kernel.dom = dom

-- ------------------------------------------------------------------ quantum

local quantum = {}

-- Indices of the gate-kind enum in wit/quantum.wit.
local G = { h = 0, x = 1, y = 2, z = 3, s = 4, t = 5, rx = 6, ry = 7, rz = 8, cnot = 9, cz = 10, swap = 11, measure = 12 }

--[[ kernel.quantum.Circuit
A quantum circuit on n qubits, made by kernel.quantum.circuit(n). Qubits
are numbered from 0 (not 1): qubit 0 is the least-significant bit of a
basis index, and bitstrings in counts are written highest qubit first
(like Qiskit). Gate methods return the circuit, so they chain:
  local r = kernel.quantum.circuit(2):h(0):cnot(0, 1):measure_all():run(100)
]]
local Circuit = { __name = "Circuit" }
Circuit.__index = Circuit
Circuit.__tostring = function(c) return sfmt("Circuit(%d qubits, %d gates)", c.qubits, #c.gates) end

local function qubit(fname, n, q)
  need_number(fname, n, q)
  return q
end

local function add(c, kind, qubits, theta)
  local gates = c.gates
  gates[#gates + 1] = { G[kind], qubits, theta }
  return c
end

--[[ kernel.quantum.Circuit#h(q) -> circuit
Hadamard on qubit q. Also x, y, z, s, t (Pauli X/NOT, Y, Z, phase, pi/8),
each taking one qubit.
]]
function Circuit:h(q) return add(self, "h", { qubit("h", 1, q) }) end
function Circuit:x(q) return add(self, "x", { qubit("x", 1, q) }) end
function Circuit:y(q) return add(self, "y", { qubit("y", 1, q) }) end
function Circuit:z(q) return add(self, "z", { qubit("z", 1, q) }) end
function Circuit:s(q) return add(self, "s", { qubit("s", 1, q) }) end
function Circuit:t(q) return add(self, "t", { qubit("t", 1, q) }) end

--[[ kernel.quantum.Circuit#rx(theta, q) -> circuit
Rotation of qubit q about X by `theta` radians. Also ry and rz.
]]
function Circuit:rx(theta, q) return add(self, "rx", { qubit("rx", 2, q) }, need_number("rx", 1, theta)) end
function Circuit:ry(theta, q) return add(self, "ry", { qubit("ry", 2, q) }, need_number("ry", 1, theta)) end
function Circuit:rz(theta, q) return add(self, "rz", { qubit("rz", 2, q) }, need_number("rz", 1, theta)) end

--[[ kernel.quantum.Circuit#cnot(control, target) -> circuit
Controlled NOT (also spelt cx). cz(control, target) and swap(a, b) take
two qubits too.
]]
function Circuit:cnot(control, target)
  return add(self, "cnot", { qubit("cnot", 1, control), qubit("cnot", 2, target) })
end
Circuit.cx = Circuit.cnot
function Circuit:cz(control, target)
  return add(self, "cz", { qubit("cz", 1, control), qubit("cz", 2, target) })
end
function Circuit:swap(a, b)
  return add(self, "swap", { qubit("swap", 1, a), qubit("swap", 2, b) })
end

--[[ kernel.quantum.Circuit#measure(q) -> circuit
Measure qubit q in the computational basis.
]]
function Circuit:measure(q) return add(self, "measure", { qubit("measure", 1, q) }) end

--[[ kernel.quantum.Circuit#measure_all() -> circuit
Measure every qubit.
]]
function Circuit:measure_all()
  for q = 0, self.qubits - 1 do self:measure(q) end
  return self
end

local function simulate(c, shots, seed)
  local r = check("QuantumError", native.quantum_simulate(c.qubits, c.gates, shots, seed))
  return r
end

--[[ kernel.quantum.Circuit#run(shots, seed) -> result
Simulate the circuit on the host's state-vector simulator and take
`shots` samples (0 by default), reproducible with an integer `seed`.
The result is a table: counts ({["00"] = 48, ["11"] = 52}: shots by
bitstring), probabilities (a sequence: probabilities[i + 1] is basis
state i) and amplitudes (a sequence of {re = , im = }).
Raises QuantumError ("too-many-qubits", "invalid-gate", "invalid-qubit",
"too-large").
]]
function Circuit:run(shots, seed)
  if shots == nil then shots = 0 end
  need_number("run", 1, shots)
  if seed ~= nil then need_number("run", 2, seed) end
  return simulate(self, shots, seed)
end

--[[ kernel.quantum.Circuit#simulate(options) -> result
The same as run, with options {shots = 100, seed = 7} (both optional).
]]
function Circuit:simulate(options)
  if options ~= nil and type(options) ~= "table" then arg_error("simulate", 1, "table", options) end
  local o = options or {}
  local shots = o.shots == nil and 0 or need_number("simulate", 1, o.shots)
  local seed = o.seed ~= nil and need_number("simulate", 1, o.seed) or nil
  return simulate(self, shots, seed)
end

--[[ kernel.quantum.Circuit#draw() -> integer
Draw the circuit diagram as an SVG output; returns the output index.
]]
function Circuit:draw()
  return (check("QuantumError", native.quantum_draw(self.qubits, self.gates)))
end

--[[ kernel.quantum.circuit(qubits) -> Circuit
A new empty circuit on `qubits` qubits (at most 16).
]]
function quantum.circuit(qubits)
  need_number("circuit", 1, qubits)
  return setmetatable({ qubits = qubits, gates = {} }, Circuit)
end

quantum.Circuit = Circuit
kernel.quantum = quantum

-- ------------------------------------------------------------------ exit

--[[ kernel.exit(code)
End the run now with `code` (0, the default, is success; true is 0,
false is 1). pcall cannot catch it; output written so far is kept.
os.exit(code) does the same.
]]
function kernel.exit(code)
  helpers.exit(code)
end

return kernel
