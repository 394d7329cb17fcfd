"""`gotrace report`: one self-contained HTML page from a JSON-lines capture.

capture reads the spans back, stats/dependencies/traces compute what the page shows (put
together by analysis), charts/graph/page draw it, write ties them together.
"""

from gotrace.report.analysis import DEFAULT_SLOWEST, Report, analyze
from gotrace.report.capture import load_capture
from gotrace.report.write import default_output, write_report

__all__ = ["DEFAULT_SLOWEST", "Report", "analyze", "default_output", "load_capture",
           "write_report"]
