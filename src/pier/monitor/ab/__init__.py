"""A/B analysis that is safe to peek at: per-variant sufficient statistics (sequential, pure
numpy) and an endpoint's experiment read from pier's CloudWatch series and ground truth
(analysis)."""
