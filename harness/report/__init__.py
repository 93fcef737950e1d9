"""The per-run report: report.html, the plots and timeline.html (see page.py)."""
from .page import write_report
from .rundir import read_results, read_spec, repeat_command
from .summary import anomaly_types, describe_failures, verdict_word
from .timeline import write_timeline

__all__ = ["write_report", "write_timeline", "read_results", "read_spec", "repeat_command",
           "anomaly_types", "describe_failures", "verdict_word"]
