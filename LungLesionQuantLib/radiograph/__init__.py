"""Chest radiographs: reading, the lung/opacity network, measurement (Tang et al. 2020)."""
