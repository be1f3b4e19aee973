#!/usr/bin/python3
"""Two regions (docs/multi-region.md), each its own cluster of real nodes on
127.0.0.1 with TLS, stopped by PID: eu-central (3 members, forwards calls
about twins homed elsewhere) and us-east (1 node, redirects them). Both
accept the same tokens.

- A patient created through eu-central with home region us-east is stored
  in us-east only: its registration, readings, twin and alerts are read
  (an alert acknowledged) through any eu-central member, forwarded with the
  caller's token; no file of
  eu-central's data directories holds its ward, bed, id or device (the
  same markers are found in us-east's files: the scan can see them).
- us-east redirects: a call about a patient homed in eu-central is
  refused FAILED_PRECONDITION naming the region and its endpoint (and a
  google.rpc.ErrorInfo HOMED_ELSEWHERE).
- LocateTwin (and `twinctl locate`) names a twin's home from either region; an id registered in
  one region cannot be created in another; UpdatePatient cannot move a
  patient's home; an unknown patient is NOT_FOUND everywhere.
- With us-east down, a call about its patient through eu-central is
  UNAVAILABLE naming the region, never answered from local data.

- Streams (a twin watch, a patient's alert stream) are not carried
  across regions: both routings answer FAILED_PRECONDITION naming the home.

Usage: regions_test.py --node PATH --proto-dir proto --twinctl PATH"""

import json
import os
import subprocess
import tempfile
import time
import unittest

from cryptography.hazmat.primitives.asymmetric import ec

import node_fixture

ARGS = None
TENANT = "st-anne"
# Markers only a us-east patient's data contains.
WARD, BED, PID = "ward-resid-4471", "bed-resid-9083", "p-us-5527"
DEVICE = f"oxi-{PID}"


def patient(pid):
    return f"tenants/{TENANT}/patients/{pid}"


def device(did):
    return f"tenants/{TENANT}/devices/{did}"


