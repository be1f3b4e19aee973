#!/usr/bin/python3
"""A patient as a FHIR R4 Bundle, as an EHR fetches it: a real node on
127.0.0.1 (TLS, tokens) with a patient whose monitor and observation chart
report a full set of vital signs and whose SpO2 raises an alert;
GET /fhir/{tenant}/Patient/{id}/$everything returns a Bundle that the npm
`fhir` validator (R4) accepts, with vital-signs Observations coded per the
vital-signs profile (LOINC, UCUM, the blood-pressure panel), NEWS2 with its
components and derivedFrom links that resolve inside the bundle, the
devices and the open alert as a Flag; a range selects the observations;
another tenant, no token and bad parameters get OperationOutcomes; the
same bundle comes from FhirService over gRPC and from twinctl.
Stopped by PID.

Usage: fhir_export_test.py --node PATH --twinctl PATH --validator tests/fhir/validate.mjs
Exits 77 (skipped) when node or the validator's packages are missing."""

import argparse
import json
import os
import shutil
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
TENANT = "st-clare"
PID = "mrn-5001"
PATIENT = f"tenants/{TENANT}/patients/{PID}"
VITAL_SIGNS = {"8867-4": "/min", "9279-1": "/min", "2708-6": "%", "8310-5": "Cel", "8478-0": "mm[Hg]"}


