"""TeX in titles, authors and abstracts shown as Unicode, the way a reader expects it.

Sources write TeX (`Schr\\"odinger`, `Hajdu\\v{s}ek`, `$\\alpha$-stable`) and the store keeps it
as written; what a person reads (emails, subjects, pages, feeds) goes through `unicode_text`,
once per paper per edition (PaperView). Text outside math is converted with pylatexenc. A math
segment is converted only when every piece of it has a plain form (Greek letters, relations,
arrows, single-character sub- and superscripts, `\\text{...}`); otherwise the whole segment
stays as its TeX source, delimiters included: readable TeX, never half-converted.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from pylatexenc.latex2text import LatexNodes2Text

# pylatexenc logs a warning for every macro whose substitution fails (\frac alone, ...).
logging.getLogger("pylatexenc").setLevel(logging.ERROR)

_CONVERTER = LatexNodes2Text(math_mode="verbatim", strict_latex_spaces=False)
# Characters that make a string worth converting at all; most titles have none.
_TEX_MARKS = re.compile(r"[\\{}$~]")
# $$..$$, $..$, \(..\), \[..\]; a \$ is an escaped dollar, not a delimiter. As in pandoc, a
# single-dollar segment opens before a non-space and closes after one, not before a digit, so
# "costs $5 and $6" holds no math.
_MATH = re.compile(
    r"(?<!\\)\$\$(.+?)(?<!\\)\$\$"
    r"|(?<![\\$])\$(?=[^\s$])(.+?)(?<=\S)(?<!\\)\$(?!\d)"
    r"|\\\((.+?)\\\)|\\\[(.+?)\\\]",
    re.S,
)
# In text, a bare % starts a TeX comment that would swallow the rest (abstracts mean percent),
# and a dollar left outside math is a currency sign.
_BARE_PERCENT = re.compile(r"(?<!\\)([%$])")
_MATH_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[\^_]|\{|\}|\s+|.", re.S)
_PLAIN_MATH = set(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-=<>()[],.;:|/!'*"
)

SUPERSCRIPTS = dict(zip("0123456789+-=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", strict=True))
SUPERSCRIPTS.update({"*": "*", "′": "′", "†": "†", "'": "′"})
SUBSCRIPTS = dict(
    zip("0123456789+-=()aeoxhklmnpstijruv", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ", strict=True)
)
# Macros that wrap upright text: their argument is shown as it is.
_TEXT_WRAPPERS = {"text", "textrm", "mathrm", "operatorname", "mathit", "textit", "mathnormal"}
# Sizing and delimiters' companions: the delimiter that follows is what shows.
_INVISIBLE = {"left", "right", "big", "bigl", "bigr", "Big", "Bigl", "Bigr", "bigg", "biggl"}
_INVISIBLE |= {"biggr", "displaystyle", "textstyle", "!", "limits"}
_SPACES = {",": " ", ";": " ", ":": " ", " ": " ", "quad": " ", "qquad": " "}
_ESCAPES = {"{": "{", "}": "}", "%": "%", "$": "$", "&": "&", "#": "#", "_": "_", "|": "‖"}
_OPERATOR_NAMES = {"log", "ln", "exp", "sin", "cos", "tan", "max", "min", "lim", "det", "tr"}
_OPERATOR_NAMES |= {"sup", "inf", "arg", "dim", "ker", "deg", "Pr", "sinh", "cosh", "tanh"}
_DOUBLE_STRUCK = dict(zip("RNZQCEPF", "ℝℕℤℚℂ𝔼ℙ𝔽", strict=True))


@lru_cache(maxsize=512)
def _symbol(name: str) -> str | None:
    """The plain form of a math macro (\\alpha -> α), or None when it has none."""
    if name in _OPERATOR_NAMES:
        return name
    try:
        text: str = _CONVERTER.latex_to_text("\\" + name)
    except Exception:  # pylatexenc raises on macros it cannot substitute alone
        return None
    if len(text) == 1 and text != "\\" and (not text.isascii() or text in "|'"):
        return text
    return None


def _group(tokens: list[str], i: int) -> tuple[str | None, int]:
    """The text of the `{...}` group at tokens[i] (plain characters only), and the next index."""
    if i >= len(tokens) or tokens[i] != "{":
        return None, i
    out = []
    i += 1
    while i < len(tokens) and tokens[i] != "}":
        token = tokens[i]
        if token in ("{", "^", "_") or (token.startswith("\\") and len(token) > 2):
            symbol = _symbol(token[1:]) if token.startswith("\\") else None
            if symbol is None:
                return None, i
            out.append(symbol)
        elif token.startswith("\\"):
            out.append(_ESCAPES.get(token[1:], _SPACES.get(token[1:], "")) or token[1:])
        else:
            out.append(token)
        i += 1
    if i >= len(tokens):
        return None, i
    return "".join(out), i + 1


def _script(tokens: list[str], i: int, table: dict[str, str]) -> tuple[str | None, int]:
    """A sub- or superscript's argument at tokens[i] in Unicode, when every character has one."""
    if i >= len(tokens):
        return None, i
    token = tokens[i]
    if token == "{":
        text, i = _group(tokens, i)
    elif token.startswith("\\") and len(token) > 2:
        text, i = _symbol(token[1:]), i + 1
    else:
        text, i = token, i + 1
    if not text or text.isspace():
        return None, i
    converted = [table.get(c) for c in text.strip()]
    if any(c is None for c in converted):
        return None, i
    return "".join(converted), i  # type: ignore[arg-type]


