"""CloudWatch operations → the service objects that implement them.

Services register with the dispatcher; an operation `GetMetricData` is the method
`get_metric_data(params) -> dict` of the first registered service that has one. The metric
operations live in pier.control.metrics_service; alarms add theirs with a service of their
own, without touching this module or the metric service:

    api = CloudWatchApi([CloudWatchMetricsService(store), AlarmService(...)])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pier.contract import cloudwatch as wire
from pier.errors import UnknownOperationException

__all__ = ["CloudWatchApi", "Handler", "method_name"]

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def method_name(operation: str) -> str:
    """PutMetricData -> put_metric_data."""
    return "".join(
        f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(operation)
    )


class CloudWatchApi:
    def __init__(self, services: Iterable[object] = ()) -> None:
        self._services: list[object] = list(services)

    def register(self, service: object) -> None:
        self._services.append(service)

    def handler(self, operation: str) -> Handler:
        """The method serving `operation` (a CloudWatch operation name), or
        UnknownOperationException naming the operations pier serves."""
        name = method_name(operation)
        for service in self._services:
            found = getattr(service, name, None)
            if callable(found):
                handler: Handler = found
                return handler
        raise UnknownOperationException(
            f"The requested operation is not recognized by the service. pier implements "
            f"{', '.join(self.operations())} of CloudWatch, not {operation}."
        )

    def operations(self) -> list[str]:
        """The CloudWatch operations some registered service implements."""
        return sorted(
            op
            for op in wire.operation_names()
            if any(callable(getattr(s, method_name(op), None)) for s in self._services)
        )
