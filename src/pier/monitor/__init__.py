"""Monitoring: data capture, statistics and drift, schedules, model quality, alarms.

The statistics (profile, sketches, summaries, baseline, drift, violations, formats, quality
metrics, alarm evaluation) only compute; capture, the readers of captured data and ground
truth, the scheduler and the alarm runner around them do the I/O.
"""
