"""The composition roots: the only place that wires scheduler, web and workers together."""
