"""The error tree. Every error carries the HTTP status and the code clients see.

Codes follow MLflow's scoring server (``BAD_REQUEST``, ``INVALID_PARAMETER_VALUE``, ...) where
MLflow has one, so clients that branch on ``error_code`` keep working.
"""

from __future__ import annotations


class PierError(Exception):
    """Base class: a message that is safe to show to a client, a status and a code."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    #: MLflow's classification of an error MLflow itself raised (its scoring server writes
    #: both into the body); None for pier's own errors, which pier.serving classifies by code.
    error_class: str | None = None
    sqlstate: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(PierError):
    """The body cannot be read as the declared format (malformed JSON, CSV, Parquet)."""

    status = 400
    code = "BAD_REQUEST"


class InvalidModelInput(PierError):
    """The body is well formed but does not match the model's signature (MLflow's
    INVALID_PARAMETER_VALUE; not CloudWatch's InvalidParameterValue, pier.contract.cloudwatch)."""

    status = 400
    code = "INVALID_PARAMETER_VALUE"


class UnsupportedMediaType(PierError):
    """Content-Type missing, unknown, or with parameters other than charset=utf-8."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class PayloadTooLarge(PierError):
    """The body exceeds the configured limit (SageMaker's 6 MiB by default)."""

    status = 413
    code = "RESOURCE_LIMIT_EXCEEDED"


class NotFound(PierError):
    status = 404
    code = "ENDPOINT_NOT_FOUND"


class MethodNotAllowed(PierError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class ModelNotReady(PierError):
    """The model is still loading or warming up."""

    status = 503
    code = "TEMPORARILY_UNAVAILABLE"


class PredictionError(PierError):
    """The model's predict raised: the model's message is shown, the trace only logged."""

    status = 500
    code = "INTERNAL_ERROR"


class RequestTimeout(PierError):
    """The request took longer than the per-request timeout."""

    status = 504
    code = "DEADLINE_EXCEEDED"


class ModelLoadError(PierError):
    """The model could not be loaded (bad URI, unreadable artefacts, missing flavor)."""

    status = 500
    code = "RESOURCE_DOES_NOT_EXIST"


class ModelEnvironmentError(PierError):
    """A model's own environment cannot be built: the message is the resolver's (uv's)."""

    status = 424  # Failed Dependency: the model declares what cannot be installed
    code = "MODEL_ENVIRONMENT_ERROR"


# ------------------------------------------------------------------ AWS-style API errors
# The SageMaker control API (JSON 1.1) and runtime API (REST-JSON) report errors as boto3
# expects them: the code in the body's "__type" (control) or "code"/x-amzn-ErrorType header.


class AwsError(PierError):
    """An error of pier's SageMaker-compatible APIs; `code` is the AWS error code."""

    status = 400
    code = "ValidationException"


class ValidationException(AwsError):
    """Invalid input, a missing resource, or a duplicate (as SageMaker reports all three)."""


class ResourceInUse(AwsError):
    code = "ResourceInUse"


class ResourceNotFound(AwsError):
    code = "ResourceNotFound"


class ResourceLimitExceeded(AwsError):
    """A request would take the platform past a quota (its instances: `pier up
    --max-instances`), as SageMaker answers an account's service limit."""

    code = "ResourceLimitExceeded"


class UnknownOperationException(AwsError):
    code = "UnknownOperationException"


class SerializationException(AwsError):
    code = "SerializationException"


class MissingAuthenticationToken(AwsError):
    status = 403
    code = "MissingAuthenticationTokenException"


class IncompleteSignature(AwsError):
    status = 403
    code = "IncompleteSignatureException"


class InvalidSignature(AwsError):
    """Wrong signature, or a request signed more than 15 minutes away from our clock."""

    status = 403
    code = "InvalidSignatureException"


class UnrecognizedClient(AwsError):
    """The access key id is not one of ours."""

    status = 403
    code = "UnrecognizedClientException"


class AccessDeniedException(AwsError):
    """The caller's role has no right to the operation (SageMaker's code and status, 400;
    CloudWatch words it its own way: pier.contract.cloudwatch.AccessDenied)."""

    code = "AccessDeniedException"


class InternalFailure(AwsError):
    status = 500
    code = "InternalFailure"


class RuntimeValidationError(AwsError):
    """sagemaker-runtime's 400 (its code is ValidationError, not ValidationException)."""

    code = "ValidationError"


class EndpointNotRouted(RuntimeValidationError):
    """InvokeEndpoint of an endpoint with no route: missing, or not (yet, or no longer) serving;
    the runtime API words which (pier.platform.runtime_api)."""


class ModelError(AwsError):
    """The container answered InvokeEndpoint with a 4xx/5xx."""

    status = 424
    code = "ModelError"

    def __init__(self, message: str, original_status: int, original_message: str) -> None:
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message


class ModelNotReadyException(AwsError):
    """No healthy instance can take the request."""

    status = 429
    code = "ModelNotReadyException"


class ServiceUnavailable(AwsError):
    """sagemaker-runtime's 503: the endpoint exists but cannot serve yet (its instances come
    back after a platform restart). Every botocore retry mode retries a 503."""

    status = 503
    code = "ServiceUnavailable"
