"""The shell blocks of README.md and docs/*.md, in reading order, with their run markers.

A fenced block tagged `bash`, `sh` or `shell` is a step a reader runs. An HTML comment on the
line before its fence (invisible on the rendered page) changes that:

    <!-- docs-run: skip: why it is not run (AWS only, a placeholder, an hour of benchmark) -->
    <!-- docs-run: expect-fail: why it exits non-zero -->

`console` blocks are transcripts (a `$ ` prompt, then the output) and are never run; so are
`python` blocks, which continue a session shown above them (a runnable Python step is a bash
block with `python - <<'EOF'`). CONTRIBUTING.md says the same for writers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The order a reader follows after `make demo`. Every page of docs/ is listed (a test checks).
ORDER = (
    "README.md",
    "docs/quickstart.md",
    "docs/cli.md",
    "docs/mlflow-deployments.md",
    "docs/hosting.md",
    "docs/serving.md",
    "docs/environments.md",
    "docs/build.md",
    "docs/containers.md",
    "docs/spec.md",
    "docs/cloudformation.md",
    "docs/console.md",
    "docs/security.md",
    "docs/gateway.md",
    "docs/monitoring.md",
    "docs/rollouts.md",
    "docs/rollouts-registry.md",
    "docs/shadow.md",
    "docs/ab.md",
    "docs/architecture.md",
    "docs/benchmarks.md",
)
SHELLS = frozenset({"bash", "sh", "shell"})
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
_MARKER = re.compile(r"^<!--\s*docs-run:\s*(skip|expect-fail)\s*:\s*(\S.*?)\s*-->$")
_MENTION = re.compile(r"docs-run", re.IGNORECASE)


class MarkerError(ValueError):
    """A `docs-run` comment that is not one of the two forms, or not before a shell block."""


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository, e.g. docs/hosting.md
    line: int  # of the opening fence, 1-based
    text: str
    mode: str  # "run", "skip" or "expect-fail"
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def blocks_of(path: str, text: str) -> list[Block]:
    """The shell blocks of one Markdown page, each with its marker."""
    lines = text.split("\n")
    found: list[Block] = []
    pending: tuple[int, str, str] | None = None  # the marker's line, mode, reason
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line.strip())
        if marker:
            pending = (i + 1, marker[1], marker[2])
            i += 1
            continue
        if _MENTION.search(line) and line.lstrip().startswith("<!--"):
            raise MarkerError(
                f"{path}:{i + 1}: unreadable marker {line.strip()!r}; write "
                "<!-- docs-run: skip: REASON --> or <!-- docs-run: expect-fail: REASON -->"
            )
        fence = _FENCE.match(line)
        if not fence:
            if pending and line.strip():
                raise MarkerError(f"{path}:{pending[0]}: a docs-run marker must precede a fence")
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence[1]):
            end += 1
        language = fence[2].lower()
        if language in SHELLS:
            mode, reason = (pending[1], pending[2]) if pending else ("run", "")
            body = "\n".join(lines[i + 1 : end])
            found.append(Block(path, i + 1, body, mode, reason))
        elif pending:
            raise MarkerError(
                f"{path}:{pending[0]}: a docs-run marker before a {language or 'plain'} block "
                "(only bash, sh and shell blocks run)"
            )
        pending = None
        i = end + 1
    return found


def all_blocks(root: Path = ROOT) -> list[Block]:
    return [b for path in ORDER for b in blocks_of(path, (root / path).read_text())]


def script(blocks: list[Block]) -> str:
    """One bash script: every block in order, in one shell. A block that fails stops it with
    `::docs-run failed` naming the block and the command; an expect-fail block that succeeds
    stops it too."""
    out = [
        "set -eEo pipefail",
        "trap 'echo \"::docs-run failed in $DOCS_RUN_BLOCK: $BASH_COMMAND (exit $?)\" >&2' ERR",
    ]
    for block in blocks:
        if block.mode == "skip":
            out.append(f"echo '::docs-run skip {block.where}: {_quote(block.reason)}'")
            continue
        out.append(f"DOCS_RUN_BLOCK='{block.where}'")
        out.append(f"echo '::docs-run begin {block.where}'")
        if block.mode == "run":
            out.append(block.text)
        else:
            out += [
                "set +eE +o pipefail; trap - ERR",
                "{",
                block.text,
                "}; DOCS_RUN_STATUS=$?",
                "set -eEo pipefail",
                "trap 'echo \"::docs-run failed in $DOCS_RUN_BLOCK: $BASH_COMMAND (exit $?)\" >&2'"
                " ERR",
                'if [ "$DOCS_RUN_STATUS" -eq 0 ]; then',
                f"  echo '::docs-run {block.where} was marked expect-fail but succeeded' >&2",
                "  exit 1",
                "fi",
            ]
    out.append("echo '::docs-run all blocks ran'")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return text.replace("'", "'\\''")
