"""The llmos Python guest: CPython (componentize-py) implementing the
`llmos:kernel/language` world.

Everything at module level runs ONCE, at build time, inside componentize-py's
pre-initialisation; the resulting heap is snapshotted into the component.
There is no filesystem at run time, so a module that is not imported here
(directly or by something imported here) cannot be imported by an artifact.

`Interpreter.run` is called per artifact. It never raises anything but
`Err(GuestError)`: every failure, including failures of this module's own
error reporting, becomes a typed guest error.
"""

import sys
import os
import builtins
import io
import types

# ---------------------------------------------------------------------------
# The curated standard library. Only what is imported here exists at run time.
# Grouped roughly by what LLM-written code reaches for.

# Data formats and text.
import json
import csv
import base64
import binascii
import html
import html.parser
import string
import textwrap
import difflib
import re
import unicodedata
import pprint
import reprlib
import shlex
import fnmatch
import tomllib
import urllib.parse
import xml.etree.ElementTree
import struct
import zlib
import hashlib
import hmac
import codecs
import encodings.latin_1
import encodings.utf_8_sig
import encodings.utf_16
import encodings.utf_16_le
import encodings.utf_16_be
import encodings.utf_32
import encodings.cp1252
import encodings.unicode_escape
import encodings.raw_unicode_escape

# Numbers.
import math
import cmath
import decimal
import fractions
import numbers
import random
import secrets
import statistics

# Data structures and functional tools.
import collections
import collections.abc
import itertools
import functools
import operator
import heapq
import bisect
import array
import copy
import dataclasses
import enum
import graphlib
import weakref

# Language support.
import abc
import typing
import contextlib
import contextvars
import warnings
import traceback
import linecache
import inspect
import ast
import keyword
import logging
import pickle
import uuid
import argparse
import pathlib
import sqlite3
import unittest

# Time.
import time
import datetime
import calendar

import llmos  # the kernel API for artifacts (volumes/system/kernel/python)

# The system volume's init script (volumes/system/kernel/init.py) runs here,
# once, at build time; artifacts cannot import it.
import init as _llmos_init  # noqa: E402

sys.modules.pop("init", None)
del _llmos_init

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import process as _wit_process
from wit_world.exports.interpreter import (
    ErrorKind,
    Frame,
    GuestError,
    Info,
    Success,
    Variable,
)

# ---------------------------------------------------------------------------
# Warm up lazily imported modules, so that common calls work at run time.
# (datetime.strptime imports _strptime on first use, and so on.)


