"""The one rule for an endpoint URL, applied wherever one enters: settings, client, IAM auth.

https to any host; plain http only to a loopback address (the local sandbox), since every
request carries credentials: a token, a signature's security token, or an IAM password.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from blocks.errors import DcsValidationError


def is_loopback(host: str) -> bool:
    """Whether `host` (a URL's host, without brackets) names this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(field: str, url: str) -> str:
    """`url` stripped and without a trailing `/`, or a `DcsValidationError` naming `field`."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        msg = (
            f"{field} {url!r} is not an http(s) URL; expected e.g. "
            f"'https://dcs.cn-north-4.myhuaweicloud.com'"
        )
        raise DcsValidationError(msg)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        msg = f"{field} {url!r} has a port that is not a number from 0 to 65535"
        raise DcsValidationError(msg) from None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        msg = (
            f"{field} {url!r} uses plain http to a host that is not loopback, which would send "
            f"credentials in clear text; use https, or a loopback address (127.0.0.1, localhost "
            f"or ::1) for the local sandbox"
        )
        raise DcsValidationError(msg)
    if parts.query or parts.fragment:
        msg = f"{field} {url!r} must not have a query or fragment; give the base URL only"
        raise DcsValidationError(msg)
    return url.rstrip("/")


__all__ = ["check_endpoint", "is_loopback"]
