"""The gateway: the HTTP service that runs agents by CID."""

from .app import make_app
from .config import GatewayConfig, load_config

__all__ = ["GatewayConfig", "load_config", "make_app"]
