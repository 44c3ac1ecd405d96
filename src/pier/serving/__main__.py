"""The `serve` executable: the SageMaker container entry point.

SageMaker starts a container as `<image> serve`; with no options this loads /opt/ml/model and
binds 0.0.0.0:${SAGEMAKER_BIND_TO_PORT:-8080}. SAGEMAKER_MODEL_SERVER_WORKERS and
SAGEMAKER_MODEL_SERVER_TIMEOUT are honoured; PIER_* variables override the last two, while
SAGEMAKER_BIND_TO_PORT wins over PIER_PORT (the platform says where to listen; docs/serving.md).
"""

from __future__ import annotations

import sys

from pydantic import ValidationError

from pier.settings import ContainerServeSettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "serve":  # `docker run image serve` passes the word along
        args = args[1:]
    if args:
        print(
            f"serve: unexpected arguments {args!r}; configure with environment variables "
            "(see `pier serve --help` for a command line).",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        settings = ContainerServeSettings()
    except ValidationError as exc:
        print(f"serve: invalid configuration:\n{exc}", file=sys.stderr)
        sys.exit(2)
    import gc

    gc.disable()  # cold start, as `pier serve` does: re-enabled once the model is warm
    from pier.serving.server import run

    sys.exit(run(settings))


if __name__ == "__main__":
    main()
