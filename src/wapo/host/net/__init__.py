"""TCP and TLS for guests (ocalls 210-214): sockets as resources, under the run's NetworkPolicy."""

from .sockets import (
    LIMITS, NetLimits, TcpConnecting, TcpListener, TcpStream, net_state, tcp_accept, tcp_connect,
    tcp_connect_tls, tcp_listen,
)

__all__ = ["LIMITS", "NetLimits", "TcpConnecting", "TcpListener", "TcpStream", "net_state", "tcp_accept",
           "tcp_connect", "tcp_connect_tls", "tcp_listen"]
