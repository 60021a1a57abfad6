"""TLS for ``mqtts://`` and ``amqps://``: one client SSL context, from URL options or environment.

Both transports take the same settings, so that one deployment's CA and client certificate
work for either broker:

- ``?ca=FILE`` or ``MSGFLO_TLS_CA``: the CA bundle that signs the broker's certificate (default:
  the system's trust store);
- ``?cert=FILE`` and ``?key=FILE``, or ``MSGFLO_TLS_CERT`` and ``MSGFLO_TLS_KEY``: a client
  certificate, for brokers that require one (``key`` may be left out when ``cert`` holds both).

A URL option wins over the environment.  The spellings the libraries underneath accept
(``ca_certs``/``cafile``, ``certfile``, ``keyfile``) are read too, so URLs written for them keep
working.  The broker's certificate is always verified, host name included.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from msgflo.transport.base import Address, TransportError

TLS_SCHEMES = frozenset({"mqtts", "amqps"})

_SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    # setting: (environment variable, URL options in order of preference)
    "ca": ("MSGFLO_TLS_CA", ("ca", "ca_certs", "cafile")),
    "cert": ("MSGFLO_TLS_CERT", ("cert", "certfile")),
    "key": ("MSGFLO_TLS_KEY", ("key", "keyfile")),
}

TLS_OPTIONS = frozenset(name for _, names in _SETTINGS.values() for name in names)
"""URL options this module consumes (a transport passing its URL on drops them)."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the CA bundle, client certificate and key are, as configured for one URL."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def of(cls, address: Address) -> TlsFiles:
        def setting(name: str) -> str | None:
            env, options = _SETTINGS[name]
            for option in options:
                if address.options.get(option):
                    return address.options[option]
            return os.environ.get(env) or None

        return cls(ca=setting("ca"), cert=setting("cert"), key=setting("key"))


def client_context(address: Address) -> ssl.SSLContext | None:
    """The SSL context for ``address``, or ``None`` for a scheme without TLS.

    A file that cannot be read or does not hold what it should is reported here, naming the
    setting, rather than as a handshake failure later.
    """
    if address.scheme not in TLS_SCHEMES:
        return None
    files = TlsFiles.of(address)
    where = address.redacted()
    try:
        context = ssl.create_default_context(cafile=files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(
            f"{where}: cannot use CA file {files.ca!r} (ca): {_reason(exc)}"
        ) from exc
    if files.key and not files.cert:
        raise TransportError(f"{where}: a client key (key) needs its certificate (cert)")
    if files.cert:
        try:
            context.load_cert_chain(files.cert, files.key)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"{where}: cannot use client certificate {files.cert!r} (cert/key): {_reason(exc)}"
            ) from exc
    return context


def verification_failure(exc: BaseException) -> str | None:
    """Why the broker's certificate was refused, if that is what ``exc`` (or its cause) says.

    Such a failure is permanent: trying again meets the same certificate, so callers give up
    at once instead of reconnecting with backoff.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate verification failed: {current.verify_message or current.reason}"
            )
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(a for a in current.args if isinstance(a, BaseException))
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