def _warm_up():
    datetime.datetime.strptime("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S")
    time.strptime("2024", "%Y")
    datetime.date(2024, 1, 2).strftime("%A %d %B %Y")
    json.loads(json.dumps({"a": [1, 2.5, None, True, "é"]}, indent=2, sort_keys=True))
    re.compile(r"(?P<x>\d+)\s*[a-z]+|\w", re.IGNORECASE | re.MULTILINE).findall("12 ab c")
    statistics.median([1, 2, 3])
    statistics.stdev([1.0, 2.0, 4.0])
    statistics.fmean([1, 2])
    decimal.Decimal("1.10") * 3
    fractions.Fraction(3, 4) + 1
    textwrap.fill("lorem ipsum " * 20, 30)
    textwrap.dedent("  a\n  b")
    difflib.SequenceMatcher(None, "abc", "abd").ratio()
    difflib.unified_diff(["a"], ["b"])
    list(difflib.unified_diff(["a\n"], ["b\n"]))
    difflib.get_close_matches("appel", ["apple", "ape"])
    hashlib.sha256(b"x").hexdigest()
    hashlib.md5(b"x").hexdigest()
    hashlib.sha1(b"x").hexdigest()
    hashlib.blake2b(b"x").hexdigest()
    hashlib.sha3_256(b"x").hexdigest()
    hmac.new(b"k", b"m", "sha256").hexdigest()
    base64.b64encode(b"x")
    uuid.uuid4()
    uuid.UUID("12345678123456781234567812345678")
    secrets.token_hex(4)
    random.Random(1).random()
    csv.writer(io.StringIO()).writerow([1, "a,b"])
    list(csv.reader(io.StringIO("a,b\n1,2\n")))
    list(csv.DictReader(io.StringIO("a,b\n1,2\n")))
    pprint.pformat({"a": list(range(30))})
    zlib.compress(b"x" * 100)
    struct.pack("<iH", 1, 2)
    tomllib.loads('a = 1\n[b]\nc = "d"\n')
    urllib.parse.urlparse("https://example.com/a?b=c")
    urllib.parse.quote("a b")
    urllib.parse.urlencode({"a": "b c"})
    xml.etree.ElementTree.fromstring("<a><b>x</b></a>").find("b")
    xml.etree.ElementTree.tostring(xml.etree.ElementTree.Element("a"))
    html.unescape("&amp;")
    shlex.split("a 'b c'")
    pickle.loads(pickle.dumps({"a": [1, (2, 3)]}))
    copy.deepcopy({"a": [1, {2}]})
    calendar.month(2024, 1)
    calendar.monthrange(2024, 2)
    "{:,.2f} {!r:>10}".format(1234.5, "x")
    string.Template("$a").substitute(a=1)
    inspect.signature(_warm_up)
    typing.get_type_hints(Frame)

    @dataclasses.dataclass(frozen=True, order=True)
    class _P:
        x: int = 0
        y: list = dataclasses.field(default_factory=list)

    dataclasses.asdict(_P(1))
    dataclasses.replace(_P(1), x=2)

    class _E(enum.Enum):
        A = enum.auto()

    class _F(enum.IntFlag):
        A = 1
        B = 2

    _F.A | _F.B
    collections.Counter("abca").most_common(1)
    collections.namedtuple("_NT", "a b")(1, 2)._asdict()
    functools.reduce(operator.add, [1, 2])
    functools.lru_cache(maxsize=None)(abs)(1)
    sorted([3, 1], key=functools.cmp_to_key(lambda a, b: a - b))
    try:
        raise ValueError("x")
    except ValueError:
        traceback.format_exc()
    try:
        {}["k"]
    except KeyError as e:
        "".join(traceback.format_exception(e))
    try:
        undefined_name  # noqa: F821
    except NameError as e:
        traceback.TracebackException.from_exception(e).format()
    ast.unparse(ast.parse("x = 1"))
    for encoding in ("latin-1", "utf-8-sig", "utf-16", "utf-32", "cp1252", "unicode_escape"):
        "é".encode(encoding).decode(encoding)
    parser = argparse.ArgumentParser(prog="warm-up", description="d")
    parser.add_argument("--n", type=int, default=1, help="n")
    parser.add_argument("items", nargs="*")
    parser.parse_args([])
    parser.format_help()
    pathlib.PurePosixPath("/a/b.txt").with_suffix(".csv").name
    pathlib.Path("a") / "b"
    db = sqlite3.connect(":memory:")
    db.execute("create table t (a integer, b text)")
    db.executemany("insert into t values (?, ?)", [(1, "x"), (2, "y")])
    db.execute("select sum(a), group_concat(b) from t").fetchall()
    db.close()

    class _Test(unittest.TestCase):
        def test_ok(self):
            self.assertEqual([1, 2], [1, 2])

        def test_fail(self):
            self.assertEqual({"a": 1}, {"a": 2})

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(_Test)
    unittest.TextTestRunner(stream=io.StringIO(), verbosity=2).run(suite)
    # Exercise this module's own paths (success, runtime error, syntax
    # error, exit), so nothing they need is imported lazily at run time.
    interp = Interpreter()
    for src in (
        "x = 1\nx + 1",
        "def f():\n    return 1 / 0\nf()",
        "x = (",
        "raise SystemExit(2)",
        "print('', end='')",
    ):
        try:
            interp.run(src, "<warm-up>")
        except Err:
            pass
    linecache.clearcache()


