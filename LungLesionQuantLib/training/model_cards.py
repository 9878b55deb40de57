"""Write the model card of each bundled model from its training record and the CV results.

``python -m LungLesionQuantLib.training.model_cards`` (after training and ``crossval``; the
radiograph model's and the view check's cards too, once they are trained).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..segmentation.cascade import DEFAULT_MODEL_DIR
from .train import stage_specs

PREPROCESSING = ("Axial slices in radiological orientation (LPS: patient right on the image left, anterior up). "
                 "HU clipped to the lung window (level -600, width 1500) and scaled to [0, 1] "
                 "(`LungLesionQuantLib.segmentation.preprocessing.hu_to_unit`); the region padded to a square and resized "
                 "(linear) to {size}×{size}. The same code prepares training and inference slices.")

STAGES = {
    "lung": {
        "title": "Lung stage",
        "input": "1 channel: a whole axial slice.",
        "output": ("2 classes (background, lung); softmax; lung where p > 0.5 after resizing back, then kept inside "
                   "the body, in the chest and without the central airways (`LungLesionQuantLib.segmentation.anatomy`): on unseen "
                   "scans the network also marks air outside the body (blankets, table, a patient filling the field "
                   "of view), which these rules remove."),
        "data": ("Whole axial slices in HU, and the same slices cropped to the box around the lungs of their "
                 "volume (the framing of published 2D slices): TCIA MIDRC-RICORD-1A 419639-000082 (COVID-19, "
                 "255 slices, CC BY-NC 4.0; 20 % of each batch), TCIA Lung-PET-CT-Dx A0001 (lung cancer, 64 slices, "
                 "CC BY 4.0; 15 %), 12 TCIA COVID-19-NY-SBU slices checked by eye (6 with lung, 6 below the lungs; "
                 "CC BY 4.0; 10 %); and published 8-bit slices: 677 Coronacases slices of 6 patients (27.5 %) and "
                 "481 Radiopaedia slices of 10 patients (27.5 %) (Ma et al., Zenodo 3757476, CC BY-NC-SA), each "
                 "re-mapped per patient by histogram landmarks. The 50 GGO/Cons slices are not used, so the "
                 "cross-validation of the lesion stages, which runs this lung stage, stays held out."),
        "labels": ("Derived, not drawn: `LungLesionQuantLib.training.lung_labels.derive_lung_mask`. Inside the "
                   "body (largest region > -500 HU, holes filled per slice), air < -400 HU; 3D regions under a "
                   "tenth of the largest (bowel gas) dropped; small regions near the midline (trachea, main "
                   "bronchi) dropped; each slice closed with a 3 mm disk and holes filled (vessels and enclosed "
                   "consolidation become lung). Each NY-SBU slice was checked by eye: slices where dense disease "
                   "defeats the rule were left out; slices below the lungs were labelled empty. Published slices "
                   "(crops that cut the chest wall, so lungs reach the edge): the body is all but the near-black "
                   "background connected to the edge (`lung_labels.crop_body_mask`), 0.7 mm pixels assumed; the "
                   "slice's infection mask (radiologists' for Coronacases, Semi-Inf-Net pseudo-labels for "
                   "Radiopaedia) is added where it touches the derived lung, holes filled "
                   "(`training.datasets.with_derived_lungs`); 48 slices of each set checked by eye."),
        "limits": ("The HU rule cuts dense peripheral consolidation out of the lung labels; the cascade adds "
                   "the lesions found by the lesion stage back to the lung. Only 28 patients; no expert lung "
                   "masks were available, so lung accuracy is measured against derived labels only."),
    },
    "lesion": {
        "title": "Lesion stage (GGO ∪ consolidation)",
        "input": "1 channel: the slice cropped to one box around both lungs of the volume (8 % margin).",
        "output": ("2 classes (background, lesion); lesion where p > 0.5, kept within the lung (holes filled, grown "
                   "by 2 mm in-plane). `--tta` averages the left-right mirrored input too."),
        "data": ("50 slices with radiologist labels of GGO and consolidation (MedSeg / SIRM, via COVID-SemiSeg, "
                 "Fan et al. 2020), half of each batch; 677 slices of 6 Coronacases patients with infection "
                 "masks by two radiologists verified by a senior one (Ma et al., Zenodo 3757476, CC BY-NC-SA), "
                 "the other half. Each slice enters framed two ways, as the cascade frames it: whole, and cropped to "
                 "the lungs that the bundled lung stage finds in its volume. Trained on random 192-pixel windows of "
                 "the 288-pixel inputs (the network is fully convolutional and runs on whole inputs). Intensities: the 8-bit GGO/Cons slices are read as HU = g/255×1392−1196, a window "
                 "estimated by matching their histogram landmarks (aerated lung, soft tissue) to those of real HU CTs "
                 "(`grey_window.GREY8_WINDOW_HU`); the Coronacases slices, exported under a much wider window, are "
                 "re-mapped per patient by the same landmarks (`preprocessing.CT_LANDMARKS_UNIT`). Both are "
                 "estimates, hence the wide window/gamma jitter. At inference an 8-bit slice is read under the window "
                 "its own landmarks give (`grey_window.estimate_grey_window`: the documented window where the slice's "
                 "soft tissue agrees with it, else the two landmarks mapped to -950 / -44 HU) or under `--window`."),
        "labels": "As published: GGO and Cons merged into one lesion label; infection masks as they are.",
        "limits": ("2D only; trained on 56 patients' slices; the 50 GGO/Cons slices have no patient ids, so "
                   "their cross-validation is by slice (slices of one patient may fall in both train and test folds); "
                   "the patient-wise figures above are on one source (Coronacases) only; on the patient with the largest "
                   "lesions (coronacases_001) the lesion found is well under half of the reference's. "
                   "On whole CTs the network also fires on chest-wall and mediastinal soft tissue, so the cascade "
                   "keeps lesion only inside the lung stage's mask (holes filled, grown by 2 mm): dense pleural "
                   "consolidation that the lung stage leaves out is then missed as well."),
    },
    "type": {
        "title": "Type stage (GGO vs consolidation)",
        "input": ("2 channels: the lesion-stage crop, and the lesion mask (ground truth in training, perturbed by ±1–2 px); "
                  "trained on random 192-pixel windows, both framings, like the lesion stage."),
        "output": ("3 classes (background, GGO, Cons); inside the lesion, Cons where 0.5 × p(Cons) / (p(GGO) + p(Cons)) "
                   "+ 0.5 × an attenuation prior (logistic step at −400 HU, width 100 HU) exceeds 0.5, else GGO "
                   "(`cascade.Cascade._consolidation`)."),
        "data": ("The 50 radiologist-labelled GGO/Cons slices (MedSeg / SIRM via COVID-SemiSeg), read as HU = "
                 "g/255×1392−1196 (window estimated from histogram landmarks, see the lesion card)."),
        "labels": "As published by the radiologist: 1 GGO, 2 consolidation.",
        "limits": ("Only 50 labelled slices: consolidation is the least reliable label (Bartoli et al. also "
                   "found Cons hardest). The attenuation prior is in absolute HU (not relative to the pulmonary artery, "
                   "as Bartoli et al. read it). GGO vs Cons rests on "
                   "attenuation, so it depends on the estimated window of the training slices: on the RICORD CT (GGO 5.2 %, "
                   "Cons 1.0 % of the lung) the densest subpleural parts of the opacities are called Cons."),
    },
}


def _cv_table(cv: dict) -> str:
    lines = ["| setting | label | Dice mean ± SD (empty-in-both skipped) | n | empty in both | Dice, empty-in-both = 1 | "
             "sensitivity | specificity | per-fold means |", "|---|---|---|---|---|---|---|---|---|"]
    for setting, measures in cv["settings"].items():
        for name, s in measures.items():
            folds = ", ".join(f"{v:.3f}" for v in s["fold_means"])
            lines.append(f"| {setting} | {name} | {s['mean']:.3f} ± {s['sd']:.3f} | {s['n']} | {s['empty_both']} | "
                         f"{s['mean_empty_as_1']:.3f} ± {s['sd_empty_as_1']:.3f} | {s['sensitivity']:.3f} | "
                         f"{s['specificity']:.4f} | {folds} |")
    return "\n".join(lines)


def _patient_cv_text(pcv: dict) -> str:
    """The lesion stage on whole unseen patients (:mod:`.patient_cv`)."""
    rows = "\n".join(f"| {name} | {p['slices']} | {p['patient_dice']:.3f} | {p['slice_dice_mean']:.3f} | "
                     f"{p['lesion_free_slices_with_false_lesion']} of {p['lesion_free_slices']} |" for name, p in pcv["patients"].items())
    folds = "; ".join(" + ".join(f) for f in pcv["folds"])
    return (f"\n\nPatient-wise cross-validation on the 677 infection slices of 6 Coronacases patients "
            f"(`python -m LungLesionQuantLib.training.patient_cv train` then `... evaluate`): {len(pcv['folds'])} folds "
            f"holding out two whole patients each ({folds}); in each fold the lung and lesion stages are retrained "
            "without them and their slices run through the product as upright 8-bit PNGs, each read under the window "
            f"its own landmarks give. Lesion Dice per patient (slices pooled): mean {pcv['patient_dice_mean']:.3f}; per "
            f"slice {pcv['slice_dice_mean']:.3f} ({pcv['slices_scored']} slices, empty-in-both skipped); lesion-free "
            f"slices with more than 50 pixels of lesion: {pcv['lesion_free_slices_with_false_lesion']} of "
            f"{pcv['lesion_free_slices']}.\n\n| patient | slices | patient Dice | slice Dice mean | lesion-free slices "
            f"with lesion > 50 px |\n|---|---|---|---|---|\n{rows}")


def _device(record: dict) -> str:
    # train.train_stage runs the network in bfloat16 autocast on a GPU, and on a CPU where the stage asks for it.
    if record["device"].startswith("cuda"):
        return "a GPU (bfloat16 autocast)"
    return "the CPU (bfloat16 autocast)" if record.get("bf16_autocast") else "the CPU (float32)"


def write_cards(model_dir: Path) -> list[Path]:
    cv_path = model_dir / "crossval.json"
    cv = json.loads(cv_path.read_text()) if cv_path.exists() else None
    pcv_path = model_dir / "patient_cv.json"
    pcv = json.loads(pcv_path.read_text()) if pcv_path.exists() else None
    written = []
    for stage, info in STAGES.items():
        record = json.loads((model_dir / f"{stage}.train.json").read_text())
        aug = ", ".join(f"{k} {v}" for k, v in record["augment"].items())
        if stage == "lung":
            metrics = ("No expert lung masks exist in the training data. Measured by the tests and the "
                       "benchmark: adult lung volumes on the RICORD CT, agreement with the derived labels.")
        elif cv:
            metrics = ("5-fold cross-validation on the 50 GGO/Cons slices (`python -m LungLesionQuantLib.training.crossval`); "
                       "each fold's held-out slices run through the ONNX cascade with that fold's lesion and type "
                       "models. *cascade*: the full cascade, lung stage included; *given-lung*: the slice itself as "
                       "the lung region. Dice per slice. Test-time flips: " + (str(cv["flips"]) if cv["flips"] else "none")
                       + f"; attenuation-prior weight {cv['hu_prior_weight']}. What each change did: `README.md` here.\n\n" + _cv_table(cv))
        else:
            metrics = "Cross-validation not run yet."
        if stage == "lesion" and pcv:
            metrics += _patient_cv_text(pcv)
        text = f"""# Model card: {info['title']} (`{stage}.onnx`)

