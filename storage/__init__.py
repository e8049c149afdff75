"""Object storage: the ``ObjectStore`` protocol and its backends."""
