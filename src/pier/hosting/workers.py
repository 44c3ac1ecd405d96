"""How many worker processes an instance's model server runs, when its Environment says not.

The model server's own default (pier.settings.default_workers) is one worker per CPU: right for
a server alone on its machine. An instance shares the machine with the platform, which routes
every request, so the backends pass `pier.settings.instance_workers()` instead (one CPU left to
the platform; 1 on a 2-core machine) unless the model's Environment names PIER_WORKERS or
SageMaker's SAGEMAKER_MODEL_SERVER_WORKERS (docs/hosting.md, "Workers").
"""

from __future__ import annotations

from collections.abc import Mapping

from pier.settings import instance_workers

NAMES = ("PIER_WORKERS", "SAGEMAKER_MODEL_SERVER_WORKERS")


def workers_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to an instance's environment so that it runs the intended number
    of workers: none when PIER_WORKERS is given; PIER_WORKERS copied from
    SAGEMAKER_MODEL_SERVER_WORKERS (which `pier serve` alone does not read); else both set to
    the platform's default."""
    if "PIER_WORKERS" in environment:
        return {}
    given = environment.get("SAGEMAKER_MODEL_SERVER_WORKERS")
    if given is not None:
        return {"PIER_WORKERS": given}
    count = str(instance_workers())
    return dict.fromkeys(NAMES, count)
