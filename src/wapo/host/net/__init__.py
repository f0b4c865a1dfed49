"""TCP and TLS for guests (ocalls 210-215): sockets as resources, under the run's NetworkPolicy."""

from .sni import SniListener, tls_listen_sni
from .sockets import (
    LIMITS, Listener, NetLimits, TcpConnecting, TcpListener, TcpStream, net_state, tcp_accept, tcp_connect,
    tcp_connect_tls, tcp_listen,
)

__all__ = ["LIMITS", "Listener", "NetLimits", "SniListener", "TcpConnecting", "TcpListener", "TcpStream",
           "net_state", "tcp_accept", "tcp_connect", "tcp_connect_tls", "tcp_listen", "tls_listen_sni"]
