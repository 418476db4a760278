"""Redaction: which values are secret, how they are cut out of text, and the log filters.

Text this package writes is built from named fields, but some of it quotes what others
wrote (an error message, a notification block's failure), so every value known to be
secret is cut out of it with `scrub`, and URLs with `redact_urls`. Two libraries log
secrets by themselves, and get a log filter each:

- httpx logs every request's URL at INFO, and a webhook's URL is its secret: while a
  notification is sent (`with redacting_urls():`) URLs are cut out of those lines; every
  other request in the process keeps its line as it is.
- httpcore's DEBUG trace prints response headers, and IAM's token is one of them: its
  value is always masked.

`attach_log_filters()` attaches both; whoever is about to send such a request calls it
(the IAM token request in `blocks.auth`, and `redacting_urls()`), so importing a module
attaches nothing and changes no logger.

>>> scrub("AUTH failed: password hunter2-x refused", {"hunter2-x"})
'AUTH failed: password ********** refused'
>>> redact_urls("POST https://hooks.example/T1/B2/tok3 failed")
'POST <url> failed'
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx
from pydantic import BaseModel, SecretStr

#: What a secret becomes once masked (the same ten stars `SecretStr` prints).
MASKED = "**********"

# Two ideas of "secret by its name", on purpose: in a DCS response a field named like
# a password holds one, and a `url` is just an address; in a notification block the
# URL, headers and params carry the webhook's token, so they are secret too.
_SECRET_NAME = re.compile(r"password|passwd|pwd|secret|token|credential", re.IGNORECASE)
_SENSITIVE_BLOCK_FIELD = re.compile(r"url|secret|token|key|password|header|cookie|param", re.I)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SUBJECT_TOKEN = re.compile(rb"(x-subject-token['\"]?,\s*b?['\"])[^'\"]*", re.IGNORECASE)
# Secrets shorter than this are not cut out of free text: replacing "ab" everywhere would
# garble the message and tell a reader more about the secret than leaving it.
_MIN_SCRUB = 4
# Path segments this long are tokens (Slack's is 24 characters), shorter ones are words.
_MIN_URL_PART = 12


# --- which values are secret ----------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def is_secret_name(key: str) -> bool:
    """Whether a DCS field of this name holds a secret (password, pwd, token, ...)."""
    # Field names repeat on every item of every page: decide each name once.
    return _SECRET_NAME.search(key) is not None


def masked_away(original: object, masked: object) -> Iterator[str]:
    """Every value `masked` hides of `original` (a model and its `masked()` copy): the
    model's own idea of a secret, not a second list."""
    if isinstance(original, SecretStr) and isinstance(masked, SecretStr):
        if original.get_secret_value() != masked.get_secret_value():
            yield original.get_secret_value()
    elif isinstance(original, BaseModel) and isinstance(masked, BaseModel):
        for values, masked_values in (
            (original.__dict__, masked.__dict__),
            (original.model_extra or {}, masked.model_extra or {}),
        ):
            for key, value in values.items():
                yield from masked_away(value, masked_values.get(key))
    elif isinstance(original, dict) and isinstance(masked, dict):
        for key, value in original.items():
            yield from masked_away(value, masked.get(key))
    elif isinstance(original, list) and isinstance(masked, list):
        for value, masked_value in zip(original, masked, strict=True):
            yield from masked_away(value, masked_value)
    elif isinstance(original, str) and original != masked:
        yield original


def block_secrets(block: BaseModel) -> set[str]:
    """Strings in a (Prefect) block that must not be logged: its secrets, URL, headers,
    params, and the parts of its URLs that carry a token."""
    found: set[str] = set()

    def collect(value: object, sensitive: bool) -> None:
        reveal = getattr(value, "get_secret_value", None)
        if callable(reveal):  # SecretStr, Prefect's SecretDict: all of it is secret
            collect(reveal(), True)
        elif isinstance(value, BaseModel):  # a nested block
            for key, item in value.__dict__.items():
                collect(item, sensitive or bool(_SENSITIVE_BLOCK_FIELD.search(key)))
        elif isinstance(value, dict):
            for item in value.values():
                collect(item, sensitive)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item, sensitive)
        elif isinstance(value, str) and sensitive:
            found.add(value)
            found.update(url_secrets(value))

    collect(block, False)
    return found


def url_secrets(text: str) -> set[str]:
    """The parts of a URL that carry its secret, so an error quoting one alone is caught
    too: user info, long path segments (Slack's /T../B../<token>), query values."""
    if not _URL.fullmatch(text):
        return set()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError):
        return set()
    parts = {url.password or "", *(value for _, value in url.params.multi_items())}
    # Cutting out "hooks" or "services" would hide nothing and garble every message.
    parts.update(segment for segment in url.path.split("/") if len(segment) >= _MIN_URL_PART)
    return {part for part in parts if len(part) >= _MIN_SCRUB}


# --- cutting them out of text ---------------------------------------------------------


def scrub(text: str, secrets: set[str]) -> str:
    """`text` with every secret (of at least 4 characters) replaced by `MASKED`."""
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SCRUB:
            text = text.replace(secret, MASKED)
    return text


def redact_urls(text: str) -> str:
    """`text` with every URL replaced by `<url>`."""
    return _URL.sub("<url>", text)


# --- the log filters ------------------------------------------------------------------

_redacting_urls: ContextVar[bool] = ContextVar("dcs_redacting_urls", default=False)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # a malformed record: drop its arguments too
        return str(record.msg)


class _RedactUrls(logging.Filter):
    """Cuts URLs out of httpx's request lines inside `redacting_urls()` only.

    That line reaches the console at INFO, and the Prefect API when httpx is one of
    PREFECT_LOGGING_EXTRA_LOGGERS.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _redacting_urls.get():
            record.msg, record.args = redact_urls(_message(record)), ()
        return True


class _RedactSubjectToken(logging.Filter):
    """Masks the X-Subject-Token header in httpcore's DEBUG trace of response headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = _message(record)
        if "subject-token" in text.lower():
            masked = _SUBJECT_TOKEN.sub(rb"\1" + MASKED.encode(), text.encode())
            record.msg, record.args = masked.decode(errors="replace"), ()
        return True


# Filters do not reach a child logger's records: each goes on the logger that logs.
_FILTERS = (
    ("httpx", _RedactUrls()),
    ("httpcore.http11", _RedactSubjectToken()),
    ("httpcore.http2", _RedactSubjectToken()),
)
_attaching = threading.Lock()


def attach_log_filters() -> None:
    """Attach the filters above to httpx's and httpcore's loggers (once; cheap to repeat).

    Call it before sending a request whose log lines would hold a secret.
    """
    with _attaching:
        for name, redactor in _FILTERS:
            logger = logging.getLogger(name)
            if redactor not in logger.filters:
                logger.addFilter(redactor)


@contextmanager
def redacting_urls() -> Iterator[None]:
    """Within this block, in this context only, httpx's request lines show no URL.

    A context variable, not a global flag: unrelated requests made meanwhile by other
    coroutines or threads (Prefect's own API calls) keep their log lines as they are.
    """
    attach_log_filters()
    token = _redacting_urls.set(True)
    try:
        yield
    finally:
        _redacting_urls.reset(token)


__all__ = [
    "MASKED",
    "attach_log_filters",
    "block_secrets",
    "is_secret_name",
    "masked_away",
    "redact_urls",
    "redacting_urls",
    "scrub",
    "url_secrets",
]
