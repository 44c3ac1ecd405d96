"""The boto3 contract tests: real boto3 clients against a running `pier up` (conftest.py)."""
