"""Text clean-up shared by all sources, MedQuAD's markup repairs, and the normalized form used for dedup."""
from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\ufeff]")
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACE_BEFORE_QMARK = re.compile(r"\s+\?")
_REPEATED_QMARK = re.compile(r"\?\?+")
# MedQuAD flattened HTML lists into runs of spaces before "- item"; a lone " - " is ordinary prose.
_FLAT_BULLET = re.compile(r"\n?  +- +")
_FLAT_BREAK = re.compile(r"   +")
_LEADING_SUMMARY = re.compile(r"^Summary\s*:\s*")
_LEADING_QUESTION = re.compile(r"^([^.?!\n]{3,200}\?)\s+")
_NON_WORD = re.compile(r"[\W_]+")


def clean(text: object) -> str:
    """Whitespace and control-character clean-up that never changes the words.

    Written with str methods and guarded regexes: it runs over every answer (21 MB for MedQuAD).
    """
    if text is None:
        return ""
    text = str(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def clean_question(text: object) -> str:
    """Also fixes the `Disease ?` and `? ?` artefacts of generated questions."""
    text = clean(text)
    if " ?" in text or "\n?" in text:
        text = _SPACE_BEFORE_QMARK.sub("?", text)
    if "??" in text:
        text = _REPEATED_QMARK.sub("?", text)
    return text


def clean_medquad_answer(text: str | None, focus: str) -> str:
    """Repairs what MedQuAD's HTML-to-text conversion left behind.

    Lists were flattened into `    - item    - item`, line breaks into runs of spaces, and paragraphs
    are separated by lines of indentation;
    MedlinePlus answers open with `Summary :`; GARD answers repeat their page heading as a question
    (`What are the signs and symptoms of X?`), which would teach the model to echo the question.
    """
    if not text:
        return ""
    text = text.replace("\t", " ")
    if "  -" in text:
        text = _FLAT_BULLET.sub("\n- ", text)
    if "   " in text:  # three or more spaces were a line break (the end of a list, a new paragraph)
        text = _FLAT_BREAK.sub("\n", text)
    text = clean(text)
    if text.startswith("Summary"):
        text = _LEADING_SUMMARY.sub("", text)
    heading = _LEADING_QUESTION.match(text)
    if heading and focus and focus.lower() in heading.group(1).lower():
        text = text[heading.end():]
    return text


def normalize(text: str | None) -> str:
    """Case-, accent-width- and punctuation-insensitive form: two texts equal here are the same question."""
    if not text:
        return ""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())

