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
import tempfile
import time
import unittest
import urllib.error

import node_fixture

ARGS = None
TENANT = "st-mary"
DEVICES = [f"oxi-{i}" for i in range(8)]


def device(d):
    return f"tenants/{TENANT}/devices/{d}"


class ReplicatedStores(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-replicated-")
        root = self.tmp.name
        key = os.path.join(root, "node.key.hex")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.nodes, self.standbys = node_fixture.start_replicated_cluster(ARGS.node, root, key)
        self.service = self.nodes[0].token(TENANT, ["service"])
        self.sent = {d: 0 for d in DEVICES}  # highest sequence number sent per device

    def tearDown(self):
        # Standbys first: members stopped first would hand their stores to them.
        for n in [s for group in self.standbys.values() for s in group] + self.nodes:
            if n.proc.poll() is None:
                n.stop()
        self.tmp.cleanup()

    def call(self, node, rpc, body, timeout=15):
        return node.api(self.service, rpc, body)

    def owner_table(self, node):
        sre = node.token(TENANT, ["sre"], "sre-1")
        s = node.api(sre, "ClusterService/GetClusterStatus", {})
        names = [m["name"] for m in s["members"]]
        return [names[o] for o in s.get("shardOwners", [])]

    def ingest(self, node, d, first, count):
        """Readings first..first+count-1 of device d through node: True once all are acknowledged
        (accepted, or refused as duplicates of acknowledged ones)."""
        now = int(time.time() * 1000)
        try:
            r = node.api(self.service, "IngestService/Ingest", {"batchId": str(first), "devices": [{
                "device": device(d), "sequence": [str(first + i) for i in range(count)],
                "timeMs": [str(now - (count - i) * 100) for i in range(count)],
                "metric": ["METRIC_SPO2"] * count, "value": [97] * count}]})
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False
        refused = [x for x in r.get("rejections", []) if x.get("reason") != "REJECTION_REASON_DUPLICATE"]
        return not refused and r.get("accepted", 0) + len(r.get("rejections", [])) == count

    def send_round(self, edges, count, within):
        """Sends `count` new readings per device through `edges` in turn, resending what is not
        acknowledged until `within` seconds passed; the devices whose readings were acknowledged."""
        acked = set()
        deadline = time.time() + within
        firsts = {d: self.sent[d] + 1 for d in DEVICES}
        for d in DEVICES:
            self.sent[d] += count
        while len(acked) < len(DEVICES) and time.time() < deadline:
            for k, d in enumerate(DEVICES):
                if d not in acked and self.ingest(edges[k % len(edges)], d, firsts[d], count):
                    acked.add(d)
            time.sleep(0.1)
        return acked, firsts

    def test_acknowledged_readings_survive_losing_voters_and_nothing_is_acknowledged_without_a_majority(self):
        n0, n1, n2 = self.nodes
        for d in DEVICES:  # (503 while the members first see each other)
            node_fixture.retry_unavailable(lambda: self.call(n0, "RegistryService/CreateDevice", {
                "parent": f"tenants/{TENANT}", "deviceId": d, "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}}))
        acked, _ = self.send_round(self.nodes, 20, 30)
        self.assertEqual(acked, set(DEVICES), "every reading is acknowledged with all members up")
        for i, n in enumerate(self.nodes):
            self.assertTrue(os.path.isdir(os.path.join(n.dir, "db", "raft")))
            for standby in self.standbys[i]:
                self.assertTrue(os.path.exists(os.path.join(standby.dir, "db", "CURRENT")),
                                f"{standby.dir} holds a replica of n{i}'s store")
                self.assertFalse(os.path.exists(standby.port_file), "a standby serves only while it leads")
                self.assertIsNone(standby.proc.poll())

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
        for standby in self.standbys[0]:
            standby.kill()
        # n0's store has no majority: nothing of n0's is acknowledged, within the deadline; the others'
        # stores keep theirs (edges: n1 and n2, which forward n0's devices to n0).
        t0 = time.time()
        acked, _ = self.send_round([n1, n2], 1, 8)
        self.assertEqual(acked, set(DEVICES) - on_n0, "no reading is acknowledged without a majority")
        self.assertLess(time.time() - t0, 60)
        if n0.proc.poll() is not None:
            self.assertEqual(n0.proc.returncode, 6, "a member whose writes are in doubt exits with code 6")
            n0.log.close()

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
        for d in DEVICES:
            twin = self.call(n0, "TwinService/GetDeviceTwin", {"name": device(d)})
            self.assertEqual(int(twin["readingsAccepted"]), self.sent[d], f"{d}: each reading exactly once")
            self.assertEqual(int(twin["lastSequence"]), self.sent[d])


if __name__ == "__main__":
    ARGS, rest = node_fixture.parse_args("node")
    node_fixture.run_tests(rest)
