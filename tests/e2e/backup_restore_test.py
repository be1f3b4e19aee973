#!/usr/bin/python3
"""Backup and restore as an SRE runs them: a real node on 127.0.0.1 (TLS,
tokens, encrypted storage) with a patient whose readings raised an alert;
`twinctl cluster backup` (an sre's token) takes a backup while the node
serves, more readings follow; a fresh node started on a copy of the backup
with the same node key shows the twin, the device and the alert exactly as
they were at the backup, takes the device's next readings (and not those it
already has), and the backup's audit chain verifies. The backup holds no
patient id in plaintext; another name is refused, so is a clinician.
Stopped by PID.

Usage: backup_restore_test.py --node PATH --twinctl PATH"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import node_fixture

ARGS = None
TENANT = "st-paul"
PID = "mrn-7001"
PATIENT = f"tenants/{TENANT}/patients/{PID}"
DEVICE = f"tenants/{TENANT}/devices/oxi-71"


class BackupRestore(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-backup-")
        root = self.root = self.tmp.name
        self.d1 = os.path.join(root, "live")
        os.makedirs(self.d1)  # the node creates its backup directory at the first backup
        node_fixture.make_pki(self.d1)
        self.key = os.path.join(root, "node.key.hex")
        with open(os.open(self.key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.node = node_fixture.Node(ARGS.node, self.d1, extra_args=[
            "--backup-dir=" + os.path.join(self.d1, "backups"), "--encryption-key-file=" + self.key])
        self.restored = None
        self.service = self.node.token(TENANT, ["service"])

    def tearDown(self):
        codes = [n.stop() for n in (self.node, self.restored) if n]
        self.tmp.cleanup()
        self.assertEqual(codes, [0] * len(codes))

    def ingest(self, node, first, count, spo2):
        now = int(time.time() * 1000)
        rows = [(now - (count - i) * 1000, spo2) for i in range(count)]
        return node.api(self.service, "IngestService/Ingest", {"batchId": str(first), "devices": [{
            "device": DEVICE, "sequence": [str(first + i) for i in range(count)],
            "timeMs": [str(t) for t, _ in rows], "metric": ["METRIC_SPO2"] * count,
            "value": [v for _, v in rows]}]})

    def twinctl(self, *args, token, node=None):
        token_file = os.path.join(self.root, "t.jwt")
        with open(token_file, "w") as f:
            f.write(token)
        node = node or self.node
        return subprocess.run([ARGS.twinctl, *args, "--target", f"localhost:{node.grpc_port}", "--tls-ca-file",
                               os.path.join(self.d1, "ca.pem"), "--token-file", token_file],
                              capture_output=True, text=True, timeout=120)

    def state(self, node):
        twin = node.api(self.service, "TwinService/GetPatientTwin", {"name": PATIENT})
        device = node.api(self.service, "TwinService/GetDeviceTwin", {"name": DEVICE})
        alerts = node.api(self.service, "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}"}).get("alerts", [])
        return twin, device, alerts

    def test_a_backup_taken_while_serving_restores_into_a_fresh_node_as_it_was(self):
        n = self.node
        n.api(self.service, "RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": PID,
                                                               "patient": {"ward": "HDU", "bed": "2"}})
        n.api(self.service, "RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "oxi-71",
                                                              "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
        n.api(self.service, "RegistryService/AssignDevice", {"device": DEVICE, "patient": PATIENT})
        self.assertEqual(self.ingest(n, 1, 60, 84)["accepted"], 60)
        deadline = time.time() + 10
        while not self.state(n)[2]:
            self.assertLess(time.time(), deadline, "no alert raised")
            time.sleep(0.05)
        twin_before, device_before, alerts_before = self.state(n)

        sre = n.token(TENANT, ["sre"], "sre-1")
        made = self.twinctl("cluster", "backup", "nightly", "--json", token=sre)
        self.assertEqual(made.returncode, 0, made.stderr)
        backup = json.loads(made.stdout)
        self.assertEqual(backup["path"], os.path.join(self.d1, "backups", "nightly"))
        self.assertGreater(int(backup["sizeBytes"]), 0)
        again = self.twinctl("cluster", "backup", "nightly", token=sre)
        self.assertEqual(again.returncode, 1)
        self.assertIn("exists", again.stderr)
        nurse = self.twinctl("cluster", "backup", "other", token=n.token(TENANT, ["clinician"], "nurse-1"))
        self.assertEqual(nurse.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.d1, "backups", "other")))

        # The node goes on; its later readings are not in the backup.
        self.assertEqual(self.ingest(n, 61, 40, 97)["accepted"], 40)
        self.assertEqual(self.state(n)[1]["readingsAccepted"], "100")

        # Nothing of the patient in plaintext in the backup (the store is encrypted).
        for dirpath, _, files in os.walk(backup["path"]):
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    self.assertNotIn(PID.encode(), fh.read(), f"{f} holds the patient id in plaintext")
        verify = subprocess.run([ARGS.twinctl, "audit", "verify", "--data-dir", backup["path"],
                                 "--encryption-key-file", self.key], capture_output=True, text=True, timeout=120)
        self.assertEqual(verify.returncode, 0, verify.stdout + verify.stderr)
        self.assertIn("intact", verify.stdout)

        # Restore: a copy of the backup as the data directory of a fresh node with the same key.
        d2 = os.path.join(self.root, "restored")
        os.makedirs(d2)
        for f in ("ca.pem", "node.pem", "node.key"):
            shutil.copy(os.path.join(self.d1, f), d2)
        shutil.copytree(backup["path"], os.path.join(d2, "db"))
        r = self.restored = node_fixture.Node(ARGS.node, d2, signing_key=n.signing_key,
                                             extra_args=["--encryption-key-file=" + self.key])
        twin, device, alerts = self.state(r)
        self.assertEqual(device["readingsAccepted"], device_before["readingsAccepted"])
        self.assertEqual(twin["readingsApplied"], twin_before["readingsApplied"])
        self.assertEqual(twin["vitals"], twin_before["vitals"])
        self.assertEqual(twin.get("news2"), twin_before.get("news2"))
        self.assertEqual([a["name"] for a in alerts], [a["name"] for a in alerts_before])
        # The device's next readings are taken; those the backup has are not taken twice.
        ack = self.ingest(r, 55, 15, 97)
        self.assertEqual(ack["accepted"], 9)
        self.assertEqual([x["reason"] for x in ack.get("rejections", [])], ["REJECTION_REASON_DUPLICATE"] * 6)
        self.assertEqual(self.state(r)[1]["readingsAccepted"], "69")


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "twinctl")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