# ---------------------------------------------------------------------------
# Standard streams.
#
# stdout/stderr must reach the WASI streams the host captures as soon as they
# are written, so that output produced before a trap (out of fuel, timeout) is
# never lost and nothing accumulates in Python memory. componentize-py runs
# CPython unbuffered (a write-through TextIOWrapper straight over FileIO), but
# FileIO.write may write only part of a large string (the WASI stream takes
# at most 64 KiB per call under some hosts) and TextIOWrapper silently drops
# the rest: a 1 MB print came out as 64 KiB. So each stream becomes a write-through
# TextIOWrapper over a raw stream whose write() loops until every byte is out.
# (This costs about the same per print as componentize-py's own setup; a
# flush-after-every-write BufferedWriter was ~40% slower.)


class _WasiStream(io.RawIOBase):
    def __init__(self, fd, name):
        io.RawIOBase.__init__(self)
        self._fd = fd
        self.name = name

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def write(self, data, _os_write=os.write, _memoryview=memoryview):
        view = _memoryview(data).cast("B")
        total = view.nbytes
        done = 0
        while done < total:
            n = _os_write(self._fd, view[done:])
            if not n:
                raise BlockingIOError(11, "the output stream accepted no data")
            done += n
        return total


def _setup_streams():
    for fd, name, errors in ((1, "stdout", "strict"), (2, "stderr", "backslashreplace")):
        stream = io.TextIOWrapper(
            _WasiStream(fd, "<%s>" % name),
            encoding="utf-8",
            errors=errors,
            newline="\n",
            write_through=True,
        )
        _original_streams.append(getattr(sys, name))
        setattr(sys, name, stream)
        setattr(sys, "__%s__" % name, stream)


_original_streams = []  # kept alive so their finalisers never run
_setup_streams()

# os._exit(n) ends the run at once with exactly n. WASI's own exit (what
# CPython's os._exit calls) can only say success or failure, so the host would
# see 1 for any n != 0; the kernel's `process.exit` carries the code.
_posix_exit = os._exit
_index = operator.index


def _exit(status):
    """Exit to the system with the specified status, without normal exit
    processing (no handlers, no finally blocks). Output written so far is
    kept."""
    code = _index(status)
    if not -0x80000000 <= code <= 0x7FFFFFFF:
        raise OverflowError("Python int too large to convert to C int")
    _flush_streams()
    _wit_process.exit(code)
    _posix_exit(code)  # not reached: the host ends the run


os._exit = _exit
try:
    import posix

    posix._exit = _exit
except ImportError:
    pass

# The environment must be empty at run time (componentize-py sets PYTHONHOME,
# PYTHONPATH, PYTHONUNBUFFERED during the build) and argv neutral.
os.environ.clear()
sys.argv = [""]

# ---------------------------------------------------------------------------
# The interpreter.

_VERSION = "CPython %s (componentize-py 0.25.1)" % sys.version.split()[0]

# Bound now, so an artifact that monkeypatches builtins or stdlib modules
# cannot break error reporting.
_BaseException = BaseException
_SystemExit = SystemExit
_SyntaxError = SyntaxError
_MemoryError = MemoryError
_isinstance = isinstance
_repr = repr
_str = str
_int = int
_len = len
_list = list
_type = type
_exec = exec
_eval = eval
_compile = compile
_ast_parse = ast.parse
_ast_Expr = ast.Expr
_ast_Expression = ast.Expression
_extract_tb = traceback.extract_tb
_TracebackException = traceback.TracebackException
_SUGGESTIBLE = (NameError, AttributeError, ImportError)
_linecache_cache = linecache.cache
_ModuleType = types.ModuleType
_seed = random.seed
_sys_modules = sys.modules

