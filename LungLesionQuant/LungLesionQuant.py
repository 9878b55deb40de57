"""LungLesionQuant: segment COVID-19 lung lesions (LungN / GGO / Cons) on chest CT and measure them.

This file is glue between Slicer's GUI and the core package ``LungLesionQuantLib``: no
science lives here. Everything the logic does to the scene is in ``LungLesionQuantLib.scene.actions``
and is tested outside Slicer with slicer-core.
"""
import contextlib
import os
import pathlib
import sys
import time

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin
from typing import Annotated

_DEFAULT_FOLDER = pathlib.Path.home() / "Documents" / "LungLesionQuant"

# In a source checkout (additional module path) the core sits beside this module's folder;
# in an installed extension it sits beside this file.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.append(_REPO)

SEGMENT_HELP = """
<p><b>Segment</b> runs a cascade of three 2D networks (lung → lesion → ground glass vs consolidation)
on the selected CT and creates a <i>new</i> segmentation with segments <b>LungN</b> (normal lung,
purple), <b>GGO</b> (ground-glass opacity, green) and <b>Cons</b> (consolidation, yellow), and a table
of volumes (cm³) and extents (% of lung), whole lung and per side. Running it again never replaces
an existing (possibly edited) segmentation.</p>
<p>Correct the segments with the Segment Editor, then click <b>Update measurements</b>. Segments are
found by their terminology, else by name. Defined results for irregular edits, each also shown as a
warning: a missing segment counts as empty; a voxel in several segments counts once, with priority
Cons over GGO over LungN; lesion that does not touch LungN still counts, as lesion and as lung
(lung = LungN + GGO + Cons).</p>
<p><b>Export</b> writes the CLI's case folder: measurements.csv, segmentation.seg.nrrd,
labels.nii.gz (0/1/2/3), overlay.png, report.pdf, and segmentation.dcm (DICOM SEG) when the CT
was loaded from DICOM. Automatic results must be checked before clinical use.</p>
<p><b>Chest radiographs</b>: a frontal radiograph loaded as a one-slice volume is recognised and
segmented into <b>Lung</b> and <b>Opacity</b> (ground glass and consolidation together, as a
radiograph cannot tell them apart); the table gives lung and opacity areas (mm² where the image
has a pixel spacing, else pixels) and opacity % of lung, per side and per upper / middle / lower
zone (Tang et al. 2020).</p>
"""


