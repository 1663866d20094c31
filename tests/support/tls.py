"""Test certificates and a TLS server for the tests of ``tls:`` clients (the proxy's target
leg, ``playground.common.tlsnames``): a throw-away CA made with ``cryptography`` and an echo
server thread using Python's ``ssl``, on 127.0.0.1. Every wait has a deadline."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class CA:
    """A throw-away certificate authority that issues server certificates into ``directory``."""

    def __init__(self, directory: Path, name: str = "tcpplay test CA"):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / f"{name.replace(' ', '-')}.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, label: str, dns: list[str], ips: list[str] = (), with_san: bool = True,
              directory: Path | None = None, expired: bool = False) -> tuple[Path, Path]:
        """A server certificate for ``dns``/``ips`` (without ``with_san``: its first name in
        the subject's common name alone, as before RFC 6125; ``expired``: valid until
        yesterday), written into ``directory`` (the CA's own unless given: a ``trustRoots=``
        directory must hold CAs only); returns (cert.pem, key.pem)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        san = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2 if expired else 0, minutes=5))
            .not_valid_after(now + datetime.timedelta(days=-1 if expired else 1))
        )
        if with_san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = (
            builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        directory = directory or self.dir
        cert_path = directory / f"{label}.pem"
        key_path = directory / f"{label}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


class TlsEchoServer:
    """Echoes each TLS connection's bytes back until the client's EOF, then closes cleanly."""

    def __init__(self, cert: Path, key: Path):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.errors: list[str] = []
        self.handshakes = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket):
        conn.settimeout(10)
        got = b""
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.handshakes += 1
                while chunk := tls.recv(65536):
                    got += chunk
                    tls.sendall(chunk)
                tls.unwrap()  # our own close_notify: a clean TLS close, not a truncation
        except (OSError, ssl.SSLError) as e:
            self.errors.append(repr(e))
        finally:
            self.received.append(got)
            conn.close()

    def close(self):
        self._stop.set()
        self.sock.close()
        self._accepter.join(5)
        for t in self._threads:
            t.join(5)


def client_pki(root: Path) -> dict:
    """For a ``tls:`` client to 127.0.0.1: a CA alone in ``root/ca`` (``"ca"``; that directory is
    the client's ``trustRoots=``) and, in ``root/servers``, the certificate and key of a server
    it signed naming 127.0.0.1 (``"named"``) and of one with ``CN=127.0.0.1`` and no
    subjectAltName (``"no-san"``)."""
    (root / "ca").mkdir()
    (root / "servers").mkdir()
    ca = CA(root / "ca")
    return {
        "ca": ca,
        "named": ca.issue("named", ["localhost"], ["127.0.0.1"], directory=root / "servers"),
        "no-san": ca.issue("no-san", ["127.0.0.1"], with_san=False, directory=root / "servers"),
    }
