"""Languages of the monitor: one message catalogue (``web/templates/messages.toml``) with English and Simplified
Chinese side by side, the locale chosen from a cookie or Accept-Language, and dates, numbers and durations formatted
with babel.

Times are shown in UTC (marked as such): the server does not know the viewer's time zone, and one zone for everyone
keeps a studio's screenshots and chat messages comparable.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.numbers import format_decimal, format_percent

#: Locale codes the monitor speaks, in the order of the language switch.
LOCALES: tuple[str, ...] = ("en", "zh")
DEFAULT_LOCALE = "en"
#: Cookie that remembers the viewer's choice from the language switch.
LANG_COOKIE = "farm_lang"
#: Babel locale and the HTML ``lang`` attribute of each code.
BABEL_LOCALE = {"en": "en_US", "zh": "zh_Hans_CN"}
HTML_LANG = {"en": "en", "zh": "zh-Hans"}
LANGUAGE_NAME = {"en": "English", "zh": "简体中文"}

# Beside the templates that use it (and packaged with them by the "templates/*" package-data rule).
CATALOGUE_PATH = Path(__file__).with_name("templates") / "messages.toml"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """Message id → {locale: text}. Loaded once; a missing translation is a test failure, not a runtime one."""
    with CATALOGUE_PATH.open("rb") as handle:
        raw = tomllib.load(handle)
    return {str(key): {str(k): str(v) for k, v in value.items()} for key, value in raw.items()}


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an Accept-Language header, best first (``q=0`` entries dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag.lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The locale: the viewer's explicit choice, else the best Accept-Language match, else English.

    Any Chinese tag (``zh``, ``zh-CN``, ``zh-TW``…) picks Simplified Chinese, the only Chinese catalogue we have.
    """
    if cookie in LOCALES:
        return str(cookie)
    for tag in parse_accept_language(accept_language):
        primary = tag.split("-")[0]
        if primary in LOCALES:
            return primary
        if tag == "*":
            return DEFAULT_LOCALE
    return DEFAULT_LOCALE


@dataclass(frozen=True)
class Translator:
    """Messages and formatting for one locale; handed to templates as ``t``."""

    code: str

    @property
    def babel(self) -> Locale:
        return _babel_locale(self.code)

    @property
    def html_lang(self) -> str:
        return HTML_LANG[self.code]

    def __call__(self, key: str, **values: object) -> str:
        """The message ``key`` in this locale with ``{name}`` placeholders filled; the key itself if unknown."""
        entry = catalogue().get(key)
        text = key if entry is None else entry.get(self.code) or entry.get(DEFAULT_LOCALE, key)
        return text.format(**values) if values else text

    def number(self, value: float | int, digits: int = 0) -> str:
        """A number with the locale's grouping and decimal signs."""
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.babel)

    def percent(self, fraction: float) -> str:
        """``0.42`` → ``42%``."""
        return format_percent(fraction, locale=self.babel)

    def datetime(self, value: datetime | None) -> str:
        """A date and time in UTC, medium length, in the locale's order and words."""
        if value is None:
            return "—"
        return format_datetime(value, format="medium", tzinfo=UTC, locale=self.babel) + " UTC"

    def duration(self, seconds: float | None) -> str:
        """A short duration such as ``3 min`` or ``3分钟``; ``—`` when unknown."""
        if seconds is None:
            return "—"
        if seconds < 1:
            return format_timedelta(timedelta(seconds=0), format="narrow", locale=self.babel)
        # Two units where it matters: "1 h 25 min" reads better than "1 h" for a long render.
        whole = int(seconds)
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        parts: list[str] = []
        if hours:
            parts.append(format_timedelta(timedelta(hours=hours), format="narrow", threshold=1, locale=self.babel))
        if minutes and len(parts) < 2:
            parts.append(
                format_timedelta(timedelta(minutes=minutes), format="narrow", threshold=1, locale=self.babel)
            )
        if not hours and (secs or not parts):
            parts.append(format_timedelta(timedelta(seconds=secs), format="narrow", threshold=1, locale=self.babel))
        return ("" if self.code == "zh" else " ").join(parts)

    def size(self, num_bytes: int | float) -> str:
        """Bytes in binary units with the locale's number format: ``1.5 GiB``."""
        value = float(num_bytes)
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if value < 1024 or unit == "TiB":
                return f"{self.number(value, 0 if unit == 'B' else 1)} {unit}"
            value /= 1024
        return f"{self.number(value, 1)} TiB"


@cache
def _babel_locale(code: str) -> Locale:
    return Locale.parse(BABEL_LOCALE[code])


def translator(code: str) -> Translator:
    """The translator for ``code`` (English for an unknown code)."""
    return Translator(code if code in LOCALES else DEFAULT_LOCALE)
