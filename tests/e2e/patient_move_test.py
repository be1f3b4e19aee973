#!/usr/bin/python3
"""Moving a patient's home (RegistryService.MovePatientHome; docs/multi-region.md):
two regions of real nodes on 127.0.0.1 with TLS, stopped by PID — us-east
(one node, its data encrypted under its own node key, redirecting) and
eu-central (2 members, forwarding). A patient of us-east with a device,
readings, an acknowledged alert and a silence is moved to eu-central by an
ops-admin, the call made through eu-central (so forwarded to us-east, which
hands the patient to eu-central's owning member). Afterwards:

- eu-central serves the same twin (vitals, NEWS2), the same history, the same
  alerts with their acknowledgement, and the silence; us-east names
  eu-central as its home; the device stays in us-east, detached.
- No file of us-east holds the patient's id, ward or bed any more (searched
  decrypted with us-east's key, after the purge), while eu-central's files do.
- Both regions' audit logs record the move; a clinician or service may not move a patient;
  moving to the region it is in, to an unknown region, or back to the region it
  left is refused naming why.

Usage: patient_move_test.py --node PATH --twinctl PATH"""

import json
import os
import subprocess
import tempfile
import time
import unittest

from cryptography.hazmat.primitives.asymmetric import ec

import node_fixture

ARGS = None
TENANT = "st-luke"
WARD, BED, PID = "ward-move-6120", "bed-move-3391", "p-mv-8841"
PATIENT = f"tenants/{TENANT}/patients/{PID}"
DEVICE_ID = "oxi-bed-77"  # stays in us-east: no marker in it
DEVICE = f"tenants/{TENANT}/devices/{DEVICE_ID}"


