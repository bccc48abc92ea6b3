"""Turn the transport libraries' exceptions into a :class:`~crm_bridge.http.retry.Failure`.

Why per library: httpx, requests and urllib3 report the same events very differently.

* **httpx** (our own calls): ``HTTPStatusError`` carries the response; ``TransportError``
  subclasses say precisely how far the request got.
* **requests**: ``HTTPError`` from ``raise_for_status()`` carries the response; network trouble
  arrives as ``requests.exceptions.*``, often wrapping the urllib3 error that says more.
* **urllib3**: ``MaxRetryError`` wraps the real cause; exhausted ``Retry`` objects only name the
  status in their text.

The one distinction that matters most is whether a failed request **never reached the server**
(connection refused, DNS, connect timeout: safe to resend anything) or **may have been applied**
(read timeout, connection dropped mid-response: only idempotent calls may be resent).  Transport
failures get the pseudo codes ``CONNECT_FAILED``, ``TIMED_OUT`` and ``CONNECTION_LOST`` so the
retry table decides about them like about any status.

Vendor client libraries (their exception classes, their rate-limit hints) are described next to
their connector, in ``crm_bridge/connectors/<vendor>/errors.py``; those describers fall back to
:func:`describe_transport` for the network errors underneath.  :func:`first_of` composes them.

A describe function returns ``None`` for exceptions that are not HTTP failures; they then
propagate unchanged.  Messages are built from the server's error text, never from ``str(exc)``
of a client exception (which may embed whole response dumps).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import requests
import urllib3.exceptions

from crm_bridge.http.headers import lower_headers
from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMED_OUT,
    TLS_FAILED,
    Describe,
    Failure,
)

__all__ = [
    "clip",
    "describe_httpx",
    "describe_transport",
    "first_of",
    "lower_headers",
    "parse_error_body",
]

_MAX_MESSAGE = 500


def parse_error_body(body: Any) -> tuple[str | None, str]:
    """``(error_code, message)`` from a JSON (or text) error body, whoever sent it.

    Why structural and shared: the same body reaches us through httpx, requests or a vendor
    client, and the retry table keys on the code, so every describer must read it the same way.
    The shapes are the common conventions, not one API's:

    * a list of error objects ``[{"errorCode" | "statusCode", "message"}]`` -- the first wins;
    * the OAuth 2.0 (RFC 6749) ``{"error", "error_description"}``;
    * an object with ``message`` and a code in one of ``errors[0].code``, ``policyName``,
      ``category``, ``errorType`` or ``status``.  The most specific code wins: a per-field
      ``errors[0].code`` (e.g. ``INVALID_OPTION``) over a named limit policy (``DAILY``) over a
      broad ``category``; a bare ``"status": "error"`` is no code at all.

    Plain text becomes the message with no code.  Messages are clipped (:func:`clip`).
    """
    data = _json(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        code = first.get("errorCode") or first.get("statusCode")
        return _str_or_none(code), clip(first.get("message"))
    if isinstance(data, dict):
        if "error" in data and isinstance(data["error"], str):
            return data["error"], clip(data.get("error_description"))
        errors = data.get("errors")
        nested = None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            nested = errors[0].get("code")
        status_word = data.get("status")
        code = (
            nested
            or data.get("policyName")
            or data.get("category")
            or data.get("errorType")
            or (status_word if status_word not in (None, "error") else None)
        )
        return _str_or_none(code), clip(data.get("message"))
    if isinstance(data, str):
        return None, clip(data)
    return None, ""


def describe_httpx(exc: BaseException) -> Failure | None:
    """The httpx ``HTTPStatusError`` (any JSON error body) and ``TransportError`` family.

    Vendor wait hints that are not ``Retry-After`` (e.g. a rate-limit window length in a vendor
    header) are not read here: a vendor wraps this function and sets ``Failure.retry_after``.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        headers = lower_headers(response.headers)
        try:
            body: Any = response.text
        except httpx.ResponseNotRead:
            body = None
        error_code, message = parse_error_body(body)
        return Failure(
            response.status_code, error_code, message or response.reason_phrase, headers=headers
        )
    return describe_transport(exc)


