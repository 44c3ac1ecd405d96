"""pier: SageMaker-compatible model endpoints for MLflow models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
