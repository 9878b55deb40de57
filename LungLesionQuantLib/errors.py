"""Errors a user can act on: each carries a one-line message, never a traceback."""


class LungLesionQuantError(Exception):
    """Base class: the message says what was found and what was expected."""


class InputError(LungLesionQuantError):
    """The input is not a CT this tool can segment (wrong modality, range, shape, or empty)."""


class OutputExistsError(LungLesionQuantError):
    """Writing would replace a segmentation that may have been edited by a person."""


class OutputError(LungLesionQuantError):
    """Results cannot be written where asked (not writable, full, locked by another run, damaged on writing)."""