_INTERNAL_ERROR = GuestError(
    kind=ErrorKind.RUNTIME,
    class_="InternalError",
    message="the Python guest failed while reporting an error",
    line=None,
    column=None,
    stack=[],
    exit_code=None,
    globals=[],
)


def _safe_str(obj):
    try:
        return _str(obj)
    except _BaseException:
        try:
            return "<unprintable %s object>" % _type(obj).__name__
        except _BaseException:
            return "<unprintable object>"


# Longest value or message the guest returns, in characters. Lowering a huge
# string into the component result needs a second, UTF-8 copy of it; under a
# memory cap that allocation fails inside componentize-py's runtime, which
# then traps. Clipping keeps the result small whatever the artifact does.
_MAX_TEXT = 1 << 20


def _clip(text):
    if _len(text) <= _MAX_TEXT:
        return text
    omitted = _len(text) - _MAX_TEXT
    return text[:_MAX_TEXT] + "... [%d more characters]" % omitted


def _fffd(err):
    # Encoding error handler: each lone surrogate becomes one U+FFFD.
    # (A str replacement must be ASCII for the UTF-8 codec; bytes need not.)
    return b"\xef\xbf\xbd" * (err.end - err.start), err.end


codecs.register_error("llmos.fffd", _fffd)


def _wf(text):
    r"""`text` as well-formed Unicode: every lone surrogate (from
    "\ud800" or surrogateescape-decoded bytes) replaced by U+FFFD. The
    component result must be valid UTF-8; lowering a str with a surrogate
    panics inside componentize-py's runtime and traps the run."""
    if not _isinstance(text, _str):
        text = _safe_str(text)
    try:
        text.encode("utf-8")
        return text
    except _BaseException:
        pass
    try:
        return text.encode("utf-8", "llmos.fffd").decode("utf-8")
    except _BaseException:
        return "<unprintable text>"


def _well_formed(result):
    """`result` (Success or GuestError) with every string well-formed."""
    if _isinstance(result, Success):
        if result.value is not None:
            result.value = _wf(result.value)
        return result
    result.class_ = _wf(result.class_)
    result.message = _wf(result.message)
    for frame in result.stack:
        frame.function = _wf(frame.function)
        frame.file = _wf(frame.file)
    for var in result.globals:
        var.name = _wf(var.name)
        var.type_name = _wf(var.type_name)
        var.preview = _wf(var.preview)
    return result


def _class_name(exc):
    try:
        return _str(_type(exc).__name__)
    except _BaseException:
        return "BaseException"


def _char_column(lines, lineno, byte_col):
    """Convert a 0-based UTF-8 byte offset on a line to a 1-based character
    column (Python code positions count bytes)."""
    try:
        text = lines[lineno - 1]
        if not text.isascii():
            prefix = text.encode("utf-8")[:byte_col]
            return _len(prefix.decode("utf-8", "replace")) + 1
    except _BaseException:
        pass
    return byte_col + 1


def _u32(value):
    if _isinstance(value, _int) and 0 <= value <= 0xFFFFFFFF:
        return value
    return None


