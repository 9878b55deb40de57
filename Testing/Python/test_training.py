"""Training pieces on real data: derived lung labels, augmentation, a short run that exports."""
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from LungLesionQuantLib.runtime import StageModel
from LungLesionQuantLib.input.imageio import read_ct, to_lps
from LungLesionQuantLib.training.augment import AugmentConfig, augment, perturb_mask
from LungLesionQuantLib.training.datasets import SliceSet, frame_slices, read_semiseg_train
from LungLesionQuantLib.training.lung_labels import body_mask, derive_lung_mask
from LungLesionQuantLib.training.network import unet_from_onnx
from LungLesionQuantLib.training.train import Log, Pool, Run, StageSpec, train_all, train_stage
from conftest import SAMPLE_CT, shared


def test_derived_lung_labels_are_an_adult_lung_without_bowel_gas():
    image = to_lps(read_ct(shared("dicom/lung_pet_ct_dx_A0001")).image)
    hu = sitk.GetArrayFromImage(image)
    lung = derive_lung_mask(hu, image.GetSpacing()[::-1])
    litres = lung.sum() * np.prod(image.GetSpacing()) / 1e6
    assert 3.0 < litres < 8.0
    # the lowest slice holds the upper abdomen with gas in the bowel: none of it is lung
    gas_inside_body = (hu[0] < -400) & body_mask(hu[:1])[0]
    assert gas_inside_body.sum() > 500 and not lung[0].any()


def test_augment_keeps_shapes_and_classes():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(4, 1, 64, 64)
    label = torch.zeros(4, 1, 64, 64, dtype=torch.long)
    label[:, :, 20:40, 20:40] = 2
    out_image, out_label = augment(image, label, AugmentConfig(), gen)
    assert out_image.shape == image.shape and out_label.shape == label.shape
    assert set(out_label.unique().tolist()) <= {0, 2}
    grown = perturb_mask((label > 0).float(), gen)
    assert grown.shape == label.shape


def test_a_short_training_run_exports_a_model_the_cascade_loads(tmp_path):
    data = shared("semiseg_train").parent
    slices, native = read_semiseg_train(data)
    semiseg = frame_slices(slices, 64)
    assert len(native) == 50 and set(np.unique(semiseg.labels)) == {0, 1, 2} and semiseg.images.shape == (50, 64, 64)
    spec = StageSpec("type", 2, ["background", "GGO", "Cons"], [0.5, 1.0, 1.5], steps=3, batch=4, patch=48)
    record = train_stage(spec, [Pool(semiseg.images, semiseg.labels, 1.0)], tmp_path / "type.onnx", log=lambda m: None)
    assert record["steps"] == 3 and record["patch"] == 48 and json.loads((tmp_path / "type.train.json").read_text())["stage"] == "type"
    stage = StageModel.load(tmp_path / "type.onnx", ["CPUExecutionProvider"], 1)
    assert stage.size == 64 and stage.classes == ["background", "GGO", "Cons"]
    x = np.random.default_rng(0).random((3, 2, 64, 64), dtype=np.float32)
    probs = stage.probabilities(x, batch_size=2)
    assert probs.shape == (3, 3, 64, 64) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        eager = torch.softmax(unet_from_onnx(tmp_path / "type.onnx")(torch.from_numpy(x)), dim=1).numpy()
    assert np.abs(eager - probs).max() < 1e-4


def test_runs_trained_in_parallel_processes_each_export_their_model_and_log(tmp_path):
    """``--jobs`` (for a GPU): runs go to spawned processes with their data; each writes its
    own model and record, and all share one log file."""
    slices, _ = read_semiseg_train(shared("semiseg_train").parent)
    semiseg = frame_slices(slices, 48)
    spec = StageSpec("lesion", 1, ["background", "lesion"], [0.5, 1.0], steps=2, batch=2)
    runs = [Run(spec, [Pool(semiseg.images[k::2], (semiseg.labels[k::2] > 0).astype(np.uint8), 1.0)],
                tmp_path / f"fold{k}" / "lesion.onnx", seed=k + 1) for k in range(2)]
    train_all(runs, Log(tmp_path / "train.log"), jobs=2, threads=1)
    records = [json.loads((tmp_path / f"fold{k}" / "lesion.train.json").read_text()) for k in range(2)]
    assert [r["seed"] for r in records] == [1, 2] and all(r["pools"][0]["slices"] == 25 for r in records)
    log = (tmp_path / "train.log").read_text()
    assert log.count("lesion.onnx step 2/2") == 2


