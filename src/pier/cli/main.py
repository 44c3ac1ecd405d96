"""`pier` command line: the entry point.

`pier serve` is every instance's cold start (and the container's, through `serve`), so it loads
only the root and its own command (pier.cli.root, pier.cli.serve_command: no other command
module, no platform settings, no rich until something is printed); any other call loads the
whole command line (pier.cli.app). Both parse `serve` with the same definition.
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        import gc

        # Cold start: no collections while the CLI, the server and the model load (all of it
        # long-lived); the server re-enables the collector once the model is warm.
        gc.disable()
        from pier.cli.root import new_root

        new_root()()
    else:
        from pier.cli.app import app

        app()


def __getattr__(name: str) -> Any:
    """`pier.cli.main.app`: the whole command line (pier.cli.app), for tests and tools."""
    if name == "app":
        from pier.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
