"""Pictures of a study: the Pareto scatter and the offline HTML report."""

from __future__ import annotations

from dashboards._pareto import ParetoPlotData, ParetoPoint, pareto_figure, pareto_plot_data, report_html

__all__ = ["ParetoPlotData", "ParetoPoint", "pareto_figure", "pareto_plot_data", "report_html"]
