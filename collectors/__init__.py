"""Collectors: Discord history and media into the lossless raw store (and the Discord emulator)."""
