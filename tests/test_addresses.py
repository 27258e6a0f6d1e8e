"""
Tests for L{twisted_netlab.addresses}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.addresses import describe_address, is_loopback


class DescribeAddressTests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        """
        IPv4 addresses read C{host:port}.
        """
        self.assertEqual(
            describe_address(IPv4Address("TCP", "127.0.0.1", 80)), "127.0.0.1:80"
        )

    def test_ipv6(self) -> None:
        """
        IPv6 addresses are bracketed.
        """
        self.assertEqual(describe_address(IPv6Address("TCP", "::1", 80)), "[::1]:80")

    def test_unix(self) -> None:
        """
        UNIX addresses show their path, or say they are an unnamed socket.
        """
        self.assertEqual(describe_address(UNIXAddress(b"/run/x.sock")), "/run/x.sock")
        self.assertEqual(describe_address(UNIXAddress(None)), "unix socket")


class LoopbackTests(SynchronousTestCase):
    def test_is_loopback(self) -> None:
        """
        Loopback means 127.0.0.0/8, ::1 (also IPv4-mapped) or a UNIX socket.
        """
        self.assertTrue(is_loopback(IPv4Address("TCP", "127.0.0.1", 1)))
        self.assertTrue(is_loopback(IPv6Address("TCP", "::1", 1)))
        self.assertTrue(is_loopback(UNIXAddress(b"/tmp/s")))
        self.assertFalse(is_loopback(IPv4Address("TCP", "10.0.0.1", 1)))
        self.assertFalse(is_loopback(IPv6Address("TCP", "fe80::1%eth0", 1)))
        self.assertFalse(is_loopback(IPv4Address("TCP", "not-an-ip", 1)))
        self.assertFalse(is_loopback(object()))
