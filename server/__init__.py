"""Telemedicine consultation platform for a voluntary health insurer (VHI)."""

__version__ = "0.1.0"
