"""The control plane: SageMaker API rules (service), reconcile loop, JSON 1.1 API."""
