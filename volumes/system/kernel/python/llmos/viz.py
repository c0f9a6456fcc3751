"""Charts, drawings and 3D scenes as run outputs.

    from llmos import viz
    viz.plot([1, 4, 9, 16], title="Squares", x_label="n", y_label="n²")
    c = viz.canvas(200, 100)
    c.fill_color("steelblue").rect(10, 10, 80, 40)
    c.show()

Everything is rendered on the host to SVG and PNG; each call that produces
an output returns its index in the run's outputs.
"""

import json as _json

from wit_world.imports import viz as _wit

from .errors import VizError, _call

__all__ = ["plot", "canvas", "Canvas", "render3d", "VizError"]

_PAINT = {
    "fill": _wit.Paint.FILL,
    "stroke": _wit.Paint.STROKE,
    "both": _wit.Paint.FILL_AND_STROKE,
    "fill-and-stroke": _wit.Paint.FILL_AND_STROKE,
}


def _json_text(value, what):
    try:
        return _json.dumps(value, allow_nan=False, ensure_ascii=False, default=_default)
    except (TypeError, ValueError) as e:
        raise TypeError("%s must be JSON-serializable (lists, dicts, numbers, strings): %s" % (what, e)) from None


def _default(value):
    # tuples are lists already; ranges, sets and other iterables become lists.
    if isinstance(value, (range, set, frozenset)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError("%s is not JSON-serializable" % type(value).__name__)


def _paint(paint, what):
    try:
        return _PAINT[paint]
    except (KeyError, TypeError):
        raise ValueError('%s: paint must be "fill", "stroke" or "both", not %r' % (what, paint)) from None


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number, not %s" % (what, type(value).__name__))
    return float(value)


def plot(data, options=None, **kwargs):
    """llmos.viz.plot(data, *, kind=None, title=None, x_label=None, y_label=None, width=None, height=None, bins=None, legend=None) -> int

    Draw a chart as a run output (SVG + PNG); returns the output index. The
    data's shape picks the chart: [1, 4, 9] (line), [(x, y), ...] or
    [{"x": .., "y": ..}, ...] (scatter), {"x": [...], "y": [...]} (line),
    {"a": [...], "b": [...]} (several series with a legend), {"label": n, ...}
    (bar). kind="histogram" bins a list of numbers (`bins` bins). Options may
    also be given as a dict in `options`.
    """
    opts = {}
    if options is not None:
        if not isinstance(options, dict):
            raise TypeError("viz.plot: options must be a dict, not %s" % type(options).__name__)
        opts.update(options)
    opts.update({k: v for k, v in kwargs.items() if v is not None})
    return _call(
        VizError,
        _wit.plot,
        _json_text(data, "viz.plot: data"),
        _json_text(opts, "viz.plot: options"),
    )


class Canvas:
    """llmos.viz.Canvas

    A drawing surface of at most 2000x2000 pixels, white to start with.
    Create one with viz.canvas(width, height). Drawing methods return the
    canvas, so calls chain; show() renders it as an output.
    """

    __slots__ = ("_c", "width", "height")

    def __init__(self, handle, width, height):
        self._c = handle
        self.width = width
        self.height = height

    def fill_color(self, color):
        """llmos.viz.Canvas.fill_color(color) -> Canvas

        Set the fill colour (also used for text): a CSS colour name, "#rgb",
        "#rrggbb", "#rrggbbaa", "rgb(r, g, b)" or "rgba(r, g, b, a)".
        """
        _call(VizError, self._c.fill_color, str(color))
        return self

    def stroke_color(self, color):
        """llmos.viz.Canvas.stroke_color(color) -> Canvas

        Set the stroke colour (same syntax as fill_color).
        """
        _call(VizError, self._c.stroke_color, str(color))
        return self

    def line_width(self, width):
        """llmos.viz.Canvas.line_width(width) -> Canvas

        Set the stroke width in pixels.
        """
        _call(VizError, self._c.line_width, _number(width, "Canvas.line_width: width"))
        return self

    def rect(self, x, y, width, height, paint="fill"):
        """llmos.viz.Canvas.rect(x, y, width, height, paint="fill") -> Canvas

        A rectangle with its top-left corner at (x, y); paint is "fill",
        "stroke" or "both".
        """
        _call(
            VizError,
            self._c.rect,
            _number(x, "Canvas.rect: x"),
            _number(y, "Canvas.rect: y"),
            _number(width, "Canvas.rect: width"),
            _number(height, "Canvas.rect: height"),
            _paint(paint, "Canvas.rect"),
        )
        return self

    def line(self, x1, y1, x2, y2):
        """llmos.viz.Canvas.line(x1, y1, x2, y2) -> Canvas

        A straight line in the stroke colour.
        """
        _call(
            VizError,
            self._c.line,
            _number(x1, "Canvas.line: x1"),
            _number(y1, "Canvas.line: y1"),
            _number(x2, "Canvas.line: x2"),
            _number(y2, "Canvas.line: y2"),
        )
        return self

    def circle(self, cx, cy, r, paint="fill"):
        """llmos.viz.Canvas.circle(cx, cy, r, paint="fill") -> Canvas

        A circle centred on (cx, cy) with radius r.
        """
        _call(
            VizError,
            self._c.circle,
            _number(cx, "Canvas.circle: cx"),
            _number(cy, "Canvas.circle: cy"),
            _number(r, "Canvas.circle: r"),
            _paint(paint, "Canvas.circle"),
        )
        return self

    def path(self, points, closed=False, paint="stroke"):
        """llmos.viz.Canvas.path(points, closed=False, paint="stroke") -> Canvas

        A polyline through `points` ([(x, y), ...]), closed into a polygon
        when `closed`.
        """
        pts = []
        for i, p in enumerate(points):
            try:
                x, y = p
            except (TypeError, ValueError):
                raise TypeError("Canvas.path: points[%d] must be an (x, y) pair, not %r" % (i, p)) from None
            pts.append(
                _wit.Point(
                    x=_number(x, "Canvas.path: points[%d][0]" % i),
                    y=_number(y, "Canvas.path: points[%d][1]" % i),
                )
            )
        _call(VizError, self._c.path, pts, bool(closed), _paint(paint, "Canvas.path"))
        return self

    def text(self, x, y, text, size=16):
        """llmos.viz.Canvas.text(x, y, text, size=16) -> Canvas

        Text in the fill colour with its baseline starting at (x, y).
        """
        _call(
            VizError,
            self._c.text,
            _number(x, "Canvas.text: x"),
            _number(y, "Canvas.text: y"),
            str(text),
            _number(size, "Canvas.text: size"),
        )
        return self

    def show(self):
        """llmos.viz.Canvas.show() -> int

        Render the canvas (SVG and PNG) as a run output; returns the output's
        index. The canvas stays usable.
        """
        return _call(VizError, self._c.show)


def canvas(width, height):
    """llmos.viz.canvas(width, height) -> Canvas

    A new blank canvas (at most 2000x2000 pixels).
    """
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError("viz.canvas: %s must be an int, not %s" % (name, type(v).__name__))
    w = width if 0 <= width <= 0xFFFFFFFF else 0xFFFFFFFF
    h = height if 0 <= height <= 0xFFFFFFFF else 0xFFFFFFFF
    return Canvas(_call(VizError, _wit.new_canvas, w, h), width, height)


def render3d(scene):
    """llmos.viz.render3d(scene) -> int

    Validate a 3D scene and add it as an output for the dashboard:
    {"camera": {"position": [x, y, z], "target": [x, y, z], "fov": 60},
     "objects": [{"type": "mesh", "vertices": [[x, y, z], ...], "faces": [[i, j, k], ...], "color": "red"},
                 {"type": "points", "points": [[x, y, z], ...]},
                 {"type": "lines", "points": [[x, y, z], ...]}]}
    """
    return _call(VizError, _wit.render3d, _json_text(scene, "viz.render3d: scene"))
