"""Normalising product titles so that the same game matches across catalogs."""

from __future__ import annotations

import html
import re
import unicodedata

# Amazon titles end with the platform; Steam names never do.
PLATFORM_SUFFIXES = {
    "pc": "PC",
    "mac": "Mac",
    "pc/mac": "PC",
    "pc download": "PC",
    "pc cd": "PC",
    "pc dvd": "PC",
    "online game code": "PC",
    "xbox": "Xbox",
    "xbox 360": "Xbox 360",
    "xbox one": "Xbox One",
    "playstation": "PlayStation",
    "playstation 2": "PlayStation 2",
    "playstation 3": "PlayStation 3",
    "playstation 4": "PlayStation 4",
    "playstation vita": "PlayStation Vita",
    "ps2": "PlayStation 2",
    "ps3": "PlayStation 3",
    "ps4": "PlayStation 4",
    "psp": "PSP",
    "sony psp": "PSP",
    "nintendo ds": "Nintendo DS",
    "nintendo 3ds": "Nintendo 3DS",
    "ds": "Nintendo DS",
    "3ds": "Nintendo 3DS",
    "nintendo wii": "Wii",
    "wii": "Wii",
    "wii u": "Wii U",
    "nintendo wii u": "Wii U",
    "nintendo switch": "Nintendo Switch",
    "switch": "Nintendo Switch",
    "game boy advance": "Game Boy Advance",
    "gameboy advance": "Game Boy Advance",
    "nintendo gamecube": "GameCube",
    "gamecube": "GameCube",
    "nintendo 64": "Nintendo 64",
    "sega dreamcast": "Dreamcast",
    "dreamcast": "Dreamcast",
}
EDITION_WORDS = (
    "game of the year",
    "goty",
    "collector's",
    "collectors",
    "limited",
    "deluxe",
    "special",
    "complete",
    "definitive",
    "gold",
    "ultimate",
    "premium",
    "standard",
    "digital",
    "remastered",
    "legendary",
    "platinum hits",
    "greatest hits",
)
_SUFFIX = re.compile(
    r"\s*(?:-|–|\(|\[)\s*("
    + "|".join(re.escape(s) for s in sorted(PLATFORM_SUFFIXES, key=len, reverse=True))
    + r")\s*[\)\]]?\s*$",
    re.IGNORECASE,
)
_EDITION = re.compile(
    r"\b(?:" + "|".join(re.escape(w) for w in EDITION_WORDS) + r")\b(?:\s+edition)?|\bedition\b",
    re.IGNORECASE,
)
_NON_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


def platform_from_title(title: str) -> str | None:
    """The platform named at the end of an Amazon title ("Halo 3 - Xbox 360" -> "Xbox 360")."""
    match = _SUFFIX.search(html.unescape(title or ""))
    return PLATFORM_SUFFIXES[match.group(1).lower()] if match else None


def strip_platform(title: str) -> str:
    """The title without a trailing platform suffix, repeated suffixes included."""
    text = html.unescape(title or "").strip()
    while (match := _SUFFIX.search(text)) and match.start() > 0:
        text = text[: match.start()].rstrip()
    return text


def normalize_title(title: str, drop_editions: bool = True) -> str:
    """Lower-case words only: entities, accents, platform suffixes, edition words (unless
    ``drop_editions`` is false) and punctuation removed, so that "Half-Life 2: Game of the
    Year Edition - PC" and "Half-Life 2" compare equal."""
    text = strip_platform(title)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.replace("&", " and ").replace("'", "").replace("’", "")
    if drop_editions:
        text = _EDITION.sub(" ", text)
    text = _NON_WORD.sub(" ", text.lower())
    return _SPACES.sub(" ", text).strip()