Part of LungLesionQuant's cascade lung → lesion → type (Bartoli et al. 2022).

## Network and I/O
- MONAI 2D U-Net, channels {', '.join(map(str, (16, 32, 64, 128, 256)))}, strides 2, instance norm, PReLU; ONNX opset 17,
  input `image` N×{record['in_channels']}×{record['input_size']}×{record['input_size']} float32, output `logits` N×{len(record['classes'])}×{record['input_size']}×{record['input_size']}.
- Input: {info['input']}
- Output: {info['output']}
- Preprocessing: {PREPROCESSING.format(size=record['input_size'])}

## Training data
{info['data']}

## How the training labels were made
{info['labels']}

## Training
{record['steps']} steps of batch {record['batch']}{f" (random {record['patch']}-pixel windows)" if record.get('patch') else ""}, AdamW (lr {record['lr']}, one-cycle), Dice + cross-entropy
(class weights {stage_specs(1.0)[stage].ce_weight}), seed {record['seed']}, on {_device(record)} in {record['seconds']:.0f} s;
final loss {record['final_loss']}. Augmentation: any flip/transpose, {aug}.
Rebuild: `python -m LungLesionQuantLib.training --data ../shared/data` (on a GPU, add `--jobs 12`).

## Accuracy
{metrics}

