"""The client SDK: the HTTP client (``api``), the CLI's config (``config``) and packing (``packing``). It is what
the Blender add-on bundles, so it imports only ``farm.client``, ``farm.contract``, ``farm.domain`` and
``farm.errors`` (checked by tests/test_layout.py)."""

from farm.client.api import ClientError, FarmClient, FarmUnreachable, MissingFiles, SubmitResult

__all__ = ["ClientError", "FarmClient", "FarmUnreachable", "MissingFiles", "SubmitResult"]
