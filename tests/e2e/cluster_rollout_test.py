#!/usr/bin/python3
"""A firmware rollout across a cluster of three real members (127.0.0.1,
TLS, tokens; stopped by PID). 60 pulse oximeters and their patients are
spread over the members by their shards; the test plays the devices through
their shadow (GetDevice / ReportDeviceState) through any member.

- The rollout is created through a member that does not hold it; the
  member owning the shard of its name holds it and reads every member's
  devices and patients: waves in turn, devices started on every member, the
  safety gate from alerts and vital sources on other members than the
  holder, the gate's reason on the rollout and on the device twin read
  through any member.
- Mid-rollout, the holder is removed from the cluster (ChangeMembers): the
  rollout moves with its shard to a remaining member and carries on where
  it was; the held devices never get the new firmware.
- ListRollouts through any member lists it, once; a second rollout of the
  same devices held by another member is refused while the first runs;
  cancel through another member.

Usage: cluster_rollout_test.py --node PATH"""

import os
import sys
import tempfile
import time
import unittest
import urllib.error

import node_fixture

ARGS = None
TENANT = "st-mary"
N = 60
SHARDS = 16  # the fixture's --shards
FINISHED = {"OTA_STATE_INSTALLED", "OTA_STATE_FAILED", "OTA_STATE_ROLLED_BACK"}
FAILING = {7, 33}


def pid(i):
    return f"p{i:03}"


def device(i):
    return f"tenants/{TENANT}/devices/oxi-{pid(i)}"


def patient(i):
    return f"tenants/{TENANT}/patients/{pid(i)}"


