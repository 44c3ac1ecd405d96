"""Data capture: sampled invocations written as SageMaker's JSONL records, and read back as rows.

settings (pier.contract.capture_config) → capture (the hot-path `Capturer`: sample, queue,
lifecycle) → record (SageMaker's record and file names) → writer (files, rolling, the S3 spool
and upload); captured reads a window of those files back into row batches for the statistics.
"""
