"""Callbacks: when a task ends, its ``callback_url`` gets the Agent Scheduler's multipart POST (form fields
``task_id`` and ``status``, one ``files`` part per image), from a background thread, never from the worker.

A callback URL makes the server send a request wherever a client says: a server-side request forgery risk. So:

* only ``http`` and ``https`` URLs with a host, at most :data:`MAX_URL_LENGTH` characters, are accepted (422
  otherwise, when the task is queued);
* redirects are not followed (a redirect is a classic way to bounce such a request somewhere else) and no proxy
  from the environment is used;
* every attempt is bounded in time (:attr:`CallbackPolicy.attempt_deadline_s`, even against a receiver that
  answers one byte at a time), and so is the number of attempts;
* nothing the receiver answers is shown to clients but its HTTP status; network errors are reported only as
  "unreachable" (the log has the details), so a callback is no port scanner.

Retries: a receiver that cannot be reached, or answers 429 or 5xx, is tried again with exponential backoff; any
other answer ends the delivery (2xx: delivered; 3xx/4xx: failed). A failing callback never fails its task.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import logging
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger("sdapi")

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class CallbackPolicy:
    """How hard a callback is tried.

    Args:
        max_attempts: attempts in all (the first one included).
        first_delay_s: wait before the second attempt; each later wait doubles, up to ``max_delay_s``.
        max_delay_s: the longest wait between attempts.
        timeout_s: socket timeout of one attempt (connecting, sending, waiting for the answer).
        attempt_deadline_s: the longest one attempt may take in all; the connection is cut then.
    """

    max_attempts: int = 5
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    timeout_s: float = 10.0
    attempt_deadline_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.first_delay_s * 2 ** (attempt - 1), self.max_delay_s)


@dataclass
class Delivery:
    """One callback to send.

    Args:
        url: the task's ``callback_url``.
        fields: form fields (``task_id``, ``status``).
        files: ``(file name, content type, bytes)`` per image, sent as ``files`` parts.
    """

    url: str
    fields: dict[str, str]
    files: list[tuple[str, str, bytes]] = field(default_factory=list)


class Unreachable(Exception):
    """The receiver could not be reached or did not answer in time."""


def check_callback_url(url: str) -> str:
    """A callback URL the server will call, as given.

    Raises:
        ValueError: why it is refused (scheme, host, length, characters).
    """
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("callback_url must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError("callback_url must be an http:// or https:// URL")
    try:
        parts.port
    except ValueError:
        raise ValueError("callback_url has an invalid port") from None
    if not parts.hostname:
        raise ValueError("callback_url has no host")
    return url


def redact_url(url: str | None) -> str | None:
    """``url`` with a password in it replaced by ``***`` (task views show the callback URL)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


def encode_multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (what ``requests.post(data=fields, files=[("files", ...)])`` sends).

    Returns:
        ``(body, content type header)``.
    """
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        chunks.append(value.encode() + b"\r\n")
    for file_name, content_type, data in files:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                      f'filename="{quote(file_name)}"\r\nContent-Type: {content_type}\r\n\r\n'.encode())
        chunks.append(data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str, policy: CallbackPolicy) -> int:
    """POST ``body`` to ``url`` once; no redirect followed, no proxy, bounded in time.

    Returns:
        The HTTP status of the answer.

    Raises:
        Unreachable: no answer (connection refused, DNS failure, timeout, TLS failure, deadline).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=policy.timeout_s, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=policy.timeout_s)
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "User-Agent": "sdapi-agent-scheduler"}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Socket timeouts bound each read and write, not the whole exchange: cut the connection at the deadline.
    watchdog = threading.Timer(policy.attempt_deadline_s, _cut, args=(connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target, body=body, headers=headers)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(str(exc)) from exc
    finally:
        watchdog.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read; close() alone would not
        except OSError:
            pass


Load = Callable[[str], "Delivery | None"]
Record = Callable[[str, dict], None]


class CallbackSender:
    """Delivers callbacks on one daemon thread, retrying with backoff.

    Args:
        load: ``task_id -> Delivery`` at sending time (``None``: the task is gone, nothing to send).
        record: ``(task_id, outcome)`` after each attempt; ``outcome["status"]`` is ``pending`` (will retry),
            ``delivered`` or ``failed``, with ``attempts`` and ``http_status`` or ``error``.
        policy: attempts, waits and time limits.
        send: the transport (tests replace it).
    """

    def __init__(self, load: Load, record: Record, policy: CallbackPolicy | None = None,
                 send: Callable[[str, bytes, str, CallbackPolicy], int] = post):
        self._load, self._record, self._send = load, record, send
        self.policy = policy or CallbackPolicy()
        self._due: list[tuple[float, int, str, int]] = []  # (when, order, task id, attempt)
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def send(self, task_id: str) -> None:
        """Schedule the first attempt for ``task_id`` now (returns at once)."""
        self._schedule(task_id, 1, 0.0)

    def stop(self) -> None:
        """Stop sending; deliveries not done stay ``pending`` on their task (resumed by the next process)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _schedule(self, task_id: str, attempt: int, delay: float) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), task_id, attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sdapi-callbacks", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _next(self) -> tuple[str, int] | None:
        with self._cond:
            while not self._stopped:
                if self._due and self._due[0][0] <= time.monotonic():
                    _, _, task_id, attempt = heapq.heappop(self._due)
                    return task_id, attempt
                self._cond.wait(None if not self._due else max(self._due[0][0] - time.monotonic(), 0.0))
            return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._attempt(*item)
            except Exception:  # noqa: BLE001 - one bad delivery must not stop the others
                log.exception("Callback for task %s failed unexpectedly", item[0])

    def _attempt(self, task_id: str, attempt: int) -> None:
        delivery = self._load(task_id)
        if delivery is None:
            return
        body, content_type = encode_multipart(delivery.fields, delivery.files)
        try:
            status = self._send(delivery.url, body, content_type, self.policy)
        except Unreachable as exc:
            log.warning("Callback for task %s: attempt %d: receiver unreachable (%s)", task_id, attempt, exc)
            outcome = {"attempts": attempt, "error": "unreachable"}
            retry = True
        else:
            outcome = {"attempts": attempt, "http_status": status}
            retry = status == 429 or status >= 500
            if 200 <= status < 300:
                self._record(task_id, {"status": "delivered", **outcome})
                return
            log.warning("Callback for task %s: attempt %d: HTTP %d", task_id, attempt, status)
        if retry and attempt < self.policy.max_attempts:
            self._record(task_id, {"status": "pending", **outcome})
            self._schedule(task_id, attempt + 1, self.policy.delay(attempt))
        else:
            self._record(task_id, {"status": "failed", **outcome})
