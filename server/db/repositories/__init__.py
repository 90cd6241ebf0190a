"""Repositories: intention-revealing queries; the only place that writes SQL."""
