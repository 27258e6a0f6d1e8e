"""
Tests for L{twisted_netlab.workers} and the C{--workers} options (the
processes themselves: C{tests/interop/test_workers.py}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.tap import echo, hello
from twisted_netlab.workers import WorkerPool, shares


class SharesTests(SynchronousTestCase):
    def test_equal_shares_that_add_up(self) -> None:
        """
        C{--max-connections} is split into shares as equal as can be (the
        larger first), which add up to the whole.
        """
        self.assertEqual(shares(10, 2), [5, 5])
        self.assertEqual(shares(10, 3), [4, 3, 3])
        self.assertEqual(shares(20000, 7), [2858] + [2857] * 6)
        self.assertEqual(sum(shares(20000, 7)), 20000)

    def test_at_least_one(self) -> None:
        """
        A worker's share is never 0, even with more workers than connections.
        """
        self.assertEqual(shares(1, 3), [1, 1, 1])


class OptionsTests(SynchronousTestCase):
    def test_echo_worker_options(self) -> None:
        """
        Each netlab-echo worker gets the same settings and its share of
        C{--max-connections}, and parses them back to the same values.
        """
        config = echo.Options()
        config.parseOptions(
            [
                "--workers=3",
                "--max-connections=10",
                "--prefix=>> ",
                "--idle-timeout=2.5",
                "--max-line-length=99",
            ]
        )
        argv = [echo.worker_options(config, i) for i in range(3)]
        limits = []
        for options in argv:
            worker = echo.Options()
            worker.parseOptions(options)
            self.assertEqual(worker["prefix_bytes"], b">> ")
            self.assertEqual(worker["idle-timeout"], 2.5)
            self.assertEqual(worker["max-line-length"], 99)
            self.assertEqual(worker["workers"], 1)
            limits.append(worker["max-connections"])
        self.assertEqual(limits, [4, 3, 3])

    def test_pool_made_for_workers(self) -> None:
        """
        C{--workers 2} makes a L{WorkerPool} over the listen descriptions;
        C{--workers 1} (the default) serves in the process itself.
        """
        config = echo.Options()
        config.parseOptions(["--workers=2", "--listen=tcp:0:interface=127.0.0.1"])
        service = echo.makeService(config)
        assert isinstance(service, WorkerPool)
        self.assertEqual(service.descriptions, ["tcp:0:interface=127.0.0.1"])
        single = hello.Options()
        single.parseOptions([])
        self.assertNotIsInstance(hello.makeService(single), WorkerPool)

    def test_hello_worker_options(self) -> None:
        """
        Each netlab-hello worker gets the same greeting.
        """
        config = hello.Options()
        config.parseOptions(["--workers=2", "--greeting=Servus"])
        worker = hello.Options()
        worker.parseOptions(hello.worker_options(config, 1))
        self.assertEqual(worker["greeting_bytes"], b"Servus\r\n")
