"""``from pushwire.asgi import PushwireApp``: pushwire inside an ASGI server (Starlette, FastAPI).

See docs/asgi.md. Importing this loads the server, as ``pushwire serve`` does.
"""

from __future__ import annotations

from pushwire.server.asgi import PushwireApp

__all__ = ["PushwireApp"]
