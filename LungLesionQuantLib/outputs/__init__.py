"""Everything written: verified atomic writes, Slicer files, overlays, reports, methods text, DICOM SEG, figures."""
