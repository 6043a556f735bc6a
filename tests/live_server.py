"""A real uvicorn server in a background thread, for tests that need a network peer (a browser, schemathesis).

The socket is bound before the server starts, so the port is known and cannot be taken by someone else.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

STARTUP_TIMEOUT_S = 60


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run ``app`` (lifespan included) on a free loopback port until the block ends.

    Args:
        app: an ASGI application.

    Returns:
        A context manager yielding the base URL, e.g. ``http://127.0.0.1:41234``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Block until uvicorn has run the lifespan start-up and listens, or fail if its thread died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during start-up (see the captured log)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn not started after {STARTUP_TIMEOUT_S} s")
        time.sleep(0.05)
