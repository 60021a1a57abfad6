"""mqtts:// and amqps:// against TLS listeners started here, with a throwaway CA."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from msgflo.transport import Message, QueueKind, TransportError, get_client
from tests.brokers import require_broker
from tests.integration.processes import BIN
from tests.integration.tls_brokers import (
    Certs,
    MosquittoTls,
    make_certs,
    mosquitto_tls,
    rabbitmq_tls,
)

pytestmark = pytest.mark.broker
WAIT = 15.0
REFUSED_WITHIN = 10.0
"""A refused certificate must end the attempt long before the connect timeout (30 s)."""


@pytest.fixture(scope="module")
def certs() -> Iterator[Certs]:
    # Not under pytest's tmp_path: its parents are private to us, and RabbitMQ reads the
    # files as its own user.
    with tempfile.TemporaryDirectory(prefix="msgflo-tls-") as folder:
        yield make_certs(Path(folder))


@pytest.fixture(scope="module")
def mosquitto(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoTls]:
    with mosquitto_tls(certs, tmp_path_factory.mktemp("mosquitto")) as ports:
        yield ports


@pytest.fixture(scope="module")
def rabbit_port(certs: Certs) -> Iterator[int]:
    require_broker(5672, "RabbitMQ")
    with rabbitmq_tls(certs) as port:
        yield port


@pytest.fixture(params=["mqtts", "amqps"])
def tls_url(request: pytest.FixtureRequest, mosquitto: MosquittoTls, rabbit_port: int) -> str:
    """The broker's TLS address, no options: each test adds the ones it is about."""
    if request.param == "mqtts":
        return f"mqtts://127.0.0.1:{mosquitto.client_cert_port}"
    return f"amqps://guest:guest@127.0.0.1:{rabbit_port}/"


def with_options(url: str, **options: Path) -> str:
    return f"{url}?{urlencode({k: str(v) for k, v in options.items()})}"


async def round_trip(url: str, queue: str) -> object:
    client = get_client(url, connect_timeout=WAIT)
    await client.connect()
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def keep(message: Message) -> None:
        got.put_nowait(message)
        await client.ack_message(message)

    try:
        await client.create_queue(QueueKind.IN, queue, persistent=False)
        await client.subscribe_to_queue(queue, keep)
        await client.send_to(QueueKind.IN, queue, {"over": "tls"})
        return (await asyncio.wait_for(got.get(), WAIT)).data
    finally:
        await client.disconnect()


async def refusal(url: str) -> str:
    """The error of a connection attempt that must fail, and fail at once."""
    client = get_client(url, connect_timeout=30.0)
    with pytest.raises(TransportError) as caught:
        async with asyncio.timeout(REFUSED_WITHIN):
            await client.connect()
    return str(caught.value)


async def test_client_certificate_from_url_options(tls_url: str, certs: Certs, prefix: str) -> None:
    url = with_options(tls_url, ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    assert await round_trip(url, f"{prefix}.IN") == {"over": "tls"}


async def test_client_certificate_from_environment(
    tls_url: str, certs: Certs, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MSGFLO_TLS_CA", str(certs.ca))
    monkeypatch.setenv("MSGFLO_TLS_CERT", str(certs.client_cert))
    monkeypatch.setenv("MSGFLO_TLS_KEY", str(certs.client_key))
    assert await round_trip(tls_url, f"{prefix}.IN") == {"over": "tls"}


async def test_broker_certificate_from_another_ca_is_refused_at_once(
    tls_url: str, certs: Certs
) -> None:
    url = with_options(tls_url, ca=certs.other_ca, cert=certs.client_cert, key=certs.client_key)
    message = await refusal(url)
    assert "TLS certificate verification failed: " in message
    assert "\n" not in message


async def test_broker_certificate_for_another_host_is_refused_at_once(
    mosquitto: MosquittoTls, certs: Certs
) -> None:
    url = with_options(f"mqtts://127.0.0.1:{mosquitto.wrong_host_port}", ca=certs.ca)
    message = await refusal(url)
    assert "TLS certificate verification failed" in message
    assert "mismatch" in message.lower()
    assert "\n" not in message


async def test_command_exits_with_one_line_when_the_certificate_does_not_verify(
    tls_url: str, certs: Certs, prefix: str
) -> None:
    url = with_options(tls_url, ca=certs.other_ca, cert=certs.client_cert, key=certs.client_key)
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "msgflo-send-message"),
        "--broker",
        url,
        "--queue",
        f"{prefix}.IN",
        "--json",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), WAIT + REFUSED_WITHIN)
    assert proc.returncode == 1
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("msgflo-send-message: cannot connect to ")
    assert "TLS certificate verification failed" in lines[0]
