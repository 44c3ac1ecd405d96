"""Monitoring schedules: SageMaker's data-quality jobs, run by the platform on their cron.

cron (when a schedule runs, and its window) → scheduler (due schedules, one execution per
thread, statuses in the state store) → analysis (one execution: captured window → profile →
checks against the baseline → report files); model_baselines stores baselines with MLflow
model versions.
"""