def _summaries(tb):
    """FrameSummaries of a traceback chain, outermost first.

    A chain longer than _LONG_CHAIN (deep recursion under a raised recursion
    limit) is summarised by its two ends only (_shorten keeps no more than
    that anyway): extracting 10^5 frames would burn seconds of fuel."""
    chain = []
    while tb is not None:
        chain.append(tb)
        tb = tb.tb_next
    if _len(chain) > _LONG_CHAIN:
        keep = chain[: _LONG_CHAIN // 4] + chain[-(_LONG_CHAIN // 2) :]
        tb = None
        for old in reversed(keep):
            tb = _TracebackType(tb, old.tb_frame, old.tb_lasti, old.tb_lineno)
        keep = old = None
    elif chain:
        tb = chain[0]
    chain = None
    return _list(_extract_tb(tb))


_LONG_CHAIN = 2000
_TracebackType = types.TracebackType


def _stack(exc, filename, lines):
    """The artifact's frames of `exc`'s traceback, outermost first (in a
    session, frames of every cell's source)."""
    frames = []
    for fs in _summaries(exc.__traceback__):
        if fs.filename == filename:
            file_lines = lines
        elif fs.filename in _SESSION_LINES:
            file_lines = _SESSION_LINES[fs.filename]
        else:
            continue
        lineno = fs.lineno if _isinstance(fs.lineno, _int) and fs.lineno > 0 else 0
        colno = fs.colno
        if _isinstance(colno, _int) and colno >= 0:
            column = _char_column(file_lines, lineno, colno) if lineno else colno + 1
        else:
            column = 1
        frames.append(
            Frame(
                function=_str(fs.name),
                file=_str(fs.filename),
                line=_u32(lineno) or 0,
                column=_u32(column) or 1,
            )
        )
    return _shorten(frames)


def _release(exc):
    """Drop `exc`'s traceback innermost frame first.

    Freeing a traceback chain recurses once per frame in C (tb_dealloc ->
    frame_dealloc -> ...), and CPython's guard against that measures the
    shadow stack in linear memory, not the wasm stack: a chain of ~10^5
    frames (possible after sys.setrecursionlimit) overflowed the wasm stack
    and trapped. Unlinking the chain and freeing it from the inside out keeps
    every step shallow."""
    seen = 0
    while exc is not None and seen < 100:
        seen += 1
        chain = []
        tb = exc.__traceback__
        while tb is not None:
            chain.append(tb)
            tb = tb.tb_next
        exc.__traceback__ = None
        for tb in chain:
            tb.tb_next = None
        tb = None
        while chain:
            chain.pop()
        exc = exc.__context__


# Deep recursion would report ~1000 frames. Like CPython's own traceback
# printer, keep at most _REPEATS consecutive identical frames; then keep the
# outermost _HEAD and innermost _TAIL frames of what remains.
_REPEATS = 3
_HEAD = 10
_TAIL = 40


def _shorten(frames):
    kept = []
    run = 0
    previous = None
    for frame in frames:
        key = (frame.function, frame.file, frame.line, frame.column)
        run = run + 1 if key == previous else 1
        previous = key
        if run <= _REPEATS:
            kept.append(frame)
    if _len(kept) > _HEAD + _TAIL:
        kept = kept[:_HEAD] + kept[-_TAIL:]
    return kept


def _exit_code(exc):
    """The status a native interpreter would exit with for SystemExit."""
    code = exc.code
    if code is None:
        return 0
    if _isinstance(code, _int):  # includes bool
        code &= 0xFFFFFFFF  # a C `(int)` cast, as CPython does
        return code - 0x100000000 if code >= 0x80000000 else code
    try:
        sys.stderr.write(_safe_str(code) + "\n")
    except _BaseException:
        pass
    return 1


def _suggestion(exc):
    """CPython's "Did you mean" hint for a misspelt name or attribute, as
    `python` prints it (". Did you mean: 'items'?"), or "". The hint is what
    a person, or the repair loop, needs most to fix a typo."""
    if not _isinstance(exc, _SUGGESTIBLE):
        return ""
    try:
        lines = "".join(_TracebackException.from_exception(exc).format_exception_only())
        last = lines.strip().splitlines()[-1]
        at = last.find(". Did you mean: ")
        return last[at:] if at >= 0 else ""
    except _BaseException:
        return ""


_GLOBALS_MAX = 50
_PREVIEW_MAX = 200
_preview_repr = reprlib.Repr()
_preview_repr.maxlevel = 2
_preview_repr.maxstring = 80
_preview_repr.maxother = 80
_SKIP_GLOBALS = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)