class Regions(node_fixture.ApiCalls, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-regions-")
        root = cls.tmp.name
        node_fixture.make_stubs(ARGS.proto_dir, os.path.join(root, "stubs"))
        key = ec.generate_private_key(ec.SECP256R1())
        eu_ports, us_port = [node_fixture.free_port() for _ in range(3)], node_fixture.free_port()
        eu_dir, us_dir = os.path.join(root, "eu"), os.path.join(root, "us")
        os.makedirs(eu_dir)
        os.makedirs(us_dir)
        node_fixture.make_pki(eu_dir)  # each region its own CA
        node_fixture.make_pki(us_dir)
        cls.us_endpoint, cls.eu_endpoint = f"127.0.0.1:{us_port}", f"127.0.0.1:{eu_ports[0]}"
        cls.us_args = ["--region=us-east", "--region-endpoints=eu-central=" + cls.eu_endpoint,
                       "--region-routing=redirect", "--region-ca-file=" + os.path.join(eu_dir, "ca.pem")]
        cls.us = node_fixture.Node(ARGS.node, us_dir, us_port, signing_key=key, extra_args=cls.us_args)
        cls.eu, _ = node_fixture.start_cluster(
            ARGS.node, eu_dir, n=3, signing_key=key, grpc_ports=eu_ports, extra_args=lambda i: [
                "--region=eu-central", "--region-endpoints=us-east=" + cls.us_endpoint,
                "--region-routing=forward", "--region-ca-file=" + os.path.join(us_dir, "ca.pem")])
        cls.admin = cls.us.token(TENANT, ["ops-admin"], "ops-1")
        cls.service = cls.us.token(TENANT, ["service"], "ehr-integration")
        cls.sre = cls.us.token(TENANT, ["sre"], "sre-1")
        node_fixture.wait_for(lambda: all(cls.members_up(n) for n in cls.eu), "eu-central's members up", 60)

    @classmethod
    def tearDownClass(cls):
        for n in cls.eu + [cls.us]:
            if n.proc.poll() is None:
                n.stop()
        cls.tmp.cleanup()

    @classmethod
    def members_up(cls, node):
        status = node.api(cls.sre, "ClusterService/GetClusterStatus", {})
        return all(m.get("state") == "MEMBER_STATE_UP" for m in status["members"])

    def stream_refusal(self, node, open_stream):
        """The status a server stream opened at `node` (Python gRPC, TLS) ends with before any message."""
        import grpc
        from healthtwin.v1 import alert_pb2_grpc, twin_pb2_grpc
        with node.grpc_channel(self.service) as ch:
            stream = open_stream(twin_pb2_grpc.TwinServiceStub(ch), alert_pb2_grpc.AlertServiceStub(ch))
            with self.assertRaises(grpc.RpcError) as e:
                next(stream)
            return e.exception.code(), e.exception.details()

    def test_1_a_patient_homed_elsewhere_is_served_by_its_home_region_only(self):
        made = self.call(self.eu[1], "RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": PID,
            "patient": {"ward": WARD, "bed": BED, "homeRegion": "us-east"}})
        self.assertEqual(made["homeRegion"], "us-east")
        # Registered in us-east; every eu-central member reads it from there.
        self.assertEqual(self.call(self.us, "RegistryService/GetPatient", {"name": patient(PID)})["ward"], WARD)
        for n in self.eu:
            self.assertEqual(self.call(n, "RegistryService/GetPatient", {"name": patient(PID)})["bed"], BED)
        # Its device lives in us-east; readings sent there reach the twin read through eu-central.
        self.call(self.us, "RegistryService/CreateDevice", {
            "parent": f"tenants/{TENANT}", "deviceId": DEVICE, "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
        self.call(self.eu[2], "RegistryService/AssignDevice", {"device": device(DEVICE), "patient": patient(PID)})
        alert = self.us.desaturate(self.service, TENANT, PID, {})  # SpO2 97, 84, 84 sent to us-east
        twin = self.call(self.eu[0], "TwinService/GetPatientTwin", {"name": patient(PID)})
        self.assertEqual(twin["ward"], WARD)
        spo2 = [v for v in twin.get("vitals", []) if v.get("metric") == "METRIC_SPO2"]
        self.assertEqual([v["value"] for v in spo2], [84], twin)
        # Its alert is listed and acknowledged through eu-central, kept in us-east.
        listed = self.call(self.eu[1], "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}",
                                                                    "patient": patient(PID)})
        self.assertEqual([a["name"] for a in listed["alerts"]], [alert])
        clinician = self.us.token(TENANT, ["clinician"], "dr-okafor")
        acked = self.call(self.eu[2], "AlertService/AcknowledgeAlert", {"name": alert}, clinician)
        self.assertEqual(acked["acknowledgedBy"], "dr-okafor")
        there = self.call(self.us, "AlertService/ListAlerts", {"parent": f"tenants/{TENANT}", "patient": patient(PID)})
        self.assertEqual(there["alerts"][0]["acknowledgedBy"], "dr-okafor")
        # Streams are not carried across regions: a watch through eu-central names us-east.
        from healthtwin.v1 import twin_pb2
        import grpc
        code, details = self.stream_refusal(self.eu[1], lambda twins, alerts: twins.WatchPatientTwin(
            twin_pb2.WatchPatientTwinRequest(name=patient(PID)), timeout=10))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, details)
        self.assertIn("region us-east", details)
        # Its FHIR export is made in us-east, whole, through eu-central.
        bundle = json.loads(self.call(self.eu[0], "FhirService/ExportPatient", {"name": patient(PID)})["json"])
        kinds = sorted({e["resource"]["resourceType"] for e in bundle["entry"]})
        self.assertIn("Patient", kinds)
        self.assertIn("Observation", kinds)
        # The device is located in us-east, through either region.
        for n in (self.eu[1], self.us):
            self.assertEqual(self.call(n, "RegistryService/LocateTwin", {"name": device(DEVICE)})["homeRegion"],
                             "us-east")
        # Its id cannot be taken in eu-central, nor its home moved by an update.
        code, body = self.refused(self.eu[0], "RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": PID, "patient": {"ward": "W1"}})
        self.assertEqual(code, 409, body)
        self.assertIn("us-east", body["message"])
        code, body = self.refused(self.us, "RegistryService/UpdatePatient", {
            "patient": {"name": patient(PID), "homeRegion": "eu-central"}, "updateMask": "homeRegion"},
            self.admin)
        self.assertEqual(code, 400, body)
        self.assertIn("home region", body["message"])

    def test_2_a_redirecting_region_names_the_home_region(self):
        pid = "p-eu-3301"
        code, body = self.refused(self.us, "RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": "W2", "homeRegion": "eu-central"}})
        self.assertEqual(code, 400, body)
        self.assertEqual(body["status"], "FAILED_PRECONDITION")
        self.assertIn("eu-central", body["message"])
        self.assertIn(self.eu_endpoint, body["message"])
        made = self.call(self.eu[0], "RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": "W2"}})
        self.assertEqual(made["homeRegion"], "eu-central")  # an empty home is the region it is created in
        for rpc, body in (("RegistryService/GetPatient", {"name": patient(pid)}),
                          ("TwinService/GetPatientTwin", {"name": patient(pid)}),
                          ("FhirService/ExportPatient", {"name": patient(pid)})):
            code, answer = self.refused(self.us, rpc, body)
            self.assertEqual(code, 400, answer)
            self.assertIn("eu-central", answer["message"])
            info = [d for d in answer.get("details", []) if d.get("reason") == "HOMED_ELSEWHERE"]
            self.assertEqual(len(info), 1, answer)
            self.assertEqual(info[0]["metadata"]["home_region"], "eu-central")
        self.assertEqual(self.call(self.us, "RegistryService/LocateTwin", {"name": patient(pid)})["homeRegion"],
                         "eu-central")
        token_file = os.path.join(self.tmp.name, "service.jwt")
        with open(token_file, "w") as f:
            f.write(self.service)
        located = subprocess.run([ARGS.twinctl, "locate", patient(pid), "--target", f"127.0.0.1:{self.us.grpc_port}",
                                  "--tls-ca-file", os.path.join(self.us.dir, "ca.pem"), "--token-file", token_file],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(located.returncode, 0, located.stderr)
        self.assertEqual(located.stdout.strip(), f"{patient(pid)}  home eu-central")
        self.assertEqual(self.call(self.eu[2], "RegistryService/LocateTwin", {"name": patient(pid)})["homeRegion"],
                         "eu-central")
        from healthtwin.v1 import alert_pb2
        import grpc
        code, details = self.stream_refusal(self.us, lambda twins, alerts: alerts.StreamAlerts(
            alert_pb2.StreamAlertsRequest(parent=f"tenants/{TENANT}", patient=patient(pid)), timeout=10))
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION, details)
        self.assertIn("region eu-central", details)
        # Unknown everywhere: NOT_FOUND from both regions.
        for n in (self.us, self.eu[1]):
            code, body = self.refused(n, "RegistryService/GetPatient", {"name": patient("p-nobody")})
            self.assertEqual(code, 404, body)
            code, body = self.refused(n, "RegistryService/LocateTwin", {"name": patient("p-nobody")})
            self.assertEqual(code, 404, body)

    def test_3_no_file_of_the_other_region_holds_the_patient(self):
        self.call(self.us, "RegistryService/GetPatient", {"name": patient(PID)})  # test 1 made it
        for n in self.eu + [self.us]:  # flushed and closed: every byte is in the files
            n.stop()
        markers = [m.encode() for m in (WARD, BED, PID, DEVICE)]

        def found_in(d):
            hits = set()
            for base, _, files in os.walk(d):
                for f in files:
                    with open(os.path.join(base, f), "rb") as fh:
                        data = fh.read()
                    hits.update(m for m in markers if m in data)
            return hits

        self.assertTrue(found_in(os.path.join(self.us.dir, "db")), "the scan finds the markers in us-east")
        for n in self.eu:
            self.assertEqual(found_in(n.dir), set(), f"{n.dir} holds us-east's patient")
        # us-east down: eu-central answers UNAVAILABLE naming it, never from local data.
        self.eu[:] = [n.restart() for n in self.eu]
        node_fixture.wait_for(lambda: all(self.members_up(n) for n in self.eu), "eu-central back", 60)
        self.assertEqual(self.call(self.eu[1], "RegistryService/GetPatient", {"name": patient("p-eu-3301")})["ward"],
                         "W2")
        for n in self.eu:
            code, body = self.refused(n, "RegistryService/GetPatient", {"name": patient(PID)})
            self.assertEqual(code, 503, body)
            self.assertIn("region us-east", body["message"])
        # ...and still admits its own patients (the id check skips the region it cannot ask).
        started = time.monotonic()
        made = self.call(self.eu[2], "RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": "p-eu-admitted", "patient": {"ward": "W3"}})
        self.assertEqual(made["homeRegion"], "eu-central")
        self.assertLess(time.monotonic() - started, 5)


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "proto-dir", "twinctl")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