## Limitations
{info['limits']} Not a medical device: results must be checked by a radiologist.
"""
        path = model_dir / f"{stage}.md"
        path.write_text(text)
        written.append(path)
    return written


def _radiograph_cv_table(cv: dict) -> str:
    lines = ["| radiographs | measure | applies to | n | mean | SD | median | 90th pct |", "|---|---|---|---|---|---|---|---|"]
    for r in cv["table"]:
        lines.append(f"| {r['radiographs']} | {r['measure']} | {r['applies_to']} | {r['n']} | {r['mean']:.3f} | "
                     f"{r.get('sd', float('nan')):.3f} | {r.get('median', float('nan')):.3f} | {r.get('p90', float('nan')):.3f} |")
    return "\n".join(lines)


def write_radiograph_cards(model_dir: Path) -> list[Path]:
    """The cards of the radiograph model and of the view check, from their training records and CV."""
    record = json.loads((model_dir / "radiograph.train.json").read_text())
    member, first = record["members"][0], record["first_round_members"][0]
    cv_path = model_dir / "radiograph.crossval.json"
    cv = json.loads(cv_path.read_text()) if cv_path.exists() else None
    spread = "; ".join(f"{k}: " + ", ".join(f"{v:.3f}" for v in values) for k, values in cv["per_fold_means"].items()) if cv else ""
    accuracy = (f"5-fold cross-validation over {cv['images']} radiographs (`python -m LungLesionQuantLib.training.radiographs "
                f"evaluate`): each fold's held-out radiographs run through the product's inference with that fold's model. "
                f"Rule (Tang et al. 2020, 4.1): {cv['rule']}.\n\n{_radiograph_cv_table(cv)}\n\nPer-fold means — {spread}. "
                "The bundled ensemble saw every radiograph here, so these fold figures are what to expect on new "
                "radiographs of these sources; other sources (other detectors, other labellers) are expected to score lower.") \
        if cv else "Cross-validation not run yet."
    aug = ", ".join(f"{k} {v}" for k, v in member["augment"].items())
    text = f"""# Model card: chest radiograph lung fields and opacity (`radiograph.onnx`)

