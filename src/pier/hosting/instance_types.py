"""What an InstanceType means on this machine: the CPU and memory limits of a container.

SageMaker's instance types name hardware; the Docker backend turns them into a container's
limits (HostConfig.NanoCpus and HostConfig.Memory) so that a model sized for `ml.m5.large`
sees two CPUs and 8 GiB here too. CPUs are capped at this host's count (an `ml.m5.4xlarge` on
a 2-core machine gets 2 CPUs: Docker refuses more than the host has); memory is not capped
(a limit above the host's memory is simply never reached). An instance type missing from the
table runs without limits, which the backend logs.

The table (vCPUs, GiB of memory) is AWS's published figures for the ml.* instance types
SageMaker hosting offers; docs/containers.md shows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

GIB = 1024**3

INSTANCE_TYPES: dict[str, tuple[int, float]] = {
    # burstable
    "ml.t2.medium": (2, 4),
    "ml.t2.large": (2, 8),
    "ml.t2.xlarge": (4, 16),
    "ml.t2.2xlarge": (8, 32),
    # general purpose
    "ml.m4.xlarge": (4, 16),
    "ml.m4.2xlarge": (8, 32),
    "ml.m4.4xlarge": (16, 64),
    "ml.m5.large": (2, 8),
    "ml.m5.xlarge": (4, 16),
    "ml.m5.2xlarge": (8, 32),
    "ml.m5.4xlarge": (16, 64),
    "ml.m5.12xlarge": (48, 192),
    "ml.m5.24xlarge": (96, 384),
    "ml.m6i.large": (2, 8),
    "ml.m6i.xlarge": (4, 16),
    "ml.m6i.2xlarge": (8, 32),
    # compute optimised
    "ml.c5.large": (2, 4),
    "ml.c5.xlarge": (4, 8),
    "ml.c5.2xlarge": (8, 16),
    "ml.c5.4xlarge": (16, 32),
    "ml.c5.9xlarge": (36, 72),
    "ml.c5.18xlarge": (72, 144),
    "ml.c6i.large": (2, 4),
    "ml.c6i.xlarge": (4, 8),
    # memory optimised
    "ml.r5.large": (2, 16),
    "ml.r5.xlarge": (4, 32),
    "ml.r5.2xlarge": (8, 64),
    "ml.r5.4xlarge": (16, 128),
    # accelerated (the GPUs are not passed through: CPU and memory only)
    "ml.g4dn.xlarge": (4, 16),
    "ml.g4dn.2xlarge": (8, 32),
    "ml.g5.xlarge": (4, 16),
    "ml.g5.2xlarge": (8, 32),
    "ml.p3.2xlarge": (8, 61),
    "ml.inf1.xlarge": (4, 8),
}


@dataclass(frozen=True)
class Limits:
    """A container's limits: `nano_cpus` (1e9 per CPU) and `memory_bytes`."""

    nano_cpus: int
    memory_bytes: int

    @property
    def cpus(self) -> float:
        return self.nano_cpus / 1e9


def limits(instance_type: str, host_cpus: int | None = None) -> Limits | None:
    """The limits of `instance_type` on a host with `host_cpus` CPUs (default: this one's);
    None for a type not in INSTANCE_TYPES."""
    known = INSTANCE_TYPES.get(instance_type)
    if known is None:
        return None
    vcpus, gib = known
    host = host_cpus if host_cpus is not None else (os.cpu_count() or 1)
    return Limits(nano_cpus=int(min(vcpus, host) * 1e9), memory_bytes=int(gib * GIB))
