#!/usr/bin/python3
"""FHIR Subscriptions (R5 Backport, rest-hook) as a hospital system uses
them: a real node on 127.0.0.1 (TLS, tokens) and a Python HTTPS receiver on
127.0.0.1 with a certificate of the test's CA. A subscription is created
with POST /fhir/{tenant}/Subscription; the receiver gets the handshake, then
every alert event of the tenant as a notification Bundle numbered in
sequence, in order — while it answers 503 or drops connections and while
the node is SIGKILLed and restarted: every event number arrives, none is
skipped, and a number seen twice carries the same event (the receiver drops
it by its number). In a cluster of three, a subscription held by one member
notifies every member's events in one sequence, across SIGKILLs of another
member and of itself. The notifications match the node's own alert log and
pass the npm `fhir` validator. The NEWS2 topic, filters, $status, listing,
deletion, and refusals (bad fields named, no token, another tenant) too.
Stopped by PID.

Usage: fhir_subscription_test.py --node PATH [--validator tests/fhir/validate.mjs]
Exits 77 (skipped) when the node is missing."""

import argparse
import http.client
import http.server
import json
import os
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
TENANT = "st-agnes"
ALERTS = "urn:healthtwin:fhir:SubscriptionTopic:alerts"
NEWS2 = "urn:healthtwin:fhir:SubscriptionTopic:news2"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


