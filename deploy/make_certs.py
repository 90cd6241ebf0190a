"""Make a private CA and one server certificate for the stack's internal TLS (PostgreSQL, Redis).

    python deploy/make_certs.py OUT_DIR [--name postgres --name redis --ip 127.0.0.1] [--owner 999:999]

Writes ``ca.pem`` (give it to the apps: TELEMED_DATABASE_SSLROOTCERT, TELEMED_REDIS_CA_FILE),
``server.pem`` and ``server.key`` (mode 0600, for PostgreSQL and Redis). Existing files are kept,
so the compose job that runs this on every start does not rotate anything. The public
certificate of the TLS front should come from a real CA; the deploy tests use this script for it
too. Uses ``cryptography`` (already a dependency through aiortc).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def make_certs(out: Path, names: list[str], ips: list[str]) -> None:
    """Create ``ca.pem``/``ca.key`` and ``server.pem``/``server.key`` under ``out`` unless present."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "server.pem").exists() and (out / "ca.pem").exists():
        return
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "telemed internal CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(out / "ca.key", ca_key)
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(out / "server.key", key)
    (out / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )


def main() -> None:
    """Command line: output folder, DNS names, IP addresses, optional owner of the server key."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", action="append", default=[], help="DNS name in the certificate")
    parser.add_argument("--ip", action="append", default=[], help="IP address in the certificate")
    parser.add_argument("--owner", help="uid:gid to own server.key (PostgreSQL and Redis run as 999:999)")
    args = parser.parse_args()
    if not args.name and not args.ip:
        parser.error("give at least one --name or --ip")
    make_certs(args.out, args.name, args.ip)
    if args.owner:
        uid, gid = (int(part) for part in args.owner.split(":"))
        os.chown(args.out / "server.key", uid, gid)
    print(f"certificates in {args.out}")


if __name__ == "__main__":
    main()
