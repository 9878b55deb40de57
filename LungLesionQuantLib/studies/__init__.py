"""Research studies on the results: observer agreement, accuracy against references, and the risk score."""