class FhirExport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-fhir-")
        d = cls.d = cls.tmp.name
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        cls.service = cls.node.token(TENANT, ["service"])
        cls.api("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": PID,
                                                  "patient": {"ward": "MAU", "bed": "9"}})
        for dev, kind in (("mon-51", "DEVICE_TYPE_BEDSIDE_MONITOR"), ("chart-51", "DEVICE_TYPE_OBSERVATION_CHART")):
            cls.api("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": dev,
                                                     "device": {"type": kind}})
            cls.api("RegistryService/AssignDevice", {"device": f"tenants/{TENANT}/devices/{dev}", "patient": PATIENT})
        now = cls.now = int(time.time() * 1000)
        cls.times = [now - 600_000, now - 300_000, now - 8_000, now]
        rows = []
        for i, t in enumerate(cls.times):
            spo2 = 97 if i < 2 else 84
            rows += [(t, "METRIC_HEART_RATE", 88 + i), (t, "METRIC_SPO2", spo2), (t, "METRIC_RESPIRATION_RATE", 18),
                     (t, "METRIC_TEMPERATURE", 37.2), (t, "METRIC_SYSTOLIC_BP", 118), (t, "METRIC_DIASTOLIC_BP", 74)]
        cls.ingest("mon-51", rows)
        cls.ingest("chart-51", [(now, "METRIC_CONSCIOUSNESS", 0), (now, "METRIC_OXYGEN_FLOW", 0)])
        deadline = time.time() + 10
        while not cls.api("AlertService/ListAlerts", {"parent": f"tenants/{TENANT}", "patient": PATIENT}).get("alerts"):
            assert time.time() < deadline, "no alert raised"
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        node_fixture.assert_no_phi([os.path.join(cls.d, "node.log")], [PID])
        cls.tmp.cleanup()
        assert code == 0, f"node exited with {code}"

    @classmethod
    def api(cls, rpc, body):
        return cls.node.api(cls.service, rpc, body)

    sequence = {}

    @classmethod
    def ingest(cls, device, rows):
        first = cls.sequence.get(device, 1)
        cls.sequence[device] = first + len(rows)
        ack = cls.api("IngestService/Ingest", {"batchId": str(first), "devices": [{
            "device": f"tenants/{TENANT}/devices/{device}", "sequence": [str(first + i) for i in range(len(rows))],
            "timeMs": [str(t) for t, _, _ in rows], "metric": [m for _, m, _ in rows], "value": [v for _, _, v in rows]}]})
        assert ack["accepted"] == len(rows), ack

    def fetch(self, path, token="nurse", expect=200):
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + (self.node.token(TENANT, ["clinician"], "nurse-1")
                                                    if token == "nurse" else token)
        req = urllib.request.Request(f"https://localhost:{self.node.http_port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
                status, ctype, body = r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            status, ctype, body = e.code, e.headers["Content-Type"], e.read()
        self.assertEqual(status, expect, body[:300])
        self.assertTrue(ctype.startswith("application/fhir+json"), ctype)
        return json.loads(body)

    def validate(self, resource, name):
        code, output = node_fixture.fhir_validation(ARGS.validator, self.d, resource, name)
        self.assertEqual(code, 0, output)

    def test_the_bundle_is_valid_r4_with_vital_signs_news2_devices_and_the_alert(self):
        bundle = self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything?_format=json")
        self.validate(bundle, "everything")
        self.assertEqual(bundle["resourceType"], "Bundle")
        resources = [e["resource"] for e in bundle["entry"]]
        by_ref = {f'{r["resourceType"]}/{r["id"]}': r for r in resources}
        kinds = sorted({r["resourceType"] for r in resources})
        self.assertEqual(kinds, ["Device", "DeviceMetric", "Flag", "Observation", "Patient"])
        self.assertIn(f"Patient/{PID}", by_ref)
        self.assertIn("Device/mon-51", by_ref)
        self.assertEqual(by_ref["Device/mon-51"]["patient"]["reference"], f"Patient/{PID}")

        vitals = [r for r in resources if r["resourceType"] == "Observation"
                  and r["category"][0]["coding"][0]["code"] == "vital-signs"]
        for o in vitals:  # the vital-signs profile's required elements
            self.assertEqual(o["status"], "final")
            self.assertEqual(o["subject"]["reference"], f"Patient/{PID}")
            self.assertIn("effectiveDateTime", o)
            loinc = [c["code"] for c in o["code"]["coding"] if c["system"] == "http://loinc.org"]
            self.assertTrue(loinc, o)
            if loinc[0] == "85354-9":
                parts = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in o["component"]}
                self.assertEqual(parts["8480-6"], {"value": 118, "unit": "mm[Hg]",
                                                   "system": "http://unitsofmeasure.org", "code": "mm[Hg]"})
                self.assertEqual(parts["8462-4"]["value"], 74)
            else:
                self.assertIn(loinc[0], VITAL_SIGNS)
                q = o["valueQuantity"]
                self.assertEqual((q["system"], q["code"]), ("http://unitsofmeasure.org", VITAL_SIGNS[loinc[0]]))
        by_code = {}
        for o in vitals:
            by_code.setdefault(o["code"]["coding"][0]["code"], []).append(o)
        self.assertEqual({k: len(v) for k, v in by_code.items()},
                         {"8867-4": 4, "9279-1": 4, "2708-6": 4, "8310-5": 4, "85354-9": 4})
        self.assertIn("59408-5", [c["code"] for c in by_code["2708-6"][0]["code"]["coding"]])

        news2 = [r for r in resources if r["resourceType"] == "Observation" and r["code"].get("text") == "NEWS2"]
        self.assertEqual(len(news2), 1)
        n = news2[0]
        self.assertEqual(len(n["component"]), 7)
        self.assertGreaterEqual(n["valueInteger"], 3)  # SpO2 84 alone scores 3
        refs = [d["reference"] for d in n.get("derivedFrom", [])]
        self.assertGreaterEqual(len(refs), 5)
        for ref in refs:
            self.assertIn(ref, by_ref, "derivedFrom names a resource outside the bundle")

        flags = [r for r in resources if r["resourceType"] == "Flag"]
        self.assertEqual(len(flags), 1)
        self.assertEqual(flags[0]["status"], "active")
        self.assertIn("spo2", flags[0]["code"]["text"])

    def test_a_range_selects_the_observations(self):
        def iso(ms):
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)
        start, end = iso(self.times[1]), iso(self.times[2] + 1)
        bundle = self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything?start={start}&end={end}")
        hr = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
              and e["resource"]["code"]["coding"][0]["code"] == "8867-4"]
        self.assertEqual([e["resource"]["valueQuantity"]["value"] for e in hr], [89, 90])

    def test_the_same_bundle_over_grpc_and_from_twinctl(self):
        nurse = self.node.token(TENANT, ["clinician"], "nurse-1")
        req = urllib.request.Request(f"https://localhost:{self.node.http_port}/api/v1/FhirService/ExportPatient",
                                     data=json.dumps({"name": PATIENT}).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + nurse})
        with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
            bundle = json.loads(json.loads(r.read())["json"])
        self.validate(bundle, "grpc")
        over_http = self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything")
        ids = lambda b: sorted(f'{e["resource"]["resourceType"]}/{e["resource"]["id"]}' for e in b["entry"])
        self.assertEqual(ids(bundle), ids(over_http))
        token_file = os.path.join(self.d, "nurse.jwt")
        with open(token_file, "w") as f:
            f.write(nurse)
        out = subprocess.run([ARGS.twinctl, "fhir", "export", PATIENT, "--target", f"localhost:{self.node.grpc_port}",
                              "--tls-ca-file", os.path.join(self.d, "ca.pem"), "--token-file", token_file],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(ids(json.loads(out.stdout)), ids(over_http))
        missing = subprocess.run([ARGS.twinctl, "fhir", "export", f"tenants/{TENANT}/patients/nobody", "--target",
                                  f"localhost:{self.node.grpc_port}", "--tls-ca-file", os.path.join(self.d, "ca.pem"),
                                  "--token-file", token_file], capture_output=True, text=True, timeout=60)
        self.assertEqual(missing.returncode, 1)

    def test_refusals_are_operation_outcomes(self):
        other = self.node.token("elsewhere", ["clinician"], "nurse-x")
        denied = self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything", token=other, expect=403)
        self.assertEqual(denied["resourceType"], "OperationOutcome")
        self.assertEqual(denied["issue"][0]["code"], "forbidden")
        self.validate(denied, "denied")
        self.assertEqual(self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything", token=None,
                                    expect=401)["issue"][0]["code"], "login")
        self.assertEqual(self.fetch(f"/fhir/{TENANT}/Patient/nobody/$everything", expect=404)["issue"][0]["code"],
                         "not-found")
        bad = self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything?start=yesterday", expect=400)
        self.assertIn("start", bad["issue"][0]["diagnostics"])
        self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything?_format=xml", expect=406)
        self.fetch(f"/fhir/{TENANT}/Patient/{PID}/$everything?start=2026-01-01&end=2026-06-01", expect=400)
        self.fetch(f"/fhir/{TENANT}/Observation/x", expect=404)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--validator", required=True)
    p.add_argument("--twinctl", required=True)
    ARGS, rest = p.parse_known_args()
    modules = os.path.join(os.path.dirname(os.path.abspath(ARGS.validator)), "node_modules", "fhir")
    if not shutil.which("node") or not os.path.isdir(modules):
        print("SKIPPED: node or the FHIR validator's npm packages are missing (tests/fhir/setup installs them)")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
