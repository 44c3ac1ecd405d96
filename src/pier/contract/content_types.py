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


#: What pier writes, in its order of preference (for a tie the client's order cannot break).
RESPONSE_TYPES = (JSON, CSV, JSONLINES)


def _quality(params: list[str]) -> float:
    """An Accept item's q-value; a missing or unparseable one is 1 (RFC 9110: 0 to 1)."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 1.0
            return q if 0.0 <= q <= 1.0 else 1.0
    return 1.0


def _specificity(item: str, response_type: str) -> int:
    """How closely a media range names `response_type`: 3 exactly, 2 type/*, 1 */*, 0 not."""
    if item == response_type or (response_type == JSONLINES and item in JSONLINES_ALIASES):
        return 3
    if item == response_type.split("/", 1)[0] + "/*":
        return 2
    return 1 if item == "*/*" else 0


def choose_response_type(accept: str | None) -> str:
    """The response type for an Accept header, negotiated as RFC 9110 says.

    Each type pier writes takes the q-value of the most specific range that names it (q=0:
    not acceptable); the highest q wins. A tie goes to the type the client listed first (as
    pier answered before it read q-values: `text/csv, application/json` is CSV), and a tie
    within one range (`*/*`) to pier's order (JSON, CSV, JSON Lines). When no type pier
    writes is acceptable the answer is JSON, not a 406: MLflow's server ignores Accept, and
    clients that send a generic or unusual Accept today must keep getting the JSON they get
    from it.
    """
    if not accept:
        return JSON
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        mime, *params = item.split(";")
        ranges.append((mime.strip().lower(), _quality(params)))
    best, best_rank = JSON, (0.0, 0)
    for response_type in RESPONSE_TYPES:
        # The most specific range naming the type; among equally specific ones, the first.
        specificity, first, q = max(
            (_specificity(mime, response_type), -position, q)
            for position, (mime, q) in enumerate(ranges)
        )
        rank = (q, first)
        if specificity and q > 0 and (best_rank[0] == 0 or rank > best_rank):
            best, best_rank = response_type, rank
    return best
