"""The farm's pure vocabulary: job and task states with their transition table, frame specs. No I/O."""
