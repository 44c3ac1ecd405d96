"""Monitoring: data capture, statistics and drift."""
