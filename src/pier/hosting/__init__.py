"""Hosting backends: where instances run (process backend; later containers, Kubernetes...)."""
