"""Replace personal data in logged text with placeholders.

Covered: e-mail addresses, Korean resident registration numbers (주민등록번호,
``YYMMDD-GNNNNNN``), Korean mobile, landline, VoIP and nationwide 15xx/16xx/18xx numbers,
and international numbers written with a leading ``+``.

The patterns aim at the numbers people type, not at every digit run: patent application
numbers (10-2020-0012345), dates, IPC classes and page ranges must survive, because they
are what a patent question is about. A resident registration number is only recognised
with its hyphen, because 13 bare digits are also a patent application number.
"""

from __future__ import annotations

import re

EMAIL_PLACEHOLDER = "[EMAIL]"
RRN_PLACEHOLDER = "[RRN]"
PHONE_PLACEHOLDER = "[PHONE]"

# No ASCII letter, digit or hyphen directly before or after a number, so that a match
# never starts or ends inside a longer identifier such as 10-2020-0012345. Hangul may
# touch it, because Korean particles attach to numbers: 010-1234-5678로 연락.
_BEFORE = r"(?<![0-9A-Za-z-])"
_AFTER = r"(?![0-9A-Za-z-])"
_SEPARATOR = r"[-. ]?"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# YYMMDD, a hyphen, then the century and sex digit 1-8 (9 and 0 are for the 1800s) and
# six more digits.
_RRN = re.compile(
    _BEFORE + r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?-\s?[1-8]\d{6}" + _AFTER
)

_KOREAN_PHONES = [
    # Mobile: 010 (and the old 011, 016-019), a 3- or 4-digit exchange, 4 digits.
    r"01[016789]" + _SEPARATOR + r"\d{3,4}" + _SEPARATOR + r"\d{4}",
    # Seoul 02, and 031-033, 041-044, 051-055, 061-064 area codes.
    r"\(?0(?:2|3[1-3]|4[1-4]|5[1-5]|6[1-4])\)?" + _SEPARATOR + r"\d{3,4}-?\d{4}",
    # Internet phones 070, toll-free 080, and personal numbers 050x.
    r"0(?:70|80|50[2-8])" + _SEPARATOR + r"\d{3,4}" + _SEPARATOR + r"\d{4}",
    # Nationwide numbers such as 1588-1234: 15xx, 16xx and 18xx with a hyphen, but not a
    # range of years such as 1600-1700년.
    r"1(?:5[4-9]|6[0-9]|8[0-9])\d-\d{4}(?!\s*년)",
]
_KOREAN_PHONE = re.compile(_BEFORE + "(?:" + "|".join(_KOREAN_PHONES) + ")" + _AFTER)

# +82 10-1234-5678, +82 (0)2 123 4567, +1 415 555 0100: a country code, then digit
# groups of 1-4 separated by spaces, dots or hyphens, at least 7 digits after the code.
_INTERNATIONAL_PHONE = re.compile(
    r"(?<![0-9A-Za-z+])\+\d{1,3}(?:[-. ]?\(0\))?(?:[-. ]?\d{1,4}){2,5}(?![0-9A-Za-z])"
)
_MIN_INTERNATIONAL_DIGITS = 8


def _replace_international(match: re.Match[str]) -> str:
    digits = sum(character.isdigit() for character in match.group(0))
    return PHONE_PLACEHOLDER if digits >= _MIN_INTERNATIONAL_DIGITS else match.group(0)


def redact_personal_data(text: str) -> str:
    """Return ``text`` with e-mail addresses, resident registration numbers and phone
    numbers replaced by [EMAIL], [RRN] and [PHONE]."""
    # E-mail first: its local part may contain digits that look like a phone number.
    text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    # RRN before phones: "900101-1234567" must not lose a part to a phone pattern.
    text = _RRN.sub(RRN_PLACEHOLDER, text)
    text = _INTERNATIONAL_PHONE.sub(_replace_international, text)
    return _KOREAN_PHONE.sub(PHONE_PLACEHOLDER, text)