Tang et al. 2020: the opacity share of the lung on a frontal chest radiograph.

## Network and I/O
- The five cross-validation fold models of a MONAI 2D U-Net (channels 16, 32, 64, 128, 256, strides 2, instance norm,
  PReLU, 0.66 M weights each) in one ONNX graph (opset 17) that returns the log of their mean softmax; input `image`
  N×1×{member['input_size']}×{member['input_size']} float32, output `logits` N×3×{member['input_size']}×{member['input_size']}.
- Classes: background, lung (without opacity), opacity (ground glass and consolidation together).
- Preprocessing (`LungLesionQuantLib.radiograph.preprocessing`): display grey levels (DICOM: modality and VOI LUT
  applied, MONOCHROME1 inverted, mirrored to the usual display when PatientOrientation says rows run to the
  patient's right) scaled by the image's own 0.5 / 99.5 percentiles to [0, 1], the whole image resized
  (antialiased, aspect not kept, as the training images were published) to {member['input_size']}×{member['input_size']}.
- Output (`LungLesionQuantLib.radiograph.segment`): probabilities resized back to the radiograph's grid; lung = lung ∪
  opacity, the two largest regions (each ≥ 10 % of the largest), holes filled; opacity inside that lung. Label map:
  0 background, 1 Lung, 4 Opacity.

## Training data
COVID-QU-Ex "Infection Segmentation Data", training split (Tahir et al. 2021; infection masks from QaTa-COV19,
Degerli et al. 2021): 1,864 COVID-19 radiographs with infection and lung masks, 466 Non-COVID and 466 Normal
radiographs with lung masks and empty infection masks. Research use; never redistributed here.

## How the labels were made
As published: physician-verified, partly drawn by doctors and partly proposed by networks and accepted or redrawn;
many infection masks are coarse (19 % cover more than 95 % of the lung). Every infection pixel lies inside the lung
mask. Non-COVID radiographs (other pneumonias) carry empty infection masks: opacity of other causes is taught as
no COVID-19 opacity, which this model therefore tends not to mark.

## Training
Per fold, two rounds of one-cycle AdamW with batch {member['batch']}: {first['steps']} steps from scratch (peak lr {first['lr']}),
then {member['steps']} steps from those weights (peak lr {member['lr']}); Dice + focal loss (Tang et al. 2020; class weights
{member['ce_weight']}), bfloat16 autocast on the CPU, about {(first['seconds'] + member['seconds']) / 60:.0f} min a fold on this 2-core CPU.
Folds stratified by class (`StratifiedKFold(5, shuffle=True, random_state=0)`); file names carry no
patient ids, so radiographs of one patient may fall in both sides of a fold. Augmentation: left-right flips only
(radiographs are upright), {aug}.
Rebuild: `python -m LungLesionQuantLib.training.radiographs train` then `... evaluate` (about 1 h 40 min on this CPU).

## Accuracy
{accuracy}

## Limitations
Frontal (PA/AP) adult radiographs only; lateral views are refused where DICOM says so, but a lateral view given as
PNG is not recognised. No pixel spacing in PNG/JPG: areas are then in pixels. Opacity here means what QaTa-COV19
annotators drew for COVID-19; pleural effusion, cardiomegaly and devices are not modelled. Not a medical device:
results must be checked by a radiologist.
"""
    paths = [model_dir / "radiograph.md"]
    paths[0].write_text(text)
    view = json.loads((model_dir / "view.train.json").read_text())
    rows = "\n".join(f"| {source} | {r['images']} | {r['correct_at_even_odds']} | {r['wrongly_refused_at_product_thresholds']} | "
                     f"{r['p_radiograph_min']:.3g} – {r['p_radiograph_max']:.3g} |" for source, r in view["held_out"].items())
    sources = ", ".join(f"{k} {v}" for k, v in view["sources"].items())
    paths.append(model_dir / "view.md")
    paths[1].write_text(f"""# Model card: view check, CT slice or chest radiograph (`view.onnx`)

Run on every 2D image file before it is measured (`LungLesionQuantLib.input.view_gate`): a radiograph given as a
CT slice, or a CT slice given with `--modality cxr`, is refused in one line rather than measured into a number that
means nothing. DICOM files say what they are (Modality) and are not checked by it.

- Network: MONAI `Classifier` (channels 8, 16, 32, 64, strides 2, one residual unit), input 1×{view['input_size']}×{view['input_size']}
  after the radiograph preprocessing (own percentiles, whole image resized), output `logits` (CT slice, radiograph).
- Data ({sources}): radiographs of COVID-QU-Ex; CT slices as published (8-bit exports of three sources) and the
  DICOM CTs rendered under a lung (−600/1500), a soft-tissue (40/400) and a wide (350/2750) window. All eight
  flips/transposes are augmented for both kinds, so orientation is never the cue. {view['steps']} steps of batch {view['batch']}.
- Decision: a CT slice input is refused when p(radiograph) ≥ {view['thresholds']['not_ct']}; a radiograph input
  when p(radiograph) < {view['thresholds']['not_radiograph']}: only confident calls refuse.
- Held out (a first model trained without these sources, then scored on them):

| held-out source | images | correct at p = 0.5 | wrongly refused at the product's thresholds | p(radiograph) range |
|---|---|---|---|---|
{rows}

- Limits: two kinds only — a photograph or a non-chest image is called one of them; colour photographs are refused
  earlier by their colour. Rebuild: `python -m LungLesionQuantLib.training.view_gate` (about 3 min on this CPU).
""")
    return paths


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL_DIR
    for p in write_cards(folder) + (write_radiograph_cards(folder) if (folder / "radiograph.train.json").exists() else []):
        print(p)
    sys.exit(0)