def test_the_8bit_window_matches_the_slices_histogram_landmarks_to_real_cts():
    from LungLesionQuantLib.input.grey_window import GREY8_WINDOW_HU, histogram_landmarks
    from LungLesionQuantLib.segmentation.preprocessing import CT_LANDMARKS_UNIT, WINDOW_HIGH_HU, WINDOW_LOW_HU

    folder = shared("semiseg_train/images")
    grey = np.concatenate([np.asarray(Image.open(p).convert("L")).ravel() for p in sorted(folder.glob("*.jpg"))])
    lung, soft = histogram_landmarks(grey)
    low, high = GREY8_WINDOW_HU
    for g, unit in ((lung, CT_LANDMARKS_UNIT[0]), (soft, CT_LANDMARKS_UNIT[1])):
        hu_from_export = g / 255 * (high - low) + low
        hu_on_ct = unit * (WINDOW_HIGH_HU - WINDOW_LOW_HU) + WINDOW_LOW_HU
        assert abs(hu_from_export - hu_on_ct) < 10.0


def test_patient_scores_pool_each_patients_slices_and_count_false_lesion():
    from LungLesionQuantLib.studies.evaluation import slice_metrics
    from LungLesionQuantLib.training.patient_cv import FALSE_LESION_PX, patient_scores

    rng = np.random.default_rng(3)
    rows, volumes = [], {}
    for patient in ("p1", "p2"):
        ref = (rng.random((6, 40, 40)) > 0.8).astype(np.uint8) * 2
        pred = (rng.random((6, 40, 40)) > 0.7).astype(np.uint8) * 2
        ref[0] = 0  # a lesion-free slice with false lesion
        pred[1], ref[1] = 0, 0  # empty in both: skipped per slice, nothing added per patient
        volumes[patient] = (ref > 0, pred > 0)
        rows += [{"patient": patient, **r} for r in slice_metrics(ref, pred, ("lesion",))]
    scores = patient_scores(pd.DataFrame(rows))
    for patient, (ref, pred) in volumes.items():
        assert scores["patients"][patient]["patient_dice"] == pytest.approx(2 * (ref & pred).sum() / (ref.sum() + pred.sum()))
        assert scores["patients"][patient]["lesion_free_slices"] == 2
        assert scores["patients"][patient]["lesion_free_slices_with_false_lesion"] == int(pred[0].sum() > FALSE_LESION_PX) == 1
    assert scores["slices_scored"] == 10 and scores["lesion_free_slices_with_false_lesion"] == 2


def test_patient_folds_hold_whole_patients_out_of_the_lesion_pools():
    import csv

    from LungLesionQuantLib.training.datasets import read_lesion_labelled
    from LungLesionQuantLib.training.patient_cv import FOLDS
    from LungLesionQuantLib.training.pools import LesionData

    data = shared("lesion_labelled").parent
    with open(data / "lesion_labelled" / "slices.csv", newline="") as f:
        patients = [r["volume"] for r in csv.DictReader(f)]
    assert sorted(p for fold in FOLDS for p in fold) == sorted(set(patients))  # each patient held out once
    semiseg, _ = read_semiseg_train(data)
    whole = [frame_slices(semiseg, 64)], [frame_slices(read_lesion_labelled(data), 64)]
    lesion_data = LesionData(*whole)
    for held in FOLDS:
        pools = lesion_data.pools("lesion", np.arange(50), frozenset(held))
        kept = sum(len(p.images) for p in pools) - 50
        assert kept == sum(p not in held for p in patients)
        assert pools[-1].share == 0.5 and set(np.unique(pools[0].labels)) == {0, 1}
    assert len(lesion_data.pools("lesion", np.arange(50), infection_share=0.0)) == 1


def _small_teacher_data():
    from LungLesionQuantLib.training.datasets import read_lesion_labelled
    from LungLesionQuantLib.training.teacher import TeacherData

    data = shared("semiseg_train").parent
    semiseg = frame_slices(read_semiseg_train(data)[0], 64)
    infection = frame_slices(read_lesion_labelled(data), 64)
    keep = np.isin(infection.groups, ["coronacases_002", "coronacases_005"])
    pools = {"ggo_cons": [Pool(semiseg.images[:8], semiseg.labels[:8], 1.0)],
             "infection": [Pool(infection.images[keep][::20], infection.labels[keep][::20], 1.0)],
             "unlabelled": [Pool(semiseg.images[8:16], np.zeros_like(semiseg.labels[8:16]), 1.0)]}
    held_rows = np.flatnonzero(~keep)[::40]
    return TeacherData(**pools, held_ggo_cons=SliceSet(semiseg.images[40:], semiseg.labels[40:], semiseg.names[40:], semiseg.groups[40:]),
                       held_infection=SliceSet(infection.images[held_rows], infection.labels[held_rows],
                                               [infection.names[i] for i in held_rows], [infection.groups[i] for i in held_rows]))


