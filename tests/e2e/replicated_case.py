"""What the replicated-store end-to-end tests share (ADR 0038, 0039): a
TestCase that starts three members on 127.0.0.1, each with two standbys
(node_fixture.start_replicated_cluster), one node key, and devices of one
tenant whose readings are sent with their own sequence numbers and resent
until acknowledged; processes that exit meanwhile are started again as a
supervisor would, but those killed on purpose (self.away)."""

import os
import tempfile
import time
import unittest
import urllib.error

import node_fixture

TENANT = "st-mary"


def device(d):
    return f"tenants/{TENANT}/devices/{d}"


class ReplicatedCase(unittest.TestCase):
    NODE = None          # the healthtwin binary (set by the test's main)
    DEVICES = []
    PREFIX = "healthtwin-replicated-"

    def node_args(self, voter):
        """More flags for every voter."""
        return []

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix=self.PREFIX)
        root = self.tmp.name
        key = os.path.join(root, "node.key.hex")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.nodes, self.standbys = node_fixture.start_replicated_cluster(self.NODE, root, key,
                                                                          extra_args=self.node_args)
        self.service = self.nodes[0].token(TENANT, ["service"])
        self.sent = {d: 0 for d in self.DEVICES}  # highest sequence number sent per device
        self.away = []  # processes killed on purpose, not to be started again

    def tearDown(self):
        # Standbys first: members stopped first would hand their stores to them.
        for n in [s for group in self.standbys.values() for s in group] + self.nodes:
            if n.proc.poll() is None:
                n.stop()
        if os.environ.get("REPLICATED_LOGS"):
            for n in self.nodes + [s for group in self.standbys.values() for s in group]:
                with open(os.path.join(n.dir, "node.log"), errors="replace") as f:
                    print(f"--- {os.path.basename(n.dir)}:", "".join(f.readlines()[-15:]))
        self.tmp.cleanup()

    def create_devices(self):
        n0 = self.nodes[0]
        for d in self.DEVICES:  # (503 while the members first see each other)
            node_fixture.retry_unavailable(lambda: n0.api(self.service, "RegistryService/CreateDevice", {
                "parent": f"tenants/{TENANT}", "deviceId": d, "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}}))

    def owner_table(self, node):
        """The owner (member name) of every shard, as `node` sees it."""
        sre = node.token(TENANT, ["sre"], "sre-1")
        s = node_fixture.retry_unavailable(lambda: node.api(sre, "ClusterService/GetClusterStatus", {}))
        names = [m["name"] for m in s["members"]]
        return [names[o] for o in s.get("shardOwners", [])]

    def ingest(self, node, d, first, count):
        """Readings first..first+count-1 of device d through node: True once all are acknowledged
        (accepted, or refused as duplicates of acknowledged ones)."""
        now = int(time.time() * 1000)
        try:
            r = node.api(self.service, "IngestService/Ingest", {
                "batchId": str(first * 100 + self.DEVICES.index(d)), "devices": [{
                    "device": device(d), "sequence": [str(first + i) for i in range(count)],
                    "timeMs": [str(now - (count - i) * 100) for i in range(count)],
                    "metric": ["METRIC_SPO2"] * count, "value": [97] * count}]})
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False
        refused = [x for x in r.get("rejections", []) if x.get("reason") != "REJECTION_REASON_DUPLICATE"]
        return not refused and r.get("accepted", 0) + len(r.get("rejections", [])) == count

    def send_round(self, edges, count, within):
        """`count` new readings per device through members `edges` (indices) in turn, resent until
        acknowledged or `within` seconds passed; the devices whose readings were all acknowledged."""
        acked = set()
        deadline = time.time() + within
        firsts = {d: self.sent[d] + 1 for d in self.DEVICES}
        for d in self.DEVICES:
            self.sent[d] += count
        while len(acked) < len(self.DEVICES) and time.time() < deadline:
            node_fixture.supervise(self.nodes, self.standbys, leave=self.away)
            for k, d in enumerate(self.DEVICES):
                if d not in acked and self.ingest(self.nodes[edges[k % len(edges)]], d, firsts[d], count):
                    acked.add(d)
            time.sleep(0.05)
        return acked

    def assert_each_reading_once(self, through):
        """Every device twin, read through member `through`, holds every reading sent exactly once."""
        for d in self.DEVICES:
            twin = node_fixture.retry_unavailable(lambda: self.nodes[through].api(
                self.service, "TwinService/GetDeviceTwin", {"name": device(d)}), unreachable_too=True)
            self.assertEqual(int(twin["readingsAccepted"]), self.sent[d], f"{d}: each reading exactly once")
            self.assertEqual(int(twin["lastSequence"]), self.sent[d])


def main(case):
    """Runs the test module's cases with --node PATH."""
    args, rest = node_fixture.parse_args("node")
    case.NODE = args.node
    node_fixture.run_tests(rest)
