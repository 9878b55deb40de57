"""The training data of each stage as weighted pools, shared by the bundled models and every
cross-validation (slice-wise on the 50 GGO/Cons slices, patient-wise on the 677 infection slices)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .datasets import (LungFinder, NativeSlices, SliceSet, frame_slices, load_lung_slices, read_lesion_labelled, read_radiopaedia_unlabelled,
                       read_semiseg_train, with_derived_lungs)
from .train import LESION_SIZE, LUNG_SIZE, Pool

# The bundled lesion stage's batches: shares of infection slices and of pseudo-labelled slices
# (the rest: the GGO/Cons slices). What other shares gave: ``training.patient_cv`` and
# ``Resources/Models/README.md``.
LESION_SHARES = {"infection_share": 0.5, "pseudo_share": 0.0}
# Share of each lung-stage batch per source.
LUNG_SHARES = {"dicom/ricord_1a_000082": 0.2, "dicom/lung_pet_ct_dx_A0001": 0.15, "ny_sbu": 0.1, "published": 0.275}


def lung_pools(data: Path, held_out: frozenset[str] = frozenset()) -> list[Pool]:
    """The lung stage's pools: two CTs and the NY-SBU slices (HU-rule lungs), and the published
    8-bit slices (not the 50 GGO/Cons slices, which cross-validation holds out) with HU-rule lungs
    joined with their lesions; ``held_out`` patients' slices are left out."""
    lung = load_lung_slices(data, LUNG_SIZE)
    groups = np.array(lung.groups)
    volumes = [g for g in LUNG_SHARES if g.startswith("dicom/")]
    pools = [Pool(lung.images[groups == g], lung.labels[groups == g], LUNG_SHARES[g]) for g in volumes]
    ny = ~np.isin(groups, volumes)
    pools.append(Pool(lung.images[ny], lung.labels[ny], LUNG_SHARES["ny_sbu"]))
    for reader in (read_lesion_labelled, read_radiopaedia_unlabelled):
        published = frame_slices(with_derived_lungs(reader(data)), LUNG_SIZE)
        keep = ~np.isin(published.groups, sorted(held_out))
        pools.append(Pool(published.images[keep], published.labels[keep], LUNG_SHARES["published"]))
    return pools


def _both_framings(native: NativeSlices, find_lung: LungFinder, size: int = LESION_SIZE) -> list[SliceSet]:
    return [frame_slices(native, size), frame_slices(native, size, find_lung)]


@dataclass
class LesionData:
    """The lesion stages' slices, each framed both ways the cascade frames them: whole (a slice
    given as the lung region) and cropped to the lungs that the lung stage finds. ``pseudo``:
    the unlabelled Radiopaedia slices with Semi-Inf-Net's predicted infection masks (Fan et al.
    2020), loaded only where a recipe learns from them (semi-supervised: a stronger model's
    predictions as targets, never as a reference)."""

    semiseg: list[SliceSet]
    infection: list[SliceSet]
    pseudo: list[SliceSet] = field(default_factory=list)

    @classmethod
    def load(cls, data: Path, find_lung: LungFinder, pseudo: bool = False, size: int = LESION_SIZE) -> "LesionData":
        """``size``: the side of the network input (the lesion stage's, or the teacher's)."""
        semiseg, _ = read_semiseg_train(data)
        return cls(_both_framings(semiseg, find_lung, size), _both_framings(read_lesion_labelled(data), find_lung, size),
                   _both_framings(read_radiopaedia_unlabelled(data), find_lung, size) if pseudo else [])

    @property
    def n_semiseg(self) -> int:
        return len(self.semiseg[0].images)

    def pools(self, stage: str, semiseg_idx: np.ndarray, held_out: frozenset[str] = frozenset(),
              infection_share: float = LESION_SHARES["infection_share"],
              pseudo_share: float = LESION_SHARES["pseudo_share"]) -> list[Pool]:
        """Pools of ``stage``: the type stage learns GGO vs Cons from the GGO/Cons slices alone;
        the lesion stage learns lesion from them, from the infection slices of every patient
        not ``held_out`` (``infection_share`` of each batch; 0 leaves them out) and from the
        pseudo-labelled slices (``pseudo_share``; they must be loaded)."""
        if stage == "type":
            return [Pool(s.images[semiseg_idx], s.labels[semiseg_idx], 0.5) for s in self.semiseg]
        if pseudo_share and not self.pseudo:
            raise ValueError("a pseudo-label share was asked for, but the pseudo-labelled slices were not loaded")
        semiseg_share = 1 - infection_share - pseudo_share
        pools = [Pool(s.images[semiseg_idx], (s.labels[semiseg_idx] > 0).astype(np.uint8), semiseg_share / len(self.semiseg))
                 for s in self.semiseg]
        keep = ~np.isin(self.infection[0].groups, sorted(held_out))
        for sets, share, rows in ((self.infection, infection_share, keep), (self.pseudo, pseudo_share, slice(None))):
            if share > 0:
                pools += [Pool(s.images[rows], s.labels[rows], share / len(sets)) for s in sets]
        return pools