class LungLesionQuant(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "LungLesionQuant"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = ["Segmentations"]
        self.parent.contributors = ["LungLesionQuant developers"]
        self.parent.helpText = SEGMENT_HELP
        self.parent.acknowledgementText = (
            "Method after Bartoli A., Fournel J., et al., Value and prognostic impact of a deep learning segmentation "
            "model of COVID-19 lung lesions on low-dose chest CT, Research in Diagnostic and Interventional Imaging "
            "2022, doi:10.1016/j.redii.2022.100003; Voulodimos A., Protopapadakis E., Katsamenis I., Doulamis A., "
            "Doulamis N., Deep learning models for COVID-19 infected area segmentation in CT images, 2020; "
            "Tang H., Sun N., Li Y., Xia H., Deep learning segmentation model for automated detection of the opacity "
            "regions in the chest X-rays of the Covid-19 positive patients and the application for disease severity, "
            "medRxiv 2020.10.19.20215483. "
            "Models trained on public data from MedSeg/SIRM, Zenodo 3757476 (Ma et al.), TCIA MIDRC-RICORD-1A, "
            "TCIA Lung-PET-CT-Dx and TCIA COVID-19-NY-SBU; see the model cards.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The bundled sample CT in the Sample Data module (category LungLesionQuant), as the
    scripted-module template registers its samples; it is a local file, so "downloading" copies it."""
    import SampleData
    from LungLesionQuantLib.resources import SAMPLE_CT

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="LungLesionQuant", sampleName="LungLesionQuantSampleCT",
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "LungLesionQuant.png"),
        uris=SAMPLE_CT.as_uri(), fileNames=SAMPLE_CT.name, nodeNames="LungLesionQuantSampleCT", loadFileType="VolumeFile")


@parameterNodeWrapper
class LungLesionQuantParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    segmentation: vtkMRMLSegmentationNode
    table: vtkMRMLTableNode
    referenceSegmentation: vtkMRMLSegmentationNode
    testSegmentation: vtkMRMLSegmentationNode
    agreementTable: vtkMRMLTableNode
    oddsRatioTable: vtkMRMLTableNode
    # Output and study folders: parameters (saved with the scene), defaulting to a folder in the
    # user's Documents rather than Slicer's working folder.
    exportFolder: pathlib.Path = _DEFAULT_FOLDER / "cases"
    referenceFolder: pathlib.Path = _DEFAULT_FOLDER
    testFolder: pathlib.Path = _DEFAULT_FOLDER
    agreementOutputFolder: pathlib.Path = _DEFAULT_FOLDER / "agreement"
    extentFolder: pathlib.Path = _DEFAULT_FOLDER / "cases"
    riskOutputFolder: pathlib.Path = _DEFAULT_FOLDER / "risk"
    # The risk panel's last fit, saved with the scene: its table, column choices and model.
    riskCohort: str = ""
    riskIdColumn: str = ""
    riskOutcome: str = ""
    riskScore: str = ""
    riskCovariates: list[str]  # unspecified default: an empty list
    riskModelPath: str = ""


class LungLesionQuantWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, logic=None):
        """``logic``: the logic to drive (tests pass their own); a LungLesionQuantLogic by default."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LungLesionQuant.ui"))
        self.layout.addWidget(uiWidget)
        self._uiWidget = uiWidget
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.logic or LungLesionQuantLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.updateButton.connect("clicked(bool)", self.onUpdateMeasurements)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.compareButton.connect("clicked(bool)", self.onCompareNodes)
        self.ui.compareFoldersButton.connect("clicked(bool)", self.onCompareFolders)
        self.ui.cohortPathLineEdit.connect("currentPathChanged(QString)", self.onCohortChanged)
        self.ui.fitButton.connect("clicked(bool)", self.onFitRisk)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)
        self.initializeParameterNode()

    def cleanup(self):
        self._cancelSegmentation()
        self.removeObservers()

    def onReload(self):
        """Reload the core package too, so that edits to LungLesionQuantLib take effect."""
        for name in [n for n in sys.modules if n == "LungLesionQuantLib" or n.startswith("LungLesionQuantLib.")]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event):
        self._cancelSegmentation()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            if self._parameterNode.riskCohort and self.ui.cohortPathLineEdit.currentPath != self._parameterNode.riskCohort:
                self.ui.cohortPathLineEdit.currentPath = self._parameterNode.riskCohort  # refills and reselects the columns
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None):
        p = self._parameterNode
        self.ui.segmentButton.enabled = bool(p and p.inputVolume)
        self.ui.updateButton.enabled = bool(p and p.inputVolume and p.segmentation)
        self.ui.exportButton.enabled = bool(p and p.inputVolume and p.segmentation and str(p.exportFolder))
        self.ui.tableView.setMRMLTableNode(p.table if p else None)
        self.ui.compareButton.enabled = bool(p and p.inputVolume and p.referenceSegmentation and p.testSegmentation)
        self.ui.agreementTableView.setMRMLTableNode(p.agreementTable if p else None)
        self.ui.oddsRatioTableView.setMRMLTableNode(p.oddsRatioTable if p else None)
        self.ui.predictButton.enabled = bool(p and p.riskModelPath and os.path.isfile(p.riskModelPath))

    def _setBusy(self, busy):
        """Every push button of the panel disabled while one action runs (a second click during pip,
        a long step or a running segmentation would start it twice), restored after."""
        if busy:
            self._disabled = [(b, b.enabled) for b in slicer.util.findChildren(self._uiWidget, className="QPushButton")]
            for button, _ in self._disabled:
                button.enabled = False
            return
        for button, was in getattr(self, "_disabled", []):
            button.enabled = was
        self._disabled = []
        self._updateButtons()

    @contextlib.contextmanager
    def _busy(self):
        self._setBusy(True)
        try:
            yield
        finally:
            self._setBusy(False)

    def _ensure(self, feature):
        """The packages ``feature`` needs, installed after the user agrees, the buttons disabled
        while pip runs; a failure is shown in a dialog, not only in the Python console."""
        try:
            with self._busy(), slicer.util.tryWithErrorDisplay("Installing LungLesionQuant's Python packages failed.", waitCursor=True):
                return self.logic.ensureDependencies(feature, interactive=True)
        except Exception:  # noqa: BLE001 — shown in the dialog above; the action does not start
            return False

    def _showWarnings(self, warnings):
        self.ui.warningsLabel.text = "\n".join(f"⚠ {w}" for w in warnings) if warnings else "No warnings."

    def onSegment(self):
        """Segment in another process, polled by a timer: Slicer stays responsive, the dialog
        shows each step and its Cancel stops the process at once (the scene is left as it was)."""
        if not self._ensure("segment"):
            return
        p = self._parameterNode
        volume = p.inputVolume
        job = None
        with slicer.util.tryWithErrorDisplay("Segmentation failed.", waitCursor=True):
            job = self.logic.startSegmentation(volume, p.device)  # checks the volume before the slow part
        if job is None:
            return
        dialog = slicer.util.createProgressDialog(labelText="Segmenting lungs and lesions...", maximum=100)
        dialog.setCancelButtonText("Cancel")
        dialog.setWindowModality(qt.Qt.NonModal)
        timer = qt.QTimer()
        timer.setInterval(200)
        self._setBusy(True)
        self._segmenting = (job, timer, dialog)

        def tick():
            for step in job.poll():
                dialog.labelText = f"{step.stage}: {step.done}/{step.total}"
                dialog.value = int(100 * step.done / max(step.total, 1))
            if dialog.wasCanceled:
                self._cancelSegmentation()
                slicer.util.showStatusMessage("Segmentation cancelled.", 3000)
            elif not job.running:
                self._finishSegmentation(volume)

        timer.connect("timeout()", tick)
        timer.start()

    def _finishSegmentation(self, volume):
        job, timer, dialog = self._segmenting
        self._segmenting = None
        timer.stop()
        dialog.close()
        try:
            with slicer.util.tryWithErrorDisplay("Segmentation failed.", waitCursor=True):
                seg, table, measured = self.logic.finishSegmentation(job, volume)
                p = self._parameterNode
                p.segmentation, p.table = seg, table
                slicer.util.showStatusMessage("Building 3D surfaces of the segments...")
                slicer.app.processEvents()
                seg.CreateClosedSurfaceRepresentation()
                slicer.util.showStatusMessage("Segmentation done.", 3000)
                self._showWarnings(measured.warnings)
        finally:
            self._setBusy(False)

    def _cancelSegmentation(self):
        """Stop a running segmentation (Cancel, closing the scene, reloading the module)."""
        if not getattr(self, "_segmenting", None):
            return
        job, timer, dialog = self._segmenting
        self._segmenting = None
        timer.stop()
        job.cancel()
        dialog.close()
        self._setBusy(False)

    def onUpdateMeasurements(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Measuring failed.", waitCursor=True):
            table, measured = self.logic.updateMeasurements(p.segmentation, p.inputVolume, p.table)
            p.table = table
            self._showWarnings(measured.warnings)

    def onExport(self):
        if not self._ensure("export"):
            return
        from LungLesionQuantLib.pipeline import GUARDED_FILES, safe_case_name

        p = self._parameterNode
        folder = str(p.exportFolder)
        case_dir = os.path.join(folder, safe_case_name(p.inputVolume.GetName()))
        overwrite = False
        if any(os.path.exists(os.path.join(case_dir, name)) for name in GUARDED_FILES):
            if not slicer.util.confirmYesNoDisplay(f"{case_dir} already holds results. Replace them? "
                                                   "(Files changed since they were written are kept as backups.)"):
                return
            overwrite = True
        with self._busy(), slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
            os.makedirs(folder, exist_ok=True)
            result = self.logic.export(p.segmentation, p.inputVolume, folder, overwrite)
            slicer.util.showStatusMessage(f"Exported to {result.out_dir}", 5000)
            self._showWarnings(result.warnings + result.notes)  # e.g. no DICOM SEG where highdicom cannot run


    def onCompareNodes(self):
        if not self._ensure("segment"):
            return
        p = self._parameterNode
        with self._busy(), slicer.util.tryWithErrorDisplay("Comparison failed.", waitCursor=True):
            table, row, warnings = self.logic.compareNodes(p.referenceSegmentation, p.testSegmentation, p.inputVolume, p.agreementTable)
            p.agreementTable = table
            self.ui.agreementStatusLabel.text = "\n".join(["Empty-in-both labels have no Dice (see status)."] + warnings)

    def onCompareFolders(self):
        if not self._ensure("agreement"):
            return
        p = self._parameterNode
        with self._busy(), slicer.util.tryWithErrorDisplay("Cohort comparison failed.", waitCursor=True):
            table, written, result = self.logic.compareFolders(str(p.referenceFolder), str(p.testFolder),
                                                               str(p.agreementOutputFolder), p.agreementTable)
            p.agreementTable = table
            plot = next((str(path) for name, path in written.items() if name.endswith("lesion_extent_pct.png")), None)
            if plot:
                self.ui.blandAltmanLabel.setPixmap(qt.QPixmap(plot).scaledToWidth(380))
            self.ui.agreementStatusLabel.text = (f"{len(result.per_case)} cases compared, {len(result.missing)} missing, "
                                                 f"{len(result.failures)} failed; files in {p.agreementOutputFolder}")


    def onCohortChanged(self, path):
        if not self._ensure("risk"):  # reading the table needs pandas
            return
        with slicer.util.tryWithErrorDisplay("Could not read the cohort table.", waitCursor=True):
            columns = self.logic.cohortColumns(path) if os.path.isfile(path) else []
            for combo in (self.ui.idColumnComboBox, self.ui.outcomeComboBox, self.ui.scoreComboBox):
                combo.clear()
            self.ui.scoreComboBox.addItem("(none)")
            self.ui.covariatesListWidget.clear()
            for column in columns:
                self.ui.idColumnComboBox.addItem(column)
                self.ui.outcomeComboBox.addItem(column)
                self.ui.scoreComboBox.addItem(column)
                self.ui.covariatesListWidget.addItem(column)
            p = self._parameterNode
            if p and path == p.riskCohort:  # the scene's last fit: its choices again
                for combo, value in ((self.ui.idColumnComboBox, p.riskIdColumn), (self.ui.outcomeComboBox, p.riskOutcome),
                                     (self.ui.scoreComboBox, p.riskScore)):
                    if value in columns:
                        combo.currentText = value
                for row in range(self.ui.covariatesListWidget.count):
                    item = self.ui.covariatesListWidget.item(row)
                    item.setSelected(item.text() in p.riskCovariates)

    def onFitRisk(self):
        if not self._ensure("risk"):
            return
        p = self._parameterNode
        covariates = [item.text() for item in self.ui.covariatesListWidget.selectedItems()]
        score = self.ui.scoreComboBox.currentText if self.ui.scoreComboBox.currentIndex > 0 else None
        extentFolder = str(p.extentFolder)
        useExtent = os.path.isfile(os.path.join(extentFolder, "measurements.csv"))
        with self._busy(), slicer.util.tryWithErrorDisplay("Fitting failed.", waitCursor=True):
            table, written, study = self.logic.fitRisk(self.ui.cohortPathLineEdit.currentPath, self.ui.idColumnComboBox.currentText,
                                                       self.ui.outcomeComboBox.currentText, covariates,
                                                       extentFolder if useExtent else None, score,
                                                       str(p.riskOutputFolder), p.oddsRatioTable)
            p.oddsRatioTable = table
            p.riskCohort, p.riskIdColumn = self.ui.cohortPathLineEdit.currentPath, self.ui.idColumnComboBox.currentText
            p.riskOutcome, p.riskScore, p.riskCovariates = self.ui.outcomeComboBox.currentText, score or "", covariates
            p.riskModelPath = str(written["model.json"])
            self.ui.rocLabel.setPixmap(qt.QPixmap(str(written["roc.png"])).scaledToWidth(380))
            self.ui.calibrationLabel.setPixmap(qt.QPixmap(str(written["calibration.png"])).scaledToWidth(380))
            lines = [f"Model {n}: C = {m['c_statistic']:.2f} [{m['c_statistic_ci'][0]:.2f}, {m['c_statistic_ci'][1]:.2f}]"
                     + (f"; optimism-corrected C {m['internal_validation']['c_corrected']:.2f}, calibration slope "
                        f"{m['internal_validation']['calibration_slope_corrected']:.2f} (bootstrap)" if "internal_validation" in m else "")
                     for n, m in study.summary["models"].items()]
            lines += [f"{pair} (DeLong): difference {c['difference']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}], p = {c['p']:.3g}"
                      for pair, c in study.summary.get("c_statistic_comparisons", {}).items()]
            self.ui.riskStatusLabel.text = "\n".join(lines + study.summary["notes"])
            self._updateButtons()

    def onPredict(self):
        if not self._ensure("risk"):
            return
        from LungLesionQuantLib.studies.risk import split_patient_text

        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Prediction failed.", waitCursor=True):
            result, model = self.logic.predictPatient(p.riskModelPath, split_patient_text(self.ui.patientValuesLineEdit.text), p.table)
            self.ui.riskStatusLabel.text = (f"Model {model.name}: probability of '{model.outcome}' {result['probability']:.3f} "
                                            f"(95 % CI {result['ci_low']:.3f}-{result['ci_high']:.3f})")


class LungLesionQuantLogic(ScriptedLoadableModuleLogic):
    """Calls the core; usable from scripts: ``LungLesionQuantLogic().process(volumeNode)``."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LungLesionQuantParameterNode(super().getParameterNode())

    def ensureDependencies(self, feature="segment", interactive=False):
        """Install the packages ``feature`` needs (LungLesionQuant/requirements.txt) after the user
        agrees — without asking in a self-test (``testingEnabled``: nobody is there to ask) — with
        every installed package held at its version. False if the user declined."""
        from LungLesionQuantLib.dependencies import install, missing_requirements

        missing = missing_requirements(feature)
        if not missing:
            return True
        unattended = slicer.app.testingEnabled()
        if not (interactive or unattended):
            raise RuntimeError(f"missing Python packages {', '.join(missing)}; open the LungLesionQuant module and accept the install")
        if not unattended and not slicer.util.confirmOkCancelDisplay(
                "LungLesionQuant needs these Python packages, which will be installed now "
                "(Slicer's own packages are kept as they are):\n" + "\n".join(missing)):
            return False
        install(missing)
        still = missing_requirements(feature)
        if still:
            raise RuntimeError(f"installed, but still not importable: {', '.join(still)}; restart Slicer and try again")
        return True

    def _cascade(self, device, modality="ct"):
        """The CT cascade, or the radiograph model, loaded once per device."""
        from LungLesionQuantLib.segmenters import SegmenterSpec, loaded

        return loaded(SegmenterSpec(modality, device=device))

    def process(self, inputVolume, device="auto", progress=None):
        """Segment ``inputVolume`` (a CT, or a radiograph: a one-slice volume the view check calls
        one): returns (new segmentation node, new table node, measured)."""
        from LungLesionQuantLib.scene.actions import segment_volume_node, volume_modality

        self.ensureDependencies("segment")
        cascade = self._cascade(device, volume_modality(inputVolume).name)
        seg, table, measured = segment_volume_node(slicer.mrmlScene, inputVolume, cascade, progress)
        seg.SetReferenceImageGeometryParameterFromVolumeNode(inputVolume)
        return seg, table, measured

    def startSegmentation(self, inputVolume, device="auto"):
        """Check ``inputVolume`` and start segmenting it in another process (the application stays
        responsive); returns the running ``SegmentProcess`` — poll it, cancel it, or hand it to
        :meth:`finishSegmentation` once it has ended."""
        from LungLesionQuantLib.scene.actions import volume_image, volume_modality
        from LungLesionQuantLib.scene.segment_process import SegmentProcess

        self.ensureDependencies("segment")
        modality = volume_modality(inputVolume)
        return SegmentProcess(volume_image(inputVolume, modality), modality.name, device)

    def finishSegmentation(self, job, inputVolume):
        """The new segmentation node, table node and measures from an ended ``job``."""
        from LungLesionQuantLib.scene.actions import add_segmentation, volume_modality

        if not slicer.mrmlScene.IsNodePresent(inputVolume):
            job.cancel()
            raise RuntimeError(f"the volume '{inputVolume.GetName()}' was removed from the scene while it was being segmented")
        seg, table, measured = add_segmentation(slicer.mrmlScene, inputVolume, job.result(), volume_modality(inputVolume))
        seg.SetReferenceImageGeometryParameterFromVolumeNode(inputVolume)
        return seg, table, measured

    def updateMeasurements(self, segmentationNode, referenceVolume, tableNode=None):
        from LungLesionQuantLib.scene.actions import measure_segmentation

        return measure_segmentation(slicer.mrmlScene, segmentationNode, referenceVolume, tableNode)

    def export(self, segmentationNode, referenceVolume, folder, overwrite=False):
        self.ensureDependencies("export")
        from LungLesionQuantLib.scene.actions import export_segmentation

        return export_segmentation(segmentationNode, referenceVolume, folder,
                                   dicom_files=self.dicomFiles(referenceVolume), overwrite=overwrite)

    def compareNodes(self, referenceSegmentation, testSegmentation, referenceVolume, tableNode=None):
        from LungLesionQuantLib.scene.actions import compare_segmentation_nodes

        return compare_segmentation_nodes(slicer.mrmlScene, referenceSegmentation, testSegmentation, referenceVolume, tableNode)

    def compareFolders(self, referenceFolder, testFolder, outputFolder, tableNode=None):
        """The cohort study of ``lunglesionquant agreement``; the Table-2 summary as a table node."""
        self.ensureDependencies("agreement")
        from LungLesionQuantLib.scene.study_panels import compare_folders_to_table

        return compare_folders_to_table(slicer.mrmlScene, referenceFolder, testFolder, outputFolder, tableNode)

    @staticmethod
    def cohortColumns(path):
        import pandas as pd

        return list(pd.read_csv(path, nrows=1).columns)

    def fitRisk(self, cohortPath, idColumn, outcome, covariates, extentFolder, score, outputFolder, tableNode=None):
        self.ensureDependencies("risk")
        from LungLesionQuantLib.scene.study_panels import fit_risk_to_table

        return fit_risk_to_table(slicer.mrmlScene, cohortPath, idColumn, outcome, covariates, extentFolder, score,
                                 outputFolder, tableNode)

    def predictPatient(self, modelPath, patientItems, measurementsTable=None):
        """Apply model.json to typed values (``NAME=VALUE``) and, when shown, this CT's lesion extent."""
        self.ensureDependencies("risk")
        from LungLesionQuantLib.scene.study_panels import predict_from_table

        return predict_from_table(modelPath, patientItems, measurementsTable)

    @staticmethod
    def dicomFiles(volumeNode):
        """The DICOM files a volume was loaded from (empty when it did not come from DICOM)."""
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        if not uids or not getattr(slicer, "dicomDatabase", None):
            return []
        files = [slicer.dicomDatabase.fileForInstance(uid) for uid in uids]
        return files if all(files) else []


class LungLesionQuantTest(ScriptedLoadableModuleTest):
    """Runs the real cascade on the bundled sample CT inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_and_update()
        self.setUp()
        self.test_core_suite()

    def test_core_suite(self):
        """The core's pytest suite inside Slicer's Python, where a source checkout has it and
        pytest is installed (``LLQ_SELFTEST_PYTEST=1``: it takes minutes)."""
        tests = os.path.join(_REPO, "Testing", "Python")
        if not os.environ.get("LLQ_SELFTEST_PYTEST") or not os.path.isdir(tests):
            self.delayDisplay("Core pytest suite skipped (set LLQ_SELFTEST_PYTEST=1 in a source checkout)")
            return
        import pytest

        self.assertEqual(pytest.main(["-q", tests]), 0)

    def test_segment_and_update(self):
        self.delayDisplay("Loading the sample CT")
        from LungLesionQuantLib.resources import SAMPLE_CT

        path = str(SAMPLE_CT)  # found by the core: right in a source checkout and in an installed extension
        volume = slicer.util.loadVolume(path)
        logic = LungLesionQuantLogic()
        logic.ensureDependencies("segment")
        job = logic.startSegmentation(volume, device="cpu")  # as the Segment button runs it
        while job.running:
            slicer.app.processEvents()
            self.assertIsInstance(job.poll(), list)
            time.sleep(0.1)
        seg, table, measured = logic.finishSegmentation(job, volume)
        names = [seg.GetSegmentation().GetNthSegment(i).GetName() for i in range(seg.GetSegmentation().GetNumberOfSegments())]
        self.assertEqual(names, ["LungN", "GGO", "Cons"])
        self.assertTrue(3000 < measured.row["lung_volume_cm3"] < 8000)
        table, again = logic.updateMeasurements(seg, volume, table)
        self.assertAlmostEqual(again.row["lesion_volume_cm3"], measured.row["lesion_volume_cm3"], places=6)
        self.delayDisplay("Test passed")
