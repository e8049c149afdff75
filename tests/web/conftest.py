"""Fixtures the monitor's test modules share: a monitor app on a fresh database (``mon``) and Debian's Chromium
driven by Playwright (``browser``)."""

from tests.web.test_browser import browser  # noqa: F401
from tests.web.test_monitor import mon  # noqa: F401
