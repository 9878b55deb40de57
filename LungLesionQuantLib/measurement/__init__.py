"""Volumes, extents, sides and zones of a label map, and the warnings when they look implausible."""
