#!/usr/bin/python3
"""Failover (issue 20, ADR 0039) with real processes: three members on
127.0.0.1, each store a Raft group of the member and two standbys (nine
processes, TLS, tokens, one shared node key). Readings are sent through the
surviving members with their own sequence numbers and resent until
acknowledged. A member is SIGKILLed several times (the one holding a
patient's acknowledged alert first, then at random), and each time:
  - one of its standbys leads its store and serves it: the first reading
    of the dead member's devices is acknowledged through a surviving member
    within the design's bound (the failover time of each kill is printed);
  - the first time, three patients' alerts on it survive: one still
    acknowledged under the same name, one left unacknowledged escalates on
    the standby (its timer survived), one silenced keeps its silence (and
    does not escalate); a subscriber resuming that patient's alert stream
    with its token through a surviving member gets the escalation and
    nothing it had already;
  - the member, restarted, takes its store back: it serves again and the
    standby stops serving (it starts again as the same process and waits).
At the end every device twin holds every reading exactly once
(readingsAccepted and lastSequence equal what was sent). Stopped by PID.

A second test deletes a member's data directory (its store and Raft log)
while it is down, has its standby commit many times the snapshot interval
meanwhile, and restarts it empty: it gets a copy of the serving standby's
store (ADR 0040), takes its store back and serves every reading exactly
once.

FAILOVER_KILLS (default 3) sets the number of kills; FAILOVER_SEED the
random choice of members after the first; REPLICATED_LOGS=1 prints the end
of every process's log.

Usage: failover_test.py --node PATH"""

import http.client
import json
import os
import random
import shutil
import ssl
import statistics
import sys
import time

import node_fixture
import replicated_case
from replicated_case import TENANT, device

DEVICES = [f"oxi-{i}" for i in range(12)]
# The design's bound from SIGKILL to the first acknowledged reading: the election (500-1000 ms
# here), the standby's hand-over offer (one election timeout), its start (the store is opened
# already; twins rebuild lazily) and the edges' next probe (200 ms). The issue's target for p99
# is 5 s; a test run on a loaded 2-core machine asserts twice that.
BOUND_S = 10.0
ESCALATE_MS = 6000  # unacknowledged HIGH alerts escalate after this long
SNAPSHOT_ENTRIES = 32  # Raft logs truncated behind a snapshot this often (a voter further behind gets a copy)


