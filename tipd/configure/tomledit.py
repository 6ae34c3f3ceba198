"""A text-level TOML editor: change one `[profiles.NAME]` table and the root `default_profile` key, and leave
every other byte of the file as it was (comments, blank lines, other profiles, other tables, even the
formatting of values that do not change). It also writes the few TOML values a profile has.

It scans statements (headers and key = value lines) with a small lexer that knows where strings, arrays and
inline tables end, so a `[profiles.x]` inside a multi-line string or a comment is not taken for a header.
The text it edits has already been parsed by tomllib, and the text it makes is parsed again before it is
written (tomlfile.py), so the lexer need not report syntax errors well."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# a date-time may have a space between date and time; any other scalar ends at a space
_SCALAR = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?"
                     r"|[^\s,\]}#]+")


class TomlEditError(ConfigError):
    pass


# -- writing values --------------------------------------------------------------------------------------
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
        return "[" + ", ".join(toml_string(x) for x in v) + "]"
    if isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_string(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value here")


def toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def table(keys: tuple[str, ...], values: dict[str, Any], nl: str = "\n") -> str:
    """A `[a.b]` header and its key = value lines."""
    lines = ["[" + ".".join(toml_key(k) for k in keys) + "]"]
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in values.items()]
    return nl.join(lines) + nl


# -- reading statements ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    kind: str                  # "table", "array-table" or "kv"
    keys: tuple[str, ...]      # a header's key, or the key of a key = value
    start: int                 # the start of its line
    end: int                   # after its line's newline (or the end of the text)
    value: tuple[int, int] = (0, 0)  # a key = value: where the value is
    line: int = 0


class _Lexer:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0

    def fail(self, what: str) -> TomlEditError:
        line = self.t.count("\n", 0, self.i) + 1
        return TomlEditError(f"line {line}: {what}; tipctl configure cannot edit this file safely")

    def ws(self) -> None:
        while self.i < len(self.t) and self.t[self.i] in " \t":
            self.i += 1

    def ws_comments_newlines(self) -> None:
        while self.i < len(self.t):
            c = self.t[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                self.to_eol()
            else:
                return

    def to_eol(self) -> None:
        j = self.t.find("\n", self.i)
        self.i = len(self.t) if j < 0 else j

    def end_of_line(self) -> None:
        """After a statement: blanks, perhaps a comment, then the newline (part of the statement)."""
        self.ws()
        if self.i < len(self.t) and self.t[self.i] == "#":
            self.to_eol()
        if self.t.startswith("\r\n", self.i):
            self.i += 2
        elif self.t.startswith("\n", self.i):
            self.i += 1
        elif self.i < len(self.t):
            raise self.fail("expected the end of the line")

    def key(self) -> tuple[str, ...]:
        parts = []
        while True:
            self.ws()
            start = self.i
            c = self.t[self.i:self.i + 1]
            if c in ('"', "'"):
                self.string()
                parts.append(tomllib.loads("k = " + self.t[start:self.i])["k"])
            else:
                m = _BARE_KEY.match(self.t, self.i)
                if not m:
                    raise self.fail("expected a key")
                parts.append(m.group())
                self.i = m.end()
            self.ws()
            if self.t.startswith(".", self.i):
                self.i += 1
                continue
            return tuple(parts)

    def string(self) -> None:
        t, i = self.t, self.i
        q = t[i]
        if t.startswith(q * 3, i):
            j = i + 3
            while True:
                if q == '"' and t.startswith("\\", j):
                    j += 2
                    continue
                if t.startswith(q * 3, j):
                    j += 3
                    for _ in range(2):  # up to two quotes of the content may touch the delimiter
                        if t.startswith(q, j):
                            j += 1
                    self.i = j
                    return
                if j >= len(t):
                    raise self.fail("unterminated string")
                j += 1
        j = i + 1
        while j < len(t) and t[j] != q and t[j] != "\n":
            j += 2 if q == '"' and t[j] == "\\" else 1
        if j >= len(t) or t[j] != q:
            raise self.fail("unterminated string")
        self.i = j + 1

    def value(self) -> None:
        c = self.t[self.i:self.i + 1]
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.i += 1
            while True:
                self.ws_comments_newlines()
                if self.t.startswith("]", self.i):
                    self.i += 1
                    return
                self.value()
                self.ws_comments_newlines()
                if self.t.startswith(",", self.i):
                    self.i += 1
                elif not self.t.startswith("]", self.i):
                    raise self.fail("expected ',' or ']' in an array")
        elif c == "{":
            self.i += 1
            while True:
                self.ws()
                if self.t.startswith("}", self.i):
                    self.i += 1
                    return
                self.key()
                if not self.t.startswith("=", self.i):
                    raise self.fail("expected '=' in an inline table")
                self.i += 1
                self.ws()
                self.value()
                self.ws()
                if self.t.startswith(",", self.i):
                    self.i += 1
        else:
            m = _SCALAR.match(self.t, self.i)
            if not m:
                raise self.fail("expected a value")
            self.i = m.end()

    def statements(self) -> list[Statement]:
        out: list[Statement] = []
        while True:
            self.ws_comments_newlines()
            if self.i >= len(self.t):
                return out
            start = self.t.rfind("\n", 0, self.i) + 1
            line = self.t.count("\n", 0, start) + 1
            if self.t.startswith("[", self.i):
                array = self.t.startswith("[[", self.i)
                self.i += 2 if array else 1
                keys = self.key()
                close = "]]" if array else "]"
                if not self.t.startswith(close, self.i):
                    raise self.fail(f"expected {close!r}")
                self.i += len(close)
                self.end_of_line()
                out.append(Statement("array-table" if array else "table", keys, start, self.i, line=line))
            else:
                keys = self.key()
                if not self.t.startswith("=", self.i):
                    raise self.fail("expected '='")
                self.i += 1
                self.ws()
                vstart = self.i
                self.value()
                vend = self.i
                self.end_of_line()
                out.append(Statement("kv", keys, start, self.i, (vstart, vend), line))


def statements(text: str) -> list[Statement]:
    return _Lexer(text).statements()


# -- editing ---------------------------------------------------------------------------------------------
def set_profile(text: str, name: str, settings: dict[str, Any], defaults: dict[str, Any] | None = None,
                default_profile: str | None = None) -> str:
    """`text` with `[profiles.NAME]` holding `settings`, and with the root key `default_profile` set when
    `default_profile` is given."""
    text = set_table(text, name, settings, defaults or {})  # first: its errors name lines of the file as it is
    return set_default_profile(text, default_profile) if default_profile is not None else text


def set_table(text: str, name: str, settings: dict[str, Any], defaults: dict[str, Any]) -> str:
    """An existing table is edited in place: changed values are replaced (comments on their line kept), keys
    it lacks are added after its last key unless `defaults` says that leaving the key out already means that
    value. A new table is appended at the end, after a blank line."""
    nl = _newline(text)
    prefix = ("profiles", name)
    current: tuple[str, ...] = ()
    header: Statement | None = None
    body: list[Statement] = []
    for s in statements(text):
        if s.kind != "kv":
            current = s.keys
            if s.keys == prefix and s.kind == "table":
                header = s
            elif s.keys[:2] == prefix or (s.keys == ("profiles",) and s.kind == "array-table"):
                raise _foreign(name, s)
        elif header is not None and current == prefix and len(s.keys) == 1:
            body.append(s)
        elif (current + s.keys)[:2] == prefix or current + s.keys == ("profiles",):
            raise _foreign(name, s)  # an inline table or dotted keys: not ours to rewrite

    if header is None:
        if text and not text.endswith("\n"):
            text += nl
        if text.strip() and not text.endswith(nl * 2):
            text += nl
        return text + table(prefix, settings, nl)

    edits: list[tuple[int, int, str]] = []
    have = {s.keys[0]: s for s in body}
    added: list[str] = []
    for k, v in settings.items():
        kv = have.get(k)
        if kv is None:
            if k not in defaults or defaults[k] != v:
                added.append(f"{toml_key(k)} = {toml_value(v)}{nl}")
        elif _parse_value(text, kv) != v:
            edits.append((*kv.value, toml_value(v)))
    if added:
        at = body[-1].end if body else header.end
        edits.append((at, at, ("" if text[:at].endswith("\n") else nl) + "".join(added)))
    for start, end, repl in sorted(edits, reverse=True):
        text = text[:start] + repl + text[end:]
    return text


def set_default_profile(text: str, name: str) -> str:
    """Set the root key `default_profile`: its value replaced where it is, else a line after the last root
    key, else before the first table (and before the comment lines that lead into it)."""
    nl = _newline(text)
    stmts = statements(text)
    first_header = next((s for s in stmts if s.kind != "kv"), None)
    root = [s for s in stmts if s.kind == "kv" and (first_header is None or s.start < first_header.start)]
    for s in root:
        if s.keys == ("default_profile",):
            if _parse_value(text, s) == name:
                return text
            vs, ve = s.value
            return text[:vs] + toml_string(name) + text[ve:]
    line = f"default_profile = {toml_string(name)}{nl}"
    if root:
        at = root[-1].end
        line = ("" if text[:at].endswith("\n") else nl) + line
    elif first_header is None:
        at = len(text)
        line = ("" if not text or text.endswith("\n") else nl) + line
    else:
        at = first_header.start
        while at > 0:
            prev = text.rfind("\n", 0, at - 1) + 1
            if not text[prev:at].lstrip(" \t").startswith("#"):
                break
            at = prev
        line += nl
    return text[:at] + line + text[at:]


def _parse_value(text: str, s: Statement) -> Any:
    return tomllib.loads("v = " + text[s.value[0]:s.value[1]])["v"]


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _foreign(name: str, s: Statement) -> TomlEditError:
    return TomlEditError(f"line {s.line}: profile {name!r} (or the whole `profiles`) is written in a form "
                         f"tipctl configure does not rewrite (an inline table, dotted keys or sub-tables); "
                         f"edit it by hand, or make it a plain [profiles.{toml_key(name)}] table")


def remove_table(text: str, name: str) -> str:
    """`text` without the table `[profiles.NAME]` (its header, its keys and the blank line after it); text
    that has no such table comes back as it is. A profile written in another form (inline, dotted keys) is
    refused, as by set_table."""
    prefix = ("profiles", name)
    stmts = statements(text)
    current: tuple[str, ...] = ()
    header: Statement | None = None
    last: Statement | None = None
    for s in stmts:
        if s.kind != "kv":
            current = s.keys
            if s.keys == prefix and s.kind == "table":
                header = last = s
            elif s.keys[:2] == prefix:
                raise _foreign(name, s)
        elif header is not None and current == prefix:
            last = s
        elif (current + s.keys)[:2] == prefix:
            raise _foreign(name, s)
    if header is None or last is None:
        return text
    end = last.end
    nl = _newline(text)
    if text.startswith(nl, end):
        end += len(nl)  # the blank line that kept it apart from the next table
    elif end == len(text) and text[:header.start].endswith(nl * 2):
        return text[:header.start - len(nl)]  # the last table: the blank line before it goes with it
    return text[:header.start] + text[end:]
