"""Reading what a user has (DICOM, volumes, slice images, label files) and refusing, in one line, what cannot be measured."""