class Receiver:
    """An HTTPS endpoint recording every notification; `mode` says how it
    answers: "ok" (200), "fail" (503) or "drop" (closes without answering)."""

    def __init__(self, d):
        receiver = self
        self.lock = threading.Lock()
        self.received, self.accepted, self.mode = [], [], "ok"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    mode = receiver.mode
                    receiver.received.append((self.path, dict(self.headers), json.loads(body)))
                if mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(200 if mode == "ok" else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if mode == "ok":
                    with receiver.lock:
                        receiver.accepted.append(json.loads(body))

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(os.path.join(d, "node.pem"), os.path.join(d, "node.key"))
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def status_of(bundle):
    """(type, events-since-start, event number or None, focus reference or None) of a notification."""
    params = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    event = params.get("notification-event")
    parts = {p["name"]: p for p in event["part"]} if event else {}
    return (params["type"]["valueCode"], int(params["events-since-subscription-start"]["valueString"]),
            int(parts["event-number"]["valueString"]) if event else None,
            parts["focus"]["valueReference"]["reference"] if "focus" in parts else None)


class FhirSubscriptions(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-fhirsub-")
        d = self.d = self.tmp.name
        node_fixture.make_pki(d)
        self.receiver = Receiver(d)
        self.node = node_fixture.Node(ARGS.node, d, extra_args=["--fhir-subscription-ca-file=" + os.path.join(d, "ca.pem")])
        self.tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
        self.service = self.node.token(TENANT, ["service"])
        self.nurse = self.node.token(TENANT, ["clinician"], "nurse-7")
        self.sequence = {}
        for pid, ward in (("p1", "ICU"), ("p2", "ICU"), ("p3", "ICU"), ("p4", "MAU")):
            self.api("RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": pid,
                                                       "patient": {"ward": ward, "bed": pid}})
            self.api("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": "oxi-" + pid,
                                                      "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
            self.api("RegistryService/AssignDevice", {"device": f"tenants/{TENANT}/devices/oxi-{pid}",
                                                      "patient": f"tenants/{TENANT}/patients/{pid}"})

    def tearDown(self):
        code = self.node.stop()
        self.receiver.close()
        node_fixture.assert_no_phi([os.path.join(self.d, "node.log")], ["p1", "p2", "p3", "p4"])
        self.tmp.cleanup()
        self.assertEqual(code, 0, "the node did not stop cleanly")

    def api(self, rpc, body):
        return self.node.api(self.service, rpc, body)

    def fhir(self, method, path, body=None, token="service"):
        headers = {"Content-Type": "application/fhir+json"}
        if token:
            named = {"nurse": self.nurse, "service": self.service}
            headers["Authorization"] = "Bearer " + named.get(token, token)
        req = urllib.request.Request(f"https://localhost:{self.node.http_port}/fhir/{TENANT}/{path}",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
                raw = r.read()
                return r.status, dict(r.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read())

    def metric(self, line_start):
        """The value of the node's /metrics line that starts with `line_start`."""
        for line in self.node.metrics().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        self.fail(f"no {line_start} in /metrics")

    def subscription(self, topic=ALERTS, criteria=None, content="full-resource", endpoint=None):
        s = {"resourceType": "Subscription", "status": "requested", "reason": "nurse call integration",
             "criteria": topic,
             "channel": {"type": "rest-hook",
                         "endpoint": endpoint or f"https://localhost:{self.receiver.port}/notify",
                         "payload": "application/fhir+json",
                         "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content",
                                                     "valueCode": content}]},
                         "header": ["Authorization: Bearer receiver-secret"]}}
        if criteria:
            s["_criteria"] = {"extension": [{"url": BACKPORT + "backport-filter-criteria", "valueString": criteria}]}
        return s

    def desaturate(self, pid):
        return self.node.desaturate(self.service, TENANT, pid, self.sequence)

    def events(self, kind="event-notification"):
        """Accepted notifications of `kind`, by event number (first acceptance kept)."""
        with self.receiver.lock:
            accepted = list(self.receiver.accepted)
        out = {}
        for b in accepted:
            st = status_of(b)
            if st[0] == kind:
                out.setdefault(st[2], b)
        return out

    def alert_log(self):
        """Every alert event of the tenant in the node's log (StreamAlerts from the start, as SSE)."""
        conn = http.client.HTTPSConnection("localhost", self.node.http_port, context=self.tls, timeout=5)
        conn.request("POST", "/api/v1/AlertService/StreamAlerts",
                     body=json.dumps({"parent": f"tenants/{TENANT}", "resumeAfter": "0"}),
                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + self.service})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        events = []
        try:
            while True:
                line = r.fp.readline()
                if not line:
                    break
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))
        except (TimeoutError, OSError):
            pass  # no more events within the timeout
        conn.close()
        return events

    def validate(self, resource, name):
        if not ARGS.validator or not os.path.exists(os.path.join(os.path.dirname(ARGS.validator), "node_modules")):
            print(f"validator not installed: {name} not validated", file=sys.stderr)
            return
        code, output = node_fixture.fhir_validation(ARGS.validator, self.d, resource, name)
        self.assertEqual(code, 0, output)

    def test_every_alert_event_arrives_numbered_in_order_across_failures_and_sigkills(self):
        status, headers, sub = self.fhir("POST", "Subscription", self.subscription())
        self.assertEqual(status, 201, sub)
        sid = sub["id"]
        self.assertTrue(headers["Location"].endswith(f"/fhir/{TENANT}/Subscription/{sid}"), headers)
        self.assertEqual(sub["channel"]["header"], ["Authorization: ***"], "a header value was shown")
        node_fixture.wait_for(lambda: self.events("handshake"), "the handshake")
        self.assertEqual(self.fhir("GET", f"Subscription/{sid}")[2]["status"], "active")

        a = self.desaturate("p1")
        self.api("AlertService/AcknowledgeAlert", {"name": a, "acknowledgedBy": "nurse-1"})
        self.api("AlertService/ResolveAlert", {"name": a, "resolvedBy": "nurse-1"})
        node_fixture.wait_for(lambda: len(self.events()) >= 3, "three notifications")

        # SIGKILL; alerts go on after the restart.
        self.node.kill()
        self.node = self.node.restart()
        b = self.desaturate("p2")
        self.api("AlertService/AcknowledgeAlert", {"name": b, "acknowledgedBy": "nurse-2"})
        node_fixture.wait_for(lambda: len(self.events()) >= 5, "five notifications", timeout=60)

        # The receiver refuses, then drops connections; the node is killed meanwhile.
        self.receiver.mode = "fail"
        self.desaturate("p3")
        node_fixture.wait_for(lambda: any(status_of(x[2])[0] == "event-notification" and status_of(x[2])[2] == 6
                              for x in self.receiver.received), "the sixth notification tried")
        code, _, st = self.fhir("GET", f"Subscription/{sid}")
        self.assertEqual((code, st["status"]), (200, "error"), st)
        self.assertIn("503", st["error"])
        self.assertEqual(self.metric('healthtwin_fhir_subscriptions{status="error"}'), 1)
        self.assertGreater(self.metric('healthtwin_fhir_notifications_total{outcome="refused"}'), 0)
        with self.receiver.lock:
            tried = len(self.receiver.received)
            self.receiver.mode = "drop"
        node_fixture.wait_for(lambda: len(self.receiver.received) > tried + 1, "a notification dropped")
        self.assertGreater(self.metric('healthtwin_fhir_notifications_total{outcome="unreachable"}'), 0)
        self.node.kill()
        self.node = self.node.restart()
        time.sleep(1)
        self.receiver.mode = "ok"
        node_fixture.wait_for(lambda: len(self.events()) >= 6, "six notifications", timeout=90)
        time.sleep(1)
        self.assertEqual(self.metric('healthtwin_fhir_subscriptions{status="active"}'), 1)
        self.assertEqual(self.metric('healthtwin_fhir_subscriptions{status="error"}'), 0)

        got = self.events()
        numbers = sorted(got)
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)), "an event number was skipped")
        with self.receiver.lock:
            accepted = list(self.receiver.accepted)
            received = list(self.receiver.received)
        order = [status_of(b)[2] for b in accepted if status_of(b)[0] == "event-notification"]
        firsts = list(dict.fromkeys(order))
        self.assertEqual(firsts, numbers, "notifications were accepted out of order")
        for b in accepted:  # a number seen again carries the same event
            st = status_of(b)
            if st[0] == "event-notification":
                self.assertEqual(b["entry"][1:], got[st[2]]["entry"][1:])
        self.assertGreater(len(received), len(accepted), "refused and dropped notifications were not resent")
        self.assertTrue(all(h.get("Authorization") == "Bearer receiver-secret" for _, h, _ in received))

        # The notifications are the node's alert log, one by one.
        log = self.alert_log()
        self.assertEqual(len(numbers), len(log), "notifications and the alert log differ in number")
        for n, e in zip(numbers, log):
            resource = got[n]["entry"][1]["resource"]
            self.assertEqual(resource["resourceType"], "Flag")
            self.assertEqual(resource["id"], "alert-" + e["alert"]["name"].rsplit("/", 1)[1])
            self.assertEqual(resource["status"], "inactive" if e["alert"]["state"] == "ALERT_STATE_RESOLVED" else "active")
            self.assertEqual(resource["subject"]["reference"], "Patient/" + e["alert"]["patient"].rsplit("/", 1)[1])
        self.validate(got[1], "notification")
        self.validate(self.events("handshake")[None], "handshake")
        self.validate(self.fhir("GET", f"Subscription/{sid}")[2], "subscription")

    def test_news2_topic_filters_status_listing_deletion_and_refusals(self):
        # Refusals name the field.
        for body, field in ((self.subscription(endpoint="http://localhost:1/x"), "channel.endpoint"),
                            (self.subscription(topic="urn:other"), "criteria"),
                            (self.subscription(criteria="Flag?room=1"), "_criteria"),
                            (self.subscription(topic=NEWS2, criteria="Flag?ward=ICU"), "_criteria"),
                            (self.subscription(content="everything"), "channel._payload")):
            code, _, out = self.fhir("POST", "Subscription", body)
            self.assertEqual(code, 400, out)
            self.assertEqual(out["resourceType"], "OperationOutcome")
            self.assertTrue(out["issue"][0]["diagnostics"].startswith(field), out)
        self.assertEqual(self.fhir("POST", "Subscription", self.subscription(), token=None)[0], 401)
        # A clinician reads alerts but does not send them out of the node.
        code, _, out = self.fhir("POST", "Subscription", self.subscription(), token="nurse")
        self.assertEqual(code, 403, out)
        self.assertIn("service role", out["issue"][0]["diagnostics"])
        other = self.node.token("st-other", ["service"], "ehr-9")  # another tenant's integration
        self.assertEqual(self.fhir("POST", "Subscription", self.subscription(), token=other)[0], 403)

        # A ward's alerts only, id-only; and NEWS2 of the MAU ward.
        code, _, ward = self.fhir("POST", "Subscription", self.subscription(criteria="Flag?ward=MAU", content="id-only"))
        self.assertEqual(code, 201, ward)
        code, _, news2 = self.fhir("POST", "Subscription", self.subscription(topic=NEWS2, criteria="Observation?ward=MAU"))
        self.assertEqual(code, 201, news2)
        listed = self.fhir("GET", "Subscription")[2]
        self.assertEqual(sorted(e["resource"]["id"] for e in listed["entry"]), sorted([ward["id"], news2["id"]]))
        self.assertEqual(self.fhir("GET", f"Subscription/{ward['id']}", token=other)[0], 403)

        for dev, kind in (("mon-p4", "DEVICE_TYPE_BEDSIDE_MONITOR"), ("chart-p4", "DEVICE_TYPE_OBSERVATION_CHART")):
            self.api("RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": dev,
                                                      "device": {"type": kind}})
            self.api("RegistryService/AssignDevice", {"device": f"tenants/{TENANT}/devices/{dev}",
                                                      "patient": f"tenants/{TENANT}/patients/p4"})
        now = int(time.time() * 1000)
        # A deteriorating patient: NEWS2 12 (high) for over a minute.
        rows = [(now - age, m, v) for age in (90_000, 60_000, 30_000, 0) for m, v in (
            ("METRIC_HEART_RATE", 132), ("METRIC_RESPIRATION_RATE", 26), ("METRIC_SPO2", 90),
            ("METRIC_TEMPERATURE", 38.4), ("METRIC_SYSTOLIC_BP", 96), ("METRIC_DIASTOLIC_BP", 60))]
        for dev, batch in (("chart-p4", [(now - 90_000, "METRIC_CONSCIOUSNESS", 0), (now - 90_000, "METRIC_OXYGEN_FLOW", 0)]),
                           ("mon-p4", rows)):
            ack = self.api("IngestService/Ingest", {"batchId": "1", "devices": [{
                "device": f"tenants/{TENANT}/devices/{dev}", "sequence": [str(1 + i) for i in range(len(batch))],
                "timeMs": [str(t) for t, _, _ in batch], "metric": [m for _, m, _ in batch],
                "value": [v for _, _, v in batch]}]})
            self.assertEqual(ack["accepted"], len(batch), ack)
        self.desaturate("p1")  # an ICU patient: in neither subscription

        def of(sid):
            with self.receiver.lock:
                return [b for b in self.receiver.accepted if status_of(b)[0] == "event-notification"
                        and b["entry"][0]["resource"]["parameter"][0]["valueReference"]["reference"].endswith("/" + sid)]
        node_fixture.wait_for(lambda: of(news2["id"]), "a NEWS2 notification")
        node_fixture.wait_for(lambda: of(ward["id"]), "an alert notification of the ward")
        time.sleep(1)
        for b in of(ward["id"]):
            self.assertTrue(status_of(b)[3].split("/Flag/")[1].startswith("alert-"))
            self.assertTrue(all("resource" not in e for e in b["entry"][1:]), "id-only carried a resource")
        scores = []
        for b in of(news2["id"]):
            kinds = [e["resource"]["resourceType"] for e in b["entry"][1:]]
            self.assertIn("Flag", kinds)
            for o in (e["resource"] for e in b["entry"][1:] if e["resource"]["resourceType"] == "Observation"):
                self.assertEqual(o["code"]["coding"][0]["code"], "1104051000000101")
                self.assertEqual(o["subject"]["reference"], "Patient/p4")
                scores.append(o["valueInteger"])
        self.assertTrue(scores and max(scores) >= 7, f"no high NEWS2 score notified: {scores}")
        # Only NEWS2 events on the NEWS2 topic: the ward's threshold alerts are not among them.
        self.assertLess(len(of(news2["id"])), len(of(ward["id"])))
        self.validate(of(news2["id"])[0], "news2")
        all_subjects = [e["resource"]["subject"]["reference"] for b in of(news2["id"]) for e in b["entry"][1:]]
        self.assertNotIn("Patient/p1", all_subjects)

        status = self.fhir("GET", f"Subscription/{ward['id']}/$status")[2]
        self.assertEqual(status["resourceType"], "Parameters")
        params = {p["name"]: p for p in status["parameter"]}
        self.assertEqual(params["status"]["valueCode"], "active")
        self.assertEqual(int(params["events-since-subscription-start"]["valueString"]), len(of(ward["id"])))

        # Deleted (by an integration, not a clinician): gone, and nothing more is sent for it (also after a restart).
        self.assertEqual(self.fhir("GET", f"Subscription/{ward['id']}", token="nurse")[0], 200)
        self.assertEqual(self.fhir("DELETE", f"Subscription/{ward['id']}", token="nurse")[0], 403)
        self.assertEqual(self.fhir("DELETE", f"Subscription/{ward['id']}")[0], 204)
        self.assertEqual(self.fhir("GET", f"Subscription/{ward['id']}")[0], 404)
        self.node.stop()
        self.node = self.node.restart()
        self.assertEqual([e["resource"]["id"] for e in self.fhir("GET", "Subscription")[2]["entry"]], [news2["id"]])
        before = len(of(ward["id"]))
        self.desaturate("p4")
        time.sleep(2)
        self.assertEqual(len(of(ward["id"])), before)