def test_the_teacher_resumes_exactly_where_it_stopped_and_exports_a_one_stage_model(tmp_path, monkeypatch):
    """An interrupted run continued with --resume ends with the same weights as one uninterrupted run."""
    from LungLesionQuantLib.training import teacher

    data = _small_teacher_data()
    recipe = teacher.Recipe(steps=4, patch=64, ggo_cons_batch=2, infection_batch=2, unlabelled_batch=2, consistency_ramp=2)
    log = Log(tmp_path / "log.txt")
    teacher.train(data, recipe, tmp_path / "whole", log, resume=False, eval_every=0)
    monkeypatch.setattr(teacher, "CHECKPOINT_SECONDS", 0)
    real_update, calls = teacher._ema_update, []

    def dying_update(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_update(*args)

    monkeypatch.setattr(teacher, "_ema_update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        teacher.train(data, recipe, tmp_path / "stopped", log, resume=False, eval_every=0)
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["step"] == 2
    teacher.export(tmp_path / "stopped", log)  # a look at a run still training
    assert json.loads((tmp_path / "stopped" / "teacher.train.json").read_text())["steps"] == 2
    with pytest.raises(SystemExit, match="--resume"):
        teacher.train(data, recipe, tmp_path / "stopped", log, resume=False, eval_every=0)
    monkeypatch.setattr(teacher, "_ema_update", real_update)
    teacher.train(data, recipe, tmp_path / "stopped", log, resume=True, eval_every=2)
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    resumed = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)
    for key, value in whole["ema"].items():
        assert torch.equal(value, resumed["ema"][key]), key
    assert [h["step"] for h in resumed["history"]] == [4]
    assert {"GGO", "Cons", "lesion", "patient_dice", "false_lit"} <= set(resumed["history"][0])
    stage = StageModel.load(tmp_path / "stopped" / "teacher.onnx", ["CPUExecutionProvider"], 1)
    assert stage.size == 64 and stage.classes == ["background", "GGO", "Cons"]
    # the cascade runs a one-stage lesion network in place of its lesion and type stages
    from LungLesionQuantLib.segmentation.cascade import Cascade

    one_stage = Cascade(device="cpu", threads=1, overrides={"lesion": tmp_path / "stopped" / "teacher.onnx"})
    assert one_stage.one_stage and set(one_stage.paths) == {"lung", "lesion"}
    hu = read_ct(SAMPLE_CT).image
    labels = sitk.GetArrayFromImage(one_stage.apply(hu).labels)
    assert labels.shape == sitk.GetArrayFromImage(hu).shape and set(np.unique(labels)) <= {0, 1, 2, 3} and (labels > 0).any()


def test_the_teacher_loss_ignores_pixels_marked_ignore_and_reads_lesion_as_ggo_or_cons():
    from LungLesionQuantLib.training.datasets import IGNORE
    from LungLesionQuantLib.training.teacher import TeacherLoss

    loss = TeacherLoss((0.5, 1.0, 1.5))
    logits = torch.zeros(2, 3, 8, 8)
    logits[:, 2] = 6.0  # confidently Cons everywhere
    lesion = torch.ones(2, 1, 8, 8, dtype=torch.long)
    _, all_lesion = loss(logits, lesion, 0)
    _, none_lesion = loss(logits, torch.zeros_like(lesion), 0)
    _, ignored = loss(logits, torch.full_like(lesion, IGNORE).index_fill_(3, torch.tensor([0]), 1), 0)
    assert all_lesion < 0.05 < none_lesion and ignored < 0.05


def test_the_student_learns_from_the_teachers_labels_beside_the_real_ones(tmp_path):
    """Issue 23, distillation: the teacher's probabilities are mirror-averaged at the student's size;
    its labels survive a save and load; the type stage's real pools keep their place, scaled to the real share."""
    from LungLesionQuantLib.training import distill
    from LungLesionQuantLib.training.pools import LesionData
    from LungLesionQuantLib.training.teacher import build_teacher

    semiseg = frame_slices(read_semiseg_train(shared("semiseg_train").parent)[0], 48)
    torch.manual_seed(0)
    model = build_teacher()
    images = semiseg.images[:3]
    probs = distill.teacher_probabilities(model, images, 64)
    assert probs.shape == (3, 3, 48, 48) and np.allclose(probs.sum(axis=1), 1, atol=1e-2)
    mirrored = distill.teacher_probabilities(model, images[..., ::-1].copy(), 64)
    assert np.allclose(mirrored, probs[..., ::-1], atol=1e-2)
    taught = distill.TeacherLabels([SliceSet(images, probs.argmax(axis=1).astype(np.uint8), [], [])],
                                   [SliceSet(semiseg.images[3:5], semiseg.labels[3:5], [], [])])
    taught.save(tmp_path / "labels.npz")
    back = distill.TeacherLabels.load(tmp_path / "labels.npz")
    assert np.array_equal(back.split[0].labels, taught.split[0].labels)
    assert np.array_equal(back.unlabelled[0].images, taught.unlabelled[0].images)
    lesion = LesionData([semiseg, semiseg], [])
    assert [p.share for p in distill.type_pools(lesion, None, np.arange(40))] == [p.share for p in lesion.pools("type", np.arange(40))]
    pools = distill.type_pools(lesion, back, np.arange(40))
    assert sum(p.share for p in pools) == pytest.approx(1.0)
    assert [len(p.images) for p in pools] == [40, 40, 3, 2]  # the real GGO/Cons slices, then the teacher's
    assert sum(p.share for p in pools[2:]) == pytest.approx(sum(distill.STUDENT_SHARES.values()))
