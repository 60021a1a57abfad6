"""Where the TLS files come from, and the errors for files that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from msgflo.transport import Address, TransportError
from msgflo.transport.tls import TlsFiles, client_context


@pytest.fixture(autouse=True)
def no_tls_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MSGFLO_TLS_CA", "MSGFLO_TLS_CERT", "MSGFLO_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_url_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGFLO_TLS_CA", "/env/ca.pem")
    monkeypatch.setenv("MSGFLO_TLS_CERT", "/env/cert.pem")
    monkeypatch.setenv("MSGFLO_TLS_KEY", "/env/key.pem")
    files = TlsFiles.of(Address.parse("amqps://h/?ca=/url/ca.pem&key=/url/key.pem"))
    assert files == TlsFiles(ca="/url/ca.pem", cert="/env/cert.pem", key="/url/key.pem")


def test_the_libraries_spellings_are_read() -> None:
    files = TlsFiles.of(Address.parse("mqtts://h?ca_certs=/a&certfile=/b&keyfile=/c"))
    assert files == TlsFiles(ca="/a", cert="/b", key="/c")


def test_plain_schemes_get_no_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGFLO_TLS_CA", "/does/not/exist.pem")
    assert client_context(Address.parse("mqtt://h")) is None
    assert client_context(Address.parse("amqp://h")) is None


def test_system_trust_store_by_default() -> None:
    context = client_context(Address.parse("amqps://h"))
    assert context is not None
    assert context.check_hostname


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(TransportError, match=r"cannot use CA file '.*nope\.pem' \(ca\)"):
        client_context(Address.parse(f"mqtts://h?ca={missing}"))


def test_a_file_that_is_no_certificate_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TransportError, match=r"client certificate '.*junk\.pem' \(cert/key\)"):
        client_context(Address.parse(f"amqps://h/?cert={junk}"))


def test_a_key_needs_its_certificate(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(key))
    with pytest.raises(TransportError, match=r"client key \(key\) needs its certificate"):
        client_context(Address.parse(f"mqtts://h?key={key}"))


def test_certificate_and_key_load(tmp_path: Path) -> None:
    ca = trustme.CA()
    client = ca.issue_cert("client")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    url = f"amqps://h/?ca={tmp_path}/ca.pem&cert={tmp_path}/cert.pem&key={tmp_path}/key.pem"
    assert client_context(Address.parse(url)) is not None
