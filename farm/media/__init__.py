"""Thumbnails and preview movies made from stored frames."""
