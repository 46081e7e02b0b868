"""The Eye's Python SDK: track events from an application and have them delivered.

Standard library only, and nothing from The Eye's server, so applications can install it
without the server's dependencies::

    from the_eye.client import EyeClient

    eye = EyeClient("eye_wk_...", host="https://eye.example.com")
    eye.track("session-1", "page interaction", "pageview", {"path": "/"})
"""

from the_eye.client._async import AsyncEyeClient
from the_eye.client._client import ClientStats, EyeClient, OnError
from the_eye.client._retry import RetryPolicy
from the_eye.client._sender import DeliveryError

__all__ = ["AsyncEyeClient", "ClientStats", "DeliveryError", "EyeClient", "OnError", "RetryPolicy"]
