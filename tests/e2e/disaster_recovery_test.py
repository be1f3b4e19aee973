#!/usr/bin/python3
"""Disaster recovery as an SRE runs it: a standby replica in another region
follows a real node (TLS, tokens, encrypted storage) with `twinctl replica
follow` while a device streams readings; the primary is SIGKILLed; the
newest copy is promoted with `twinctl replica promote` and a node started on
it with the primary's key. Every reading acknowledged before the copy was
made is there, nothing was invented, the open alert is there, the device's
next readings are taken and those the copy has are refused as duplicates.
Copies after the first receive only new table files; the replica holds no
patient id in plaintext. The recovery point (kill to copy time) and the
recovery time (promote to the first answer) are printed. Also: a clinician
cannot read copies; a replica naming a path is refused naming the field; a
second follower of one directory is refused; a replica whose primary was
replaced copies everything again. Nodes and followers stopped by PID.

Usage: disaster_recovery_test.py --node PATH --twinctl PATH --proto-dir DIR"""

import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import node_fixture

ARGS = None
TENANT = "st-paul"
PID = "mrn-9001"
PATIENT = f"tenants/{TENANT}/patients/{PID}"
DEVICE = f"tenants/{TENANT}/devices/oxi-91"


def make_key(path):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(os.urandom(32).hex())