class ClusterRollout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-rollout-cluster-")
        root = cls.root = cls.tmp.name
        cls.nodes, cls.peers = node_fixture.start_cluster(ARGS.node, root)
        cls.service = cls.nodes[0].token(TENANT, ["service"])
        cls.ops = cls.nodes[0].token(TENANT, ["ops-admin"], "ops-1")
        cls.nurse = cls.nodes[0].token(TENANT, ["clinician"], "nurse-1")
        cls.sre = cls.nodes[0].token(TENANT, ["sre"], "sre-1")
        node_fixture.wait_for(cls.all_up, "three members up", 60)
        cls.owners = cls.owner_table()

        # Patients whose gate is decided on a member that will not hold the rollout.
        cls.name = cls.rollout_held_by("n2", "oxi-2-0")
        cls.alerted = [i for i in range(N) if cls.owner_of(patient(i)) != "n2"][:3]
        cls.sole = next(i for i in range(N) if cls.owner_of(patient(i)) not in ("n2",) and i not in cls.alerted
                        and i not in FAILING)
        for i in range(N):
            edge = cls.nodes[i % 3]
            cls.retry(lambda: edge.api(cls.service, "RegistryService/CreatePatient", {
                "parent": f"tenants/{TENANT}", "patientId": pid(i), "patient": {"ward": "W3", "bed": str(i)}}))
            cls.retry(lambda: edge.api(cls.service, "RegistryService/CreateDevice", {
                "parent": f"tenants/{TENANT}", "deviceId": f"oxi-{pid(i)}",
                "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}}))
            cls.retry(lambda: edge.api(cls.service, "RegistryService/AssignDevice", {
                "device": device(i), "patient": patient(i)}))
            cls.retry(lambda: edge.api(cls.service, "RegistryService/ReportDeviceState", {
                "device": device(i), "reported": {"firmware": "1.0"}}))
        cls.sequence = {}
        for i in cls.alerted:
            cls.nodes[1].desaturate(cls.service, TENANT, pid(i), cls.sequence)
        cls.nodes[1].api(cls.service, "IngestService/Ingest", {"batchId": "900001", "devices": [{
            "device": device(cls.sole), "sequence": ["1"], "timeMs": [str(int(time.time() * 1000))],
            "metric": ["METRIC_SPO2"], "value": [97]}]})

    @classmethod
    def tearDownClass(cls):
        codes = [n.stop() for n in cls.nodes if n.proc.poll() is None]
        node_fixture.assert_no_phi([os.path.join(n.dir, "node.log") for n in cls.nodes],
                                   [pid(i) for i in cls.alerted])
        cls.tmp.cleanup()
        assert all(c == 0 for c in codes), f"exit codes {codes}"

    @classmethod
    def retry(cls, call, timeout=30):
        return node_fixture.retry_unavailable(call, timeout)

    @classmethod
    def status(cls, node):
        return node.api(cls.sre, "ClusterService/GetClusterStatus", {})

    @classmethod
    def all_up(cls):
        try:
            return all(all(m.get("state") == "MEMBER_STATE_UP" for m in cls.status(n)["members"])
                       for n in cls.nodes)
        except Exception:
            return False

    @classmethod
    def owner_table(cls):
        s = cls.status(cls.nodes[0])
        names = [m["name"] for m in s["members"]]
        return [names[o] for o in s.get("shardOwners", [])] or None

    @classmethod
    def owner_of(cls, name):
        return cls.owners[node_fixture.shard_of(name, SHARDS)]

    @classmethod
    def rollout_held_by(cls, member, prefix):
        return next(f"tenants/{TENANT}/rollouts/{prefix}-{k}" for k in range(1000)
                    if cls.owner_of(f"tenants/{TENANT}/rollouts/{prefix}-{k}") == member)

    def call(self, node, rpc, body, token=None):
        return self.retry(lambda: node.api(token or self.service, rpc, body))

    def play(self, rollout, first_seen):
        """Each device the rollout started reads its desired firmware and reports its outcome."""
        for d in rollout["devices"]:
            if d.get("state") != "OTA_STATE_DOWNLOADING" or d["device"] in first_seen:
                continue
            first_seen[d["device"]] = rollout
            i = int(d["device"][-3:])
            edge = self.nodes[i % 2]  # n0 and n1 stay members throughout
            shadow = self.call(edge, "RegistryService/GetDevice", {"name": d["device"]})
            self.assertEqual(shadow["desired"]["firmware"], "2.0", d["device"])
            failed = i in FAILING
            self.call(edge, "RegistryService/ReportDeviceState", {"device": d["device"], "reported": {
                "firmware": "1.0" if failed else "2.0",
                "settings": {"ota.state": "failed" if failed else "installed",
                             **({"ota.error": "flash write error"} if failed else {})}}})

    def play_until(self, node, done, what, first_seen, timeout=90):
        deadline = time.time() + timeout
        while True:
            r = self.call(node, "RolloutService/GetRollout", {"name": self.name}, self.ops)
            self.play(r, first_seen)
            if done(r):
                return r
            self.assertLess(time.time(), deadline, f"{what}: {r.get('counts')} {r.get('statusReason', '')}")
            time.sleep(0.2)

    def test_a_rollout_spans_the_members_and_moves_with_its_shard(self):
        n0, n1, n2 = self.nodes
        self.assertEqual(self.owner_of(self.name), "n2")
        held = {device(i) for i in self.alerted + [self.sole]}
        created = self.call(n0, "RolloutService/CreateRollout", {
            "parent": f"tenants/{TENANT}", "rolloutId": self.name.rsplit("/", 1)[1],
            "rollout": {"firmware": "2.0", "target": {"deviceType": "DEVICE_TYPE_PULSE_OXIMETER"},
                        "wavesPercent": [10, 50, 100], "maxFailureRatio": 0.5}}, self.ops)
        self.assertEqual(len(created["devices"]), N, "every member's oximeters are targeted")
        first_seen = {}
        self.play_until(n1, lambda r: r.get("wave", 0) >= 1 and r["counts"].get("downloading", 0) > 0,
                        "wave 2 starts", first_seen)

        # The holder leaves the cluster: the rollout moves with its shard.
        before = self.call(n0, "RolloutService/GetRollout", {"name": self.name}, self.ops)
        change = self.call(n0, "ClusterService/ChangeMembers", {"members": [
            {"name": f"n{i}", "address": f"127.0.0.1:{self.peers[i]}"} for i in range(2)],
            "shardsPerStep": 16}, self.sre)
        self.assertTrue(change.get("moves"), change)
        type(self).owners = self.owner_table()
        holder = self.owner_of(self.name)
        self.assertIn(holder, ("n0", "n1"))
        after = self.call(n1, "RolloutService/GetRollout", {"name": self.name}, self.ops)
        started = lambda r: {d["device"] for d in r["devices"] if "startTime" in d}
        self.assertLessEqual(started(before), started(after), "the moved rollout forgot devices it started")
        self.assertEqual(after["createTime"], before["createTime"])
        n2.stop()

        r = self.play_until(n0, lambda r: sum(r["counts"].get(k, 0) for k in (
            "installed", "failed", "rolledBack")) == N - len(held), "every device not held finished", first_seen)
        owners_started = {self.owner_of(d) for d in first_seen}
        self.assertEqual(owners_started, {"n0", "n1"}, "devices of every remaining member started")
        for dev, snapshot in first_seen.items():
            wave = next(d.get("wave", 0) for d in snapshot["devices"] if d["device"] == dev)
            for d in snapshot["devices"]:
                if d.get("wave", 0) < wave and d["device"] not in held:
                    self.assertIn(d.get("state"), FINISHED, f"{dev} (wave {wave}) started before {d['device']}")
        by_device = {d["device"]: d for d in r["devices"]}
        for i in self.alerted:
            self.assertEqual((by_device[device(i)]["state"], by_device[device(i)]["reason"]),
                             ("OTA_STATE_GATED", "its patient has an open MEDIUM or HIGH alert"))
        self.assertEqual(by_device[device(self.sole)]["reason"], "it is the only source of spo2 for its patient")
        for i in FAILING:
            self.assertEqual((by_device[device(i)]["state"], by_device[device(i)]["reason"]),
                             ("OTA_STATE_FAILED", "flash write error"))
        for i in self.alerted + [self.sole]:
            shadow = self.call(n1, "RegistryService/GetDevice", {"name": device(i)})
            self.assertNotEqual(shadow.get("desired", {}).get("firmware"), "2.0", device(i))
        # The gate's reason on the device twin, read through either member.
        for edge in (n0, n1):
            twin = self.call(edge, "TwinService/GetDeviceTwin", {"name": device(self.alerted[0])}, self.nurse)
            self.assertEqual(twin["rollout"]["rollout"], self.name)
            self.assertEqual(twin["rollout"]["device"]["state"], "OTA_STATE_GATED")

        # Listed once through either member; a second rollout held elsewhere may not take its devices.
        for edge in (n0, n1):
            listed = self.call(edge, "RolloutService/ListRollouts", {"parent": f"tenants/{TENANT}"}, self.ops)
            self.assertEqual([x["name"] for x in listed["rollouts"]], [self.name])
            self.assertEqual(listed.get("unreachableMembers", []), [])
        other = self.rollout_held_by("n1" if holder == "n0" else "n0", "oxi-2-1")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            n0.api(self.ops, "RolloutService/CreateRollout", {
                "parent": f"tenants/{TENANT}", "rolloutId": other.rsplit("/", 1)[1],
                "rollout": {"firmware": "2.1", "target": {"devices": [device(self.alerted[0])]}}})
        body = refused.exception.read().decode()
        self.assertEqual(refused.exception.code, 400, body)
        self.assertIn("FAILED_PRECONDITION", body)
        self.assertIn(f"is in {self.name}, which has not ended", body)

        cancelled = self.call(n1, "RolloutService/CancelRollout", {"name": self.name}, self.ops)
        self.assertEqual(cancelled["status"], "ROLLOUT_STATUS_CANCELLED")
        self.assertEqual(self.call(n0, "RolloutService/GetRollout", {"name": self.name}, self.ops)["status"],
                         "ROLLOUT_STATUS_CANCELLED")


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
