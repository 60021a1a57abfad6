"""TLS listeners the TLS tests start themselves, with certificates from a throwaway CA.

Mosquitto runs as a private process on free ports; RabbitMQ gets an extra TLS listener on the
running node (``rabbitmqctl eval``), removed again afterwards.  A second node would take tens of
seconds to boot; a listener takes well under one.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.integration.amqp_helpers import rabbitmqctl

START_WAIT = 10.0


@dataclass(frozen=True)
class Certs:
    """PEM files: the CA that signs everything below, a second unrelated CA, the broker's
    certificate for 127.0.0.1, one for a host name we never connect to, and a client's."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    wrong_host_cert: Path
    wrong_host_key: Path
    client_cert: Path
    client_key: Path


def make_certs(folder: Path) -> Certs:
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    wrong_host = ca.issue_cert("broker.invalid")
    client = ca.issue_cert("msgflo-test-client")
    files = {
        "ca": ca.cert_pem,
        "other_ca": other.cert_pem,
        "server_cert": server.cert_chain_pems[0],
        "server_key": server.private_key_pem,
        "wrong_host_cert": wrong_host.cert_chain_pems[0],
        "wrong_host_key": wrong_host.private_key_pem,
        "client_cert": client.cert_chain_pems[0],
        "client_key": client.private_key_pem,
    }
    folder.chmod(0o755)  # the brokers read them under their own users
    paths = {}
    for name, blob in files.items():
        path = folder / f"{name}.pem"
        blob.write_to_path(str(path))
        path.chmod(0o644)
        paths[name] = path
    return Certs(**paths)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class MosquittoTls:
    client_cert_port: int
    """TLS with the good server certificate; a client certificate is required."""
    wrong_host_port: int
    """TLS with a certificate for another host name (signed by the right CA)."""


@contextlib.contextmanager
def mosquitto_tls(certs: Certs, folder: Path) -> Iterator[MosquittoTls]:
    ports = MosquittoTls(free_port(), free_port())
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "user root\n"
        "allow_anonymous true\n"
        f"listener {ports.client_cert_port} 127.0.0.1\n"
        f"cafile {certs.ca}\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
        "require_certificate true\n"
        f"listener {ports.wrong_host_port} 127.0.0.1\n"
        f"certfile {certs.wrong_host_cert}\nkeyfile {certs.wrong_host_key}\n"
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + START_WAIT
        while not (_listening(ports.client_cert_port) and _listening(ports.wrong_host_port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mosquitto did not start: {proc.communicate()[1].decode()}")
            time.sleep(0.05)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _erlang_string(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def rabbitmq_tls(certs: Certs) -> Iterator[int]:
    """An AMQPS listener on the running RabbitMQ node that requires a client certificate."""
    port = free_port()
    options = (
        f"[{{cacertfile,{_erlang_string(certs.ca)}}},"
        f"{{certfile,{_erlang_string(certs.server_cert)}}},"
        f"{{keyfile,{_erlang_string(certs.server_key)}}},"
        "{verify,verify_peer},{fail_if_no_peer_cert,true}]"
    )
    answer = rabbitmqctl(
        "eval",
        "rabbit_networking:ensure_ssl(), "
        f'rabbit_networking:start_ssl_listener({{"127.0.0.1", {port}}}, {options}, 1).',
    )
    if answer.strip() != "ok":
        raise RuntimeError(f"RabbitMQ did not start a TLS listener on {port}: {answer}")
    try:
        yield port
    finally:
        rabbitmqctl("eval", f'rabbit_networking:stop_tcp_listener({{"127.0.0.1", {port}}}).')
