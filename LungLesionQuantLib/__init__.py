"""LungLesionQuant core: segment and measure COVID-19 lung lesions on chest CT, without Slicer's GUI."""

__version__ = "0.1.0"
