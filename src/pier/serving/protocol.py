"""uvicorn's httptools protocol with HTTP-level errors answered as JSON.

A request that cannot be parsed as HTTP (a malformed chunk size, a non-numeric Content-Length,
a broken request line) never reaches the ASGI app: uvicorn answers it itself with a plain-text
"Invalid HTTP request received." docs/serving.md promises JSON for every error, so this
subclass overrides the one method that writes that answer (`send_400_response`, uvicorn's own
hook for it) and leaves parsing, keep-alive and flow control to uvicorn. Written here because
uvicorn has no setting for the body of its 400s.

`json_errors_protocol(body)` returns the protocol class to pass as `uvicorn.Config(http=...)`:
`body(message)` gives the JSON the server's clients expect (the model server writes MLflow's
`{"error_code": "BAD_REQUEST", "message": ...}`, the platform AWS's `{"message": ...}`).
The connection is closed after the answer, as uvicorn does: the stream is no longer framed.
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

ErrorBody = Callable[[str], bytes]


def json_errors_protocol(body: ErrorBody) -> type[HttpToolsProtocol]:
    """An HttpToolsProtocol subclass whose HTTP-level 400s carry `body(message)` as JSON."""

    class JsonErrorsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            payload = body(msg)
            content = [STATUS_LINE[400]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(payload)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n",
                    b"\r\n",
                    payload,
                ]
            )
            self.transport.write(b"".join(content))
            self.transport.close()

    return JsonErrorsProtocol