class PatientMove(node_fixture.ApiCalls, unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-move-")
        root = self.root = self.tmp.name
        key = ec.generate_private_key(ec.SECP256R1())
        eu_ports, us_port = [node_fixture.free_port() for _ in range(2)], node_fixture.free_port()
        eu_dir, us_dir = os.path.join(root, "eu"), os.path.join(root, "us")
        os.makedirs(eu_dir)
        os.makedirs(us_dir)
        node_fixture.make_pki(eu_dir)
        node_fixture.make_pki(us_dir)
        self.us_key = os.path.join(root, "us.key")
        with open(os.open(self.us_key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.us = node_fixture.Node(ARGS.node, us_dir, us_port, signing_key=key, extra_args=[
            "--region=us-east", f"--region-endpoints=eu-central=127.0.0.1:{eu_ports[0]}",
            "--region-routing=redirect", "--region-ca-file=" + os.path.join(eu_dir, "ca.pem"),
            "--encryption-key-file=" + self.us_key])
        self.eu, _ = node_fixture.start_cluster(
            ARGS.node, eu_dir, n=2, signing_key=key, grpc_ports=eu_ports, extra_args=lambda i: [
                "--region=eu-central", f"--region-endpoints=us-east=127.0.0.1:{us_port}",
                "--region-routing=forward", "--region-ca-file=" + os.path.join(us_dir, "ca.pem")])
        self.admin = self.us.token(TENANT, ["ops-admin"], "ops-1")
        self.service = self.us.token(TENANT, ["service"], "ehr-integration")
        self.clinician = self.us.token(TENANT, ["clinician"], "dr-osei")
        sre = self.us.token(TENANT, ["sre"], "sre-1")
        node_fixture.wait_for(lambda: all(
            m.get("state") == "MEMBER_STATE_UP"
            for n in self.eu for m in n.api(sre, "ClusterService/GetClusterStatus", {})["members"]),
            "eu-central's members up", 60)

    def tearDown(self):
        for n in self.eu + [self.us]:
            if n.proc.poll() is None:
                n.stop()
        self.tmp.cleanup()

    def state(self, node):
        twin = self.call(node, "TwinService/GetPatientTwin", {"name": PATIENT})
        now = int(time.time() * 1000)
        history = self.call(node, "TwinService/GetVitalsHistory", {
            "patient": PATIENT, "metric": "METRIC_SPO2", "startTimeMs": str(now - 3_600_000),
            "endTimeMs": str(now + 60_000)})
        alerts = self.call(node, "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}", "patient": PATIENT})
        return twin, history, alerts.get("alerts", [])

    def scan(self, data_dir, key=None):
        """(marker, file) for each marker found in a file of data_dir (decrypted with key when given)."""
        args = [ARGS.twinctl, "scan", "--data-dir", data_dir, "--text", PID, "--text", WARD, "--text", BED]
        if key:
            args += ["--encryption-key-file", key]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.assertIn(out.returncode, (0, 1), out.stderr)
        return {(m, line.split(" in ")[-1]) for line in out.stdout.splitlines() for m in (PID, WARD, BED)
                if line.startswith(f'found "{m}"')}

    def test_a_patient_moves_with_its_twin_history_and_alerts_and_leaves_nothing_behind(self):
        us, eu = self.us, self.eu
        self.call(us, "RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": PID,
                                                        "patient": {"ward": WARD, "bed": BED}})
        self.call(us, "RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": DEVICE_ID,
                                                       "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
        self.call(us, "RegistryService/AssignDevice", {"device": DEVICE, "patient": PATIENT})
        now = int(time.time() * 1000)  # SpO2 97, then 84 twice: an alert
        self.call(us, "IngestService/Ingest", {"batchId": "1", "devices": [{
            "device": DEVICE, "sequence": ["1", "2", "3"], "timeMs": [str(now - 200_000), str(now - 8_000), str(now)],
            "metric": ["METRIC_SPO2"] * 3, "value": [97, 84, 84]}]})
        node_fixture.wait_for(lambda: self.call(us, "AlertService/ListAlerts", {
            "parent": f"tenants/{TENANT}", "patient": PATIENT}).get("alerts"), "the alert", 10)
        alert = self.call(us, "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}",
                                                          "patient": PATIENT})["alerts"][0]["name"]
        self.call(us, "AlertService/AcknowledgeAlert", {"name": alert}, self.clinician)
        self.call(us, "AlertService/SilenceAlerts", {"patient": PATIENT, "metric": "METRIC_HEART_RATE",
                                                     "duration": "1800s", "silencedBy": "dr-osei",
                                                     "reason": "probe repositioned"}, self.clinician)
        before = self.state(us)
        self.assertEqual(before[1]["value"], [97, 84, 84], before[1])

        # Only an ops-admin moves a patient; nor to where it is, nor to an unknown region.
        for token in (self.service, self.clinician):
            code, body = self.refused(eu[1], "RegistryService/MovePatientHome",
                                      {"name": PATIENT, "homeRegion": "eu-central"}, token)
            self.assertEqual(code, 403, body)
        code, body = self.refused(us, "RegistryService/MovePatientHome", {"name": PATIENT, "homeRegion": "us-east"},
                                  self.admin)
        self.assertEqual((code, body["status"]), (400, "FAILED_PRECONDITION"), body)
        code, body = self.refused(us, "RegistryService/MovePatientHome", {"name": PATIENT, "homeRegion": "ap-south"},
                                  self.admin)
        self.assertEqual((code, body["status"]), (400, "INVALID_ARGUMENT"), body)
        self.assertIn("home_region", json.dumps(body))

        moved = self.call(eu[1], "RegistryService/MovePatientHome", {"name": PATIENT, "homeRegion": "eu-central"},
                          self.admin)
        self.assertEqual(moved["patient"]["homeRegion"], "eu-central")
        self.assertEqual((moved["patient"]["ward"], moved["patient"]["bed"]), (WARD, BED))
        self.assertEqual(moved["detachedDevices"], [DEVICE])
        self.assertGreater(int(moved["records"]), 2)

        # eu-central serves it as it was, through either member.
        for n in eu:
            twin, history, alerts = self.state(n)
            self.assertEqual(twin["vitals"], before[0]["vitals"])
            self.assertEqual(twin.get("news2"), before[0].get("news2"))
            self.assertEqual(twin["readingsApplied"], before[0]["readingsApplied"])
            self.assertEqual((history["timeMs"], history["value"]), (before[1]["timeMs"], before[1]["value"]))
            self.assertEqual([(a["name"], a.get("acknowledgedBy")) for a in alerts],
                             [(a["name"], a.get("acknowledgedBy")) for a in before[2]])
            self.assertEqual(self.call(n, "RegistryService/GetPatient", {"name": PATIENT})["homeRegion"], "eu-central")
        self.assertEqual(self.call(eu[0], "RegistryService/LocateTwin", {"name": PATIENT})["homeRegion"], "eu-central")
        # us-east redirects to its new home; the device stays, detached.
        code, body = self.refused(us, "RegistryService/GetPatient", {"name": PATIENT})
        self.assertEqual(code, 400, body)
        self.assertIn("eu-central", body["message"])
        self.assertEqual(self.call(us, "RegistryService/GetDevice", {"name": DEVICE}).get("patient", ""), "")
        # A clinician's entry now lands in eu-central.
        self.call(eu[0], "ClinicalService/RecordObservations", {"patient": PATIENT, "recordedBy": "dr-osei",
                                                                "oxygenFlow": 2.0}, self.clinician)
        node_fixture.wait_for(lambda: int(self.call(eu[1], "TwinService/GetPatientTwin", {"name": PATIENT})
                                          ["readingsApplied"]) > int(before[0]["readingsApplied"]),
                              "the observation applied in eu-central", 10)
        # It cannot come back to us-east (its id is retired there), nor be created there again.
        code, body = self.refused(eu[0], "RegistryService/MovePatientHome", {"name": PATIENT, "homeRegion": "us-east"},
                                  self.admin)
        self.assertEqual(code, 400, body)
        self.assertIn("cannot be registered here again", body["message"])
        self.assertEqual(self.call(eu[1], "RegistryService/GetPatient", {"name": PATIENT})["homeRegion"], "eu-central")

        # Nothing of it is left in us-east's files once the purge ran (decrypted with us-east's key);
        # RocksDB's MANIFEST, which remembers every file's key range, is rewritten at the next start.
        us_db = os.path.join(us.dir, "db")
        node_fixture.wait_for(lambda: not {f for _, f in self.scan(us_db, self.us_key) if not f.startswith("MANIFEST")},
                              "us-east's files to lose the moved patient", 90)
        for n in eu + [us]:
            self.assertEqual(n.stop(), 0)
        self.us = us.restart()
        self.assertEqual(self.us.stop(), 0)
        self.assertEqual(self.scan(us_db, self.us_key), set())
        # Control: the scan sees the patient in eu-central's files (table blocks are compressed,
        # so not every marker need appear whole).
        self.assertIn(PID, {m for n in eu for m, _ in self.scan(os.path.join(n.dir, "db"))},
                      "the scan finds the patient in eu-central")
        # Both regions audited it (by pseudonym).
        us_audit = subprocess.run([ARGS.twinctl, "audit", "list", "--data-dir", os.path.join(us.dir, "db"),
                                   "--encryption-key-file", self.us_key, "--resource", PATIENT],
                                  capture_output=True, text=True, timeout=120)
        self.assertIn("RegistryService/MovePatientHome", us_audit.stdout, us_audit.stderr)
        eu_audit = "".join(subprocess.run([ARGS.twinctl, "audit", "list", "--data-dir", os.path.join(n.dir, "db"),
                                           "--resource", PATIENT], capture_output=True, text=True,
                                          timeout=120).stdout for n in eu)
        self.assertIn("RegistryService/AcceptPatient", eu_audit)


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "twinctl")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
