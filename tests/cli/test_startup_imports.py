"""`pier` starts light: every instance runs `pier serve`, so what `import pier.cli.main` pulls
in is paid on each instance's cold start and each CLI call. The heavy parts (the CloudFormation
engine and botocore's service model, boto3, MLflow, SQLAlchemy) load only in the command that
needs them."""

from __future__ import annotations

import subprocess
import sys

from pier.cli import options
from pier.iac.cloudformation import execute

HEAVY = ("pier.iac", "pier.demo", "botocore", "boto3", "mlflow", "sqlalchemy", "yaml")


def test_cli_import_leaves_heavy_modules_alone() -> None:
    code = (
        "import sys, pier.cli.main\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        f"or m.startswith({HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_apply_timeout_default_matches_the_engine() -> None:
    assert options.DEFAULT_TIMEOUT == execute.DEFAULT_TIMEOUT


def test_serve_loads_only_its_own_command() -> None:
    """`pier serve` (every instance's cold start) parses its command line without the other
    commands' modules, and without pandas or MLflow (they load after the bind, with the model)."""
    code = (
        "import sys\n"
        "sys.argv = ['pier', 'serve', '--help']\n"
        "from pier.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('pier.cli.')"
        " or m.split('.')[0] in ('pandas', 'mlflow', 'numpy')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = out.strip().splitlines()[-1]
    assert loaded == "['pier.cli.main', 'pier.cli.root', 'pier.cli.serve_command']"


def test_the_model_server_binds_before_pandas_loads() -> None:
    """What pier.serving.server imports is loaded before the socket is bound: no numpy, pandas
    or MLflow (they come with the model, after the bind; /ping says 503 meanwhile)."""
    code = (
        "import sys, pier.serving.server, pier.serving.__main__\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'pandas', 'pyarrow', 'mlflow', 'sklearn')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
