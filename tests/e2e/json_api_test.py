#!/usr/bin/python3
"""The public API as JSON over HTTPS (/api/v1/{Service}/{Method}), as a
browser or a script calls it: a real node on 127.0.0.1 (TLS, tokens from a
test identity provider) is registered with, fed and queried through it;
errors come back with the HTTP status of their gRPC code and name the
field; the alert stream arrives as server-sent events, opens before any
alert, resumes from a token, and ends cleanly when the node stops; another
tenant's clinician sees nothing. Stopped by PID.

Usage: json_api_test.py --node PATH"""

import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import node_fixture

ARGS = None
TENANT = "st-mary"
PATIENT = "tenants/st-mary/patients/mrn-2001"
DEVICE = "tenants/st-mary/devices/oxi-21"


class JsonApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-json-")
        d = cls.tmp.name
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        cls.service = cls.node.token(TENANT, ["service"])
        cls.call("RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": "mrn-2001", "patient": {"ward": "ICU-3", "bed": "7"}})
        cls.call("RegistryService/CreateDevice", {
            "parent": f"tenants/{TENANT}", "deviceId": "oxi-21", "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
        cls.call("RegistryService/AssignDevice", {"device": DEVICE, "patient": PATIENT})
        cls.next_sequence = 1

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        node_fixture.assert_no_phi([os.path.join(cls.tmp.name, "node.log")], ["mrn-2001"])
        cls.tmp.cleanup()
        assert code == 0, f"node exited with {code}"

    @classmethod
    def request(cls, path, body=None, token=None, method="POST", content_type="application/json", raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = "Bearer " + token
        return urllib.request.Request(f"https://localhost:{cls.node.http_port}{path}", data=data,
                                      method=method, headers=headers)

    @classmethod
    def call(cls, rpc, body, token=None, expect=200, **kw):
        """POSTs to /api/v1/<rpc>; the JSON answer, after checking its status."""
        req = cls.request("/api/v1/" + rpc, body, token or cls.service, **kw)
        try:
            with urllib.request.urlopen(req, context=cls.tls, timeout=15) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        answer = json.loads(text) if text.startswith("{") else {"raw": text}
        assert status == expect, f"{rpc}: HTTP {status}, expected {expect}: {text[:400]}"
        return answer

    def ingest(self, values, ages_ms):
        """SpO2 readings measured ages_ms ago."""
        now = int(time.time() * 1000)
        n = len(values)
        seqs = [str(self.__class__.next_sequence + i) for i in range(n)]
        self.__class__.next_sequence += n
        ack = self.call("IngestService/Ingest", {"batchId": seqs[0], "devices": [{
            "device": DEVICE, "sequence": seqs, "timeMs": [str(now - age) for age in ages_ms],
            "metric": ["METRIC_SPO2"] * n, "value": values}]})
        self.assertEqual(ack["accepted"], n)

    def open_stream(self, body, token=None):
        """The alert stream as server-sent events: the open response."""
        req = self.request("/api/v1/AlertService/StreamAlerts", body, token or self.service)
        r = urllib.request.urlopen(req, context=self.tls, timeout=20)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/event-stream"))
        return r

    @staticmethod
    def next_event(r):
        """The next data event of an open stream (keep-alives skipped)."""
        kind = "message"
        while True:
            line = r.readline().decode()
            if not line:
                return None
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                r.readline()  # the blank line that ends the event
                return (kind, data)

    # -- unary calls ----------------------------------------------------------

    def test_a_reading_ingested_as_json_is_read_back_as_json(self):
        self.ingest([96, 95], [400_000, 300_000])
        twin = self.call("TwinService/GetPatientTwin", {"name": PATIENT})
        self.assertEqual(twin["bed"], "7")
        spo2 = [v for v in twin["vitals"] if v["metric"] == "METRIC_SPO2"]
        self.assertEqual(spo2[0]["value"], 95)
        self.assertEqual(spo2[0]["sourceDevice"], DEVICE)
        listed = self.call("TwinService/ListPatientTwins", {"parent": f"tenants/{TENANT}", "filter": 'ward = "ICU-3"'})
        self.assertEqual([t["name"] for t in listed["patientTwins"]], [PATIENT])

    def test_errors_carry_the_status_of_their_code_and_name_the_field(self):
        bad = self.call("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": "bad id!"},
                        expect=400)
        self.assertEqual(bad["status"], "INVALID_ARGUMENT")
        fields = [v["field"] for d in bad["details"] for v in d.get("fieldViolations", [])]
        self.assertIn("patient_id", fields)
        unknown = self.call("TwinService/GetPatientTwin", {"name": PATIENT, "nmae": "x"}, expect=400)
        self.assertIn("nmae", unknown["message"])
        wrong_type = self.call("TwinService/GetPatientTwin", {"name": 7}, expect=400)
        self.assertIn("name", wrong_type["message"])
        self.call("TwinService/GetPatientTwin", {"name": "tenants/st-mary/patients/nobody"}, expect=404)
        self.call("TwinService/GetPatientTwin", {"name": PATIENT}, token="not-a-token", expect=401)
        nurse_elsewhere = self.node.token("general", ["clinician"], "nurse-elsewhere")
        denied = self.call("TwinService/GetPatientTwin", {"name": PATIENT}, token=nurse_elsewhere, expect=403)
        self.assertEqual(denied["status"], "PERMISSION_DENIED")
        self.call("NoSuchService/Get", {}, expect=404)
        self.call("TwinService/NoSuchMethod", {}, expect=404)
        self.call("TwinService/GetPatientTwin", None, method="GET", expect=405)
        self.call("IngestService/StreamIngest", {}, expect=501)
        self.call("TwinService/GetPatientTwin", None, raw=b"name=x", content_type="application/x-www-form-urlencoded",
                  expect=415)
        self.call("TwinService/GetPatientTwin", None, raw=b"{not json", expect=400)
        big = json.dumps({"name": PATIENT, "readMask": {"paths": ["x" * (80 << 10)]}}).encode()
        req = self.request("/api/v1/TwinService/GetPatientTwin", None, self.service, raw=big)
        with self.assertRaises(urllib.error.HTTPError) as too_big:
            urllib.request.urlopen(req, context=self.tls, timeout=15)
        self.assertEqual(too_big.exception.code, 413)

    # -- the alert stream ---------------------------------------------------------

    def test_alerts_stream_as_events_resume_from_a_token_and_stay_in_their_tenant(self):
        t0 = time.time()
        live = self.open_stream({"parent": f"tenants/{TENANT}", "ward": "ICU-3"})
        self.assertLess(time.time() - t0, 2.0, "the stream opens before any alert")
        nurse_elsewhere = self.node.token("general", ["clinician"], "nurse-elsewhere")
        other = self.open_stream({"parent": "tenants/general"}, token=nurse_elsewhere)
        got_other = []
        threading.Thread(target=lambda: got_other.append(self.next_event(other)), daemon=True).start()

        self.ingest([97, 84, 84], [200_000, 6_000, 0])  # a desaturation held for 6 s
        t1 = time.time()
        kind, raised = self.next_event(live)
        self.assertLess(time.time() - t1, 2.0)
        self.assertEqual(kind, "message")
        self.assertEqual(raised["type"], "ALERT_EVENT_TYPE_RAISED")
        self.assertEqual(raised["alert"]["patient"], PATIENT)
        self.assertEqual(raised["alert"]["priority"], "PRIORITY_HIGH")
        name = raised["alert"]["name"]

        nurse = self.node.token(TENANT, ["clinician"], "nurse-jo")
        acked = self.call("AlertService/AcknowledgeAlert", {"name": name, "note": "at the bedside"}, token=nurse)
        self.assertEqual(acked["state"], "ALERT_STATE_ACKNOWLEDGED")
        self.assertEqual(acked["acknowledgedBy"], "nurse-jo")
        kind, ack_event = self.next_event(live)
        self.assertEqual(ack_event["type"], "ALERT_EVENT_TYPE_ACKNOWLEDGED")
        live.close()

        # A client that lost its connection resumes after the last token it
        # saw and misses nothing.
        resumed = self.open_stream({"parent": f"tenants/{TENANT}", "resumeAfter": raised["resumeToken"]})
        kind, again = self.next_event(resumed)
        self.assertEqual(again["resumeToken"], ack_event["resumeToken"])
        self.assertEqual(again["alert"]["name"], name)
        resumed.close()

        beyond = self.call("AlertService/StreamAlerts", {"parent": f"tenants/{TENANT}", "resumeAfter": "999999"},
                           expect=400)
        self.assertIn("resume_after", json.dumps(beyond))
        time.sleep(0.5)
        self.assertEqual(got_other, [], "another tenant's clinician saw this tenant's alert")
        # `other` stays open (closing it would wait for the reader's read):
        # the node's stop ends it.

    def test_z_a_stream_open_when_the_node_stops_ends_and_the_node_stops_cleanly(self):
        stream = self.open_stream({"parent": f"tenants/{TENANT}"})
        node = self.node
        ended = []

        def read_to_end():
            try:
                while True:
                    if not stream.readline():
                        break
            except (OSError, ValueError):
                pass
            ended.append(time.time())

        reader = threading.Thread(target=read_to_end, daemon=True)
        reader.start()
        t0 = time.time()
        code = node.stop()
        self.assertEqual(code, 0)
        reader.join(timeout=10)
        self.assertTrue(ended, "the stream did not end when the node stopped")
        self.assertLess(ended[0] - t0, 10)
        self.__class__.node = node.restart()  # tearDownClass stops it again


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