def _globals(env):
    """The artifact's top-level variables (no dunders, modules, functions or
    classes) with their type and a short repr, for the error report."""
    out = []
    try:
        for name, value in list(env.items()):
            if len(out) >= _GLOBALS_MAX:
                break
            if not _isinstance(name, _str) or name.startswith("__"):
                continue
            if _isinstance(value, _SKIP_GLOBALS):
                continue
            try:
                preview = _preview_repr.repr(value)
            except _BaseException:
                preview = "<unprintable>"
            if len(preview) > _PREVIEW_MAX:
                preview = preview[: _PREVIEW_MAX - 3] + "..."
            out.append(Variable(name=name, type_name=type(value).__name__, preview=preview))
    except _BaseException:
        return []
    return out


def _runtime_error(exc, filename, lines, env=None):
    is_exit = _isinstance(exc, _SystemExit)
    try:
        stack = _stack(exc, filename, lines)
    except _BaseException:
        stack = []  # e.g. the artifact broke `traceback`; still report the class
    innermost = stack[-1] if stack else None
    if is_exit:
        code = exc.code
        message = "" if code is None else _clip(_safe_str(code))
    else:
        message = _clip(_safe_str(exc) + _suggestion(exc))
    return GuestError(
        kind=ErrorKind.EXIT if is_exit else ErrorKind.RUNTIME,
        class_=_class_name(exc),
        message=message,
        line=innermost.line if innermost and innermost.line else None,
        column=innermost.column if innermost and innermost.line else None,
        stack=stack,
        exit_code=_exit_code(exc) if is_exit else None,
        globals=[] if is_exit or env is None else _globals(env),
    )


def _syntax_error(exc):
    if _isinstance(exc, _SyntaxError):
        message = _clip(exc.msg if _isinstance(exc.msg, _str) else _safe_str(exc))
        line = _u32(exc.lineno) or None
        column = _u32(exc.offset) or None if line else None
    else:
        # ValueError (e.g. null bytes), RecursionError or MemoryError while
        # parsing or compiling: still "could not be compiled".
        message, line, column = _clip(_safe_str(exc)), None, None
    return GuestError(
        kind=ErrorKind.SYNTAX,
        class_=_class_name(exc),
        message=message,
        line=line,
        column=column,
        stack=[],
        exit_code=None,
        globals=[],
    )


def _flush_streams():
    for stream in (sys.stdout, sys.stderr, _STDOUT, _STDERR):
        try:
            if stream is not None:
                stream.flush()
        except _BaseException:
            pass


_STDOUT = sys.stdout
_STDERR = sys.stderr


def _reset_process_state(filename):
    # Undo what an earlier run in this instance may have changed.
    sys.stdout = sys.__stdout__ = _STDOUT
    sys.stderr = sys.__stderr__ = _STDERR
    sys.argv = [filename]  # as `python FILENAME` would
    try:
        _seed()  # draw randomness from the host: the snapshot's state is shared
    except _BaseException:
        pass


_GRAVEYARD = []
_KEEP_WHOLE = (id(sys.modules), id(sys.path), id(builtins.__dict__), id(sys.__dict__), id(globals()))


def _dismantle(env):
    """Empty `env` and the lists and dicts it reaches, innermost last, so
    that each container is freed already empty: a plain clear() of a
    10^5-deep structure recurses in C once per level and overflows the wasm
    stack (see _GRAVEYARD). Used to give memory back after a MemoryError."""
    todo = [env]
    while todo:
        o = todo.pop()
        t = _type(o)
        if id(o) in _KEEP_WHOLE:
            continue
        if t is list:
            while o:
                todo.append(o.pop())
        elif t is dict:
            while o:
                k, v = o.popitem()
                todo.append(v)
        o = None

# Deepest nesting of lists, tuples, dicts and sets whose repr is the run's
# value. CPython's repr guard measures the shadow stack, which repr barely
# uses, and Py_ReprEnter scans every enclosing container at each level, so a
# 10^6-deep list would burn the whole fuel budget instead of failing.
_REPR_DEPTH = 10000
_CONTAINERS = (list, tuple, set, frozenset)


