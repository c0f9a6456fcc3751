"""A safe document for the artifact's own output.

    from llmos import dom
    table = dom.create_element("table")
    row = dom.create_element("tr")
    row.append(dom.create_element("td", text="total"), dom.create_element("td", text="42"))
    table.append_child(row)
    dom.root().append_child(table)

What is appended to dom.root() becomes the run's sanitized text/html output.
Only safe tags and attributes exist: a forbidden one (script, iframe,
onclick, style, javascript: URLs...) raises DomError, it is never dropped.
"""

from wit_world.imports import dom as _wit

from .errors import DomError, _call

__all__ = ["root", "create_element", "query_selector", "query_selector_all", "Element", "DomError"]


class Element:
    """llmos.dom.Element

    An element of the artifact's document.
    """

    __slots__ = ("_e",)

    def __init__(self, handle):
        self._e = handle

    @property
    def tag_name(self):
        """llmos.dom.Element.tag_name -> str

        The lower-case tag name.
        """
        return self._e.tag_name()

    @property
    def text(self):
        """llmos.dom.Element.text -> str (settable)

        The text of the element and its descendants; setting it replaces the
        children with that text (escaped, never parsed as HTML).
        """
        return self._e.text()

    @text.setter
    def text(self, value):
        _call(DomError, self._e.set_text, str(value))

    def set_attribute(self, name, value):
        """llmos.dom.Element.set_attribute(name, value) -> None

        Set an allowlisted attribute (id, class, title, href, src, alt, width,
        height, colspan, data-*, aria-*, SVG geometry and paint...).
        """
        _call(DomError, self._e.set_attribute, str(name), str(value))

    def get_attribute(self, name):
        """llmos.dom.Element.get_attribute(name) -> str | None"""
        return self._e.get_attribute(str(name))

    def remove_attribute(self, name):
        """llmos.dom.Element.remove_attribute(name) -> bool"""
        return self._e.remove_attribute(str(name))

    def append_child(self, child):
        """llmos.dom.Element.append_child(child) -> Element

        Append `child` (moving it from its old parent); returns it.
        """
        if not isinstance(child, Element):
            raise TypeError("append_child: child must be a dom.Element, not %s" % type(child).__name__)
        _call(DomError, self._e.append_child, child._e)
        return child

    def append(self, *children):
        """llmos.dom.Element.append(*children) -> Element

        Append several children; strings become <span> text. Returns self.
        """
        for c in children:
            self.append_child(c if isinstance(c, Element) else create_element("span", text=str(c)))
        return self

    def remove_child(self, child):
        """llmos.dom.Element.remove_child(child) -> Element"""
        if not isinstance(child, Element):
            raise TypeError("remove_child: child must be a dom.Element, not %s" % type(child).__name__)
        _call(DomError, self._e.remove_child, child._e)
        return child

    @property
    def children(self):
        """llmos.dom.Element.children -> list[Element]"""
        return [Element(e) for e in self._e.children()]

    def query_selector(self, selector):
        """llmos.dom.Element.query_selector(selector) -> Element | None

        The first descendant matching a CSS selector (tag, #id, .class,
        [attr], [attr=value], descendant and child combinators, lists).
        """
        e = _call(DomError, self._e.query_selector, str(selector))
        return None if e is None else Element(e)

    def query_selector_all(self, selector):
        """llmos.dom.Element.query_selector_all(selector) -> list[Element]"""
        return [Element(e) for e in _call(DomError, self._e.query_selector_all, str(selector))]

    def __repr__(self):
        return "<dom.Element %s>" % self.tag_name


_root = None


def root():
    """llmos.dom.root() -> Element

    The artifact's container (a div): what is appended to it becomes the
    run's text/html output.
    """
    global _root
    if _root is None:
        _root = Element(_wit.root())
    return _root


def create_element(tag, text=None, children=(), **attributes):
    """llmos.dom.create_element(tag, text=None, children=(), **attributes) -> Element

    A new detached element. `class_` sets the class attribute and other
    underscores become dashes (data_id= sets data-id):
    dom.create_element("a", href="https://example.com", text="link").
    """
    if not isinstance(tag, str):
        raise TypeError("create_element: tag must be a str, not %s" % type(tag).__name__)
    el = Element(_call(DomError, _wit.create_element, tag))
    for name, value in attributes.items():
        name = name.rstrip("_").replace("_", "-")
        el.set_attribute(name, value)
    if text is not None:
        el.text = text
    if children:
        el.append(*children)
    return el


def query_selector(selector):
    """llmos.dom.query_selector(selector) -> Element | None

    Same as dom.root().query_selector(selector).
    """
    return root().query_selector(selector)


def query_selector_all(selector):
    """llmos.dom.query_selector_all(selector) -> list[Element]"""
    return root().query_selector_all(selector)
