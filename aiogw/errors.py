"""The gateway's own refusals and failures, each with the HTTP status it answers with.

    GatewayError
     ├── BadRequest           400  body or path the gateway cannot accept
     ├── Unauthorized         401  missing, unknown or revoked gateway key
     ├── Blocked              403  a guard refused the request's content
     ├── NotAllowed           403  a user's limits: over budget, or a model or route not allowed
     ├── EndpointNotAllowed   403  a method and path the route does not forward
     ├── NotFound             404  no such route
     ├── RequestTimeout       408  the client sent its body too slowly
     ├── TooLarge             413  body over server.max_body_bytes
     ├── RateLimited          429  a user's rate window or concurrency limit (with Retry-After)
     ├── NotConfigured        500  the route has no provider credential
     ├── Unavailable          503  the audit writer is behind: refused, not lost
     ├── UpstreamUnreachable  502  connect refused, reset, DNS failure
     └── UpstreamTimeout      504  connect, first byte or idle timeout

Dialects turn these into the provider's own error envelope at the boundary (see
`dialects`), so an SDK raises its usual exception. Messages go to the client: they
say what to do and never contain a key.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    kind = "internal"

    def __init__(self, message: str, *, retry_after: int | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        if kind is not None:  # a finer reason for the audit, e.g. "budget:daily_budget_usd"
            self.kind = kind


class BadRequest(GatewayError):
    status = 400
    kind = "bad_request"


class Unauthorized(GatewayError):
    status = 401
    kind = "auth"


class Blocked(GatewayError):
    status = 403
    kind = "guard"


class NotAllowed(GatewayError):
    # 403: no SDK retries it, so an agent over budget stops instead of looping.
    status = 403
    kind = "limit"


class EndpointNotAllowed(GatewayError):
    # 403, not 404: the endpoint may well exist upstream; the operator chose not to
    # forward it (another user's stored data would be reachable under the shared key).
    status = 403
    kind = "endpoint_not_allowed"


class RequestTimeout(GatewayError):
    status = 408
    kind = "client_timeout"


class RateLimited(GatewayError):
    status = 429
    kind = "rate_limit"


class NotFound(GatewayError):
    status = 404
    kind = "not_found"


class TooLarge(GatewayError):
    status = 413
    kind = "too_large"


class NotConfigured(GatewayError):
    status = 500
    kind = "not_configured"


class Unavailable(GatewayError):
    status = 503
    kind = "audit_backpressure"


class UpstreamUnreachable(GatewayError):
    status = 502
    kind = "upstream"


class UpstreamTimeout(GatewayError):
    status = 504
    kind = "upstream_timeout"
