"""The Matrix plug-in (matrix-nio, end-to-end encryption)."""
