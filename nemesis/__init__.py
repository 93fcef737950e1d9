"""Fault injectors: partition, kill, pause, clock, packet loss, and their combination."""
from .combined import FAULTS, make_nemesis

__all__ = ["FAULTS", "make_nemesis"]
