"""One TLS client context per process, shared by every HTTP client the bot builds.

Building a context loads the whole CA bundle: about 20 ms of CPU that holds the interpreter.
httpx builds one for every new client, even one that only ever speaks plain HTTP, and a
diagnose builds a client per run, so during a burst of diagnoses the event loop paid for a CA
bundle per run instead of answering Slack. A context is safe to share between connections and
threads; it is rebuilt only if ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` change.

Example::

    httpx.AsyncClient(verify=client_context(), timeout=10)
"""

from __future__ import annotations

import functools
import os
import ssl

import httpx


def client_context() -> ssl.SSLContext:
    """The process's TLS client context (httpx's defaults: certifi, or the env's CA files)."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    # The arguments are the cache key; httpx reads the same variables itself.
    return httpx.create_ssl_context()
