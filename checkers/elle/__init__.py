"""Elle: transactional isolation anomalies in histories of list-append and rw-register
transactions, and the consistency models they rule out (after Kingsbury & Alvaro, "Elle:
Inferring Isolation Anomalies from Experimental Observations", VLDB 2020)."""
from .checker import ElleChecker, check, check_elle, check_path

__all__ = ["ElleChecker", "check", "check_elle", "check_path"]