def _too_deep(value, limit=_REPR_DEPTH):
    todo = [(value, 0)]
    seen = set()
    while todo:
        v, depth = todo.pop()
        t = _type(v)
        if t is dict:
            items = _list(v.keys()) + _list(v.values())
        elif t in _CONTAINERS:
            items = v
        else:
            continue
        if depth >= limit:
            return True
        if id(v) in seen:
            continue
        seen.add(id(v))
        for item in items:
            todo.append((item, depth + 1))
    return False


class _LimitStop(BaseException):
    """Raised by the line tracer just before a budget runs out."""


# Located stops (see `_start_tracer`): which limit stopped the run, and how
# often each line of the artifact ran.
_STOP = []
_HITS = {}
_POLL_LINES = 1000


def _start_tracer(filename):
    """When the host asks (`process.budget().trace_lines`, on a re-run of a
    limit failure), trace the artifact's lines: count them, poll the budget
    every _POLL_LINES lines, and stop the run with _LimitStop just before
    the host would trap (a twentieth of the budget left, at most 20 M fuel
    or 100 ms). CPython unsets a trace function that raises, so an artifact
    that swallows BaseException around the stop runs on untraced until the
    host's own trap, and that re-run locates nothing."""
    del _STOP[:]
    _HITS.clear()
    if not _AT_RUN_TIME:
        return False  # the build-time warm-up: no kernel to ask
    try:
        if not _wit_process.budget().trace_lines:
            return False
    except _BaseException:
        return False
    countdown = [_POLL_LINES]

    def near():
        b = _wit_process.budget()
        if b.fuel_limit is not None and b.fuel_left is not None:
            if b.fuel_left <= min(b.fuel_limit // 20, 20_000_000):
                return "out_of_fuel"
        if b.ms_left <= min(b.ms_limit // 20, 100):
            return "timeout"
        return None

    def trace(frame, event, arg):
        if event == "line" and frame.f_code.co_filename == filename:
            key = frame.f_lineno
            _HITS[key] = _HITS.get(key, 0) + 1
            countdown[0] -= 1
            if countdown[0] <= 0:
                countdown[0] = _POLL_LINES
                kind = near()
                if kind:
                    _STOP.append(kind)
                    raise _LimitStop(kind)
        return trace

    sys.settrace(trace)
    return True


def _stop_error(exc, filename, lines, env):
    """The error of a run stopped just before a limit: kind limit, with the
    position and the lines run most."""
    sys.settrace(None)
    error = _runtime_error(exc, filename, lines, env)
    kind = _STOP[0]
    error.kind = ErrorKind.LIMIT
    error.class_ = kind
    what = "its time limit" if kind == "timeout" else "its fuel ran out"
    hot = sorted(_HITS.items(), key=lambda kv: -kv[1])[:3]
    busiest = ", ".join("line %d (%d times)" % (line, n) for line, n in hot)
    error.message = "stopped just before %s: the artifact was still running here%s" % (
        what,
        "; lines run most: " + busiest if busiest else "",
    )
    return error


# The session's __main__ (created by the first cell) and the source lines
# of each cell's file, for tracebacks through functions of earlier cells.
_SESSION = []
_SESSION_LINES = {}


def _session_main():
    if not _SESSION:
        main = _ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        _SESSION.append(main)
    return _SESSION[0]


def _run(source, filename, session=False):
    """Returns Success or GuestError; may raise only if reporting fails.
    With `session`, the program runs as the next cell of the session's
    __main__ instead of a fresh one."""
    _reset_process_state(filename)
    if source.startswith("\ufeff"):
        source = source[1:]  # a UTF-8 byte order mark, as `python FILE` skips it

    # Phase 1: parse and compile everything before running anything.
    try:
        tree = _ast_parse(source, filename)
        body = tree.body
        expr_code = None
        expr_line = expr_column = None
        if body and _isinstance(body[-1], _ast_Expr):
            # Like a REPL: the value of a trailing expression is the result.
            last = body.pop()
            expr_line, expr_column = last.lineno, last.col_offset + 1
            expr_code = _compile(
                _ast_Expression(body=last.value), filename, "eval", dont_inherit=True
            )
        module_code = _compile(tree, filename, "exec", dont_inherit=True)
    except _BaseException as exc:
        return _syntax_error(exc)
    finally:
        tree = body = last = None

    # Tracebacks (ours and the artifact's own traceback.print_exc()) read
    # source lines from linecache; serve them from memory, never the disk.
    lines = source.splitlines()
    _linecache_cache[filename] = (
        _len(source),
        None,
        [line + "\n" for line in lines],
        filename,
    )

    # Phase 2: run it as __main__ in fresh globals (or the session's).
    if session:
        main = _session_main()
        _SESSION_LINES[filename] = lines
    else:
        main = _ModuleType("__main__")
    env = main.__dict__
    env["__builtins__"] = builtins
    env["__file__"] = filename
    previous_main = _sys_modules.get("__main__")
    _sys_modules["__main__"] = main
    value = None
    deep_value = False
    traced = _start_tracer(filename)
    try:
        _exec(module_code, env)
        if expr_code is not None:
            value = _eval(expr_code, env)
            if value is not None:
                if _too_deep(value):
                    deep_value = True
                    raise RecursionError(
                        "maximum recursion depth exceeded while getting the repr of an object"
                    )
                return Success(value=_clip(_repr(value)))
        return Success(value=None)
    except _BaseException as exc:
        try:
            value = None
            if traced and _STOP:
                return _stop_error(exc, filename, lines, env)
            if _isinstance(exc, _MemoryError) and not session:
                # The artifact's data may fill the heap; release it so the
                # report (and lowering it) can allocate. A session's globals
                # are its state and stay: if memory really ran out, the host
                # rebuilds the session from its journal.
                _dismantle(env)
            error = _runtime_error(exc, filename, lines, env)
            if deep_value and error.line is None:
                error.line, error.column = expr_line, expr_column
            return error
        finally:
            try:
                _release(exc)
            except _BaseException:
                pass
            _GRAVEYARD.append(exc)
            exc = None
    finally:
        if traced:
            sys.settrace(None)
        # Nothing the artifact built is freed: the host discards the
        # instance after the run (contract 1). Freeing a structure nested
        # 10^5+ deep recurses once per level in C (list_dealloc ->
        # _Py_Dealloc -> ...), and CPython's guard (the trashcan) measures
        # the linear-memory shadow stack, which those frames do not use,
        # so the wasm stack overflowed and the run trapped after it ended.
        _GRAVEYARD.append(value if session else (main, env, value))
        value = None
        if previous_main is not None:
            _sys_modules["__main__"] = previous_main


class Interpreter(exports.Interpreter):
    def describe(self) -> Info:
        return Info(language="python", version=_VERSION)

    def run(self, source: str, filename: str) -> Success:
        return _entry(source, filename, False)


class Session(exports.Session):
    def run_cell(self, source: str, filename: str) -> Success:
        return _entry(source, filename, True)


def _entry(source, filename, session):
    """One run or cell: the result, or Err with the typed error."""
    try:
        try:
            result = _run(source, filename, session)
        except _BaseException as exc:
            # Reporting itself failed (e.g. MemoryError while building
            # the report, or a sabotaged stdlib).
            result = GuestError(
                kind=ErrorKind.RUNTIME,
                class_="InternalError",
                message="%s while reporting an error: %s"
                % (_class_name(exc), _safe_str(exc)),
                line=None,
                column=None,
                stack=[],
                exit_code=None,
                globals=[],
            )
        _flush_streams()
        result = _well_formed(result)
    except _BaseException:
        result = _INTERNAL_ERROR
    if _isinstance(result, Success):
        return result
    raise Err(result)


_AT_RUN_TIME = False
_warm_up()
sys.argv = [""]
_AT_RUN_TIME = True