def describe_transport(exc: BaseException) -> Failure | None:
    """Network failures from httpx, requests or urllib3; ``None`` for anything else."""
    if isinstance(exc, httpx.TransportError):
        return _httpx_transport(exc)
    if isinstance(exc, requests.exceptions.RequestException):
        return _requests_transport(exc)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return _urllib3(exc)
    return None


def first_of(*describers: Describe) -> Describe:
    """A describe function trying each of ``describers`` in turn; the first answer wins."""

    def describe(exc: BaseException) -> Failure | None:
        for describer in describers:
            failure = describer(exc)
            if failure is not None:
                return failure
        return None

    return describe


# --- transport details ------------------------------------------------------------------------


def _httpx_transport(exc: httpx.TransportError) -> Failure:
    text = clip(str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Failure(None, CONNECT_FAILED, text)
    if isinstance(exc, httpx.ProxyError):
        return Failure(None, CONNECT_FAILED, text)
    if isinstance(exc, httpx.TimeoutException):  # ReadTimeout, WriteTimeout
        return Failure(None, TIMED_OUT, text)
    if isinstance(exc, httpx.UnsupportedProtocol):  # never sent; and resending cannot help
        return Failure(None, "UNSUPPORTED_PROTOCOL", text)
    return Failure(None, CONNECTION_LOST, text)  # ReadError, WriteError, RemoteProtocolError...


def _requests_transport(exc: requests.exceptions.RequestException) -> Failure | None:
    text = clip(type(exc).__name__)
    if isinstance(exc, requests.exceptions.SSLError):
        return Failure(None, TLS_FAILED, text)
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError):
        return Failure(None, CONNECT_FAILED, text)
    if isinstance(exc, requests.exceptions.Timeout):  # ReadTimeout
        return Failure(None, TIMED_OUT, text)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return Failure(None, CONNECTION_LOST, text)
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        response = exc.response  # from raise_for_status() on a plain requests call
        headers = lower_headers(response.headers)
        error_code, message = parse_error_body(response.text)
        return Failure(
            response.status_code, error_code, message or response.reason, headers=headers
        )
    # requests wraps urllib3: ConnectionError(MaxRetryError(reason=NewConnectionError)) when the
    # connect failed, ConnectionError(ProtocolError("Connection aborted.")) when the answer was
    # cut off, RetryError(MaxRetryError(reason=ResponseError)) when a mounted Retry gave up.
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, urllib3.exceptions.HTTPError):
        return _urllib3(inner)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Failure(None, CONNECTION_LOST, text)
    return None  # InvalidURL, MissingSchema...: our bug, not an HTTP failure


_TOO_MANY = re.compile(r"too many (\d{3}) error responses")


def _urllib3(exc: urllib3.exceptions.HTTPError) -> Failure:
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        reason = exc.reason
        if isinstance(reason, urllib3.exceptions.ResponseError):
            # urllib3 Retry exhausted on a status_forcelist code: the status is in the text.
            match = _TOO_MANY.search(str(reason))
            if match:
                return Failure(int(match.group(1)), None, "retries inside urllib3 exhausted")
        if reason is not None and isinstance(reason, urllib3.exceptions.HTTPError):
            return _urllib3(reason)
        return Failure(None, CONNECTION_LOST, "MaxRetryError")
    name = type(exc).__name__
    if isinstance(exc, urllib3.exceptions.SSLError):
        return Failure(None, TLS_FAILED, name)
    # NewConnectionError and NameResolutionError subclass ConnectTimeoutError.
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return Failure(None, CONNECT_FAILED, name)
    if isinstance(exc, urllib3.exceptions.ProxyError):
        return Failure(None, CONNECT_FAILED, name)
    if isinstance(exc, urllib3.exceptions.TimeoutError):  # ReadTimeoutError
        return Failure(None, TIMED_OUT, name)
    return Failure(None, CONNECTION_LOST, name)  # ProtocolError, IncompleteRead, ...


# --- helpers ----------------------------------------------------------------------------------


def _json(body: Any) -> Any:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def clip(value: Any) -> str:
    """``value`` as one line of at most 500 characters (error bodies can be whole pages)."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