class DisasterRecovery(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-dr-")
        self.root = self.tmp.name
        self.key = os.path.join(self.root, "node.key.hex")
        make_key(self.key)
        self.nodes, self.followers = [], []
        self.replica = os.path.join(self.root, "dr", "node-0")

    def tearDown(self):
        for f in self.followers:
            if f.poll() is None:
                f.kill()
                f.wait(timeout=30)
        codes = [n.stop() for n in self.nodes if n.proc.poll() is None]
        self.tmp.cleanup()
        self.assertEqual(codes, [0] * len(codes))

    def start_node(self, name, signing_key=None):
        d = os.path.join(self.root, name)
        os.makedirs(d)
        node_fixture.make_pki(d)
        n = node_fixture.Node(ARGS.node, d, signing_key=signing_key, extra_args=[
            "--backup-dir=" + os.path.join(d, "backups"), "--encryption-key-file=" + self.key])
        self.nodes.append(n)
        return n

    def token_file(self, token):
        path = os.path.join(self.root, f"t{time.monotonic_ns()}.jwt")
        with open(path, "w") as f:
            f.write(token)
        return path

    def replica_cmd(self, node, token, *args):
        return [ARGS.twinctl, "replica", "follow", "--dir", self.replica, "--target",
                f"localhost:{node.grpc_port}", "--tls-ca-file", os.path.join(node.dir, "ca.pem"),
                "--token-file", self.token_file(token), *args]

    def twinctl(self, *args):
        return subprocess.run([ARGS.twinctl, *args], capture_output=True, text=True, timeout=120)

    def register(self, n, service):
        n.api(service, "RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": PID,
                                                         "patient": {"ward": "HDU", "bed": "2"}})
        n.api(service, "RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "oxi-91",
                                                        "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
        n.api(service, "RegistryService/AssignDevice", {"device": DEVICE, "patient": PATIENT})

    @staticmethod
    def ingest(n, service, first, count, spo2, spacing_ms=10):
        now = int(time.time() * 1000)
        return n.api(service, "IngestService/Ingest", {"batchId": str(first), "devices": [{
            "device": DEVICE, "sequence": [str(first + i) for i in range(count)],
            "timeMs": [str(now - (count - i) * spacing_ms) for i in range(count)], "metric": ["METRIC_SPO2"] * count,
            "value": [spo2] * count}]})

    def test_a_promoted_replica_has_every_reading_acknowledged_before_its_copy(self):
        primary = self.start_node("primary")
        service = primary.token(TENANT, ["service"])
        sre = primary.token(TENANT, ["sre"], "sre-1")
        self.register(primary, service)
        self.assertEqual(self.ingest(primary, service, 1, 60, 84, spacing_ms=1000)["accepted"], 60)
        node_fixture.wait_for(lambda: primary.api(service, "AlertService/ListAlerts",
                                                  {"parent": f"tenants/{TENANT}"}).get("alerts"), "an alert")
        raised = primary.api(service, "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}"})["alerts"]

        # A clinician may not read copies of the node's data.
        nurse = self.twinctl(*self.replica_cmd(primary, primary.token(TENANT, ["clinician"], "nurse-1"),
                                               "--once")[1:])
        self.assertEqual(nurse.returncode, 1, nurse.stderr)
        self.assertIn("no role of the caller may call ClusterService/ReadReplicaCopy", nurse.stderr)
        self.assertEqual(os.listdir(self.replica), [".lock"])  # nothing half-made left

        # The device streams; every acknowledgement is noted with its time.
        acked, stop = [], threading.Event()

        def stream():
            seq = 61
            while not stop.is_set():
                try:
                    self.ingest(primary, service, seq, 5, 96)
                except Exception:  # the primary is gone
                    return
                acked.append((seq + 4, time.time()))
                seq += 5
                time.sleep(0.02)
        writer = threading.Thread(target=stream)
        writer.start()
        follower_log = os.path.join(self.root, "follower.log")
        with open(follower_log, "w") as log:
            follower = subprocess.Popen(self.replica_cmd(primary, sre, "--interval-s", "0.5"),
                                        stdout=subprocess.PIPE, stderr=log, text=True)
        self.followers.append(follower)
        lines = []
        while len(lines) < 4:
            line = follower.stdout.readline()
            if not line:
                with open(follower_log) as f:
                    self.fail("the follower ended: " + f.read())
            lines.append(line)
        # One follower per directory.
        second = self.twinctl(*self.replica_cmd(primary, sre, "--once")[1:])
        self.assertEqual(second.returncode, 2)
        self.assertIn("another twinctl replica command", second.stderr)

        time.sleep(random.uniform(0, 0.5))  # the disaster strikes anywhere in an interval
        killed_at = time.time()
        primary.kill()
        stop.set()
        writer.join()
        follower.send_signal(signal.SIGTERM)
        self.assertEqual(follower.wait(timeout=30), 0)
        # Copies after the first only receive what changed: table files already held are linked.
        self.assertTrue(any(" 0 linked" not in line for line in lines[1:]), lines)
        self.assertIn("received", lines[0])

        status = self.twinctl("replica", "status", "--dir", self.replica, "--json")
        self.assertEqual(status.returncode, 0, status.stderr)
        newest = json.loads(status.stdout)
        for dirpath, _, files in os.walk(self.replica):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    self.assertNotIn(PID.encode(), fh.read(), f"{f} holds the patient id in plaintext")

        # Promotion: the newest copy becomes a data directory; a node starts on it with the key.
        started = time.time()
        target = os.path.join(self.root, "promoted")
        os.makedirs(target)
        promoted = self.twinctl("replica", "promote", "--dir", self.replica, "--data-dir",
                                os.path.join(target, "db"), "--json")
        self.assertEqual(promoted.returncode, 0, promoted.stderr)
        made = json.loads(promoted.stdout)
        self.assertEqual(made["copy"], newest["copy"])
        promoted_name = "copy-%06d" % made["copy"]
        self.assertNotIn(promoted_name, os.listdir(self.replica))  # moved, not copied
        self.assertNotIn(promoted_name + ".json", os.listdir(self.replica))
        taken = self.twinctl("replica", "promote", "--dir", self.replica, "--data-dir", os.path.join(target, "db"))
        self.assertEqual(taken.returncode, 2)  # an existing data directory is never overwritten
        self.assertIn("exists", taken.stderr)
        d2 = os.path.join(self.root, "promoted-node")
        os.rename(target, d2)
        for f in ("ca.pem", "node.pem", "node.key"):
            shutil.copy(os.path.join(primary.dir, f), d2)
        r = node_fixture.Node(ARGS.node, d2, signing_key=primary.signing_key,
                              extra_args=["--encryption-key-file=" + self.key])
        self.nodes.append(r)
        device = r.api(service, "TwinService/GetDeviceTwin", {"name": DEVICE})
        recovery_time = time.time() - started

        copy_made = datetime.datetime.fromisoformat(made["copy_time"]).timestamp()
        have = int(device["readingsAccepted"])
        before_copy = max([s for s, t in acked if t < copy_made] or [60])
        sent = acked[-1][0] + 5 if acked else 60
        print(f"recovery point {killed_at - copy_made:.2f} s (kill to copy), recovery time {recovery_time:.2f} s "
              f"(promote to first answer); {have} readings in the copy, {before_copy} acknowledged before it, "
              f"{acked[-1][0]} acknowledged in all")
        self.assertGreaterEqual(have, before_copy, "a reading acknowledged before the copy is missing")
        self.assertLessEqual(have, sent, "the copy has readings nobody sent")
        self.assertLess(killed_at - copy_made, 10, "the newest copy is older than the follower's interval allows")
        alerts = r.api(service, "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}"}).get("alerts", [])
        self.assertLessEqual({a["name"] for a in raised}, {a["name"] for a in alerts})
        # The device goes on: what the copy has is a duplicate, the next are taken.
        ack = self.ingest(r, service, have - 1, 4, 97)
        self.assertEqual(ack["accepted"], 2)
        self.assertEqual([x["reason"] for x in ack.get("rejections", [])], ["REJECTION_REASON_DUPLICATE"] * 2)

    def test_bad_requests_and_a_replaced_primary(self):
        import grpc
        node_fixture.make_stubs(ARGS.proto_dir, os.path.join(self.root, "stubs"))
        from healthtwin.v1 import cluster_pb2, cluster_pb2_grpc
        a = self.start_node("a")
        sre = a.token(TENANT, ["sre"], "sre-1")
        stub = cluster_pb2_grpc.ClusterServiceStub(a.grpc_channel(sre))
        for bad, field in (("../../etc/passwd", "have[0].name"), ("", "have[0].name")):
            with self.assertRaises(grpc.RpcError) as e:
                list(stub.ReadReplicaCopy(cluster_pb2.ReadReplicaCopyRequest(
                    have=[cluster_pb2.ReplicaFile(name=bad, size_bytes=1)]), timeout=30))
            self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(field, e.exception.details())
        # A name that is no file of the node is harmless: it is simply not linked.
        chunks = list(stub.ReadReplicaCopy(cluster_pb2.ReadReplicaCopyRequest(
            have=[cluster_pb2.ReplicaFile(name="999999.sst", size_bytes=5)]), timeout=60))
        self.assertGreater(len(chunks[0].files), 0)
        self.assertNotEqual(chunks[0].node_key_id, "none")  # the files travel encrypted
        self.assertTrue(chunks[0].database_id)
        sent = {c.file for c in chunks[1:]}
        self.assertEqual(sent, {f.name for f in chunks[0].files if f.size_bytes > 0})
        self.assertFalse(os.path.exists(os.path.join(a.dir, "backups", ".replica-copy")),
                         "the scratch copy is left behind")

        first = self.twinctl(*self.replica_cmd(a, sre, "--once")[1:])
        self.assertEqual(first.returncode, 0, first.stderr)
        # The node counts the copies it served; the chart's HealthTwinStandbyBehind reads when the last was made.
        metrics = a.metrics()
        last = re.search(r"^healthtwin_replica_copy_last_sent_timestamp_seconds ([0-9.e+]+)$", metrics, re.M)
        self.assertTrue(last, metrics[:2000])
        self.assertGreater(float(last.group(1)), time.time() - 120)
        # Two whole copies so far: the stub's above and this one.
        self.assertRegex(metrics, r'healthtwin_replica_copies_total\{outcome="sent"\} 2\b')
        second = self.twinctl(*self.replica_cmd(a, sre, "--once")[1:])
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertNotIn(" 0 linked", second.stdout)
        # Another database behind the same address: nothing of the old copies is linked.
        b = self.start_node("b", signing_key=a.signing_key)
        third = self.twinctl(*self.replica_cmd(b, sre, "--once")[1:])
        self.assertEqual(third.returncode, 0, third.stderr)
        self.assertIn("copying everything", third.stderr)
        self.assertIn(" 0 linked", third.stdout)
        copies = sorted(f for f in os.listdir(self.replica) if f.endswith(".json"))
        self.assertEqual(len(copies), 2, copies)  # --keep 2
        with open(os.path.join(self.replica, copies[-1])) as f:
            self.assertEqual(json.load(f)["copy"], 3)


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "twinctl", "proto-dir")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
