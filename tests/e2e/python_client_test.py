#!/usr/bin/python3
"""A hospital backend's view of HealthTwin: a Python gRPC client (Debian's
python3-grpcio, stubs generated from our .proto files) that registers a
patient and a device, ingests readings, reads the twin, watches the alert
stream and acknowledges the alert, over TLS with ES256 bearer tokens minted
by PyJWT (an implementation independent of the node's libjwt).

Usage: python_client_test.py --node PATH --proto-dir DIR
The node runs on 127.0.0.1 with ports it picks, in a temp dir, and is
stopped by its PID."""

import argparse
import os
import sys
import tempfile
import threading
import time
import unittest

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

import node_fixture

ARGS = None


class HospitalBackend(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-py-")
        d = cls.tmp.name
        node_fixture.make_stubs(ARGS.proto_dir, os.path.join(d, "stubs"))
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.port, cls.ca = cls.node.grpc_port, cls.node.ca

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        cls.tmp.cleanup()
        assert code == 0, f"node exited with {code}"

    def token(self, tenant, roles, subject="ehr-integration"):
        return self.node.token(tenant, roles, subject)

    def channel(self, token):
        creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(root_certificates=self.ca),
                                                   grpc.access_token_call_credentials(token))
        return grpc.secure_channel(f"127.0.0.1:{self.port}", creds)

    def test_register_ingest_query_watch_and_acknowledge(self):
        from healthtwin.v1 import (alert_pb2, alert_pb2_grpc, common_pb2, ingest_pb2, ingest_pb2_grpc,
                                   registry_pb2, registry_pb2_grpc, twin_pb2, twin_pb2_grpc)
        ch = self.channel(self.token("st-mary", ["service"]))
        registry = registry_pb2_grpc.RegistryServiceStub(ch)
        registry.CreatePatient(registry_pb2.CreatePatientRequest(
            parent="tenants/st-mary", patient_id="mrn-1001",
            patient=registry_pb2.Patient(ward="ICU-3", bed="12")), timeout=10)
        device = registry.CreateDevice(registry_pb2.CreateDeviceRequest(
            parent="tenants/st-mary", device_id="oxi-7",
            device=registry_pb2.Device(type=common_pb2.DEVICE_TYPE_PULSE_OXIMETER)), timeout=10)
        patient = "tenants/st-mary/patients/mrn-1001"
        registry.AssignDevice(registry_pb2.AssignDeviceRequest(device=device.name, patient=patient), timeout=10)

        # Watch the alert stream of the tenant while readings arrive.
        alerts = alert_pb2_grpc.AlertServiceStub(ch)
        stream = alerts.StreamAlerts(alert_pb2.StreamAlertsRequest(
            parent="tenants/st-mary", min_priority=common_pb2.PRIORITY_HIGH), timeout=30)
        raised = []
        watcher = threading.Thread(target=lambda: raised.append(next(iter(stream))))
        watcher.start()
        time.sleep(0.5)

        now = int(time.time() * 1000)
        readings = [(1, now - 200_000, 97.0), (2, now - 6_000, 84.0), (3, now, 84.0)]
        ack = ingest_pb2_grpc.IngestServiceStub(ch).Ingest(ingest_pb2.IngestRequest(
            batch_id=1, devices=[ingest_pb2.DeviceReadings(
                device=device.name, sequence=[r[0] for r in readings], time_ms=[r[1] for r in readings],
                metric=[common_pb2.METRIC_SPO2] * 3, value=[r[2] for r in readings])]), timeout=10)
        self.assertEqual(ack.accepted, 3)

        twin = twin_pb2_grpc.TwinServiceStub(ch).GetPatientTwin(
            twin_pb2.GetPatientTwinRequest(name=patient), timeout=10)
        spo2 = [v for v in twin.vitals if v.metric == common_pb2.METRIC_SPO2]
        self.assertEqual(spo2[0].value, 84.0)

        watcher.join(timeout=30)
        self.assertEqual(len(raised), 1, "no alert arrived on the stream")
        event = raised[0]
        self.assertEqual(event.type, alert_pb2.ALERT_EVENT_TYPE_RAISED)
        self.assertEqual(event.alert.patient, patient)
        self.assertEqual(event.alert.metric, common_pb2.METRIC_SPO2)
        stream.cancel()

        # Query the tenant's twins the way a ward dashboard would, and watch
        # the patient's twin.
        from google.protobuf import field_mask_pb2
        twins = twin_pb2_grpc.TwinServiceStub(ch)
        found = twins.ListPatientTwins(twin_pb2.ListPatientTwinsRequest(
            parent="tenants/st-mary", filter='ward = "ICU-3" AND alerts.priority = HIGH',
            order_by="news2 desc", page_size=10,
            read_mask=field_mask_pb2.FieldMask(paths=["name", "active_alerts"])), timeout=10)
        self.assertEqual([t.name for t in found.patient_twins], [patient])
        self.assertEqual(found.total_size, 1)
        self.assertEqual(found.patient_twins[0].ward, "")  # not in the mask
        self.assertIn(event.alert.name, [a.name for a in found.patient_twins[0].active_alerts])
        watch = twins.WatchPatientTwin(twin_pb2.WatchPatientTwinRequest(
            name=patient, read_mask=field_mask_pb2.FieldMask(paths=["name", "readings_applied"])),
            timeout=10)
        first = next(iter(watch))
        self.assertEqual(first.name, patient)
        self.assertEqual(first.readings_applied, 3)
        watch.cancel()

        acked = alerts.AcknowledgeAlert(alert_pb2.AcknowledgeAlertRequest(
            name=event.alert.name, acknowledged_by="nurse-jones", note="repositioned probe"), timeout=10)
        self.assertEqual(acked.acknowledged_by, "nurse-jones")
        listed = alerts.ListAlerts(alert_pb2.ListAlertsRequest(parent="tenants/st-mary"), timeout=10)
        self.assertIn(event.alert.name, [a.name for a in listed.alerts])

    def test_another_hospital_and_bad_tokens_are_refused(self):
        from healthtwin.v1 import twin_pb2, twin_pb2_grpc
        request = twin_pb2.GetPatientTwinRequest(name="tenants/st-mary/patients/mrn-1001")
        other = twin_pb2_grpc.TwinServiceStub(self.channel(self.token("general", ["clinician"], "dr-who")))
        with self.assertRaises(grpc.RpcError) as denied:
            other.GetPatientTwin(request, timeout=10)
        self.assertEqual(denied.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        forged_key = ec.generate_private_key(ec.SECP256R1())
        now = int(time.time())
        forged = jwt.encode({"sub": "x", "tenant": "st-mary", "roles": ["clinician"], "aud": "healthtwin",
                             "iss": "https://idp.hospital.example", "exp": now + 600}, forged_key,
                            algorithm="ES256")
        with self.assertRaises(grpc.RpcError) as refused:
            twin_pb2_grpc.TwinServiceStub(self.channel(forged)).GetPatientTwin(request, timeout=10)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--proto-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
