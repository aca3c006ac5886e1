"""Identifiers for ad audiences (Meta Custom Audiences, Google Ads Customer Match): normalised, then SHA-256.

Both platforms match people by the lowercase hex SHA-256 of a normalised identifier, so the normalisation must be
exactly theirs or nothing matches:

- email: surrounding whitespace trimmed, lowercased; it must then look like an address (one `@`, a dot in the
  domain, no spaces), else it is invalid.
- phone: E.164, `+` country code and subscriber number, digits only, 8 to 15 digits. `+44 20 7946 0000`,
  `0044 20 7946 0000` and `(020) 7946-0000` with default country code 44 are all `+442079460000`. A number with
  neither `+` nor `00` in front is national: its trunk zeros are dropped and `default_country_code` put in front;
  without a default country code it must already start with its country code (Meta's rule: digits with the
  country code, no leading zeros). Letters make a number invalid. Google hashes the E.164 form with its `+`,
  Meta the digits without it (`e164_digits`).

A value that is already 64 hexadecimal characters is taken as a SHA-256 computed by the caller from a normalised
identifier: it is lowercased and passed through unchanged (so a warehouse can hold hashes only). It is not
checked further: hashing a hash would never match anyone.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


class InvalidIdentifier(ValueError):
    """An identifier that cannot be normalised: the record is rejected with this reason, never sent."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_hashed(value: str) -> bool:
    return bool(HEX64.match(value))


def normalise_email(value: Any) -> str:
    text = str(value).strip().lower()
    if not EMAIL.match(text):
        raise InvalidIdentifier(f"email {_show(value)} is not a valid email address")
    return text


def country_code(value: Any) -> str:
    """A default country calling code from config: '44', '+44' or 44 -> '44'."""
    digits = str(value).strip().lstrip("+")
    if not digits.isdigit() or not 1 <= len(digits) <= 3 or digits.startswith("0"):
        raise ValueError(f"default_country_code must be a country calling code such as 1 or 44, not {value!r}")
    return digits


def normalise_phone(value: Any, default_country: str | None = None) -> str:
    """E.164 with the leading `+`, e.g. '+15550100123'."""
    text = str(value).strip()
    if re.search(r"[A-Za-z]", text):
        raise InvalidIdentifier(f"phone {_show(value)} contains letters")
    international = text.startswith("+")
    if international:
        text = text.replace("(0)", "")  # +44 (0)20 ...: the trunk zero is not dialled from abroad
    digits = re.sub(r"\D", "", text)
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    if not international:
        digits = digits.lstrip("0")
        if default_country:
            digits = default_country + digits
    digits = digits.lstrip("0")
    if not 8 <= len(digits) <= 15:
        raise InvalidIdentifier(f"phone {_show(value)} is not a valid international number"
                                + ("" if international or default_country else
                                   " (no country code: start it with + or set default_country_code)"))
    return "+" + digits


def e164_digits(e164: str) -> str:
    return e164.lstrip("+")


def hashed_email(value: Any) -> str:
    text = str(value).strip()
    return text.lower() if is_hashed(text) else sha256_hex(normalise_email(text))


def hashed_phone(value: Any, default_country: str | None = None, plus: bool = True) -> str:
    """SHA-256 of the E.164 number, with its `+` (Google) or without (`plus=False`, Meta)."""
    text = str(value).strip()
    if is_hashed(text):
        return text.lower()
    e164 = normalise_phone(text, default_country)
    return sha256_hex(e164 if plus else e164_digits(e164))


def present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _show(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def mapped_identifiers(destination: Any, batch: Any, allowed: Any, platform: str) -> list[str]:
    """The identifier fields a batch maps, in `allowed` order; mapping anything else (or none of them) is a
    configuration error (Terminal), not a rejection: an ad audience keeps only identifiers."""
    from .base import Terminal

    mapped = list(batch.records[0])
    fields = [f for f in allowed if f in mapped]
    if not fields or any(f not in allowed for f in mapped):
        raise Terminal(f"{destination.type} destination '{destination.name}': sync '{destination.sync_name}' can map "
                       f"only {' and '.join(allowed)} (the identifiers {platform} matches by); it maps "
                       f"{', '.join(mapped) or 'nothing'}")
    return fields
