"""A thin synchronous HTTP client for the lakeflux / InfluxDB 3 API, on the standard library only.

Every failure becomes a `ClientError` whose message is ready for the terminal: the server's JSON
`{"error": ...}` text (plus line errors from `data`), or a sentence naming the host it could not reach.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ParamValue = str | int | float | bool | None


class ClientError(Exception):
    """A request failed; `status` is the HTTP status (None when no response arrived)."""

    def __init__(self, message: str, *, status: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.data = data


@dataclass(frozen=True)
class TokenChoice:
    """A token to send and where it came from (`--token`, an env var name, a token file's path)."""

    token: str
    source: str


@dataclass
class Credentials:
    """Tokens to try in order (a 401 moves on to the next) and every place looked, for the 401 hint."""

    choices: list[TokenChoice] = field(default_factory=list)
    looked: list[str] = field(default_factory=list)

    def hint(self, tried: list[TokenChoice]) -> str:
        """What to tell the user after a 401: which tokens were sent, or where none was found."""
        if tried:
            sent = "; ".join(f"the token from {c.source}" for c in tried)
            return f"sent {sent}: pass the right one with --token or LAKEFLUX_AUTH_TOKEN"
        where = ", ".join(self.looked) if self.looked else "--token, LAKEFLUX_AUTH_TOKEN"
        return f"no token found (looked at {where}): pass one with --token or LAKEFLUX_AUTH_TOKEN"


@dataclass(frozen=True)
class Response:
    """A successful (2xx) response; header names are lower-case."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def encode_params(params: Mapping[str, ParamValue] | None) -> str:
    """URL-encode query parameters: None dropped, booleans as `true`/`false`."""
    if not params:
        return ""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        pairs.append((key, ("true" if value else "false") if isinstance(value, bool) else str(value)))
    return urllib.parse.urlencode(pairs)


def ssl_context(tls_ca: str | None, tls_no_verify: bool) -> ssl.SSLContext:
    """TLS settings for https hosts: a custom CA bundle, or no verification at all (testing only)."""
    context = ssl.create_default_context(cafile=tls_ca)
    if tls_no_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Client:
    """Sends requests to one server; safe to share between threads (each call opens its own connection)."""

    def __init__(
        self,
        host: str,
        token: str | None = None,
        *,
        credentials: Credentials | None = None,
        tls_ca: str | None = None,
        tls_no_verify: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.host = host.rstrip("/")
        if credentials is None:
            credentials = Credentials([TokenChoice(token, "--token")] if token else [])
        self.credentials = credentials
        self._choice = 0
        self._lock = threading.Lock()
        self.timeout = timeout
        context = ssl_context(tls_ca, tls_no_verify) if self.host.startswith("https:") else None
        handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context)]
        if is_loopback(self.host):
            # A proxy from the environment must not swallow requests meant for the local server.
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def url(self, path: str, params: Mapping[str, ParamValue] | None = None) -> str:
        query = encode_params(params)
        return f"{self.host}{path}" + (f"?{query}" if query else "")

    @property
    def token(self) -> str | None:
        """The token being sent (None: none found)."""
        choices = self.credentials.choices
        return choices[self._choice].token if self._choice < len(choices) else None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and return the 2xx response; raise `ClientError` for anything else.

        A 401 changes nothing on the server, so the request is sent again with the next token candidate
        (a local token file of another server may come first); the last 401 says where the CLI looked.
        """
        choices = self.credentials.choices
        while True:
            current = self._choice  # several threads may share the client (write sends chunks in parallel)
            token = choices[current].token if current < len(choices) else None
            try:
                return self._send(method, path, params, json_body, data, headers, token)
            except ClientError as exc:
                if exc.status != 401:
                    raise
                if current + 1 < len(choices):
                    with self._lock:
                        if self._choice == current:
                            self._choice = current + 1
                    continue
                hint = self.credentials.hint(choices[: current + 1])
                raise ClientError(f"{exc.message}; {hint}", status=401, data=exc.data) from None

    def _send(self, method: str, path: str, params: Mapping[str, ParamValue] | None, json_body: Any,
              data: bytes | None, headers: Mapping[str, str] | None, token: str | None) -> Response:
        all_headers = {"User-Agent": "lakeflux-cli"}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        request = urllib.request.Request(self.url(path, params), data=data, headers=all_headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return Response(reply.status, reply.read(), _lower_headers(reply.headers.items()))
        except urllib.error.HTTPError as exc:
            body = exc.read()
            raise error_from_response(exc.code, exc.reason, body) from None
        except urllib.error.URLError as exc:
            raise ClientError(connection_message(self.host, exc.reason)) from None
        except (ConnectionError, TimeoutError) as exc:
            raise ClientError(connection_message(self.host, exc)) from None


def is_loopback(host_url: str) -> bool:
    """True when the URL names this machine (localhost, 127.x, ::1)."""
    hostname = urllib.parse.urlsplit(host_url).hostname or ""
    return hostname == "localhost" or hostname.startswith("127.") or hostname == "::1"


def _lower_headers(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def connection_message(host: str, reason: object) -> str:
    """Explain a failed connection, naming the host (the usual cause is a server that is not running)."""
    if isinstance(reason, ConnectionRefusedError):
        return f"could not connect to {host}: connection refused (is the server running? set --host or LAKEFLUX_HOST_URL)"
    if isinstance(reason, socket.gaierror):
        return f"could not connect to {host}: unknown host"
    if isinstance(reason, ssl.SSLError):
        return f"could not connect to {host}: TLS error: {reason} (see --tls-ca / --tls-no-verify)"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"could not connect to {host}: timed out"
    return f"could not connect to {host}: {reason}"


def error_from_response(status: int, reason: str, body: bytes) -> ClientError:
    """Build a readable error from a non-2xx reply: JSON `error`/`message` text, line errors, or raw text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text) if text else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        message = payload.get("error") or payload.get("message") or text
        data = payload.get("data")
        return ClientError(f"{message} (HTTP {status})", status=status, data=data)
    return ClientError(f"{text or reason} (HTTP {status})", status=status)


def describe_line_errors(data: Any, line_offset: int = 0) -> list[str]:
    """Render the `data` of a write error (one line error or a list) as `line N: message: original line`.

    `line_offset` shifts the server's 1-based line numbers when the input was split into several requests.
    """
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    rendered = []
    for item in items:
        if not isinstance(item, dict):
            continue
        number = item.get("line_number")
        where = f"line {number + line_offset}" if isinstance(number, int) else "line ?"
        rendered.append(f"{where}: {item.get('error_message', '')}: {item.get('original_line', '')}")
    return rendered
