#!/usr/bin/python3
"""Alarms out, IHE PCD-04: healthtwin-hl7 follows a real node's alert stream
and sends each event as an ORU^R40 over MLLP to an alarm manager — here a
Python MLLP receiver on 127.0.0.1 that NACKs one message, drops the
connection on another and ACKs the rest. Alerts are raised, acknowledged
and resolved; the gateway is SIGKILLed and restarted; the node is stopped
and restarted. The receiver must accept every event once, in order, with
no gap (a repeat only ever of the same control id), each reporting its
phase, state and priority. Everything is stopped by PID.

Usage: pcd04_test.py --node PATH --gateway PATH"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import node_fixture

ARGS = None
TENANT = "st-jude"


class Receiver:
    """An alarm manager's MLLP listener. `plan` says what to do with the
    n-th message received (0-based): "nack", "drop" (close without an
    answer), else ACK. Keeps every message received and the control ids it
    accepted, in order."""

    def __init__(self, plan, tls=None):
        self.plan, self.received, self.accepted, self.tls, self.peers = plan, [], [], tls, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn):
        buf = b""
        if self.tls:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return  # a client that does not complete the handshake (or has no certificate)
            with self.lock:
                self.peers.append((conn.version(), conn.getpeercert()))
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\x1c\r" in buf:
                    frame, buf = buf.split(b"\x1c\r", 1)
                    msg = frame.lstrip(b"\x0b").decode()
                    segments = [s.split("|") for s in msg.split("\r") if s]
                    control_id = segments[0][9]
                    with self.lock:
                        n = len(self.received)
                        self.received.append(segments)
                        action = self.plan.get(n, "ack")
                        if action == "ack":
                            self.accepted.append(control_id)
                    if action == "drop":
                        return
                    code = "AE" if action == "nack" else "AA"
                    ack = (f"MSH|^~\\&|MANAGER|WARD|HealthTwin||20260101000000||ACK^R40^ACK|A{n}|P|2.6\r"
                           f"MSA|{code}|{control_id}\r")
                    conn.sendall(b"\x0b" + ack.encode() + b"\x1c\r")

    def close(self):
        self.closing = True
        self.sock.close()


class GatewayFixture(unittest.TestCase):
    """A node with three patients, a receiver, and the gateway started on demand."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-pcd04-")
        d = self.d = self.tmp.name
        node_fixture.make_pki(d)
        self.node = node_fixture.Node(ARGS.node, d)
        self.service = self.node.token(TENANT, ["service"], "alarm-gateway")
        with open(os.path.join(d, "service.jwt"), "w") as f:
            f.write(self.service)
        self.sequence = {}
        for pid in ("p1", "p2", "p3"):
            self.api("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": pid,
                                                       "patient": {"ward": "ICU", "bed": pid}})
            self.api("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "oxi-" + pid,
                                                      "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
            self.api("RegistryService/AssignDevice", {"device": f"tenants/{TENANT}/devices/oxi-{pid}",
                                                      "patient": f"tenants/{TENANT}/patients/{pid}"})
        self.receiver = Receiver({0: "nack", 1: "drop"})
        self.gateway = None
        self.gw_logs = []

    def tearDown(self):
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            self.assertEqual(self.gateway.wait(timeout=30), 0)
        self.receiver.close()
        code = self.node.stop()
        node_fixture.assert_no_phi(self.gw_logs, ["p1", "p2", "p3"])
        self.tmp.cleanup()
        self.assertEqual(code, 0)

    def api(self, rpc, body):
        return self.node.api(self.service, rpc, body)

    def start_gateway(self, extra=()):
        log_path = os.path.join(self.d, f"hl7-{len(self.gw_logs)}.log")
        self.gw_logs.append(log_path)
        log = open(log_path, "wb")
        self.gateway = subprocess.Popen(
            [ARGS.gateway, "--listen=127.0.0.1:0", f"--target=localhost:{self.node.grpc_port}",
             "--tls-ca-file=" + os.path.join(self.d, "ca.pem"), "--token-file=" + os.path.join(self.d, "service.jwt"),
             f"--tenant={TENANT}", "--data-dir=" + os.path.join(self.d, "hl7"),
             f"--alarms-to=127.0.0.1:{self.receiver.port}", "--alarms-receiver-app=NURSECALL",
             "--alarms-ack-timeout-ms=1000", "--facility=ICU-GW", *extra],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        def subscribed():
            with open(log_path) as f:
                return "following the alert stream" in f.read()
        node_fixture.wait_for(subscribed, "the gateway to subscribe")

    def desaturate(self, pid):
        return self.node.desaturate(self.service, TENANT, pid, self.sequence)

    def accepted_count(self):
        with self.receiver.lock:
            return len(set(self.receiver.accepted))

class AlarmsOut(GatewayFixture):
    def test_every_event_reaches_the_alarm_manager_once_in_order_across_kills_and_restarts(self):
        self.start_gateway()
        a = self.desaturate("p1")  # event 1: raised
        self.api("AlertService/AcknowledgeAlert", {"name": a, "acknowledgedBy": "nurse-1"})  # 2
        self.api("AlertService/ResolveAlert", {"name": a, "resolvedBy": "nurse-1"})  # 3
        node_fixture.wait_for(lambda: self.accepted_count() == 3, "three events accepted")

        # The gateway is killed; alerts go on; a restarted gateway resumes.
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait(timeout=30)
        b = self.desaturate("p2")  # 4
        self.api("AlertService/AcknowledgeAlert", {"name": b, "acknowledgedBy": "nurse-2"})  # 5
        self.start_gateway()
        node_fixture.wait_for(lambda: self.accepted_count() == 5, "five events accepted")

        # The node stops and comes back: the gateway follows it again.
        self.node.stop()
        self.node = self.node.restart()
        self.desaturate("p3")  # 6
        node_fixture.wait_for(lambda: self.accepted_count() == 6, "six events accepted", timeout=60)

        with self.receiver.lock:
            accepted, received = list(self.receiver.accepted), list(self.receiver.received)
        first_seen = list(dict.fromkeys(accepted))
        tokens = [int(c[2:]) for c in first_seen]
        self.assertEqual(tokens, sorted(tokens), "delivered out of order")
        self.assertEqual(len(first_seen), 6)
        self.assertEqual(tokens, list(range(tokens[0], tokens[0] + 6)), "a gap in the events")
        self.assertGreater(len(received), len(accepted), "the NACKed and dropped messages were not resent")
        by_id = {}
        for segments in received:
            by_id.setdefault(segments[0][9], segments)
        phases = []
        for control_id in first_seen:
            segments = by_id[control_id]
            msh = segments[0]
            self.assertEqual(msh[8], "ORU^R40^ORU_R40")
            self.assertEqual(msh[4], "NURSECALL")
            obr = next(s for s in segments if s[0] == "OBR")
            self.assertEqual(obr[4], "196616^MDC_EVT_ALARM^MDC")
            obx = {s[4]: s for s in segments if s[0] == "OBX"}
            self.assertEqual(obx["1.0.0.0.1"][8], "PH~SP")  # priority high, physiological
            self.assertEqual(obx["1.0.0.0.1"][11], "F")
            self.assertEqual(obx["1.0.0.0.1"][18], "oxi-" + next(s for s in segments if s[0] == "PID")[3].split("^")[0])
            self.assertTrue(obx["1.0.0.0.2"][3].startswith("150456^MDC_PULS_OXIM_SAT_O2"))
            pid = next(s for s in segments if s[0] == "PID")
            self.assertIn(pid[3].split("^")[0], ("p1", "p2", "p3"))
            phases.append((pid[3].split("^")[0], obx["1.0.0.0.3"][5], obx["1.0.0.0.4"][5], obx["1.0.0.0.5"][5]))
        self.assertEqual(phases, [
            ("p1", "start", "active", "enabled"),
            ("p1", "continue", "active", "acknowledged"),
            ("p1", "end", "inactive", "acknowledged"),
            ("p2", "start", "active", "enabled"),
            ("p2", "continue", "active", "acknowledged"),
            ("p3", "start", "active", "enabled"),
        ])


class AlarmsOverTls(GatewayFixture):
    def test_alarms_go_over_mutual_tls_and_a_receiver_with_an_untrusted_certificate_gets_none(self):
        d = self.d
        tls_args = ["--alarms-tls-ca-file=" + os.path.join(d, "ca.pem"),
                    "--alarms-tls-cert-file=" + os.path.join(d, "node.pem"),
                    "--alarms-tls-key-file=" + os.path.join(d, "node.key")]
        # An imposter: a certificate the gateway's CA did not sign.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", os.path.join(d, "rogue.key"), "-out", os.path.join(d, "rogue.pem"), "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        rogue_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        rogue_tls.load_cert_chain(os.path.join(d, "rogue.pem"), os.path.join(d, "rogue.key"))
        self.receiver.close()
        self.receiver = Receiver({}, tls=rogue_tls)
        self.start_gateway(tls_args)
        self.desaturate("p1")
        time.sleep(3)
        self.assertEqual(self.receiver.received, [], "an alarm went to a receiver the gateway cannot trust")
        with open(self.gw_logs[-1]) as f:
            self.assertIn("certificate", f.read())
        self.gateway.send_signal(signal.SIGTERM)
        self.assertEqual(self.gateway.wait(timeout=30), 0)

        # The real alarm manager: mutual TLS (it wants the gateway's certificate).
        good = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        good.load_cert_chain(os.path.join(d, "node.pem"), os.path.join(d, "node.key"))
        good.verify_mode = ssl.CERT_REQUIRED
        good.load_verify_locations(os.path.join(d, "ca.pem"))
        self.receiver.close()
        self.receiver = Receiver({}, tls=good)
        self.start_gateway(tls_args)  # it never delivered: it follows from now on
        self.desaturate("p2")
        try:
            node_fixture.wait_for(lambda: self.accepted_count() == 1, "the alarm over TLS")
        except AssertionError:
            with open(self.gw_logs[-1]) as f:
                raise AssertionError("no alarm over TLS; the gateway's log:\n" + f.read()[-3000:])
        with self.receiver.lock:
            version, peer = self.receiver.peers[0]
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertTrue(peer, "the gateway presented no certificate")


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "gateway")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
