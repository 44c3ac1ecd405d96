"""Monitoring: data capture, statistics and drift, schedules, model quality, alarms.

One sub-package per job: capture/ (write and read SageMaker's capture files), stats/
(profiles, baselines, drift, violations), quality/ (ground truth joined with captured
predictions), alarms/ (CloudWatch metric alarms), schedules/ (monitoring schedules and their
executions, built on capture/ and stats/). errors.py holds the one error they share.

The statistics (stats/, quality metrics, alarm evaluation) only compute; capture, the readers
of captured data and ground truth, the scheduler and the alarm runner around them do the I/O.
"""
