"""ARNs of pier's resources, shaped like SageMaker's (names lower-cased inside, as AWS does)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArnFactory:
    region: str
    account: str

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"

    def model(self, name: str) -> str:
        return self._arn("model", name)

    def endpoint_config(self, name: str) -> str:
        return self._arn("endpoint-config", name)

    def endpoint(self, name: str) -> str:
        return self._arn("endpoint", name)

    def inference_experiment(self, name: str) -> str:
        return self._arn("inference-experiment", name)

    def owns(self, arn: str) -> bool:
        return arn.startswith(f"arn:aws:sagemaker:{self.region}:{self.account}:")
