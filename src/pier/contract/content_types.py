"""Content types of the container contract and how a Content-Type/Accept header is read."""

from __future__ import annotations

from dataclasses import dataclass, field

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
JSONLINES = "application/jsonlines"
JSONLINES_ALIASES = frozenset({JSONLINES, "application/jsonl", "application/x-jsonlines"})

#: What POST /invocations reads (the same three as `mlflow models serve`).
REQUEST_TYPES = (JSON, CSV, PARQUET)


@dataclass(frozen=True)
class MediaType:
    mime: str
    params: dict[str, str] = field(default_factory=dict)


def parse_media_type(header: str) -> MediaType:
    """Split ``type/subtype; k=v; ...`` as MLflow does (lower-cased type, raw parameter names)."""
    parts = [p.strip() for p in header.split(";")]
    params: dict[str, str] = {}
    for pair in parts[1:]:
        key, _, value = pair.partition("=")
        params[key] = value
    return MediaType(parts[0].lower(), params)


def choose_response_type(accept: str | None) -> str:
    """The response type for an Accept header: the first listed type pier can write.

    Anything else means JSON: MLflow's server ignores Accept, and clients that send a generic
    or unusual Accept today must keep getting the JSON they get from it.
    """
    if not accept:
        return JSON
    for item in accept.split(","):
        mime = item.split(";", 1)[0].strip().lower()
        if mime in ("*/*", "application/*", JSON):
            return JSON
        if mime == CSV:
            return CSV
        if mime in JSONLINES_ALIASES:
            return JSONLINES
    return JSON
