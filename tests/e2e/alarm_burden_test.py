#!/usr/bin/python3
"""Alarm burden over the API (AlertService/GetAlarmBurden, called as JSON):
a real node on 127.0.0.1 with two wards; readings raise alerts, a nurse
acknowledges one, another resolves by itself unacknowledged; the report
counts them per ward, kind and priority and per patient-day, gives the
time to acknowledge, names the noisiest patient and device, and the share
resolved without acknowledgement; it is the same after a restart (it is
read from the durable alert log); another tenant's clinician is refused
and bad arguments name their field; twinctl prints the same as tables and
as JSON. Stopped by PID.

Usage: alarm_burden_test.py --node PATH --twinctl PATH"""

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import node_fixture

ARGS = None
TENANT = "st-ann"


class AlarmBurden(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-burden-")
        d = cls.tmp.name
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        cls.service = cls.node.token(TENANT, ["service"])
        cls.sequence = {}
        for pid, ward in (("a1", "ICU"), ("a2", "ICU"), ("b1", "GEN"), ("b2", "GEN"), ("b3", "GEN")):
            cls.call("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": pid,
                                                       "patient": {"ward": ward, "bed": pid}})
            cls.call("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "oxi-" + pid,
                                                      "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
            cls.call("RegistryService/AssignDevice", {"device": cls.device(pid), "patient": cls.patient(pid)})

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        node_fixture.assert_no_phi([os.path.join(cls.tmp.name, "node.log")], ["a1", "b1"])
        cls.tmp.cleanup()
        assert code == 0, f"node exited with {code}"

    @staticmethod
    def patient(pid):
        return f"tenants/{TENANT}/patients/{pid}"

    @staticmethod
    def device(pid):
        return f"tenants/{TENANT}/devices/oxi-{pid}"

    @classmethod
    def call(cls, rpc, body, token=None, expect=200):
        req = urllib.request.Request(f"https://localhost:{cls.node.http_port}/api/v1/{rpc}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + (token or cls.service)})
        try:
            with urllib.request.urlopen(req, context=cls.tls, timeout=15) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        assert status == expect, f"{rpc}: HTTP {status}, expected {expect}: {text[:400]}"
        return json.loads(text)

    def spo2(self, pid, values_by_age_ms):
        now = int(time.time() * 1000)
        first = self.sequence.get(pid, 1)
        n = len(values_by_age_ms)
        self.sequence[pid] = first + n
        ack = self.call("IngestService/Ingest", {"batchId": str(first), "devices": [{
            "device": self.device(pid), "sequence": [str(first + i) for i in range(n)],
            "timeMs": [str(now - age) for age, _ in values_by_age_ms], "metric": ["METRIC_SPO2"] * n,
            "value": [v for _, v in values_by_age_ms]}]})
        self.assertEqual(ack["accepted"], n)

    def wait_alert(self, pid, state):
        deadline = time.time() + 10
        while time.time() < deadline:
            listed = self.call("AlertService/ListAlerts", {"parent": f"tenants/{TENANT}",
                                                           "patient": self.patient(pid), "includeResolved": True})
            found = [a for a in listed["alerts"] if a["state"] == state]
            if found:
                return found[0]
            time.sleep(0.05)
        self.fail(f"no {state} alert for {pid}")

    def test_the_report_counts_what_was_raised_acknowledged_and_resolved_unacknowledged(self):
        # a1 (ICU) desaturates twice over: one alert, acknowledged ~1 s later.
        self.spo2("a1", [(200_000, 97), (8_000, 84), (0, 84)])
        raised = self.wait_alert("a1", "ALERT_STATE_ACTIVE")
        time.sleep(1.0)
        nurse = self.node.token(TENANT, ["clinician"], "nurse-ann")
        self.call("AlertService/AcknowledgeAlert", {"name": raised["name"]}, token=nurse)
        # b1 (GEN) desaturates and recovers by itself: resolved, never acknowledged.
        # (falls and recoveries over minutes: faster ones are taken for artefacts)
        self.spo2("b1", [(600_000, 97), (300_000, 84), (292_000, 84)])
        self.wait_alert("b1", "ALERT_STATE_ACTIVE")
        self.spo2("b1", [(200_000, 97), (150_000, 97), (100_000, 97), (0, 97)])
        self.wait_alert("b1", "ALERT_STATE_RESOLVED")

        report = self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}"}, token=nurse)
        self.check(report)

        # The report is read from the durable alert log: the same after a restart.
        window = {"parent": f"tenants/{TENANT}", "startTime": report["startTime"], "endTime": report["endTime"]}
        before = self.call("AlertService/GetAlarmBurden", window)
        self.node.stop()
        self.__class__.node = self.node.restart()
        after = self.call("AlertService/GetAlarmBurden", window)
        self.assertEqual(before["total"], after["total"])
        self.assertEqual(before["wards"], after["wards"])

        # The same from twinctl, as tables and as JSON.
        token_file = os.path.join(self.tmp.name, "nurse.jwt")
        with open(token_file, "w") as f:
            f.write(nurse)
        base = [ARGS.twinctl, "alerts", "burden", "--target", f"localhost:{self.node.grpc_port}",
                "--tls-ca-file", os.path.join(self.tmp.name, "ca.pem"), "--token-file", token_file,
                "--tenant", TENANT]
        table = subprocess.run(base, capture_output=True, text=True, timeout=60)
        self.assertEqual(table.returncode, 0, table.stderr)
        rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line.strip()}
        self.assertEqual(rows["ICU"][1:3], ["2", "1"])  # patients, alerts
        self.assertEqual(rows["GEN"][1:3], ["3", "1"])
        self.assertEqual(rows["(total)"][1:3], ["5", "2"])
        self.assertIn(self.patient("a1"), table.stdout)
        as_json = subprocess.run(base + ["--json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(as_json.returncode, 0, as_json.stderr)
        self.check(json.loads(as_json.stdout))
        refused = subprocess.run(base[:-1] + ["elsewhere"], capture_output=True, text=True, timeout=60)
        self.assertEqual(refused.returncode, 1)  # refused by the node
        self.assertIn("GetAlarmBurden", refused.stderr)

        # One ward, one patient.
        icu = self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}", "ward": "ICU"})
        self.assertEqual([w["ward"] for w in icu["wards"]], ["ICU"])
        self.assertEqual(icu["total"]["patients"], 2)
        one = self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}", "patient": self.patient("b1")})
        self.assertEqual(one["total"]["patients"], 1)
        self.assertEqual(one["total"]["alertsRaised"], "1")

    def check(self, report):
        total = report["total"]
        self.assertEqual(total["patients"], 5)
        self.assertEqual(total["alertsRaised"], "2")
        self.assertAlmostEqual(total["patientDays"], 5.0, places=3)  # 5 patients x 24 h
        self.assertAlmostEqual(total["alertsPerPatientDay"], 0.4, places=3)
        self.assertEqual(total["acknowledged"], "1")
        p50 = float(total["timeToAcknowledgeP50"].rstrip("s"))
        self.assertGreaterEqual(p50, 0.9)
        self.assertLess(p50, 10)
        self.assertEqual(total["resolved"], "1")
        self.assertEqual(total["resolvedUnacknowledged"], "1")
        self.assertEqual(total["shareResolvedUnacknowledged"], 1.0)
        self.assertEqual(sum(int(n) for n in total["timeToAcknowledgeBuckets"]), 1)
        kinds = {(c["kind"], c["priority"]): int(c["count"]) for c in total["byKindAndPriority"]}
        self.assertEqual(kinds, {("ALERT_KIND_THRESHOLD", "PRIORITY_HIGH"): 2})
        wards = {w["ward"]: w for w in report["wards"]}
        self.assertEqual(set(wards), {"ICU", "GEN"})
        self.assertEqual(wards["ICU"]["patients"], 2)
        self.assertAlmostEqual(wards["ICU"]["alertsPerPatientDay"], 0.5, places=3)
        self.assertAlmostEqual(wards["GEN"]["alertsPerPatientDay"], 1 / 3, places=3)
        self.assertEqual(report["wards"][0]["ward"], "ICU")  # most alerts per patient-day first
        self.assertEqual(wards["GEN"]["resolvedUnacknowledged"], "1")
        self.assertEqual(wards["ICU"]["acknowledged"], "1")
        noisy = [s["name"] for s in report["noisiestPatients"]]
        self.assertEqual(sorted(noisy), sorted([self.patient("a1"), self.patient("b1")]))
        self.assertEqual(sorted(s["name"] for s in report["noisiestDevices"]),
                         sorted([self.device("a1"), self.device("b1")]))

    def test_bad_arguments_name_their_field_and_other_tenants_are_refused(self):
        bad = self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}", "top": 1000}, expect=400)
        self.assertIn("top", json.dumps(bad["details"]))
        bad = self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}",
                                                        "startTime": "2026-01-01T00:00:00Z",
                                                        "endTime": "2026-03-01T00:00:00Z"}, expect=400)
        self.assertIn("31 days", bad["message"])
        bad = self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}",
                                                        "startTime": "2026-03-01T00:00:00Z",
                                                        "endTime": "2026-01-01T00:00:00Z"}, expect=400)
        self.assertIn("start_time", json.dumps(bad["details"]))
        self.call("AlertService/GetAlarmBurden", {"parent": "nonsense"}, expect=400)
        other = self.node.token("elsewhere", ["clinician"], "nurse-x")
        self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}"}, token=other, expect=403)
        sre = self.node.token(TENANT, ["sre"], "sre-1")
        self.call("AlertService/GetAlarmBurden", {"parent": f"tenants/{TENANT}"}, token=sre, expect=403)
        empty = self.call("AlertService/GetAlarmBurden", {"parent": "tenants/elsewhere"}, token=other)
        self.assertEqual(empty["total"]["alertsRaised"], "0")


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "twinctl")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
