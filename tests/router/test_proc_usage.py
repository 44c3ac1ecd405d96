"""proc_usage counts an instance's whole process tree: workers, and a server started by an init."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from pier.router.metrics import _proc_one, proc_usage

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
HOLD = "import time\nblock = bytearray(64 * 1024 * 1024)\ntime.sleep(30)"


def test_a_parent_that_only_waits_is_charged_for_its_childrens_cpu_and_memory(
    tmp_path: Path,
) -> None:
    # The shape of a container whose pid 1 is an init: the parent waits, the children work.
    (tmp_path / "busy.py").write_text(BUSY)
    (tmp_path / "hold.py").write_text(HOLD)
    python = shlex.quote(sys.executable)
    script = f"{python} {tmp_path / 'busy.py'} & {python} {tmp_path / 'hold.py'} & wait"
    parent = subprocess.Popen(["bash", "-c", script])
    try:
        deadline = time.monotonic() + 20
        usage = proc_usage(parent.pid)
        while time.monotonic() < deadline:
            usage = proc_usage(parent.pid)
            if usage is not None and usage[0] >= 0.5 and usage[1] >= 64 * 1024 * 1024:
                break
            time.sleep(0.2)
        alone = _proc_one(parent.pid)
        assert usage is not None
        assert alone is not None
        assert usage[0] >= 0.5, usage  # the busy child's CPU
        assert usage[1] >= 64 * 1024 * 1024, usage  # the holding child's resident block
        assert alone[0] < 0.5  # the parent's own: next to nothing
        assert alone[1] < 64 * 1024 * 1024
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_has_no_usage() -> None:
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    assert proc_usage(2**22 + 12345) is None