class FhirSubscriptionsInACluster(unittest.TestCase):
    """Three members; the subscription is held by n0 and notifies the events of every member's patients,
    numbered in one sequence, across a SIGKILL of another member and of n0 itself."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-fhirsub-cluster-")
        root = self.root = self.tmp.name
        self.nodes, _ = node_fixture.start_cluster(ARGS.node, root, extra_args=lambda i: [
            "--fhir-subscription-ca-file=" + os.path.join(root, f"n{i}", "ca.pem")])
        self.receiver = Receiver(root)
        self.tls = ssl.create_default_context(cafile=os.path.join(root, "ca.pem"))
        self.service = self.nodes[0].token(TENANT, ["service"])
        self.nurse = self.nodes[0].token(TENANT, ["clinician"], "nurse-7")
        self.sequence = {}
        self.patients = [f"c{i}" for i in range(9)]
        for pid in self.patients:
            self.retry(lambda: self.api("RegistryService/CreatePatient", {
                "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": "ICU", "bed": pid}}))
            self.retry(lambda: self.api("RegistryService/CreateDevice", {
                "parent": f"tenants/{TENANT}", "deviceId": "oxi-" + pid, "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}}))
            self.retry(lambda: self.api("RegistryService/AssignDevice", {
                "device": f"tenants/{TENANT}/devices/oxi-{pid}", "patient": f"tenants/{TENANT}/patients/{pid}"}))

    def tearDown(self):
        for n in self.nodes:
            n.stop()
        self.receiver.close()
        self.tmp.cleanup()

    def retry(self, call, timeout=30):
        return node_fixture.retry_unavailable(call, timeout)

    def api(self, rpc, body, token=None):
        return self.nodes[0].api(token or self.service, rpc, body)

    def notified(self):
        with self.receiver.lock:
            accepted = list(self.receiver.accepted)
        out = {}
        for b in accepted:
            st = status_of(b)
            if st[0] == "event-notification":
                out.setdefault(st[2], b)
        return out

    def test_every_members_events_are_notified_in_one_sequence_across_sigkills(self):
        body = FhirSubscriptions.subscription(self, content="full-resource")
        req = urllib.request.Request(f"https://localhost:{self.nodes[0].http_port}/fhir/{TENANT}/Subscription",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/fhir+json", "Authorization": "Bearer " + self.service})
        with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
            self.assertEqual(r.status, 201)
        names = {}
        for pid in self.patients:
            names[pid] = self.retry(lambda: self.nodes[0].desaturate(self.service, TENANT, pid, self.sequence))
        node_fixture.wait_for(lambda: len(self.notified()) >= 9, "a notification per patient", timeout=60)

        # Another member dies and comes back; its patients' acknowledgements are notified too.
        self.nodes[1].kill()
        self.nodes[1] = self.nodes[1].restart()
        for pid in self.patients:
            self.retry(lambda: self.api("AlertService/AcknowledgeAlert", {"name": names[pid]}, self.nurse))
        node_fixture.wait_for(lambda: len(self.notified()) >= 18, "the acknowledgements", timeout=90)

        # The member holding the subscription dies; it resumes where it was.
        self.nodes[0].kill()
        self.nodes[0] = self.nodes[0].restart()
        for pid in self.patients:
            self.retry(lambda: self.api("AlertService/ResolveAlert", {"name": names[pid]}, self.nurse))
        node_fixture.wait_for(lambda: len(self.notified()) >= 27, "the resolutions", timeout=90)
        time.sleep(1.5)

        got = self.notified()
        self.assertEqual(sorted(got), list(range(1, 28)), "numbers skipped or more events than happened")
        with self.receiver.lock:
            for b in self.receiver.accepted:  # a number seen again carries the same event
                st = status_of(b)
                if st[0] == "event-notification":
                    self.assertEqual(b["entry"][1:], got[st[2]]["entry"][1:])
        seen = {}
        for n in sorted(got):
            flag = got[n]["entry"][1]["resource"]
            seen.setdefault(flag["subject"]["reference"], []).append(flag["status"])
        self.assertEqual(sorted(seen), sorted(f"Patient/{p}" for p in self.patients))
        for patient, states in seen.items():  # raised, acknowledged, resolved: in that order
            self.assertEqual(states, ["active", "active", "inactive"], patient)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--validator")
    ARGS, rest = p.parse_known_args()
    if not os.path.exists(ARGS.node):
        print(f"SKIPPED: {ARGS.node} is missing")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
