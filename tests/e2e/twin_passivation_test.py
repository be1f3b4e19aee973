#!/usr/bin/python3
"""Passivation of idle twins as an operator sees it (docs/adr/0035): a real
node on 127.0.0.1 with `--passivate-after-ms=300` (TLS, tokens, encrypted
storage). Patients with oximeters stream, one desaturates and raises an
alert. Once idle, every device and patient twin is passivated (the
`healthtwin_shard_twins_active` gauges fall to 0, the
`healthtwin_twins_passivated_total` counters count them); a query then
answers exactly what it answered before, readings after it are applied on
top, resends are refused as duplicates, the open alert is resolved by the
patient's recovery under its own name — and all of this holds again after
a SIGKILL and a restart. Stopped by PID.

Usage: twin_passivation_test.py --node PATH"""

import os
import re
import tempfile
import time
import unittest

import node_fixture

ARGS = None
TENANT = "st-luke"
PATIENTS = [f"mrn-{i:03d}" for i in range(12)]


class Passivation(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-passivation-")
        d = self.d = self.tmp.name
        node_fixture.make_pki(d)
        key = os.path.join(d, "node.key.hex")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.node = node_fixture.Node(ARGS.node, d, extra_args=[
            "--encryption-key-file=" + key, "--passivate-after-ms=300", "--checkpoint-interval-ms=60000"])
        self.service = self.node.token(TENANT, ["service"])
        self.sequence = {}

    def tearDown(self):
        code = self.node.stop() if self.node.proc.poll() is None else 0
        self.tmp.cleanup()
        self.assertEqual(code, 0)

    def metric(self, pattern):
        found = re.search("^" + pattern + r" ([0-9.e+]+)$", self.node.metrics(), re.M)
        return float(found.group(1)) if found else None

    def await_passivated(self, at_least):
        node_fixture.wait_for(
            lambda: self.metric(r'healthtwin_shard_twins_active\{kind="patient"\}') == 0
            and self.metric(r'healthtwin_shard_twins_active\{kind="device"\}') == 0
            and self.metric(r'healthtwin_twins_passivated_total\{kind="patient"\}') >= at_least,
            "every twin passivated")

    def ingest(self, pid, values, first=None, start_ms=None):
        """SpO2 values from the patient's oximeter, one per second up to now (or from
        start_ms on), numbered on (or from `first`)."""
        n = len(values)
        start_ms = start_ms or int(time.time() * 1000) - (n - 1) * 1000
        first = first or self.sequence.get(pid, 1)
        self.sequence[pid] = max(self.sequence.get(pid, 1), first + n)
        return self.node.api(self.service, "IngestService/Ingest", {"batchId": str(first), "devices": [{
            "device": f"tenants/{TENANT}/devices/oxi-{pid}", "sequence": [str(first + i) for i in range(n)],
            "timeMs": [str(start_ms + i * 1000) for i in range(n)], "metric": ["METRIC_SPO2"] * n,
            "value": values}]})

    def state(self):
        out = {}
        for pid in PATIENTS:
            twin = self.node.api(self.service, "TwinService/GetPatientTwin",
                                 {"name": f"tenants/{TENANT}/patients/{pid}"})
            device = self.node.api(self.service, "TwinService/GetDeviceTwin",
                                   {"name": f"tenants/{TENANT}/devices/oxi-{pid}"})
            twin.pop("etag", None)
            out[pid] = (twin, device)
        return out

    def alerts(self):
        return self.node.api(self.service, "AlertService/ListAlerts",
                             {"parent": f"tenants/{TENANT}", "includeResolved": True}).get("alerts", [])

    def test_idle_twins_are_passivated_and_come_back_unchanged_also_after_a_kill(self):
        n = self.node
        for pid in PATIENTS:
            n.api(self.service, "RegistryService/CreatePatient", {
                "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": "WARD-2", "bed": pid[-2:]}})
            n.api(self.service, "RegistryService/CreateDevice", {
                "parent": f"tenants/{TENANT}", "deviceId": f"oxi-{pid}",
                "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
            n.api(self.service, "RegistryService/AssignDevice", {
                "device": f"tenants/{TENANT}/devices/oxi-{pid}", "patient": f"tenants/{TENANT}/patients/{pid}"})
            if pid != PATIENTS[0]:  # that one desaturates below
                self.assertEqual(self.ingest(pid, [97, 96, 97])["accepted"], 3)
        desaturated_ms = int(time.time() * 1000)
        alert = n.desaturate(self.service, TENANT, PATIENTS[0], self.sequence)
        before = self.state()
        self.assertEqual(before[PATIENTS[1]][0]["readingsApplied"], "3")

        self.await_passivated(len(PATIENTS))
        self.assertGreaterEqual(self.metric(r'healthtwin_twins_passivated_total\{kind="device"\}'), len(PATIENTS))
        self.assertEqual(self.state(), before)  # activated again by the queries, unchanged

        # Readings after an activation are applied on top; resends are not.
        self.await_passivated(2 * len(PATIENTS))
        for pid in PATIENTS[1:]:
            ack = self.ingest(pid, [95, 96], first=3)  # 3 again, and 4
            self.assertEqual(ack["accepted"], 1)
            self.assertEqual([x["reason"] for x in ack.get("rejections", [])], ["REJECTION_REASON_DUPLICATE"])
        after = self.state()
        self.assertEqual(after[PATIENTS[1]][0]["readingsApplied"], "4")
        self.assertEqual(after[PATIENTS[1]][1]["readingsAccepted"], "4")
        self.assertEqual([a["state"] for a in self.alerts() if a["name"] == alert], ["ALERT_STATE_ACTIVE"])

        # Passivated again, then killed: the restarted node has every twin
        # as it was and still refuses the resends.
        self.await_passivated(3 * len(PATIENTS))
        n.kill()
        self.node = n = n.restart()
        self.assertEqual(self.state(), after)
        ack = self.ingest(PATIENTS[2], [95, 96], first=3)
        self.assertEqual(ack.get("accepted", 0), 0)

        # The desaturated patient recovers: its alert resolves under its
        # name (the twin kept the condition through passivation and kill).
        self.await_passivated(len(PATIENTS))
        pid = PATIENTS[0]
        raised = {a["name"] for a in self.alerts() if a["patient"].endswith(pid)}
        self.assertIn(alert, raised)
        self.assertEqual(self.ingest(pid, [97] * 150, start_ms=desaturated_ms + 1000)["accepted"], 150)
        node_fixture.wait_for(
            lambda: all(a["state"] == "ALERT_STATE_RESOLVED" for a in self.alerts() if a["patient"].endswith(pid)),
            "the alerts resolved by the recovery")
        self.assertEqual({a["name"] for a in self.alerts() if a["patient"].endswith(pid)}, raised)
        node_fixture.assert_no_phi([os.path.join(self.d, "node.log")], PATIENTS)


if __name__ == "__main__":
    ARGS, rest = node_fixture.parse_args("node")
    node_fixture.run_tests(rest)
