#!/usr/bin/python3
"""twinctl against a running node, as ops staff use it: a real node on
127.0.0.1 (TLS, tokens), one patient whose readings raise an alert; twinctl
lists and gets twins (tables and JSON), watches one, lists, acknowledges,
silences and resolves the alert, calls a method by name, and exits 0 when
done, 1 when the node refuses, 2 on a usage error, 3 when the node cannot
be reached. Stopped by PID.

Usage: twinctl_api_test.py --node PATH --twinctl PATH"""

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import node_fixture

ARGS = None
TENANT = "st-luke"
PATIENT = f"tenants/{TENANT}/patients/mrn-4001"
DEVICE = f"tenants/{TENANT}/devices/oxi-41"


class TwinctlApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-twinctl-")
        d = cls.d = cls.tmp.name
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        service = cls.node.token(TENANT, ["service"])
        for rpc, body in (
                ("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": "mrn-4001",
                                                   "patient": {"ward": "CCU", "bed": "4"}}),
                ("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "oxi-41",
                                                  "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}}),
                ("RegistryService/AssignDevice", {"device": DEVICE, "patient": PATIENT})):
            cls.api(rpc, body, service)
        now = int(time.time() * 1000)
        cls.api("IngestService/Ingest", {"batchId": "1", "devices": [{
            "device": DEVICE, "sequence": ["1", "2", "3"],
            "timeMs": [str(now - 200_000), str(now - 8_000), str(now)],
            "metric": ["METRIC_SPO2"] * 3, "value": [97, 84, 84]}]}, service)
        cls.nurse_file = os.path.join(d, "nurse.jwt")
        with open(cls.nurse_file, "w") as f:
            f.write(cls.node.token(TENANT, ["clinician"], "nurse-lee"))
        cls.admin_file = os.path.join(d, "admin.jwt")
        with open(cls.admin_file, "w") as f:
            f.write(cls.node.token(TENANT, ["ops-admin"], "admin-kim"))

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        cls.tmp.cleanup()
        assert code == 0, f"node exited with {code}"

    @classmethod
    def api(cls, rpc, body, token):
        req = urllib.request.Request(f"https://localhost:{cls.node.http_port}/api/v1/{rpc}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, context=cls.tls, timeout=15) as r:
            return json.loads(r.read())

    def twinctl(self, *args, target=None, expect=0, token_file=None):
        cmd = [ARGS.twinctl, *args, "--target", target or f"localhost:{self.node.grpc_port}",
               "--tls-ca-file", os.path.join(self.d, "ca.pem"), "--token-file", token_file or self.nurse_file]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, expect, f"{args}: {r.stdout}{r.stderr}")
        return r

    def open_alert(self):
        for _ in range(100):
            listed = json.loads(self.twinctl("alerts", "list", "--tenant", TENANT, "--json").stdout)
            if listed.get("alerts"):
                return listed["alerts"][0]
            time.sleep(0.05)
        self.fail("no alert raised")

    def test_twins_are_listed_got_and_watched(self):
        table = self.twinctl("twins", "list", "--tenant", TENANT, "--filter", 'ward = "CCU"').stdout
        self.assertIn(PATIENT, table)
        self.assertIn("1 patient(s)", table)
        twin = json.loads(self.twinctl("twins", "get", PATIENT, "--json").stdout)
        self.assertEqual(twin["bed"], "4")
        self.assertEqual([v["value"] for v in twin["vitals"] if v["metric"] == "METRIC_SPO2"], [84])
        self.assertIn("SPO2", self.twinctl("twins", "get", PATIENT).stdout)
        device = self.twinctl("twins", "get", DEVICE).stdout
        self.assertIn("PULSE_OXIMETER", device)
        watched = self.twinctl("twins", "watch", PATIENT, "--count", "1", "--json").stdout.splitlines()
        self.assertEqual(json.loads(watched[0])["name"], PATIENT)
        called = json.loads(self.twinctl("call", "RegistryService/GetPatient", "--data",
                                         json.dumps({"name": PATIENT})).stdout)
        self.assertEqual(called["ward"], "CCU")

    def test_an_alert_is_listed_acknowledged_silenced_and_resolved(self):
        alert = self.open_alert()
        self.assertEqual(alert["priority"], "PRIORITY_HIGH")
        self.assertIn("HIGH", self.twinctl("alerts", "list", "--tenant", TENANT, "--ward", "CCU").stdout)
        acked = json.loads(self.twinctl("alerts", "ack", alert["name"], "--note", "seen", "--json").stdout)
        self.assertEqual(acked["state"], "ALERT_STATE_ACKNOWLEDGED")
        self.assertEqual(acked["acknowledgedBy"], "nurse-lee")
        silenced = self.twinctl("alerts", "silence", "--patient", PATIENT, "--minutes", "5", "--metric", "SPO2",
                                "--reason", "probe repositioned").stdout
        self.assertIn("silenced until", silenced)
        resolved = json.loads(self.twinctl("alerts", "resolve", alert["name"], "--json").stdout)
        self.assertEqual(resolved["state"], "ALERT_STATE_RESOLVED")
        # Resolving it again is refused by the node: exit 1, the reason on stderr.
        again = self.twinctl("alerts", "resolve", alert["name"], expect=1)
        self.assertIn("ResolveAlert", again.stderr)

    def test_bash_completes_every_command_and_option(self):
        script = subprocess.run([ARGS.twinctl, "completion", "bash"], capture_output=True, text=True, timeout=30)
        self.assertEqual(script.returncode, 0)
        path = os.path.join(self.d, "twinctl.bash")
        with open(path, "w") as f:
            f.write(script.stdout)

        def complete(*words):
            probe = (f'source {path}; COMP_WORDS=({" ".join(repr(w) for w in words)}); '
                     'COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _twinctl; printf "%s\\n" "${COMPREPLY[@]}"')
            r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
            return r.stdout.split()

        self.assertIn("twins", complete("twinctl", ""))
        self.assertEqual(complete("twinctl", "al"), ["alerts"])
        self.assertEqual(sorted(complete("twinctl", "alerts", "")),
                         sorted(["list", "ack", "resolve", "silence", "burden", "--help"]))
        self.assertIn("--include-resolved", complete("twinctl", "alerts", "list", "--"))
        self.assertIn(os.path.join(self.d, "ca.pem"),
                      complete("twinctl", "twins", "get", "--tls-ca-file", os.path.join(self.d, "ca")))
        self.assertEqual(complete("twinctl", "alerts", "list", "--tenant", ""), [])

    def test_registry_operations_and_clinical_settings(self):
        admin = lambda *a, expect=0: self.twinctl(*a, expect=expect, token_file=self.admin_file)
        patient, device = f"tenants/{TENANT}/patients/mrn-4002", f"tenants/{TENANT}/devices/mon-42"
        self.assertIn("ward MAU", admin("patients", "create", patient, "--ward", "MAU", "--bed", "7").stdout)
        moved = json.loads(admin("patients", "update", patient, "--ward", "CCU", "--bed", "9", "--json").stdout)
        self.assertEqual((moved["ward"], moved["bed"]), ("CCU", "9"))
        admin("patients", "update", patient, expect=2)  # nothing to change
        admin("patients", "update", patient, "--ward", "MAU", "--etag", "stale", expect=1)
        self.assertIn("BEDSIDE_MONITOR", admin("devices", "create", device, "--type", "BEDSIDE_MONITOR").stdout)
        admin("devices", "create", f"tenants/{TENANT}/devices/x", "--type", "TOASTER", expect=2)
        self.assertIn("assigned to " + patient, admin("devices", "assign", device, "--patient", patient).stdout)
        self.assertEqual(json.loads(admin("patients", "get", patient, "--json").stdout)["devices"], [device])
        self.assertIn("unassigned", admin("devices", "unassign", device).stdout)
        admin("devices", "decommission", device, expect=2)  # --yes is required
        self.assertIn("DECOMMISSIONED", admin("devices", "decommission", device, "--yes").stdout)
        admin("devices", "get", "tenants/x", expect=2)  # not a device name

        # Clinical settings: a clinician's; the fields given replace the current ones.
        before = json.loads(self.twinctl("settings", "get", patient).stdout)
        changed = json.loads(self.twinctl("settings", "set", patient, "--data", json.dumps(
            {"alertLimits": [{"metric": "METRIC_HEART_RATE", "highAtOrAbove": 140}]})).stdout)
        self.assertEqual([(x["metric"], x["highAtOrAbove"]) for x in changed["alertLimits"]], [("METRIC_HEART_RATE", 140)])
        self.assertEqual(changed["spo2Scale2"], before["spo2Scale2"])
        again = json.loads(self.twinctl("settings", "get", patient).stdout)
        self.assertEqual(again["alertLimits"], changed["alertLimits"])
        self.twinctl("settings", "set", patient, "--data", "{bad", expect=2)
        self.twinctl("settings", "set", patient, "--data", '{"batteryLowPercent": 500}', expect=1)
        admin("settings", "set", patient, "--data", "{}", expect=1)  # ops-admin may not change clinical settings
        self.assertIn("charted", self.twinctl("patients", "chart", patient, "--acvpu", "V", "--oxygen", "2").stdout)
        self.twinctl("patients", "chart", patient, "--acvpu", "X", expect=2)

        self.assertIn("erased", admin("patients", "erase", patient, "--yes").stdout)
        admin("patients", "get", patient, expect=1)

    def test_every_command_has_a_manual_page(self):
        def subcommands(path):
            out = subprocess.run([ARGS.twinctl, *path, "--help"], capture_output=True, text=True, timeout=30).stdout
            names, listing = [], False
            for line in out.splitlines():
                if line.startswith("Subcommands:"):
                    listing = True
                elif listing and line.startswith("  ") and line.strip():
                    names.append(line.split()[0])
                elif listing and not line.strip():
                    listing = False
            return names, out
        pending, leaves = [[]], []
        while pending:
            path = pending.pop()
            names, out = subcommands(path)
            if not names:
                leaves.append((path, out))
            pending += [path + [n] for n in names]
        self.assertGreaterEqual(len(leaves), 30)
        for path, out in leaves:
            for section in ("DESCRIPTION", "EXIT STATUS", "EXAMPLES"):
                self.assertIn(section, out, f"twinctl {' '.join(path)} --help has no {section}")
        names = [" ".join(p) for p, _ in leaves]
        for expected in ("patients create", "devices assign", "settings set", "cluster change", "audit verify", "token"):
            self.assertIn(expected, names)

    def test_exit_codes_say_who_failed(self):
        self.twinctl("twins", "get", f"tenants/{TENANT}/patients/nobody", expect=1)  # not found
        self.twinctl("twins", "get", "tenants/other/patients/x", expect=1)  # another tenant: denied
        self.twinctl("call", "NoService/Nothing", expect=2)
        self.twinctl("call", "TwinService/GetPatientTwin", "--data", "{bad", expect=2)
        self.twinctl("alerts", "silence", "--patient", PATIENT, "--minutes", "9999", expect=2)
        self.twinctl("twins", "get", PATIENT, target=f"localhost:{node_fixture.free_port()}", expect=3)
        self.assertEqual(subprocess.run([ARGS.twinctl, "twins", "get", "--help"], capture_output=True).returncode, 0)


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "twinctl")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
