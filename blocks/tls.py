"""What `verify` means, decided once wherever it enters: settings, block, environment, client.

`verify` arrives as a bool from Python, but as text from `DCS_VERIFY` or the Prefect block
form; httpx would read the text "false" as the path of a CA bundle. So a true/false word is
a bool, and any other text is a CA bundle path that must exist.
"""

from __future__ import annotations

import os
import ssl

from blocks.errors import DcsValidationError

_TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
_FALSE_WORDS = frozenset({"false", "no", "0", "off"})


def parse_verify(value: object, field: str = "verify") -> bool | str:
    """True or False for a bool or a true/false word, else the stripped path of a CA bundle.

    Raises `DcsValidationError` naming `field` and the value when the text is no such word
    and no file or directory exists at that path.
    """
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        msg = (
            f"{field} must be true, false or the path of a CA bundle, "
            f"got {type(value).__name__} {value!r}"
        )
        raise DcsValidationError(msg)
    text = value.strip()
    if text.lower() in _TRUE_WORDS:
        return True
    if text.lower() in _FALSE_WORDS:
        return False
    if text and (os.path.isfile(text) or os.path.isdir(text)):
        return text
    msg = (
        f"{field} {text!r} is neither true nor false nor an existing CA bundle file or "
        f"directory; set it to true, false, or the path of a CA bundle (a PEM file, or a "
        f"directory of hashed certificates) that exists on this machine"
    )
    raise DcsValidationError(msg)


def httpx_verify(value: object, field: str = "verify") -> bool | ssl.SSLContext:
    """What to hand httpx: a bool, or an SSL context trusting the CA bundle at the path.

    httpx 0.28 deprecates a path for `verify`, so the context is built here, as httpx
    itself would build it. An `ssl.SSLContext` passes through unchanged.
    """
    if isinstance(value, ssl.SSLContext):
        return value
    parsed = parse_verify(value, field)
    if isinstance(parsed, bool):
        return parsed
    try:
        if os.path.isdir(parsed):
            return ssl.create_default_context(capath=parsed)
        return ssl.create_default_context(cafile=parsed)
    except (ssl.SSLError, OSError) as exc:
        msg = (
            f"{field} {parsed!r} could not be read as a CA bundle ({exc}); point it at a "
            f"PEM file of CA certificates, or set it to true or false"
        )
        raise DcsValidationError(msg) from None


__all__ = ["httpx_verify", "parse_verify"]
