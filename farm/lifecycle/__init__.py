"""What an attempt's outcome means for its chunk, its job and its node: pure decisions, no I/O.

The scheduler feeds these functions the facts a worker reported and applies the verdict through
``farm.lifecycle.transitions`` in one transaction. Keeping them pure lets the whole fault matrix be tested without Ray.
"""
