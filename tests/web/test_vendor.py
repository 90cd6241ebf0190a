"""The vendored browser libraries are the npm packages' files, unmodified (web/vendor/SHA256SUMS)."""

from __future__ import annotations

import hashlib
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "web" / "vendor"


def test_every_vendored_file_matches_its_checksum_and_nothing_is_unlisted() -> None:
    listed: dict[str, str] = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.strip()] = digest
    on_disk = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file() and p.parent != VENDOR}
    assert on_disk == set(listed), "every file under web/vendor/<package>/ must be in SHA256SUMS"
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} was modified"


def test_each_package_ships_its_licence() -> None:
    for package in ("preact-11.2.0", "htm-3.1.1"):
        assert (VENDOR / package / "LICENSE").read_text().strip(), package
