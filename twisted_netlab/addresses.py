"""
Peer addresses, as the servers log and judge them: L{describe_address} for a
log line, L{is_loopback} for "is this client on this machine?".

Any protocol module may use these; they import no protocol.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import IAddress


def describe_address(address: IAddress) -> str:
    """
    Render a peer address for a log line: ``host:port`` for IP addresses,
    the socket path (or ``unix socket``) for UNIX addresses.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name:
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return "unix socket" if type(address).__name__ == "UNIXAddress" else str(address)


def is_loopback(address: object) -> bool:
    """
    Whether C{address} (a connection's peer) is on this machine: a loopback
    IP address or a UNIX socket.
    """
    if isinstance(address, UNIXAddress):
        return True
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


__all__ = ["describe_address", "is_loopback"]
