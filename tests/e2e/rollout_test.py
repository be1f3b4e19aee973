#!/usr/bin/python3
"""A firmware rollout over 200 simulated pulse oximeters on a real node
(127.0.0.1, TLS, tokens; stopped by PID), the devices played by this test
through their shadow as real ones would: each reads its desired firmware
(GetDevice) and reports its progress (ReportDeviceState).

- Waves of 10 / 50 / 100 %: no device of a wave starts before every device
  of the waves before it that the safety gate does not hold finished.
- The safety gate: devices of patients with an open alert and the one device
  supplying a patient's current SpO2 wait, with the reason on the rollout
  and on the device twin; a clinician's override (twinctl) and a second
  SpO2 source each let one through; a resolved alert leaves its device held
  as its patient's only SpO2 source; the held ones never get the new
  firmware, even after a cancel.
- Some devices fail or roll back, with their reasons; the node is SIGKILLed
  mid-rollout and carries on where it was.
- A second rollout whose devices all fail pauses on the failure rate and
  starts nothing more; what devices reported for the first does not count.

Usage: rollout_test.py --node PATH --twinctl PATH"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

import node_fixture

ARGS = None
TENANT = "st-luke"
N = 200
ALERTED = [5, 50, 120, 180]  # patients whose SpO2 alarms
SOLE_SOURCE = 30              # a patient whose oxi is its only current SpO2 source
FAILING = {i for i in range(N) if i % 25 == 7}
ROLLING_BACK = {99}
FINISHED = {"OTA_STATE_INSTALLED", "OTA_STATE_FAILED", "OTA_STATE_ROLLED_BACK"}


def pid(i):
    return f"p{i:03}"


def device(i):
    return f"tenants/{TENANT}/devices/oxi-{pid(i)}"


class Fleet:
    """The 200 devices: each one that a rollout started reads its shadow and
    reports the outcome the test chose for it."""

    def __init__(self, test, firmware, outcome):
        self.test, self.firmware, self.outcome = test, firmware, outcome
        self.first_seen = {}  # device -> the rollout as it was when the device was first seen started

    def play(self, rollout):
        for d in rollout["devices"]:
            if d.get("state") != "OTA_STATE_DOWNLOADING" or d["device"] in self.first_seen:
                continue
            self.first_seen[d["device"]] = rollout
            shadow = self.test.call("RegistryService/GetDevice", {"name": d["device"]})
            self.test.assertEqual(shadow["desired"]["firmware"], self.firmware, d["device"])
            running = shadow.get("reported", {}).get("firmware", "1.0")
            state, error = self.outcome(d["device"])
            settings = {"ota.state": state}
            if error:
                settings["ota.error"] = error
            self.test.call("RegistryService/ReportDeviceState", {"device": d["device"], "reported": {
                "firmware": self.firmware if state == "installed" else running, "settings": settings}})


class Rollout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-rollout-")
        d = cls.d = cls.tmp.name
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.service = cls.node.token(TENANT, ["service"])
        cls.ops = cls.node.token(TENANT, ["ops-admin"], "ops-1")
        cls.nurse = cls.node.token(TENANT, ["clinician"], "nurse-1")
        for i in range(N):
            cls.call("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": pid(i),
                                                       "patient": {"ward": "W7", "bed": str(i)}})
            cls.call("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": f"oxi-{pid(i)}",
                                                      "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
            cls.call("RegistryService/AssignDevice", {"device": device(i),
                                                      "patient": f"tenants/{TENANT}/patients/{pid(i)}"})
            cls.call("RegistryService/ReportDeviceState", {"device": device(i), "reported": {"firmware": "1.0"}})
        cls.sequence = {}
        cls.alerts = {i: cls.node.desaturate(cls.service, TENANT, pid(i), cls.sequence) for i in ALERTED}
        cls.ingest(f"oxi-{pid(SOLE_SOURCE)}", 97)

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        node_fixture.assert_no_phi([os.path.join(cls.d, "node.log")], [pid(i) for i in ALERTED])
        cls.tmp.cleanup()
        assert code == 0, f"node exit code {code}"

    @classmethod
    def call(cls, rpc, body, token=None):
        return cls.node.api(token or cls.service, rpc, body)

    @classmethod
    def ingest(cls, dev, spo2):
        seq = cls.sequence.get(dev, 1)
        cls.sequence[dev] = seq + 1
        cls.batch = getattr(cls, "batch", 100_000) + 1
        cls.call("IngestService/Ingest", {"batchId": str(cls.batch), "devices": [{
            "device": f"tenants/{TENANT}/devices/{dev}", "sequence": [str(seq)], "timeMs": [str(int(time.time() * 1000))],
            "metric": ["METRIC_SPO2"], "value": [spo2]}]})

    def rollout(self, name):
        return self.call("RolloutService/GetRollout", {"name": name}, self.ops)

    def twinctl(self, token, *args):
        token_file = os.path.join(self.d, "twinctl.jwt")
        with open(token_file, "w") as f:
            f.write(token)
        return subprocess.run([ARGS.twinctl, *args, "--target", f"localhost:{self.node.grpc_port}",
                               "--tls-ca-file", os.path.join(self.d, "ca.pem"), "--token-file", token_file],
                              capture_output=True, text=True, timeout=60)

    def play_until(self, fleet, name, done, what, timeout=90):
        deadline = time.time() + timeout
        while True:
            r = self.rollout(name)
            fleet.play(r)
            if done(r):
                return r
            self.assertLess(time.time(), deadline, f"{what}: {r.get('counts')} {r.get('statusReason', '')}")
            time.sleep(0.2)

    def test_a_rollout_over_200_devices(self):
        name = f"tenants/{TENANT}/rollouts/oxi-2-0"
        out = self.twinctl(self.ops, "rollouts", "create", name, "--firmware", "2.0", "--waves", "10,50,100",
                           *[a for i in range(N) for a in ("--device", device(i))])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("RUNNING", out.stdout)
        outcome = lambda d: (("failed", "image checksum mismatch") if int(d[-3:]) in FAILING else
                             ("rolled_back", "") if int(d[-3:]) in ROLLING_BACK else ("installed", ""))
        fleet = Fleet(self, "2.0", outcome)
        # The first wave only, until its devices finished.
        r = self.play_until(fleet, name, lambda r: r["counts"].get("downloading", 0) > 0, "wave 1 starts", 20)
        self.assertEqual({d["device"] for d in r["devices"] if d.get("state") == "OTA_STATE_DOWNLOADING"},
                         {device(i) for i in range(20) if i not in ALERTED})
        # Mid-rollout, the node dies and comes back.
        self.play_until(fleet, name, lambda r: r.get("wave", 0) >= 1, "wave 2 opens")
        self.node.kill()
        type(self).node = self.node.restart()
        held = {device(i) for i in ALERTED + [SOLE_SOURCE]}
        r = self.play_until(fleet, name, lambda r: sum(r["counts"].get(k, 0) for k in (
            "installed", "failed", "rolledBack")) == N - len(held), "every device not held finished")
        # Waves in turn: when a device started, the ungated devices of the waves before had finished.
        for dev, snapshot in fleet.first_seen.items():
            wave = next(d.get("wave", 0) for d in snapshot["devices"] if d["device"] == dev)
            for d in snapshot["devices"]:
                if d.get("wave", 0) < wave and d["device"] not in held:
                    self.assertIn(d.get("state"), FINISHED, f"{dev} (wave {wave}) started before {d['device']}")
        by_device = {d["device"]: d for d in r["devices"]}
        for i in ALERTED:
            self.assertEqual(by_device[device(i)]["state"], "OTA_STATE_GATED")
            self.assertEqual(by_device[device(i)]["reason"], "its patient has an open MEDIUM or HIGH alert")
        self.assertEqual(by_device[device(SOLE_SOURCE)]["reason"], "it is the only source of spo2 for its patient")
        for i in FAILING:
            self.assertEqual((by_device[device(i)]["state"], by_device[device(i)]["reason"]),
                             ("OTA_STATE_FAILED", "image checksum mismatch"))
        self.assertEqual(by_device[device(99)]["state"], "OTA_STATE_ROLLED_BACK")
        self.assertEqual(r["counts"]["installed"], N - len(held) - len(FAILING) - 1)
        self.assertEqual(r["status"], "ROLLOUT_STATUS_RUNNING")
        twin = self.call("TwinService/GetDeviceTwin", {"name": device(120)}, self.nurse)
        self.assertEqual(twin["rollout"]["rollout"], name)
        self.assertEqual(twin["rollout"]["device"]["state"], "OTA_STATE_GATED")

        # The gate lifts three ways: the alert resolved, a clinician's override, a second SpO2 source.
        self.call("AlertService/ResolveAlert", {"name": self.alerts[5], "note": "reviewed"}, self.nurse)
        denied = self.twinctl(self.ops, "rollouts", "override", name, "--device", device(50), "--reason", "x")
        self.assertEqual(denied.returncode, 1, denied.stderr)  # clinicians only
        out = self.twinctl(self.nurse, "rollouts", "override", name, "--device", device(50),
                           "--reason", "spot checks by the ward nurse meanwhile")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.call("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "mon-p030",
                                                   "device": {"type": "DEVICE_TYPE_BEDSIDE_MONITOR"}})
        self.call("RegistryService/AssignDevice", {"device": f"tenants/{TENANT}/devices/mon-p030",
                                                   "patient": f"tenants/{TENANT}/patients/{pid(SOLE_SOURCE)}"})
        self.ingest("mon-p030", 96)
        freed = [device(50), device(SOLE_SOURCE)]
        r = self.play_until(fleet, name, lambda r: all(
            d.get("state") == "OTA_STATE_INSTALLED" for d in r["devices"] if d["device"] in freed), "freed install")
        overridden = next(d for d in r["devices"] if d["device"] == device(50))
        self.assertEqual(overridden["overrideBy"], "nurse-1")
        # p005's alert is resolved, but its oxi still supplies its only current SpO2.
        still = next(d for d in r["devices"] if d["device"] == device(5))
        self.assertEqual((still["state"], still["reason"]),
                         ("OTA_STATE_GATED", "it is the only source of spo2 for its patient"))
        self.assertEqual(r["counts"]["gated"], 3)
        out = self.twinctl(self.ops, "rollouts", "cancel", name)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("CANCELLED", out.stdout)
        time.sleep(2.5)  # steps that would have started them, were it running
        for i in (5, 120, 180):
            shadow = self.call("RegistryService/GetDevice", {"name": device(i)})
            self.assertNotEqual(shadow.get("desired", {}).get("firmware"), "2.0")
            self.assertEqual(shadow["reported"]["firmware"], "1.0")

        # A rollout whose devices all fail pauses and starts nothing more.
        bad = f"tenants/{TENANT}/rollouts/oxi-3-0"
        self.call("RolloutService/CreateRollout", {"parent": f"tenants/{TENANT}", "rolloutId": "oxi-3-0", "rollout": {
            "firmware": "3.0", "target": {"devices": [device(i) for i in range(10, 30)]},
            "wavesPercent": [10, 50, 100], "maxFailureRatio": 0.1, "minFinished": 5}}, self.ops)
        fleet = Fleet(self, "3.0", lambda d: ("failed", "battery too low for an update"))
        r = self.play_until(fleet, bad, lambda r: r["status"] == "ROLLOUT_STATUS_PAUSED", "the failure pause")
        self.assertRegex(r["statusReason"], r"^\d+ of \d+ finished devices failed \(100 %\), above the limit of 10 %$")
        time.sleep(2.5)
        r = self.rollout(bad)
        fleet.play(r)
        self.assertLessEqual(len(fleet.first_seen), 10)  # the third wave never started
        self.assertEqual(r["counts"].get("pending", 0) + r["counts"].get("gated", 0), 20 - len(fleet.first_seen))
        listed = self.call("RolloutService/ListRollouts", {"parent": f"tenants/{TENANT}"}, self.nurse)
        self.assertEqual([x["name"] for x in listed["rollouts"]], [bad, name])


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "twinctl")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
