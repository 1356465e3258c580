"""`shadow-serve`: the exported model behind an HTTP endpoint, for the robots' remote route.

The detached shadow runs on the robot; what it routes to `remote` goes to this server (the node's `cloud_url`),
which runs the same `Commander` (manifest checks, sanitation, constrained decoding, safety layer) over a bigger
export, with concurrent requests sharing decode steps (`shadow_edge.runtime.batched`).

Modules: `app` (the Starlette application: endpoints, limits, errors), `auth` (bearer token), `metrics`
(Prometheus), `cli` (the command and uvicorn). Stateless: run as many replicas as needed behind any load balancer.
"""

from .app import ServeLimits, create_app
from .auth import TokenError, load_token

__all__ = ["ServeLimits", "TokenError", "create_app", "load_token"]
