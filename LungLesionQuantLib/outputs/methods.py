"""The methods paragraph a paper needs, filled from what produced a result (its provenance)."""
from __future__ import annotations

from .. import __version__

CITATION = ("Bartoli A, Fournel J, et al. Value and prognostic impact of a deep learning segmentation model of "
            "COVID-19 lung lesions on low-dose chest CT. Research in Diagnostic and Interventional Imaging 2022. "
            "doi:10.1016/j.redii.2022.100003")


def methods_text(inference: dict) -> str:
    """A methods paragraph: tool and version, the cascade and its input sizes, thresholds and
    rules, the measures, the models' SHA-256 checksums, and what to cite. ``inference`` is
    :meth:`cascade.Cascade.provenance`."""
    settings = inference.get("settings", {})
    sizes = settings.get("input_sizes", {})
    models = inference.get("models", {})
    checksums = "; ".join(f"{name} {digest[:16]}…" for name, digest in models.items()) or "not recorded"
    flips = " with left-right test-time mirroring" if settings.get("test_time_flips") else ""
    return (f"Lung, ground-glass opacity (GGO) and consolidation were segmented automatically with LungLesionQuant "
            f"{__version__}, a cascade of three 2D U-Nets run on axial slices after Bartoli et al. (2022): a lung network "
            f"on whole slices ({sizes.get('lung', '?')} px), a lesion network on the slices holding lung, cropped to the "
            f"lungs ({sizes.get('lesion', '?')} px){flips}, and a network separating GGO from consolidation inside the "
            f"lesion ({sizes.get('type', '?')} px), blended (weight {settings.get('hu_prior_weight', '?')}) with an "
            f"attenuation prior, a logistic step at {settings.get('cons_prior_hu', '?')} HU. Networks were thresholded at "
            "p > 0.5; the lung was kept inside the body and the chest, without the trachea and main bronchi; lesions "
            "were kept within the lung grown by 2 mm. Lung volume = normal lung + GGO + consolidation; extent = "
            f"volume / lung volume × 100. Models (SHA-256): {checksums}; trained on public data listed in their "
            f"model cards. Cite: {CITATION}; and LungLesionQuant {__version__}.")
