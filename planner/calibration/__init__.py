"""Calibration: measure the real pair on the real machine (or read a server) and re-plan."""
