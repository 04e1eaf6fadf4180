"""GSM8K answer extraction.

Two extractors, as lm-eval-harness reports them:
- strict: the number right after the first ``####`` marker (the format the few-shot set teaches);
- flexible: the last number anywhere in the completion.
Numbers may carry a sign (also U+2212), a ``$``, thousands commas and a decimal part; a trailing
period is punctuation. Thousands commas must group by three, so "2,3,4" is three numbers, and a
hyphen between two digits ("2010-2015") is a range, not a minus sign.
"""

from __future__ import annotations

import re
from decimal import Decimal

_NUM = (
    r"(?P<sign>[-\u2212+])?[ \t]?\$?[ \t]?(?P<sign2>[-\u2212])?"
    r"(?P<body>\d[\d,]*\d|\d)(?P<frac>\.\d+)?"
)
NUMBER = re.compile(_NUM)
STRICT = re.compile(r"####[ \t]*" + _NUM)
THOUSANDS = re.compile(r"\d+(?:,\d{3})+")  # "1000,000" is a sloppy 1000000
# The model may run on into the next few-shot turn if the server ignored our stop strings.
_CUT = re.compile(r"\n\s*(?:Question|Q):", re.IGNORECASE)


def _values(m: re.Match[str], text: str) -> list[Decimal]:
    """All numbers in one match: "1,234" is one, "2,3,4" is three (a list, not thousands)."""
    body, frac = m.group("body"), m.group("frac") or ""
    pieces = [body.replace(",", "")] if THOUSANDS.fullmatch(body) else body.split(",")
    pieces = [p for p in pieces if p]
    if not pieces:
        return []
    pieces[-1] += frac
    values = [Decimal(p) for p in pieces]
    # A minus right after a digit/letter/")" is an operator or a range dash, not a sign.
    before = text[m.start() - 1] if m.start() > 0 else " "
    sign = m.group("sign") or ""
    negative = bool(m.group("sign2")) or (
        sign in ("-", "\u2212") and not (before.isalnum() or before == ")")
    )
    if negative:
        values[0] = -values[0]
    return values


def numbers(text: str) -> list[Decimal]:
    out: list[Decimal] = []
    for m in NUMBER.finditer(text):
        out.extend(_values(m, text))
    return out


def truncate(completion: str) -> str:
    m = _CUT.search(completion)
    return completion[: m.start()] if m else completion


def extract_strict(completion: str) -> Decimal | None:
    text = truncate(completion)
    m = STRICT.search(text)
    return _values(m, text)[0] if m else None


def extract_flexible(completion: str) -> Decimal | None:
    found = numbers(truncate(completion))
    return found[-1] if found else None


def gold_answer(answer_field: str) -> Decimal:
    """The reference value after ``####`` in a GSM8K ``answer`` field."""
    v = extract_strict(answer_field)
    if v is None:
        raise ValueError(f"GSM8K answer without a '#### N' line: {answer_field[-80:]!r}")
    return v


def same(a: Decimal | None, b: Decimal) -> bool:
    return a is not None and a == b  # Decimal("18.00") == Decimal("18")
