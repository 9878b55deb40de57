"""The CT networks and what keeps their output anatomical: preprocessing shared with training, the ONNX cascade, anatomy rules."""
