#!/usr/bin/python3
"""The ward dashboard in a real browser (Debian's headless chromium through
chromedriver): a node on 127.0.0.1 with TLS serves it; a clinician opens
the ward with a token, sees one tile per bed with NEWS2 and vitals; an
alert raised by ingested readings appears in the page within 1 s; it is
acknowledged with a click and resolved from the keyboard, and the API shows
both; the ward's alarm burden counts it; a clinician of another tenant sees none of it. Screenshots are kept
in --artifacts. Everything is stopped by PID.

Usage: dashboard_test.py --node PATH --artifacts DIR
Exits 77 (skipped) when chromium or chromedriver is missing."""

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import node_fixture
import webdriver

ARGS = None
TENANT = "st-mary"
WARD = "ICU-3"
BEDS = {"mrn-3001": "1", "mrn-3002": "2", "mrn-3003": "3"}
ELSEWHERE = "mrn-3999"  # another ward of the same tenant


def patient(pid):
    return f"tenants/{TENANT}/patients/{pid}"


def device(pid):
    return f"tenants/{TENANT}/devices/mon-{pid}"


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-dash-")
        d = cls.tmp.name
        os.makedirs(ARGS.artifacts, exist_ok=True)
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        cls.service = cls.node.token(TENANT, ["service"])
        cls.sequence = {}
        for pid, bed in list(BEDS.items()) + [(ELSEWHERE, "9")]:
            ward = WARD if pid in BEDS else "WARD-9"
            cls.api("RegistryService/CreatePatient", {
                "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": ward, "bed": bed}})
            cls.api("RegistryService/CreateDevice", {
                "parent": f"tenants/{TENANT}", "deviceId": f"mon-{pid}",
                "device": {"type": "DEVICE_TYPE_BEDSIDE_MONITOR"}})
            cls.api("RegistryService/AssignDevice", {"device": device(pid), "patient": patient(pid)})
            # A normal hour: heart rate, SpO2, respiration, temperature, blood pressure.
            for age in range(3_600_000, 0, -300_000):
                cls.ingest(pid, {"METRIC_HEART_RATE": 72 + age % 7, "METRIC_SPO2": 97,
                                 "METRIC_RESPIRATION_RATE": 15, "METRIC_TEMPERATURE": 36.8,
                                 "METRIC_SYSTOLIC_BP": 124, "METRIC_DIASTOLIC_BP": 78}, age)
        cls.browser = webdriver.Browser(d, node_fixture.free_port())

    @classmethod
    def tearDownClass(cls):
        try:
            cls.browser.quit()
        finally:
            code = cls.node.stop()
            node_fixture.assert_no_phi([os.path.join(cls.tmp.name, "node.log")], list(BEDS) + [ELSEWHERE])
            cls.tmp.cleanup()
            assert code == 0, f"node exited with {code}"

    @classmethod
    def api(cls, rpc, body, token=None):
        req = urllib.request.Request(f"https://localhost:{cls.node.http_port}/api/v1/{rpc}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer " + (token or cls.service)})
        with urllib.request.urlopen(req, context=cls.tls, timeout=15) as r:
            return json.loads(r.read())

    @classmethod
    def ingest(cls, pid, values, age_ms):
        now = int(time.time() * 1000)
        first = cls.sequence.get(pid, 1)
        seqs = [str(first + i) for i in range(len(values))]
        cls.sequence[pid] = first + len(values)
        ack = cls.api("IngestService/Ingest", {"batchId": seqs[0], "devices": [{
            "device": device(pid), "sequence": seqs, "timeMs": [str(now - age_ms)] * len(values),
            "metric": list(values), "value": list(values.values())}]})
        assert ack["accepted"] == len(values), ack

    def shot(self, name):
        self.browser.screenshot(os.path.join(ARGS.artifacts, name + ".png"))

    def sign_in(self, token, ward=WARD):
        b = self.browser
        b.go(f"https://localhost:{self.node.http_port}/?ward={ward}")
        b.run("window.__problems = [];"
              "document.addEventListener('securitypolicyviolation', e => window.__problems.push('csp ' + e.violatedDirective));"
              "window.addEventListener('error', e => window.__problems.push('error ' + e.message));")
        b.type(b.find("#token"), token)
        b.click(b.find("#sign-in-form button[type=submit]"))

    def problems(self):
        return self.browser.run("return window.__problems || [];")

    def test_a_clinician_sees_the_ward_an_alert_within_a_second_and_handles_it(self):
        b = self.browser
        nurse = self.node.token(TENANT, ["clinician"], "nurse-kim")
        self.sign_in(nurse)
        b.wait_for("return document.querySelectorAll('#beds .bed').length === 3")
        b.wait_for("return document.getElementById('feed-state').textContent === 'Live'")
        tiles = b.run("return [...document.querySelectorAll('#beds .bed')].map(t => t.innerText)")
        self.assertIn("Bed 1", tiles[0])
        self.assertIn("mrn-3001", tiles[0])
        self.assertIn("HR", tiles[0])
        self.assertIn("SpO\u2082", tiles[0])
        self.assertNotIn(ELSEWHERE, " ".join(tiles))  # another ward
        b.wait_for("return document.querySelectorAll('#beds svg.spark polyline').length >= 3")  # trend lines
        self.shot("ward")

        # Bed 2 desaturates: the alert is in the page within a second of the
        # durable acknowledgement of the readings.
        self.ingest("mrn-3002", {"METRIC_SPO2": 84}, 6_000)
        self.ingest("mrn-3002", {"METRIC_SPO2": 84}, 0)
        t0 = time.time()
        b.wait_for("return document.querySelector('#alerts [data-alert]') !== null", timeout=5, poll=0.01)
        seen_after = time.time() - t0
        self.assertLess(seen_after, 1.0, f"the alert took {seen_after:.2f} s to show")
        item = b.run("const a = document.querySelector('#alerts [data-alert]');"
                     "return {name: a.getAttribute('data-alert'), text: a.innerText, cls: a.className};")
        self.assertIn("HIGH", item["text"])
        self.assertIn("Bed 2", item["text"])
        self.assertIn("p-HIGH", item["cls"])
        self.assertTrue(item["name"].startswith(patient("mrn-3002") + "/alerts/"))
        b.wait_for("return document.querySelector('#beds .bed.p-HIGH') !== null")  # the tile shows it too
        self.shot("alert-raised")

        # Acknowledged with a click, as the nurse: the API says so.
        buttons = b.find_all("#alerts [data-alert] .actions button")
        ack = [e for e in buttons if b.text(e) == "Acknowledge"]
        self.assertEqual(len(ack), 1)
        b.click(ack[0])
        b.wait_for("return document.querySelector('#alerts [data-alert]').innerText.includes('Acknowledged by nurse-kim')")
        alert = self.find_alert(item["name"])
        self.assertEqual(alert["state"], "ALERT_STATE_ACKNOWLEDGED")
        self.assertEqual(alert["acknowledgedBy"], "nurse-kim")
        self.shot("alert-acknowledged")

        # Resolved from the keyboard (Enter on the focused button).
        resolve = [e for e in b.find_all("#alerts [data-alert] .actions button") if b.text(e) == "Resolve"]
        b.type(resolve[0], webdriver.ENTER)
        b.wait_for("return document.querySelector('#alerts [data-alert]') === null")
        alert = self.find_alert(item["name"], include_resolved=True)
        self.assertEqual(alert["state"], "ALERT_STATE_RESOLVED")
        self.assertEqual(alert["resolvedBy"], "nurse-kim")

        # The ward's alarm burden counts it: raised, acknowledged, resolved
        # after the acknowledgement; bed 2 is the noisiest.
        b.wait_for("return document.getElementById('burden').innerText.includes('0 of 1')")
        burden = b.run("return document.getElementById('burden').innerText")
        self.assertIn("1 (", burden)  # alerts raised, and per patient-day
        noisy = b.run("return document.getElementById('burden-noisy').innerText")
        self.assertIn("Bed 2: 1 alert", noisy)
        self.shot("alarm-burden")
        self.assertEqual(self.problems(), [])
        b.click(b.find("#sign-out"))

    def test_b_a_clinician_of_another_tenant_sees_nothing_of_it(self):
        b = self.browser
        self.sign_in(self.node.token("general", ["clinician"], "nurse-other"))
        b.wait_for("return document.getElementById('ward-error').textContent.includes('No patients')")
        b.wait_for("return document.getElementById('feed-state').textContent === 'Live'")
        page = b.run("return document.body.innerText")
        for pid in list(BEDS) + [ELSEWHERE]:
            self.assertNotIn(pid, page)
        self.assertEqual(b.run("return document.querySelectorAll('#beds .bed, #alerts [data-alert]').length"), 0)
        self.shot("other-tenant")
        b.click(b.find("#sign-out"))

    def test_c_a_bad_token_is_refused_with_a_reason(self):
        b = self.browser
        self.sign_in("not-a-token")
        b.wait_for("return document.getElementById('sign-in-error').textContent.length > 0")
        self.assertFalse(b.run("return document.getElementById('sign-in').hidden"))
        sre = self.node.token(TENANT, ["sre"], "sre-on-call")  # SREs read no clinical data
        self.sign_in(sre)
        b.wait_for("return document.getElementById('sign-in-error').textContent.includes('Cannot open')")

    def find_alert(self, name, include_resolved=False):
        pid = name.split("/")[3]
        listed = self.api("AlertService/ListAlerts", {"parent": f"tenants/{TENANT}", "patient": patient(pid),
                                                      "includeResolved": include_resolved})
        return next(a for a in listed["alerts"] if a["name"] == name)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--artifacts", required=True)
    ARGS, rest = p.parse_known_args()
    why = webdriver.missing()
    if why:
        print(f"SKIPPED: {why}")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
