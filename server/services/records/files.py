"""Reading the tabular files employers and banks send: CSV (cp1251 or UTF-8, ``;`` or ``,``) and XLSX.

Everything comes out as text. A cell holding a formula (``=HYPERLINK(...)``) is read as the formula's
text, never evaluated, and whoever exports it later neutralises it (``export_cell``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from server.domain.errors import DomainError, InvalidInput

MAX_FILE_BYTES: Final = 20 * 1024 * 1024
"""A list of 100,000 persons is about 10 MiB as CSV; anything much larger is refused before reading."""
XLSX_MAGIC: Final = b"PK\x03\x04"
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER: Final = re.compile(r"[+-]?\d+(?:[.,]\d+)?")  # a phone in E.164 or an amount is not a formula


class FileTooLarge(DomainError):
    """The upload is over the size limit."""

    code = "file_too_large"
    status = 413


class UnsupportedFile(DomainError):
    """Neither CSV text nor an XLSX workbook."""

    code = "unsupported_file_type"
    status = 415


@dataclass(frozen=True, slots=True)
class Table:
    """A file's header and rows as text, with how it was read."""

    header: list[str]
    rows: list[tuple[int, list[str]]]
    kind: str
    encoding: str | None
    delimiter: str | None


def read_table(content: bytes, *, file_name: str = "", encoding: str | None = None) -> Table:
    """Read an upload as a table; the kind is decided by the content, not by the name.

    Args:
        content: The file's bytes.
        file_name: Only for messages.
        encoding: Force a text encoding (``cp1251``, ``utf-8``); default: detect.

    Raises:
        FileTooLarge: over ``MAX_FILE_BYTES``.
        InvalidInput: an empty file, or a header without rows.
        UnsupportedFile: not CSV text and not an XLSX workbook.
    """
    if len(content) > MAX_FILE_BYTES:
        raise FileTooLarge(
            f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
            details={"size_bytes": len(content), "max_bytes": MAX_FILE_BYTES},
        )
    if not content.strip():
        raise InvalidInput("the file is empty", code="empty_file")
    table = _read_xlsx(content) if content.startswith(XLSX_MAGIC) else _read_csv(content, encoding)
    if not any(cell.strip() for cell in table.header):
        raise InvalidInput("the file has no header row", code="empty_file")
    return table


def _decode(content: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise InvalidInput(f"unknown encoding {encoding!r}", code="unknown_encoding") from exc
        try:
            return content.decode(encoding), encoding
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"the file is not valid {encoding} (byte {exc.start})", code="wrong_encoding") from exc
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Russian offices' Excel saves "CSV" in Windows-1251; every byte decodes, so check for text.
        return content.decode("cp1251"), "cp1251"


def _read_csv(content: bytes, encoding: str | None) -> Table:
    if b"\x00" in content[:4096]:
        raise UnsupportedFile("the file is neither CSV text nor an XLSX workbook")
    try:
        text, used = _decode(content, encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput("the file is not valid UTF-8 text", code="wrong_encoding") from exc
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise InvalidInput(f"the CSV cannot be read: {exc}", code="malformed_csv") from exc
    return Table(header=header, rows=rows, kind="csv", encoding=used, delimiter=delimiter)


def _read_xlsx(content: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        # data_only=False: a formula cell gives its formula text; nothing is evaluated or followed.
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UnsupportedFile("the file is neither CSV text nor a readable XLSX workbook") from exc
    try:
        sheet = workbook.worksheets[0]
        values: Iterator[tuple[object, ...]] = sheet.iter_rows(values_only=True)
        header = [_cell_text(v) for v in next(values, ())]
        rows = [(line, [_cell_text(v) for v in row]) for line, row in enumerate(values, start=2)]
    finally:
        workbook.close()
    return Table(header=header, rows=rows, kind="xlsx", encoding=None, delimiter=None)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().strftime("%d.%m.%Y")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def export_cell(value: object) -> str:
    """A value for a CSV/XLSX export that a spreadsheet shows as text, never runs as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES) and _PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text
