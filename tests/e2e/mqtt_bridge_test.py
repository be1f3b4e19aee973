#!/usr/bin/python3
"""Wearables talking MQTT to HealthTwin: a real mosquitto broker (per-device
passwords and an ACL that lets a device publish only as itself), devices
written with Debian's python3-paho-mqtt (MQTT 5 and 3.1.1, protobuf and JSON
payloads), the real healthtwin-mqtt bridge and a real node (TLS, ES256
tokens minted by PyJWT).
Checks: telemetry reaches the twins; a device publishing as another is
refused; unreadable or refused payloads reach the dead-letter topic with the
field; a bridge killed with SIGKILL mid-stream loses and doubles nothing of
what the broker acknowledged; a message the node could not store is never
acknowledged to the broker, so it is stored once the node is back.

Usage: mqtt_bridge_test.py --node PATH --bridge PATH --proto-dir DIR
Broker, bridge and node run on 127.0.0.1 with free ports in a temp dir and
are stopped by their PIDs. Exits 77 (skipped) when mosquitto is missing."""

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

import node_fixture

ARGS = None
TENANT = "st-mary"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DEVICES = ["wear-001", "wear-002", "wear-003", "wear-004"]


def wait_port(port, proc, what, log):
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{what} did not start: " + open(log).read())
            time.sleep(0.05)


class Broker:
    """mosquitto on 127.0.0.1 with a password per user and the ACL of docs/mqtt.md."""

    def __init__(self, d, users):
        self.port = node_fixture.free_port()
        conf, passwd, acl = (os.path.join(d, n) for n in ("mosquitto.conf", "passwd", "acl"))
        open(passwd, "w").close()
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", passwd, user, password], check=True)
        with open(acl, "w") as f:
            f.write(f"user healthtwin-bridge\ntopic read healthtwin/{TENANT}/devices/+/telemetry\n"
                    f"topic read healthtwin/{TENANT}/devices/+/reported\n"
                    f"topic write healthtwin/{TENANT}/devices/+/commands\n"
                    f"topic write healthtwin/{TENANT}/deadletter\n\n"
                    f"user ops\ntopic read healthtwin/{TENANT}/deadletter\n\n"
                    f"pattern write healthtwin/{TENANT}/devices/%u/telemetry\n"
                    f"pattern write healthtwin/{TENANT}/devices/%u/reported\n"
                    f"pattern read healthtwin/{TENANT}/devices/%u/commands\n")
        with open(conf, "w") as f:
            # Run as root, mosquitto would switch to its own user, which cannot read this temp dir.
            f.write(f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {passwd}\nacl_file {acl}\nmax_queued_messages 100000\n"
                    f"log_dest file {os.path.join(d, 'mosquitto.log')}\n")
        self.log = os.path.join(d, "mosquitto.log")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "mosquitto", self.log)

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(timeout=30)


