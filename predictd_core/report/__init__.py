"""The cross-validation report: ``OUTPUT/report.html``, predictd against the same-assay baseline."""

from predictd_core.report.build import report_data
from predictd_core.report.data import ReportData, better_side, direction
from predictd_core.report.figures import (assay_summary_png, convergence_png, factor_heatmap_png, scatter_png,
                                          track_panel_png)
from predictd_core.report.html import render_report, write_report

__all__ = ["ReportData", "assay_summary_png", "better_side", "convergence_png", "direction", "factor_heatmap_png",
           "render_report", "report_data", "scatter_png", "track_panel_png", "write_report"]
