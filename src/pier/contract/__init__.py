"""Wire shapes only: content types and headers of the SageMaker container contract. No I/O."""
