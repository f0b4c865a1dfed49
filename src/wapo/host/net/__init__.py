"""The network of guests, under the run's ``NetworkPolicy`` (``policy``): outgoing HTTP
(``fetch``), WebSockets (``websocket``), and TCP/TLS sockets as resources (ocalls 210-215:
``tcp``, ``stream``, ``sni``), each bounded per run (``quota``); ``args`` checks what guests pass."""

from .quota import LIMITS, NetLimits, net_state
from .sni import SniListener, tls_listen_sni
from .stream import TcpStream
from .tcp import Listener, TcpConnecting, TcpListener, tcp_accept, tcp_connect, tcp_connect_tls, tcp_listen

__all__ = ["LIMITS", "Listener", "NetLimits", "SniListener", "TcpConnecting", "TcpListener", "TcpStream",
           "net_state", "tcp_accept", "tcp_connect", "tcp_connect_tls", "tcp_listen", "tls_listen_sni"]
