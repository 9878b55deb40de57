"""Training of the bundled cascade (MONAI + PyTorch); not needed for inference.

``python -m LungLesionQuantLib.training --data ../shared/data`` rebuilds every model in
``Resources/Models`` with its model card and cross-validated figures.
"""
