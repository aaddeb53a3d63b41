"""The report's sections: their anchors and titles, in page order.

The verdict's findings point to a section by its anchor (``report.html#sampling``);
the table of contents lists the sections a result has. Anchors are stable:
messages elsewhere (command-line warnings) may refer to them.
"""

from __future__ import annotations

VERDICT = "verdict"
CALIBRATION = "calibration"
SELECTION = "selection"
EM = "em"
SAMPLING = "sampling"
MODES = "modes"
PARAMETERS = "parameters"
ASSIGNMENTS = "assignments"
PREDICTIVE = "predictive"
PLOTS = "plots"
SETTINGS = "settings"
VERSIONS = "versions"

TITLES = {
    VERDICT: "Verdict",
    CALIBRATION: "Calibration (SBC)",
    SELECTION: "Number of components",
    EM: "EM estimate",
    SAMPLING: "Sampling diagnostics",
    MODES: "Modes",
    PARAMETERS: "EM MAP against the posterior",
    ASSIGNMENTS: "Assignments",
    PREDICTIVE: "Predictive fit",
    PLOTS: "Plots",
    SETTINGS: "Settings",
    VERSIONS: "Versions",
}
ORDER = tuple(TITLES)
CALIBRATION_ONLY = (CALIBRATION,)  # sections of a calibrate result's page only
MULTIMODAL_ONLY = (MODES,)  # sections of a posterior whose chains sit in more than one mode only


def plot_anchor(name: str) -> str:
    """Anchor of one plot's figure (``plot-trace``)."""
    return f"plot-{name}"
