#!/usr/bin/python3
"""Replicated stores (issue 20, ADR 0038, 0039) with real processes: three
members on 127.0.0.1 with --replication-factor=3 (TLS, tokens, one shared
node key), so every member's store is a Raft group of the member and two
standbys, each a process of its own. Readings are sent through every
member with their own sequence numbers, and whatever is not acknowledged is
resent until it is:
  - with everything up, every reading is acknowledged, each standby holds
    a replica of its member's store and none serves;
  - both standbys of n0 SIGKILLed: n0's store has no majority, so n0's
    devices get nothing acknowledged — n0 refuses within the caller's
    deadline, or, when a write of its was in flight as the majority went,
    exits with code 6 to rebuild from its store — while n1's and n2's
    devices still are;
  - all back: every reading ever acknowledged is in its device's twin
    exactly once (readingsAccepted and lastSequence equal what was sent).
Stopped by PID.

Usage: replicated_store_test.py --node PATH"""

import os
import sys
import time
import unittest
import urllib.error

import node_fixture
import replicated_case
from replicated_case import TENANT, device

DEVICES = [f"oxi-{i}" for i in range(8)]


class ReplicatedStores(replicated_case.ReplicatedCase):
    DEVICES = DEVICES

    def test_acknowledged_readings_survive_losing_voters_and_nothing_is_acknowledged_without_a_majority(self):
        n0, n1, n2 = self.nodes
        self.create_devices()
        self.assertEqual(self.send_round([0, 1, 2], 20, 30), set(DEVICES), "every reading acknowledged with all up")
        for i, n in enumerate(self.nodes):
            self.assertTrue(os.path.isdir(os.path.join(n.dir, "db", "raft")))
            for standby in self.standbys[i]:
                self.assertTrue(os.path.exists(os.path.join(standby.dir, "db", "CURRENT")),
                                f"{standby.dir} holds a replica of n{i}'s store")
                self.assertFalse(os.path.exists(standby.port_file), "a standby serves only while it leads")
                self.assertIsNone(standby.proc.poll())
                # While it waits it answers /healthz and shows how far it has applied the store.
                metrics = standby.metrics()
                self.assertIn(f'healthtwin_replication_leading{{store="n{i}"}} 0', metrics)
                applied = [l for l in metrics.splitlines()
                           if l.startswith(f'healthtwin_replication_applied_index{{store="n{i}"}}')]
                self.assertTrue(applied and float(applied[0].split()[-1]) > 0, applied)
                self.assertEqual(node_fixture.https_status(standby, "/healthz"), 200)
                self.assertEqual(node_fixture.https_status(standby, "/readyz"), 503, "not ready: it does not serve")

        metrics = n0.metrics()
        self.assertIn('healthtwin_replication_leading{store="n0"} 1', metrics)
        committed = [l for l in metrics.splitlines() if l.startswith('healthtwin_replication_writes_total{outcome="committed"}')]
        self.assertTrue(committed and float(committed[0].split()[-1]) > 0, committed)

        # The groups' voters do not follow a change of members yet: refused, nothing moves.
        sre = n0.token(TENANT, ["sre"], "sre-1")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            n0.api(sre, "ClusterService/ChangeMembers", {"members": [
                {"name": "n0", "address": "127.0.0.1:1"}, {"name": "n1", "address": "127.0.0.1:2"}]})
        self.assertIn("replicated", refused.exception.read().decode())

        owners = self.owner_table(n0)
        on_n0 = {d for d in DEVICES if owners[node_fixture.shard_of(device(d), 16)] == "n0"}
        self.assertTrue(0 < len(on_n0) < len(DEVICES))
        self.away = list(self.standbys[0])
        for standby in self.standbys[0]:
            standby.kill()
        # n0's store has no majority: nothing of n0's is acknowledged, within the deadline; the others'
        # stores keep theirs (edges: n1 and n2, which forward n0's devices to n0).
        t0 = time.time()
        acked = self.send_round([1, 2], 1, 8)
        self.assertEqual(acked, set(DEVICES) - on_n0, "no reading is acknowledged without a majority")
        self.assertLess(time.time() - t0, 60)
        if n0.proc.poll() is not None:
            self.assertEqual(n0.proc.returncode, 6, "a member whose writes are in doubt exits with code 6")
            n0.log.close()
        self.away = []

        # All back (a member needs a majority of its voters to start).
        self.standbys[0] = [s.restart(wait=False) for s in self.standbys[0]]
        self.nodes = [n.restart(wait=False) if n.proc.poll() is not None else n for n in self.nodes]
        try:
            for n in self.nodes:
                n.wait_ready()
        except RuntimeError:
            for i, n in enumerate(self.nodes):
                with open(os.path.join(n.dir, "node.log")) as f:
                    print(f"--- n{i}:", "".join(f.readlines()[-12:]), file=sys.stderr)
            raise
        n0, n1, n2 = self.nodes
        # Resend everything from 21 on: acknowledged readings come back as duplicates.
        deadline = time.time() + 60
        pending = set(DEVICES)
        while pending and time.time() < deadline:
            for k, d in enumerate(sorted(pending)):
                if self.ingest(self.nodes[k % 3], d, 21, self.sent[d] - 20):
                    pending.discard(d)
            time.sleep(0.1)
        self.assertEqual(pending, set(), "every reading is acknowledged once all members are back")
        self.assert_each_reading_once(0)


if __name__ == "__main__":
    replicated_case.main(ReplicatedStores)
