"""The `pattern` constraints of AWS service models, translated from Java regex to Python's `re`.

AWS services check `pattern` with java.util.regex and `Matcher.matches()`: the whole value must
match (a real SageMaker rejects `ENTER MODEL NAME` for `^[a-zA-Z0-9](-*[a-zA-Z0-9])*`), so the
translation is used with `fullmatch`. Java's defaults differ from Python's in ways that matter:
`\\d \\w \\s \\b` are ASCII-only (we compile with `re.ASCII`), `.` stops at every line terminator
(`\\n \\r \\x85 \\u2028 \\u2029`), `$` also matches before a final terminator, and `\\p{L}`-style
classes exist. A construct we cannot translate faithfully makes `java_pattern` return None: the
caller skips that check rather than enforce something AWS does not.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
import warnings

__all__ = ["java_pattern", "translate"]

_DOT = "[^\\n\\r\\x85\\u2028\\u2029]"
_END = "(?=(?:\\r\\n|[\\n\\r\\x85\\u2028\\u2029])?\\Z)"  # Java's `$` and `\Z`

Ranges = list[tuple[int, int]]


class _Untranslatable(Exception):
    pass


def _chars(chars: str) -> Ranges:
    return [(ord(c), ord(c)) for c in chars]


# java.util.regex POSIX classes: US-ASCII only unless UNICODE_CHARACTER_CLASS is set.
_POSIX: dict[str, Ranges] = {
    "Lower": [(0x61, 0x7A)],
    "Upper": [(0x41, 0x5A)],
    "ASCII": [(0x00, 0x7F)],
    "Alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "Digit": [(0x30, 0x39)],
    "Alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "Punct": _chars(string.punctuation),
    "Graph": [(0x21, 0x7E)],
    "Print": [(0x20, 0x7E)],
    "Blank": _chars(" \t"),
    "Cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "XDigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
    "Space": _chars(" \t\n\x0b\f\r"),
}


@functools.cache
def _categories() -> dict[str, Ranges]:
    """Code point ranges of every Unicode general category (two letters), built once."""
    ranges: dict[str, Ranges] = {}
    category = unicodedata.category
    start, previous = 0, category("\0")
    for cp in range(1, sys.maxunicode + 1):
        cat = category(chr(cp))
        if cat != previous:
            ranges.setdefault(previous, []).append((start, cp - 1))
            start, previous = cp, cat
    ranges.setdefault(previous, []).append((start, sys.maxunicode))
    return ranges


def _merge(ranges: Ranges) -> Ranges:
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in _merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= sys.maxunicode:
        out.append((nxt, sys.maxunicode))
    return out


def _property(name: str) -> Ranges:
    """`\\p{name}`: a general category (`L`, `Lu`, `IsL`, `gc=L`) or a POSIX class."""
    if name in _POSIX:
        return _POSIX[name]
    for prefix in ("Is", "gc=", "general_category="):
        if name.startswith(prefix) and len(name) - len(prefix) in (1, 2):
            name = name[len(prefix) :]
    cats = _categories()
    if len(name) == 1 and name.isupper():
        found = [r for cat, rs in cats.items() if cat[0] == name for r in rs]
        if found:
            return _merge(found)
    elif len(name) == 2 and name in cats:
        return cats[name]
    raise _Untranslatable(f"\\p{{{name}}}")


def _char(cp: int) -> str:
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def _class_body(ranges: Ranges) -> str:
    return "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)


class _Translator:
    def __init__(self, java: str) -> None:
        self.src = java
        self.i = 0

    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.src[j] if j < len(self.src) else ""

    def take(self) -> str:
        c = self.peek()
        if not c:
            raise _Untranslatable("unexpected end")
        self.i += 1
        return c

    def run(self) -> str:
        out: list[str] = []
        while self.i < len(self.src):
            c = self.take()
            if c == "\\":
                out.append(self.escape(in_class=False))
            elif c == "[":
                out.append(self.char_class())
            elif c == ".":
                out.append(_DOT)
            elif c == "$":
                out.append(_END)
            elif c == "(":
                out.append(self.group_open(len(out) == 0))
            else:
                out.append(c)
        return "".join(out)

    def group_open(self, at_start: bool) -> str:
        if self.peek() != "?":
            return "("
        rest = self.src[self.i + 1 :]
        if rest[:1] in (":", "=", "!", ">") or rest[:2] in ("<=", "<!"):
            return "("
        named = re.match(r"<([a-zA-Z][a-zA-Z0-9]*)>", rest)
        if named:
            self.i += 1 + named.end()
            return f"(?P<{named.group(1)}>"
        flags = re.match(r"(-?i)([:)])", rest)
        # Only case-insensitivity is safe: Java's m, s, x, u, d, U change what `$`, `.` and
        # `\\s` mean in ways the translation above has already fixed.
        if flags and (flags.group(2) == ":" or at_start):
            self.i += 1 + flags.end()
            return f"(?{flags.group(1)}{flags.group(2)}"
        raise _Untranslatable("inline flags")

    def char_class(self) -> str:
        out = ["["]
        if self.peek() == "^":
            out.append(self.take())
        if self.peek() == "]":
            raise _Untranslatable("[] ")
        while True:
            c = self.take()
            if c == "]":
                out.append("]")
                return "".join(out)
            if c == "[" or (c == "&" and self.peek() == "&"):
                raise _Untranslatable("class union or intersection")
            if c == "\\":
                out.append(self.escape(in_class=True))
            elif c == "-":
                out.append("-")
            else:
                out.append(_char(ord(c)))

    def escape(self, in_class: bool) -> str:
        c = self.take()
        if c in "dDwWsS":
            return "\\" + c
        if c in "tnrfa":
            return "\\" + c
        if c == "e":
            return "\\x1b"
        if c == "0":
            digits = re.match(r"[0-3]?[0-7]{1,2}|[0-7]", self.src[self.i :])
            if not digits:
                raise _Untranslatable("\\0")
            self.i += digits.end()
            return _char(int(digits.group(0), 8))
        if c == "x":
            hexa = re.match(r"\{([0-9a-fA-F]{1,6})\}|[0-9a-fA-F]{2}", self.src[self.i :])
            if not hexa:
                raise _Untranslatable("\\x")
            self.i += hexa.end()
            cp = int(hexa.group(1) or hexa.group(0), 16)
            if cp > sys.maxunicode:
                raise _Untranslatable("\\x{...}")
            return _char(cp)
        if c == "u":
            hexa = re.match(r"[0-9a-fA-F]{4}", self.src[self.i :])
            if not hexa:
                raise _Untranslatable("\\u")
            self.i += 4
            cp = int(hexa.group(0), 16)
            low = re.match(r"\\u(d[c-f][0-9a-f]{2})", self.src[self.i :], re.IGNORECASE)
            if 0xD800 <= cp <= 0xDBFF and low:  # a surrogate pair is one code point in Java
                self.i += 6
                cp = 0x10000 + ((cp - 0xD800) << 10) + (int(low.group(1), 16) - 0xDC00)
            return _char(cp)
        if c == "c":
            return _char(ord(self.take()) ^ 64)
        if c in "pP":
            if self.peek() == "{":
                end = self.src.find("}", self.i)
                if end < 0:
                    raise _Untranslatable("\\p{")
                name, self.i = self.src[self.i + 1 : end], end + 1
            else:
                name = self.take()
            ranges = _property(name) if c == "p" else _complement(_property(name))
            return _class_body(ranges) if in_class else f"[{_class_body(ranges)}]"
        if c == "Q":
            end = self.src.find("\\E", self.i)
            end = len(self.src) if end < 0 else end
            quoted, self.i = self.src[self.i : end], min(end + 2, len(self.src))
            if in_class:
                return "".join(_char(ord(q)) for q in quoted)
            return re.escape(quoted)
        if not in_class:
            if c in "bB":
                return "\\" + c
            if c == "A":
                return "\\A"
            if c == "z":
                return "\\Z"
            if c == "Z":
                return _END
            if c in "123456789":
                return "\\" + c
            if c == "k":
                named = re.match(r"<([a-zA-Z][a-zA-Z0-9]*)>", self.src[self.i :])
                if named:
                    self.i += named.end()
                    return f"(?P={named.group(1)})"
        if c.isascii() and c.isalnum():
            raise _Untranslatable(f"\\{c}")
        return _char(ord(c)) if in_class else re.escape(c)


def translate(java: str) -> str | None:
    """The Python source for a Java regex (to use with `re.ASCII`), or None if it has no
    faithful translation (class intersections, flags other than `i`, `\\G`, `\\R`, ...)."""
    try:
        return _Translator(java).run()
    except _Untranslatable:
        return None


@functools.cache
def java_pattern(java: str) -> re.Pattern[str] | None:
    """`translate`, compiled; use `.fullmatch` as Java's `matches()`. Cached per pattern."""
    source = translate(java)
    if source is None:
        return None
    with warnings.catch_warnings():
        # A FutureWarning ("possible nested set") means Python would read it differently.
        warnings.simplefilter("error")
        try:
            return re.compile(source, re.ASCII)
        except (re.error, Warning, OverflowError, RecursionError):
            return None
