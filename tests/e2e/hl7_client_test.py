#!/usr/bin/python3
"""A monitor vendor's HL7 gateway talking to HealthTwin: ORU^R01 messages per
IHE PCD-01, built and read back with Debian's python3-hl7 (a parser
independent of ours), framed by MLLP over TLS to the real healthtwin-hl7,
which ingests into a real node (TLS, ES256 tokens minted by PyJWT).
Checks: ACKs match their messages, twins match what was sent, resends and
out-of-order messages are never charted twice, invalid observations are not
charted, bad messages get AE/AR naming the segment and field; a 1 MB
message is taken and a larger one refused on a connection that goes on; an
unterminated frame charts nothing; a slow sender is cut off without holding
up others; ADT admits, transfers and discharges move patients between beds
and the beds' devices follow.

Usage: hl7_client_test.py --node PATH --gateway PATH
Node and gateway run on 127.0.0.1 with free ports in a temp dir and are
stopped by their PIDs."""

import argparse
import json
import datetime
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
import hl7

import node_fixture

ARGS = None
SB, EB = b"\x0b", b"\x1c\x0d"


def ts(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y%m%d%H%M%S+0000")


def oru(control_id, device, t_ms, obx_rows):
    """An ORU^R01 shaped like the IHE PCD-01 examples: MDS row with the
    device's EUI-64 in OBX-18, metric rows below it in the hierarchy."""
    segments = [
        f"MSH|^~\\&|AcmeGW^ACDE48234567ABCD^EUI-64|Acme|HEALTHTWIN|Hosp|{ts(t_ms)}||ORU^R01^ORU_R01|{control_id}"
        "|P|2.6|||NE|AL||8859/1|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        "PID|||12345^^^Hosp^PI||Doe^Jane^^^^^L",
        "PV1||I|ICU^1^3",
        f"OBR|1|{control_id}^AcmeGW|{control_id}^AcmeGW|182777000^monitoring of patient^SCT|||{ts(t_ms)}",
        f"OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{device}^EUI-64",
    ] + [f"OBX|{i + 2}|{row}" for i, row in enumerate(obx_rows)]
    text = "\r".join(segments) + "\r"
    hl7.parse(text)  # the independent parser must take what we send
    return text


def vitals(hr, spo2, rr, spo2_status="F"):
    return [
        f"NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|{hr}|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||F",
        f"NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.2.1.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||{spo2_status}",
        f"NM|151562^MDC_RESP_RATE^MDC|1.3.1.1|{rr}|264928^MDC_DIM_RESP_PER_MIN^MDC|||||F",
    ]


class MonitorGateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-hl7-")
        d = cls.tmp.name
        node_fixture.make_stubs(ARGS.proto_dir, os.path.join(d, "stubs"))
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.grpc_port, cls.ca = cls.node.grpc_port, cls.node.ca
        with open(os.path.join(d, "service.jwt"), "w") as f:
            f.write(cls.token("st-mary", ["service"], "acme-hl7-gateway"))
        with open(os.path.join(d, "beds.json"), "w") as f:
            json.dump({"ICU^2^1": ["mon-b1"], "ICU^2^2": ["mon-b2", "pump-b2"]}, f)
        cls.mllp_port = node_fixture.free_port()
        cls.gw_log = open(os.path.join(d, "hl7.log"), "wb")
        cls.gateway = subprocess.Popen(
            [ARGS.gateway, f"--listen=127.0.0.1:{cls.mllp_port}", f"--target=127.0.0.1:{cls.grpc_port}",
             "--tls-ca-file=" + os.path.join(d, "ca.pem"), "--token-file=" + os.path.join(d, "service.jwt"),
             "--tenant=st-mary", "--data-dir=" + os.path.join(d, "hl7"),
             "--mllp-tls-cert-file=" + os.path.join(d, "node.pem"),
             "--mllp-tls-key-file=" + os.path.join(d, "node.key"), "--message-timeout-ms=2000",
             "--bed-map=" + os.path.join(d, "beds.json"), "--log-format=json"],
            stdout=cls.gw_log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.mllp_port), timeout=1).close()
                break
            except OSError:
                if cls.gateway.poll() is not None or time.time() > deadline:
                    raise RuntimeError("gateway did not start: " + open(os.path.join(d, "hl7.log")).read())
                time.sleep(0.05)

        from healthtwin.v1 import common_pb2, registry_pb2, registry_pb2_grpc
        ch = cls.channel(cls.token("st-mary", ["service"]))
        registry = registry_pb2_grpc.RegistryServiceStub(ch)
        registry.CreatePatient(registry_pb2.CreatePatientRequest(
            parent="tenants/st-mary", patient_id="mrn-2002",
            patient=registry_pb2.Patient(ward="ICU-1", bed="3")), timeout=10)
        device = registry.CreateDevice(registry_pb2.CreateDeviceRequest(
            parent="tenants/st-mary", device_id="acde48234567abcd",
            device=registry_pb2.Device(type=common_pb2.DEVICE_TYPE_BEDSIDE_MONITOR)), timeout=10)
        registry.AssignDevice(registry_pb2.AssignDeviceRequest(
            device=device.name, patient="tenants/st-mary/patients/mrn-2002"), timeout=10)
        for dev, kind in [("mon-b1", common_pb2.DEVICE_TYPE_BEDSIDE_MONITOR),
                          ("mon-b2", common_pb2.DEVICE_TYPE_BEDSIDE_MONITOR),
                          ("pump-b2", common_pb2.DEVICE_TYPE_INFUSION_PUMP)]:
            registry.CreateDevice(registry_pb2.CreateDeviceRequest(
                parent="tenants/st-mary", device_id=dev, device=registry_pb2.Device(type=kind)), timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.gateway.send_signal(signal.SIGTERM)
        codes = [cls.gateway.wait(timeout=60), cls.node.stop()]
        cls.gw_log.close()
        d = cls.tmp.name
        node_fixture.assert_no_phi([os.path.join(d, "node.log"), os.path.join(d, "hl7.log")],
                                   ["mrn-2002", "mrn3001", "MRN3001", "Doe", "Jane", "Roe^Ann"])
        # --log-format=json: every line of the gateway's log is one JSON object.
        with open(os.path.join(d, "hl7.log"), encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
        assert lines, "the gateway logged nothing"
        for line in lines:
            entry = json.loads(line)
            assert {"time", "level", "message"} <= entry.keys(), line
        cls.tmp.cleanup()
        assert codes == [0, 0], f"gateway and node exited with {codes}"

    @classmethod
    def token(cls, tenant, roles, subject="ehr-integration"):
        return cls.node.token(tenant, roles, subject)

    @classmethod
    def channel(cls, token):
        creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(root_certificates=cls.ca),
                                                   grpc.access_token_call_credentials(token))
        return grpc.secure_channel(f"127.0.0.1:{cls.grpc_port}", creds)

    def connect(self):
        ctx = ssl.create_default_context(cadata=self.ca.decode())
        sock = socket.create_connection(("127.0.0.1", self.mllp_port), timeout=15)
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1")

    def exchange(self, conn, *messages):
        """Sends the messages in one write; the ACKs, parsed by python-hl7."""
        conn.sendall(b"".join(SB + m.encode() + EB for m in messages))
        buf, acks = b"", []
        while len(acks) < len(messages):
            while EB not in buf:
                chunk = conn.recv(65536)
                self.assertTrue(chunk, "the gateway closed the connection")
                buf += chunk
            frame, buf = buf.split(EB, 1)
            self.assertTrue(frame.startswith(SB))
            acks.append(hl7.parse(frame[1:].decode()))
        return acks

    def patient_twin(self):
        from healthtwin.v1 import twin_pb2, twin_pb2_grpc
        twins = twin_pb2_grpc.TwinServiceStub(self.channel(self.token("st-mary", ["clinician"])))
        return twins.GetPatientTwin(twin_pb2.GetPatientTwinRequest(
            name="tenants/st-mary/patients/mrn-2002"), timeout=10)

    def accepted(self):
        from healthtwin.v1 import twin_pb2, twin_pb2_grpc
        twins = twin_pb2_grpc.TwinServiceStub(self.channel(self.token("st-mary", ["service"])))
        return twins.GetDeviceTwin(twin_pb2.GetDeviceTwinRequest(
            name="tenants/st-mary/devices/acde48234567abcd"), timeout=10).readings_accepted

    def test_1_pcd01_messages_reach_the_twin_with_matching_acks_and_no_double_charting(self):
        from healthtwin.v1 import common_pb2
        now = int(time.time() * 1000) // 1000 * 1000
        dev = "ACDE48234567ABCD"
        m1 = oru("PCD-1001", dev, now - 120_000, vitals(78, 97, 16))
        m2 = oru("PCD-1002", dev, now - 60_000, vitals(80, 96, 17))
        m3 = oru("PCD-1003", dev, now, vitals(82, 0, 18, spo2_status="X"))
        with self.connect() as conn:
            acks = self.exchange(conn, m1, m2, m3)
            self.assertEqual([str(a.segment("MSA")[1]) for a in acks], ["AA"] * 3)
            self.assertEqual([str(a.segment("MSA")[2]) for a in acks], ["PCD-1001", "PCD-1002", "PCD-1003"])
            self.assertEqual(str(acks[0].segment("MSH")[9]), "ACK^R01^ACK")
            before = self.accepted()
            self.assertEqual(before, 9)
            # Resends (a lost ACK) and a late, earlier measurement.
            late = oru("PCD-1000", dev, now - 180_000, vitals(76, 98, 15))
            acks = self.exchange(conn, m2, m1, late)
            self.assertEqual([str(a.segment("MSA")[1]) for a in acks], ["AA"] * 3)
            self.assertEqual([str(a.segment("MSA")[2]) for a in acks], ["PCD-1002", "PCD-1001", "PCD-1000"])
            self.assertEqual(self.accepted(), 12)
        twin = self.patient_twin()
        latest = {v.metric: v.value for v in twin.vitals}
        self.assertEqual(latest[common_pb2.METRIC_HEART_RATE], 82)
        self.assertEqual(latest[common_pb2.METRIC_SPO2], 96)  # X: cannot be obtained, not charted

    def test_1b_a_cuff_measurement_charts_systolic_diastolic_and_mean(self):
        from healthtwin.v1 import common_pb2
        now = int(time.time() * 1000) // 1000 * 1000 + 1000
        rows = ["NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.4.1.1|16|kPa^kPa^UCUM|||||F",
                "NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.4.1.2|70|266016^MDC_DIM_MMHG^MDC|||||F",
                "NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.4.1.3|87|266016^MDC_DIM_MMHG^MDC|||||F"]
        with self.connect() as conn:
            acks = self.exchange(conn, oru("PCD-1101", "ACDE48234567ABCD", now, rows))
        self.assertEqual(str(acks[0].segment("MSA")[1]), "AA")
        latest = {v.metric: v.value for v in self.patient_twin().vitals}
        self.assertAlmostEqual(latest[common_pb2.METRIC_SYSTOLIC_BP], 120.0, delta=0.1)  # 16 kPa
        self.assertEqual(latest[common_pb2.METRIC_DIASTOLIC_BP], 70)
        self.assertEqual(latest[common_pb2.METRIC_MEAN_ARTERIAL_PRESSURE], 87)

    def test_2_bad_messages_get_ae_or_ar_naming_segment_and_field(self):
        now = int(time.time() * 1000)
        bad_unit = oru("PCD-2001", "ACDE48234567ABCD", now,
                       ["NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|80|mg^mg^UCUM|||||F"])
        adt = "MSH|^~\\&|ADT|Hosp|HEALTHTWIN|Hosp|20261206101500||ADT^A04^ADT_A01|ADT-1|P|2.5\rPID|||1\r"
        with self.connect() as conn:
            acks = self.exchange(conn, bad_unit, adt)
        self.assertEqual(str(acks[0].segment("MSA")[1]), "AE")
        self.assertEqual(str(acks[0].segment("MSA")[2]), "PCD-2001")
        err = acks[0].segment("ERR")
        self.assertEqual(str(err[2][0][0]), "OBX")
        self.assertEqual(str(err[2][0][2]), "6")
        self.assertIn("unit", str(err[8]))
        self.assertEqual(str(acks[1].segment("MSA")[1]), "AR")
        self.assertEqual(str(acks[1].segment("MSA")[2]), "ADT-1")

    def test_3_a_1mb_message_is_taken_and_a_larger_one_refused_on_a_connection_that_goes_on(self):
        now = int(time.time() * 1000) // 1000 * 1000
        dev = "ACDE48234567ABCD"
        big = oru("PCD-3001", dev, now - 240_000, vitals(70, 99, 14))
        big += "NTE|1||" + "x" * (1_000_000 - len(big) - 10) + "\r"
        self.assertGreaterEqual(len(big), 999_000)
        huge = oru("PCD-3002", dev, now - 230_000, vitals(71, 99, 14))
        huge += "NTE|1||" + "y" * 2_000_000 + "\r"
        after = oru("PCD-3003", dev, now - 220_000, vitals(72, 99, 14))
        before = self.accepted()
        with self.connect() as conn:
            acks = self.exchange(conn, big, huge, after)
        self.assertEqual([str(a.segment("MSA")[1]) for a in acks], ["AA", "AR", "AA"])
        self.assertEqual([str(a.segment("MSA")[2]) for a in acks], ["PCD-3001", "PCD-3002", "PCD-3003"])
        self.assertIn("1048576", str(acks[1].segment("ERR")[8]))
        self.assertEqual(self.accepted(), before + 6)

    def test_4_an_unterminated_frame_charts_nothing(self):
        now = int(time.time() * 1000) // 1000 * 1000
        before = self.accepted()
        m = oru("PCD-4001", "ACDE48234567ABCD", now - 200_000, vitals(73, 98, 15))
        with self.connect() as conn:
            conn.sendall(SB + m.encode())  # no end block: the sender went away mid-frame
        time.sleep(0.5)
        self.assertEqual(self.accepted(), before)
        with self.connect() as conn:  # sent whole, it is taken
            self.assertEqual(str(self.exchange(conn, m)[0].segment("MSA")[1]), "AA")
        self.assertEqual(self.accepted(), before + 3)

    def test_5_a_slow_sender_is_cut_off_without_holding_up_others(self):
        now = int(time.time() * 1000) // 1000 * 1000
        slow = self.connect()
        payload = SB + oru("PCD-5001", "ACDE48234567ABCD", now - 190_000, vitals(74, 98, 15)).encode()
        slow.sendall(payload[:50])
        with self.connect() as other:
            t0 = time.time()
            ack = self.exchange(other, oru("PCD-5002", "ACDE48234567ABCD", now - 180_000, vitals(75, 98, 15)))
            self.assertEqual(str(ack[0].segment("MSA")[1]), "AA")
            self.assertLess(time.time() - t0, 1.5)
        cut_off, deadline = False, time.time() + 10
        for i in range(50, len(payload)):  # a byte every 0.2 s: the whole message would take minutes
            try:
                slow.sendall(payload[i:i + 1])
                slow.settimeout(0.2)
                if slow.recv(1) == b"":
                    cut_off = True
                    break
            except (socket.timeout, ssl.SSLWantReadError):
                pass
            except (ConnectionError, ssl.SSLError, OSError):
                cut_off = True
                break
            if time.time() > deadline:
                break
        slow.close()
        self.assertTrue(cut_off, "a sender slower than the message timeout was not cut off")

    def test_6_adt_moves_patients_between_beds_and_their_devices_follow(self):
        from healthtwin.v1 import twin_pb2, twin_pb2_grpc
        twins = twin_pb2_grpc.TwinServiceStub(self.channel(self.token("st-mary", ["service"])))

        def patient_of(device):
            return twins.GetDeviceTwin(twin_pb2.GetDeviceTwinRequest(
                name=f"tenants/st-mary/devices/{device}"), timeout=10).patient

        def adt(event, control_id, pv1):
            text = (f"MSH|^~\\&|EPIC|Hosp|HEALTHTWIN|Hosp|20261206101500+0000||ADT^{event}^ADT_A01|{control_id}"
                    f"|P|2.5\rEVN|{event}|20261206101500\rPID|||MRN3001^^^Hosp^MR||Roe^Ann\r{pv1}\r")
            hl7.parse(text)
            return text

        patient = "tenants/st-mary/patients/mrn3001"
        with self.connect() as conn:
            acks = self.exchange(conn, adt("A01", "ADT-3001", "PV1||I|ICU^2^1"))
            self.assertEqual(str(acks[0].segment("MSA")[1]), "AA")
            self.assertEqual(patient_of("mon-b1"), patient)
            acks = self.exchange(conn, adt("A01", "ADT-3001", "PV1||I|ICU^2^1"),  # a resend
                                 adt("A02", "ADT-3002", "PV1||I|ICU^2^2|||ICU^2^1"))
            self.assertEqual([str(a.segment("MSA")[1]) for a in acks], ["AA", "AA"])
            self.assertEqual(patient_of("mon-b1"), "")
            self.assertEqual(patient_of("mon-b2"), patient)
            self.assertEqual(patient_of("pump-b2"), patient)
            twin = twins.GetPatientTwin(twin_pb2.GetPatientTwinRequest(name=patient), timeout=10)
            self.assertEqual((twin.ward, twin.bed), ("ICU", "2-2"))
            acks = self.exchange(conn, adt("A03", "ADT-3003", "PV1||I|ICU^2^2"))
            self.assertEqual(str(acks[0].segment("MSA")[1]), "AA")
            self.assertEqual(patient_of("mon-b2"), "")
            self.assertEqual(patient_of("pump-b2"), "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--proto-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
