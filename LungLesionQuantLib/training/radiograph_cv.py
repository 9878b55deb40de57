"""Cross-validated accuracy of the radiograph model: each fold's held-out radiographs through
the product's own inference (:class:`..radiograph.segment.RadiographNet` with that fold's
model), scored by :mod:`..radiograph.evaluation` (Tang et al. 2020 §4.1 for empty masks), per
class of radiograph and per fold."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..radiograph.evaluation import score_radiograph, summarise_radiographs
from ..radiograph.segment import OPACITY_THRESHOLD, RadiographNet


def evaluate_folds(data, folds: Callable, fold_dir: Path, thresholds: tuple[float, ...] = (OPACITY_THRESHOLD,)) -> dict:
    """``{"table": rows, "per_fold_means": ..., "thresholds": ...}`` over all held-out radiographs,
    at the product's opacity threshold; with more ``thresholds``, the mean opacity Dice and false
    opacity % at each (how the product's was chosen)."""
    rows, by_threshold = [], {t: [] for t in thresholds}
    for k, (_train, test) in enumerate(folds(data)):
        net = RadiographNet(path=fold_dir / f"fold{k}" / "radiograph.onnx", device="cpu")
        for i in test:
            lung, opacity = data.labels[i] > 0, data.labels[i] == 2
            probs = net.probabilities(data.greys[i].astype(np.float32))
            for t in thresholds:
                net.opacity_threshold = t
                scores = score_radiograph(net.labels_from(probs), lung, opacity)
                by_threshold[t].append(scores)
                if t == OPACITY_THRESHOLD:
                    rows.append({"image": data.names[i], "class": data.classes[i], "fold": k, **scores})
    per_image = pd.DataFrame(rows)
    sweep = {str(t): {m: float(pd.DataFrame(r)[m].mean()) for m in ("opacity_dice", "false_opacity_pct", "lung_dice")}
             for t, r in by_threshold.items()}
    table = []
    for group, part in [("all", per_image)] + list(per_image.groupby("class")):
        for r in summarise_radiographs(part).to_dict("records"):
            table.append({"radiographs": group, **r})
    per_fold = {m: [float(per_image[per_image.fold == k][m].mean()) for k in sorted(per_image.fold.unique())]
                for m in ("lung_dice", "opacity_dice", "false_opacity_pct") if m in per_image}
    return {"table": table, "per_fold_means": per_fold, "images": len(per_image), "threshold_sweep": sweep,
            "opacity_threshold": OPACITY_THRESHOLD,
            "rule": "opacity Dice/IoU on radiographs whose reference shows opacity; false opacity % (of the predicted "
                    "lung) on radiographs without (Tang et al. 2020, 4.1)"}