class Failover(replicated_case.ReplicatedCase):
    DEVICES = DEVICES
    PREFIX = "healthtwin-failover-"

    def node_args(self, voter):
        args = [f"--alert-escalate-after-ms={ESCALATE_MS}"]
        # Few entries behind a snapshot only where a copy of the store is the point: elsewhere a
        # standby lagging for a moment would need one too, and its restart delays the failover.
        if "data_directory" in self._testMethodName:
            args.append(f"--replication-snapshot-entries={SNAPSHOT_ENTRIES}")
        return args

    def alert(self, edge, name):
        listed = node_fixture.retry_unavailable(lambda: edge.api(self.service, "AlertService/ListAlerts", {
            "parent": f"tenants/{TENANT}"}), unreachable_too=True)
        found = [a for a in listed.get("alerts", []) if a["name"] == name]
        return found[0] if found else None

    def events(self, edge, patient, after, seconds):
        """StreamAlerts of one patient through `edge`, resumed after token `after`, for `seconds`."""
        edge.sync_ports()
        tls = ssl.create_default_context(cafile=os.path.join(edge.dir, "ca.pem"))
        conn = http.client.HTTPSConnection("localhost", edge.http_port, context=tls, timeout=seconds)
        conn.request("POST", "/api/v1/AlertService/StreamAlerts", body=json.dumps({
            "parent": f"tenants/{TENANT}", "patient": patient, "resumeAfter": str(after)}),
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + self.service})
        r = conn.getresponse()
        out = []
        try:
            while r.status == 200:
                line = r.fp.readline()
                if not line:
                    break
                if line.startswith(b"data:"):
                    out.append(json.loads(line[5:]))
        except (TimeoutError, OSError):
            pass
        conn.close()
        return out

    def patient_with_alert(self, n0, owner, member, taken):
        """A new patient of `member` with its oximeter (both owned there), desaturated: (patient, alert name)."""
        pid = next(f"p{i}" for i in range(2000) if f"p{i}" not in taken
                   and owner(f"tenants/{TENANT}/patients/p{i}") == member == owner(device(f"oxi-p{i}")))
        taken.add(pid)
        n0.api(self.service, "RegistryService/CreatePatient", {"parent": f"tenants/{TENANT}", "patientId": pid,
                                                               "patient": {"ward": "HDU", "bed": str(len(taken))}})
        n0.api(self.service, "RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": f"oxi-{pid}",
                                                              "device": {"type": "DEVICE_TYPE_PULSE_OXIMETER"}})
        n0.api(self.service, "RegistryService/AssignDevice", {"device": device(f"oxi-{pid}"),
                                                              "patient": f"tenants/{TENANT}/patients/{pid}"})
        return pid, n0.desaturate(self.service, TENANT, pid, {})

    def test_a_killed_members_store_is_served_by_a_standby_until_the_member_takes_it_back(self):
        n0 = self.nodes[0]
        self.create_devices()
        self.assertEqual(self.send_round([0, 1, 2], 5, 30), set(DEVICES))
        owners = self.owner_table(n0)
        owner = lambda name: int(owners[node_fixture.shard_of(name, 16)][1:])

        # Patients whose twins and devices live on the first member to be killed, each with an open
        # alert: acknowledged (p1), left unacknowledged to escalate (p2), silenced (p3).
        taken = set()
        first_victim = owner(device(DEVICES[0]))
        _, raised = self.patient_with_alert(n0, owner, first_victim, taken)
        nurse = n0.token(TENANT, ["clinician"], "nurse-ann")
        n0.api(nurse, "AlertService/AcknowledgeAlert", {"name": raised})
        before = self.alert(n0, raised)
        self.assertEqual(before["state"], "ALERT_STATE_ACKNOWLEDGED")
        p2, escalating = self.patient_with_alert(n0, owner, first_victim, taken)
        p3, silenced = self.patient_with_alert(n0, owner, first_victim, taken)
        n0.api(nurse, "AlertService/SilenceAlerts", {"patient": f"tenants/{TENANT}/patients/{p3}",
                                                     "duration": "600s", "reason": "repositioning"})
        silenced_before = self.alert(n0, silenced)
        self.assertIn("silencedUntil", silenced_before)
        seen = self.events(self.nodes[(first_victim + 1) % 3], f"tenants/{TENANT}/patients/{p2}", 0, 1)
        self.assertTrue(seen, "the escalating alert's events so far")
        self.assertEqual(self.alert(n0, escalating).get("escalationLevel", 0), 0, "killed before it escalates")

        kills = int(os.environ.get("FAILOVER_KILLS", "3"))
        seed = int(os.environ.get("FAILOVER_SEED", str(int(time.time()))))
        print(f"failover: {kills} kills, seed {seed}", file=sys.stderr)
        rng = random.Random(seed)
        times = []
        for k in range(kills):
            v = first_victim if k == 0 else rng.choice(sorted({owner(device(d)) for d in DEVICES}))
            victims = [d for d in DEVICES if owner(device(d)) == v]
            edges = [i for i in range(3) if i != v]
            self.assertTrue(victims)
            self.away = [self.nodes[v]]
            self.nodes[v].kill()
            t0 = time.time()
            d, first = victims[0], self.sent[victims[0]] + 1
            self.sent[d] += 1
            while not self.ingest(self.nodes[edges[0]], d, first, 1):
                self.assertLess(time.time() - t0, 30, f"kill {k}: n{v}'s devices are never acknowledged again")
                node_fixture.supervise(self.nodes, self.standbys, leave=self.away)
                time.sleep(0.02)
            times.append(time.time() - t0)
            print(f"kill {k}: n{v} at {time.strftime('%H:%M:%S', time.gmtime(t0))}.{int(t0 * 1000) % 1000:03d} UTC, "
                  f"its devices acknowledged again after {times[-1]:.2f} s", file=sys.stderr)
            serving = [s for s in self.standbys[v] if os.path.exists(s.port_file) and s.proc.poll() is None]
            self.assertEqual(len(serving), 1, f"kill {k}: one standby of n{v} serves it")
            self.assertEqual(self.send_round(edges, 2, 30), set(DEVICES), f"kill {k}: every device acknowledged")
            if k == 0:
                edge = self.nodes[edges[0]]
                after = self.alert(edge, raised)
                self.assertIsNotNone(after, "the open alert survives its member")
                self.assertEqual(after["state"], "ALERT_STATE_ACKNOWLEDGED")
                self.assertEqual(after.get("acknowledgedBy"), before.get("acknowledgedBy"))
                # The escalation timer survives: the unacknowledged alert escalates on the standby.
                node_fixture.wait_for(lambda: self.alert(edge, escalating).get("escalationLevel", 0) >= 1,
                                      "the unacknowledged alert to escalate after failover", timeout=ESCALATE_MS / 1000 + 20)
                # The silence survives: same end, and it kept its alert from escalating.
                silenced_after = self.alert(edge, silenced)
                self.assertEqual(silenced_after.get("silencedUntil"), silenced_before["silencedUntil"])
                self.assertEqual(silenced_after.get("escalationLevel", 0), 0, "a silenced alert does not escalate")
                # A subscriber resuming with its token gets what followed, and nothing twice.
                last = int(seen[-1]["resumeToken"])
                resumed = self.events(edge, f"tenants/{TENANT}/patients/{p2}", last, 2)
                tokens = [int(e["resumeToken"]) for e in resumed]
                self.assertTrue(tokens and tokens[0] > last and tokens == sorted(set(tokens)), tokens)
                self.assertIn("ALERT_EVENT_TYPE_ESCALATED", [e["type"] for e in resumed])
                self.assertEqual([e for e in seen if e["type"] == "ALERT_EVENT_TYPE_ESCALATED"], [])

            # The member comes back and takes its store back from the standby.
            self.away = []
            self.nodes[v] = self.nodes[v].restart(wait=False)
            self.nodes[v].wait_ready(timeout=60)
            standby = serving[0]
            node_fixture.wait_for(lambda: not os.path.exists(standby.port_file) or standby.proc.poll() is not None,
                                  "the standby to stop serving")
            # It starts again as the same process, or exits (code 6) when a write of its was in flight.
            self.assertIn(standby.proc.poll(), (None, 6), "a deposed standby starts again")
            self.assertEqual(self.send_round([0, 1, 2], 2, 30), set(DEVICES), f"after kill {k}: all acknowledged")

        ordered = sorted(times)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print("failover seconds: " + ", ".join(f"{t:.2f}" for t in times)
              + f"; p50 {statistics.median(times):.2f}, p99 {p99:.2f}, max {max(times):.2f}", file=sys.stderr)
        self.assertLessEqual(max(times), BOUND_S)
        self.assert_each_reading_once(1)

    def test_a_member_whose_data_directory_was_deleted_is_rebuilt_from_its_standbys(self):
        n0 = self.nodes[0]
        self.create_devices()
        self.assertEqual(self.send_round([0, 1, 2], 5, 30), set(DEVICES))
        owners = self.owner_table(n0)
        mine = [d for d in DEVICES if owners[node_fixture.shard_of(device(d), 16)] == "n0"]
        self.assertTrue(mine)

        self.away = [n0]
        n0.kill()
        shutil.rmtree(os.path.join(n0.dir, "db"))  # its store and its Raft log: the disk is lost
        logged_before = os.path.getsize(os.path.join(n0.dir, "node.log"))
        # The standby serving n0 commits far more entries than its log keeps behind a snapshot.
        for _ in range(3 * SNAPSHOT_ENTRIES // len(mine) + 2):
            self.assertEqual(self.send_round([1, 2], 1, 30), set(DEVICES))

        self.away = []
        self.nodes[0] = n0 = n0.restart(wait=False)
        n0.wait_ready(timeout=90)  # a copy fetched, installed, caught up, leadership handed back
        with open(os.path.join(n0.dir, "node.log"), errors="replace") as f:
            f.seek(logged_before)
            log = f.read()
        self.assertIn("staged a copy of member n0's store", log)
        installed = log.find("installed the copy of the store")
        self.assertGreaterEqual(installed, 0, log[-3000:])
        # Raft may hand it leadership before it has the copy (it took the snapshot); it must not
        # lead, let alone serve, until the copy is installed.
        self.assertGreater(log.find("leading member n0's store"), installed, log[-3000:])
        self.assertNotIn("did not start", log)
        self.assertEqual(self.send_round([0, 1, 2], 2, 30), set(DEVICES))
        self.assert_each_reading_once(0)  # through n0: its own devices from its rebuilt store


if __name__ == "__main__":
    replicated_case.main(Failover)
