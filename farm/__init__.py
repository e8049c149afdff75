"""Core of the render farm: domain, states, settings, database, metering, client SDK and CLI."""

__version__ = "0.1.0"
