"""Slicer MRML nodes (via slicer-core) and what the module does to a scene; importable without the Slicer application."""
