"""Small text rules shared by several stages (pure)."""

from __future__ import annotations

import re
import unicodedata

# Horizontal white space, as mail clients write it (no-break spaces included).
SPACE = "[ \t\u00a0\u202f]"

# Reply and forward prefixes of the mail clients in use here (French, English, German,
# Spanish, Nordic, Dutch), possibly numbered ("RE[2]:") and repeated.
SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|tr|r[ée]f|ref|fw|fwd|aw|wg|rv|sv|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.I
)


def fold(text: str) -> str:
    """Lower-case, accents removed, typographic apostrophes made plain: for comparisons."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain.casefold().replace("\u2019", "'")


def strip_reply_prefix(subject: str) -> str:
    """The subject without its "RE :", "TR:", "Fwd:"... prefixes."""
    return SUBJECT_PREFIX.sub("", subject)


def fold_spaces(text: str) -> str:
    """`fold`, with runs of white space made one space."""
    return " ".join(fold(text).split())
