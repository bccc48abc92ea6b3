"""Turn each client library's exceptions into a :class:`~crm_bridge.http.retry.Failure`.

Why one function per client: the three libraries report the same events very differently.

* **simple-salesforce** (requests): HTTP errors are ``SalesforceError`` subclasses with
  ``.status`` and ``.content`` (the parsed ``[{"errorCode", "message"}]`` list, or text); the
  response headers are dropped.  Network trouble arrives as raw ``requests.exceptions.*``.
* **hubspot-api-client** (urllib3): every sub-package has its *own* ``ApiException`` class, so
  we duck-type on ``.status`` / ``.body`` / ``.headers`` instead of importing dozens of classes.
  Network trouble and urllib3's exhausted retries arrive as raw ``urllib3.exceptions.*``.
* **httpx** (our own calls): ``HTTPStatusError`` carries the response; ``TransportError``
  subclasses say precisely how far the request got.

The one distinction that matters most is whether a failed request **never reached the server**
(connection refused, DNS, connect timeout: safe to resend anything) or **may have been applied**
(read timeout, connection dropped mid-response: only idempotent calls may be resent).  Transport
failures get the pseudo codes ``CONNECT_FAILED``, ``TIMED_OUT`` and ``CONNECTION_LOST`` so the
retry table decides about them like about any status.

A describe function returns ``None`` for exceptions that are not HTTP failures; they then
propagate unchanged.  Messages are built from the vendor's error text, never from ``str(exc)``
of a client exception (which may embed whole response dumps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import requests
import urllib3.exceptions
from simple_salesforce.exceptions import SalesforceError

from crm_bridge.http.retry import (
    CONNECT_FAILED,
    CONNECTION_LOST,
    TIMED_OUT,
    TLS_FAILED,
    Describe,
    Failure,
)

__all__ = [
    "describe_any",
    "describe_httpx",
    "describe_hubspot",
    "describe_salesforce",
    "describe_transport",
    "first_of",
    "lower_headers",
    "parse_error_body",
]

_MAX_MESSAGE = 500


def lower_headers(headers: Any) -> dict[str, str]:
    """Response headers as a plain dict with lower-case keys (any mapping or pair list works)."""
    if headers is None:
        return {}
    items: Iterable[tuple[Any, Any]] = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}


def parse_error_body(body: Any) -> tuple[str | None, str]:
    """``(error_code, message)`` from any vendor error body we know.

    Shapes: Salesforce ``[{"errorCode", "message"}]`` (``statusCode`` in Collections results);
    HubSpot ``{"message", "category", "errors": [{"code"}], "policyName", "errorType"}``;
    OAuth ``{"error", "error_description"}``.  The most specific code wins: a HubSpot
    ``errors[0].code`` (e.g. ``INVALID_OPTION``) over ``policyName`` (``DAILY``) over the broad
    ``category``.
    """
    data = _json(body)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        code = first.get("errorCode") or first.get("statusCode")
        return _str_or_none(code), _clip(first.get("message"))
    if isinstance(data, dict):
        if "error" in data and isinstance(data["error"], str):
            return data["error"], _clip(data.get("error_description"))
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
        return _str_or_none(code), _clip(data.get("message"))
    if isinstance(data, str):
        return None, _clip(data)
    return None, ""


def describe_salesforce(exc: BaseException) -> Failure | None:
    """simple-salesforce's ``SalesforceError`` family, plus the requests errors under it."""
    status = getattr(exc, "status", None)
    if isinstance(exc, SalesforceError) and isinstance(status, int):
        code = getattr(exc, "code", None)  # SalesforceAuthenticationFailed: OAuth error code
        if code is not None:
            return Failure(status, str(code), _clip(getattr(exc, "auth_message", "")))
        content = getattr(exc, "content", None)
        error_code, message = parse_error_body(content)
        return Failure(status, error_code, message)
    return describe_transport(exc)


def describe_hubspot(exc: BaseException) -> Failure | None:
    """Any hubspot-api-client ``ApiException`` (duck-typed), plus raw urllib3 errors."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "body") and hasattr(exc, "reason"):
        if status == 0:  # rest.py turns urllib3 SSLError into ApiException(status=0)
            return Failure(None, TLS_FAILED, _clip(getattr(exc, "reason", "")))
        headers = lower_headers(getattr(exc, "headers", None))
        error_code, message = parse_error_body(getattr(exc, "body", None))
        return Failure(
            status,
            error_code,
            message or _clip(getattr(exc, "reason", "")),
            retry_after=_hubspot_window_hint(status, error_code, headers),
            headers=headers,
        )
    return describe_transport(exc)


def describe_httpx(exc: BaseException) -> Failure | None:
    """The httpx ``HTTPStatusError`` (any vendor body) and ``TransportError`` family."""
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        headers = lower_headers(response.headers)
        try:
            body: Any = response.text
        except httpx.ResponseNotRead:
            body = None
        error_code, message = parse_error_body(body)
        status = response.status_code
        return Failure(
            status,
            error_code,
            message or response.reason_phrase,
            retry_after=_hubspot_window_hint(status, error_code, headers),
            headers=headers,
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


describe_any: Describe = first_of(describe_httpx, describe_salesforce, describe_hubspot)
"""For code paths that may meet any of the three clients (e.g. the engine's outer loop)."""


# --- transport details ------------------------------------------------------------------------


def _httpx_transport(exc: httpx.TransportError) -> Failure:
    text = _clip(str(exc)) or type(exc).__name__
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
    text = _clip(type(exc).__name__)
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


def _hubspot_window_hint(
    status: int, error_code: str | None, headers: Mapping[str, str]
) -> float | None:
    """A wait hint for a HubSpot 429 without ``Retry-After``: the length of the rolling window.

    The burst window is rolling, so after one full interval every earlier call has aged out;
    waiting that long is the shortest wait that is sure to work.
    """
    if status != 429:
        return None
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds")
    if interval is not None:
        try:
            return max(0.0, float(interval) / 1000.0)
        except ValueError:
            pass
    return {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}.get(error_code or "")


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


def _clip(value: Any) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