def math_text(source: str) -> str | None:
    """A math segment (without delimiters) in plain Unicode, or None when part of it has no
    plain form (then the caller keeps the TeX whole)."""
    tokens: list[str] = []
    for token in _MATH_TOKEN.findall(source):
        # A control word swallows the spaces after it, as in TeX.
        if token.isspace() and tokens and tokens[-1][1:].isalpha():
            continue
        tokens.append(token)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.isspace():
            out.append(" ")
            i += 1
        elif token in ("^", "_"):
            text, i = _script(tokens, i + 1, SUPERSCRIPTS if token == "^" else SUBSCRIPTS)
            if text is None:
                return None
            out.append(text)
        elif token.startswith("\\") and len(token) > 2 or token[1:].isalpha():
            name = token[1:]
            if name in _TEXT_WRAPPERS:
                text, i = _group(tokens, i + 1)
                if text is None:
                    return None
                out.append(text)
            elif name == "mathbb":
                text, i = _group(tokens, i + 1)
                if text is None or text not in _DOUBLE_STRUCK:
                    return None
                out.append(_DOUBLE_STRUCK[text])
            elif name in _INVISIBLE:
                i += 1
            elif name in _SPACES:
                out.append(_SPACES[name])
                i += 1
            else:
                symbol = _symbol(name)
                if symbol is None:
                    return None
                if name in _OPERATOR_NAMES:
                    # An operator name (log, sin) reads as a word: apart from its neighbours.
                    if out and out[-1][-1:].isalnum():
                        symbol = " " + symbol
                    following = tokens[i + 1] if i + 1 < len(tokens) else ""
                    if following[:1].isalnum() or following.startswith("\\"):
                        symbol += " "
                out.append(symbol)
                i += 1
        elif token.startswith("\\"):
            name = token[1:]
            if name in _SPACES:
                out.append(_SPACES[name])
            elif name in _ESCAPES:
                out.append(_ESCAPES[name])
            elif name not in _INVISIBLE:
                return None
            i += 1
        elif token in _PLAIN_MATH:
            out.append(token)
            i += 1
        else:
            return None  # bare braces, alignment marks, ...: keep the TeX
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _text_part(source: str) -> str:
    if not _TEX_MARKS.search(source):
        return source
    try:
        converted: str = _CONVERTER.latex_to_text(_BARE_PERCENT.sub(r"\\\1", source))
    except Exception:  # malformed TeX: show it as written rather than lose text
        return source
    return converted.replace("\xa0", " ")


@lru_cache(maxsize=4096)
def unicode_text(source: str) -> str:
    """The text with its TeX rendered as Unicode where it has a plain form (see module doc)."""
    if not source or not _TEX_MARKS.search(source):
        return source
    out: list[str] = []
    position = 0
    for match in _MATH.finditer(source):
        out.append(_text_part(source[position : match.start()]))
        inner = next(g for g in match.groups() if g is not None)
        plain = math_text(inner)
        out.append(match.group(0) if plain is None else plain)
        position = match.end()
    out.append(_text_part(source[position:]))
    return "".join(out)