class Device:
    """A device's MQTT client (paho), publishing with QoS 1 as itself."""

    clients = 0

    def __init__(self, broker_port, user, password, mqtt5=True):
        import paho.mqtt.client as mqtt
        self.mqtt5 = mqtt5
        Device.clients += 1
        self.client = mqtt.Client(client_id=f"{user}-{Device.clients}", protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect("127.0.0.1", broker_port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(10), f"{user} could not connect"

    def publish(self, topic, payload, content_type=None, wait=True):
        props = None
        if content_type and self.mqtt5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = content_type
        info = self.client.publish(topic, payload, qos=1, properties=props)
        if wait:
            info.wait_for_publish(10)
            assert info.is_published(), "the broker did not acknowledge"
        return info

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def telemetry(seqs, t0_ms, hr=80, spo2=97):
    """A protobuf TelemetryPayload: heart rate and SpO2 per sequence pair."""
    from healthtwin.v1 import common_pb2, telemetry_pb2
    p = telemetry_pb2.TelemetryPayload(version=1)
    for i, seq in enumerate(seqs):
        p.sequence.append(seq)
        p.time_ms.append(t0_ms + seq * 1000)
        p.metric.append(common_pb2.METRIC_HEART_RATE if i % 2 == 0 else common_pb2.METRIC_SPO2)
        p.value.append(hr if i % 2 == 0 else spo2)
    return p.SerializeToString()


def topic_of(device):
    return f"healthtwin/{TENANT}/devices/{device}/telemetry"


class MqttBridge(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-mqtt-")
        d = cls.d = cls.tmp.name
        node_fixture.make_stubs(ARGS.proto_dir, os.path.join(d, "stubs"))
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        with open(os.path.join(d, "service.jwt"), "w") as f:
            f.write(cls.node.token(TENANT, ["service"], "mqtt-bridge"))
        cls.passwords = {u: "pw-" + u for u in DEVICES + ["healthtwin-bridge", "ops"]}
        with open(os.path.join(d, "bridge.pw"), "w") as f:
            f.write(cls.passwords["healthtwin-bridge"] + "\n")
        cls.broker = Broker(d, cls.passwords)
        cls.bridge = None
        cls.start_bridge()

        from healthtwin.v1 import common_pb2, registry_pb2, registry_pb2_grpc
        registry = registry_pb2_grpc.RegistryServiceStub(cls.channel(["service"]))
        for i, dev in enumerate(DEVICES):
            patient = f"mrn-m{i}"
            registry.CreatePatient(registry_pb2.CreatePatientRequest(
                parent=f"tenants/{TENANT}", patient_id=patient,
                patient=registry_pb2.Patient(ward="W1", bed=str(i))), timeout=10)
            device = registry.CreateDevice(registry_pb2.CreateDeviceRequest(
                parent=f"tenants/{TENANT}", device_id=dev,
                device=registry_pb2.Device(type=common_pb2.DEVICE_TYPE_PULSE_OXIMETER)), timeout=10)
            registry.AssignDevice(registry_pb2.AssignDeviceRequest(
                device=device.name, patient=f"tenants/{TENANT}/patients/{patient}"), timeout=10)
        cls.t0 = int(time.time() * 1000) // 1000 * 1000 - 3_600_000

    @classmethod
    def start_bridge(cls, node_port=None):
        d = cls.d
        if cls.bridge is not None:
            cls.bridge_log.close()
        cls.bridge_log = open(os.path.join(d, "bridge.log"), "ab")
        cls.bridge_http = node_fixture.free_port()
        cls.bridge = subprocess.Popen(
            [ARGS.bridge, f"--broker=127.0.0.1:{cls.broker.port}", "--broker-username=healthtwin-bridge",
             "--broker-password-file=" + os.path.join(d, "bridge.pw"), "--client-id=test-bridge",
             "--desired-poll-s=1", f"--http-listen=127.0.0.1:{cls.bridge_http}", f"--target=127.0.0.1:{node_port or cls.node.grpc_port}",
             "--tls-ca-file=" + os.path.join(d, "ca.pem"), "--token-file=" + os.path.join(d, "service.jwt"),
             f"--tenant={TENANT}"],
            stdout=cls.bridge_log, stderr=subprocess.STDOUT)

    @classmethod
    def tearDownClass(cls):
        codes = []
        if cls.bridge and cls.bridge.poll() is None:
            cls.bridge.send_signal(signal.SIGTERM)
            codes.append(cls.bridge.wait(timeout=60))
        codes += [cls.node.stop(), cls.broker.stop()]
        cls.bridge_log.close()
        node_fixture.assert_no_phi([os.path.join(cls.d, "node.log"), os.path.join(cls.d, "bridge.log")],
                                   [f"mrn-m{i}" for i in range(len(DEVICES))])
        if os.environ.get("KEEP_TEST_DIR"):  # logs for a post-mortem
            shutil.copytree(cls.d, os.environ["KEEP_TEST_DIR"], ignore=shutil.ignore_patterns("db", "stubs"))
        cls.tmp.cleanup()
        assert codes in ([0, 0, 0], [0, 0]), f"bridge, node and broker exited with {codes}"

    @classmethod
    def channel(cls, roles):
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=cls.node.ca),
            grpc.access_token_call_credentials(cls.node.token(TENANT, roles)))
        return grpc.secure_channel(f"127.0.0.1:{cls.node.grpc_port}", creds)

    def device(self, name, mqtt5=True):
        dev = Device(self.broker.port, name, self.passwords[name], mqtt5)
        self.addCleanup(dev.close)
        return dev

    def accepted(self, device):
        from healthtwin.v1 import twin_pb2, twin_pb2_grpc
        twins = twin_pb2_grpc.TwinServiceStub(self.channel(["service"]))
        return twins.GetDeviceTwin(twin_pb2.GetDeviceTwinRequest(
            name=f"tenants/{TENANT}/devices/{device}"), timeout=10).readings_accepted

    def heart_rate_samples(self, patient):
        from healthtwin.v1 import common_pb2, twin_pb2, twin_pb2_grpc
        twins = twin_pb2_grpc.TwinServiceStub(self.channel(["clinician"]))
        h = twins.GetVitalsHistory(twin_pb2.GetVitalsHistoryRequest(
            patient=f"tenants/{TENANT}/patients/{patient}", metric=common_pb2.METRIC_HEART_RATE,
            start_time_ms=self.t0 - 10_000_000, end_time_ms=self.t0 + 10_000_000, page_size=100_000), timeout=10)
        return list(h.time_ms)

    def wait_accepted(self, device, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.accepted(device)
            if got >= n:
                return got
            time.sleep(0.1)
        return self.accepted(device)

    def ensure_bridge_subscribed(self):
        """Until the bridge has subscribed once, the broker keeps nothing for it:
        a probe (wear-004, resent with its same sequence number) tells when."""
        probe = self.device("wear-004")
        deadline = time.time() + 60
        while self.accepted("wear-004") < 1 and time.time() < deadline:
            probe.publish(topic_of("wear-004"), telemetry([1], self.t0))
            time.sleep(0.3)
        self.assertEqual(self.accepted("wear-004"), 1)

    def test_1_protobuf_and_json_over_mqtt5_and_311_reach_the_twin(self):
        self.ensure_bridge_subscribed()
        v5, v311 = self.device("wear-001", mqtt5=True), self.device("wear-001", mqtt5=False)
        v5.publish(topic_of("wear-001"), telemetry([1, 2], self.t0), content_type="application/x-protobuf")
        doc = {"version": 1, "sequence": [3, 4], "timeMs": [self.t0 + 3000, self.t0 + 4000],
               "metric": ["METRIC_HEART_RATE", "METRIC_SPO2"], "value": [91, 95]}
        v311.publish(topic_of("wear-001"), json.dumps(doc))
        self.assertEqual(self.wait_accepted("wear-001", 4), 4)
        self.assertEqual(self.heart_rate_samples("mrn-m0"), [self.t0 + 1000, self.t0 + 3000])

    def test_2_a_device_cannot_publish_as_another(self):
        self.ensure_bridge_subscribed()
        impostor = self.device("wear-001")
        impostor.publish(topic_of("wear-002"), telemetry([1, 2], self.t0, hr=150))
        owner = self.device("wear-002")
        owner.publish(topic_of("wear-002"), telemetry([10, 11], self.t0))
        self.assertEqual(self.wait_accepted("wear-002", 2), 2)
        time.sleep(1)
        self.assertEqual(self.accepted("wear-002"), 2)
        self.assertEqual(self.heart_rate_samples("mrn-m1"), [self.t0 + 10_000])

    def test_3_unreadable_and_refused_payloads_reach_the_dead_letter_topic(self):
        self.ensure_bridge_subscribed()
        letters = self.subscribe_as("ops", f"healthtwin/{TENANT}/deadletter")
        dev = self.device("wear-003")
        dev.publish(topic_of("wear-003"), b'{"version": 1, "sequense": [1]}')
        dev.publish(topic_of("wear-003"), telemetry([1, 2], self.t0, spo2=140))  # SpO2 over 100 %
        deadline = time.time() + 30
        while len(letters) < 2 and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(letters), 2, letters)
        by_field = {e["field"]: e for letter in letters for e in letter["errors"]}
        self.assertIn("payload", by_field)
        self.assertIn("sequense", by_field["payload"]["description"])
        self.assertEqual(by_field["value[1]"]["reason"], "REJECTION_REASON_OUT_OF_RANGE")
        self.assertTrue(all(letter["topic"] == topic_of("wear-003") for letter in letters))
        self.assertEqual(self.accepted("wear-003"), 1)  # the heart rate beside the refused SpO2

    def test_4_sigkill_mid_stream_loses_and_doubles_nothing_the_broker_acknowledged(self):
        self.ensure_bridge_subscribed()
        dev = self.device("wear-001")
        base = self.accepted("wear-001")
        first = 100
        messages = [list(range(first + 2 * i, first + 2 * i + 2)) for i in range(400)]
        infos = []
        for i, seqs in enumerate(messages):
            infos.append(dev.publish(topic_of("wear-001"), telemetry(seqs, self.t0), wait=False))
            if i == 150:
                while self.accepted("wear-001") == base:
                    time.sleep(0.01)
                self.bridge.send_signal(signal.SIGKILL)
                self.bridge.wait(timeout=30)
                self.start_bridge()
        for info in infos:
            info.wait_for_publish(30)
            self.assertTrue(info.is_published())
        total = base + 2 * len(messages)
        self.assertEqual(self.wait_accepted("wear-001", total, timeout=120), total)
        hr = self.heart_rate_samples("mrn-m0")
        self.assertEqual(len(hr), len(set(hr)), "a reading charted twice")
        self.assertEqual(len(hr), 2 + len(messages))

    def test_5_a_message_the_node_could_not_store_is_not_acknowledged(self):
        self.ensure_bridge_subscribed()
        dev = self.device("wear-002")
        base = self.accepted("wear-002")
        port = self.node.grpc_port
        self.assertEqual(self.node.stop(), 0)
        dev.publish(topic_of("wear-002"), telemetry([50, 51], self.t0))  # the broker has it
        time.sleep(1.5)  # the bridge holds it, retrying; were it acknowledged, the kill would lose it
        self.bridge.send_signal(signal.SIGKILL)
        self.bridge.wait(timeout=30)
        type(self).node = self.node.restart()
        self.assertEqual(self.node.grpc_port, port)
        self.start_bridge()
        self.assertEqual(self.wait_accepted("wear-002", base + 2), base + 2)

    def test_6_large_messages_of_one_device_are_stored_in_order_without_refusals(self):
        # Each message spans more than the node's reordering window (256
        # sequence numbers): taken out of order, one would be refused.
        self.ensure_bridge_subscribed()
        dev = self.device("wear-003")
        base = self.accepted("wear-003")
        t_base = int(time.time() * 1000) // 1000 * 1000 - 5 * 3_600_000
        infos = [dev.publish(topic_of("wear-003"), telemetry(range(1000 + 600 * i, 1600 + 600 * i), t_base),
                             wait=False) for i in range(20)]
        for info in infos:
            info.wait_for_publish(30)
        self.assertEqual(self.wait_accepted("wear-003", base + 12_000), base + 12_000)

    def subscribe_as(self, name, topic, mqtt5=True):
        """Subscribes as broker user `name` to `topic` (QoS 1); the list its
        messages (parsed JSON) arrive in."""
        import paho.mqtt.client as mqtt
        got, subscribed = [], threading.Event()
        Device.clients += 1
        c = mqtt.Client(client_id=f"{name}-{Device.clients}", protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311)
        c.username_pw_set(name, self.passwords[name])
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
        c.connect("127.0.0.1", self.broker.port)
        c.subscribe(topic, qos=1)
        c.loop_start()
        self.addCleanup(c.loop_stop)
        self.assertTrue(subscribed.wait(10))
        return got

    def commands_of(self, name, mqtt5=True):
        """Subscribes as device `name` to wear-001's commands topic."""
        return self.subscribe_as(name, f"healthtwin/{TENANT}/devices/wear-001/commands", mqtt5)

    def test_7_desired_configuration_reaches_the_device_and_its_report_closes_the_loop(self):
        from healthtwin.v1 import common_pb2, registry_pb2, registry_pb2_grpc, twin_pb2, twin_pb2_grpc
        self.ensure_bridge_subscribed()
        dev = self.device("wear-001")
        dev.publish(topic_of("wear-001"), telemetry([9000], self.t0))  # seen by the bridge
        registry = registry_pb2_grpc.RegistryServiceStub(self.channel(["service"]))
        registry.UpdateDesiredConfig(registry_pb2.UpdateDesiredConfigRequest(
            device=f"tenants/{TENANT}/devices/wear-001",
            desired=common_pb2.DeviceConfig(firmware="2.0.0", settings={"sample_rate_hz": "2"})), timeout=10)
        twins = twin_pb2_grpc.TwinServiceStub(self.channel(["service"]))
        twin = lambda: twins.GetDeviceTwin(twin_pb2.GetDeviceTwinRequest(  # noqa: E731
            name=f"tenants/{TENANT}/devices/wear-001"), timeout=10)
        self.assertEqual(twin().delta.firmware, "2.0.0")

        commands = self.commands_of("wear-001")
        snooper = self.commands_of("wear-002")  # another device may not read them
        deadline = time.time() + 30
        while not commands and time.time() < deadline:
            time.sleep(0.1)
        self.assertTrue(commands, "no desired configuration on the commands topic")
        self.assertEqual(commands[-1]["firmware"], "2.0.0")
        self.assertEqual(commands[-1]["settings"], {"sample_rate_hz": "2"})
        version = int(commands[-1]["version"])

        # The device applies it and reports (JSON over MQTT 3.1.1): no delta left.
        reporter = self.device("wear-001", mqtt5=False)
        reporter.publish(f"healthtwin/{TENANT}/devices/wear-001/reported", json.dumps(
            {"firmware": "2.0.0", "settings": {"sample_rate_hz": "2"}, "version": "1"}))
        deadline = time.time() + 30
        while twin().reported.firmware != "2.0.0" and time.time() < deadline:
            time.sleep(0.1)
        t = twin()
        self.assertEqual(t.reported.firmware, "2.0.0")
        self.assertEqual(t.delta.firmware, "")
        self.assertEqual(len(t.delta.settings), 0)
        self.assertEqual(t.desired.version, version)
        self.assertEqual(snooper, [])

    def test_8_the_bridge_reports_its_counts_and_readiness_for_prometheus(self):
        import urllib.request
        self.ensure_bridge_subscribed()
        base = f"http://127.0.0.1:{self.bridge_http}"
        deadline = time.time() + 10
        while True:  # ready once every connection is up (checked each second)
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                    self.assertEqual(r.status, 200)
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            text = r.read()
        series = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                series[name] = float(value)
        self.assertGreaterEqual(series["healthtwin_mqtt_readings_stored_total"], 1)
        self.assertGreaterEqual(series['healthtwin_mqtt_messages_total{outcome="stored"}'], 1)
        self.assertEqual(series['healthtwin_mqtt_broker_connections{state="connected"}'], 1)
        self.assertGreater(series["process_resident_memory_bytes"], 0)
        self.assertFalse(any("wear-" in name for name in series), "a device named in a label")
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
            self.assertEqual((check.returncode, check.stdout + check.stderr), (0, b""))

    def test_9_a_refused_login_is_retried_with_growing_backoff_and_stops_cleanly(self):
        d = self.d
        with open(os.path.join(d, "wrong.pw"), "w") as f:
            f.write("not-the-password\n")
        log_path = os.path.join(d, "refused-bridge.log")
        with open(log_path, "wb") as log:
            bridge = subprocess.Popen(
                [ARGS.bridge, f"--broker=127.0.0.1:{self.broker.port}", "--broker-username=healthtwin-bridge",
                 "--broker-password-file=" + os.path.join(d, "wrong.pw"), "--client-id=refused-bridge",
                 f"--target=127.0.0.1:{self.node.grpc_port}", "--tls-ca-file=" + os.path.join(d, "ca.pem"),
                 "--token-file=" + os.path.join(d, "service.jwt"), f"--tenant={TENANT}"],
                stdout=log, stderr=subprocess.STDOUT)
            time.sleep(6)
            bridge.send_signal(signal.SIGTERM)
            self.assertEqual(bridge.wait(timeout=30), 0)
        with open(log_path) as f:
            refusals = f.read().count("refused by the broker")
        # 1, 2, 4 s apart: a few attempts in 6 s per connection (subscriber
        # and publisher), not a tight loop (which made tens of thousands).
        self.assertGreaterEqual(refusals, 2)
        self.assertLessEqual(refusals, 10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--proto-dir", required=True)
    ARGS, rest = parser.parse_known_args()
    if not os.path.exists(MOSQUITTO) or not shutil.which("mosquitto_passwd"):
        print("SKIPPED: mosquitto (Debian package mosquitto) is not installed; scripts/install-deps installs it")
        sys.exit(77)
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print("SKIPPED: python3-paho-mqtt is not installed; scripts/install-deps installs it")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
