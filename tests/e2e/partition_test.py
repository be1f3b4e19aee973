#!/usr/bin/python3
"""A leader partitioned away (issue 20, ADR 0039), with real processes in a
network namespace the test makes (`unshare -n`: its own loopback, so its
firewall rules touch nothing else). Three "hosts" — host h runs member nh
and the standbys placed on it — each run as a user of their own; nftables
rules drop every packet between host 0's processes and the others', on
127.0.0.1, while the test's own client (root) still reaches everyone:
  - n0, cut off from its standbys, stops acknowledging within its lease
    (the election timeout and the 100 ms it takes to notice), while a
    client keeps writing to it directly;
  - on the majority side one of n0's standbys leads n0's store and serves
    it: the same sequence numbers, sent with other values through n1, are
    acknowledged there;
  - healed, n0 rejoins as a follower and takes its store back;
  - a checker reads every reading back: no sequence number of any device
    was accepted with two different values, every acknowledged reading is
    there once with the value its acknowledgement was for.
Skips (exit 77, saying why) where it cannot make a namespace, run as other
users or load nftables rules. Stopped by PID.

Usage: partition_test.py --node PATH"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error

import node_fixture

ARGS = None
TENANT = "st-mary"
UID = 61000  # host h runs as UID + h
LEASE_BOUND_S = 4.0  # election timeout (500 ms) x 2 for C-Raft's randomised timeout, 100 ms, margin
T0 = int(time.time() * 1000) - 300_000  # reading k of a device is timed T0 + 100 k


def skip(why):
    print(f"SKIPPED: {why}", file=sys.stderr)
    sys.exit(77)


def host_of(voter):
    """Member nI runs on host I; standby nI@nJ on host J."""
    return int(voter.split("@")[-1][1:])


class Partition(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-partition-")
        root = self.tmp.name
        os.chmod(root, 0o755)
        key = os.path.join(root, "node.key.hex")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        self.nodes, self.standbys = node_fixture.start_replicated_cluster(
            ARGS.node, root, key, uid_of=lambda v: UID + host_of(v))
        self.service = self.nodes[0].token(TENANT, ["service"])

    def tearDown(self):
        subprocess.run(["nft", "delete", "table", "inet", "healthtwin_partition"], capture_output=True)
        # Standbys first: members stopped first would hand their stores to them.
        for n in [s for group in self.standbys.values() for s in group] + self.nodes:
            if n.proc.poll() is None:
                n.stop()
        self.tmp.cleanup()

    def voters_on(self, host):
        everyone = self.nodes + [s for group in self.standbys.values() for s in group]
        return [n for n in everyone if host_of(os.path.basename(n.dir)) == host]

    def dump_logs(self):
        for n in self.nodes + [s for group in self.standbys.values() for s in group]:
            with open(os.path.join(n.dir, "node.log"), errors="replace") as f:
                print(f"--- {os.path.basename(n.dir)}:", "".join(f.readlines()[-12:]), file=sys.stderr)

    def partition(self, host):
        """Drops every packet between host `host`'s processes and the other hosts' listeners (peer,
        replication, gRPC), both ways; the test's client (root) is not touched."""
        def ports(nodes):
            out = []
            for n in nodes:
                out.append(n.grpc_port)
                out += [int(a.split(":")[-1]) for a in n.extra_args
                        if a.startswith(("--cluster-listen=", "--replication-listen="))]
            return ",".join(str(p) for p in sorted(set(out)))
        inside = ports(self.voters_on(host))
        outside = ports([n for h in range(3) if h != host for n in self.voters_on(h)])
        others = ",".join(str(UID + h) for h in range(3) if h != host)
        rules = f"""table inet healthtwin_partition {{
  chain out {{
    type filter hook output priority 0; policy accept;
    meta skuid {UID + host} tcp dport {{ {outside} }} drop
    meta skuid {{ {others} }} tcp dport {{ {inside} }} drop
  }}
}}
"""
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)

    def heal(self):
        subprocess.run(["nft", "delete", "table", "inet", "healthtwin_partition"], check=True)

    def ingest(self, node, d, seq, value):
        """Reading `seq` of device d (heart rate `value`) through node: "accepted", "duplicate"
        (an acknowledged reading of that number is there), or None (not acknowledged)."""
        try:
            r = node.api(self.service, "IngestService/Ingest", {"batchId": str(seq * 1000 + value), "devices": [{
                "device": f"tenants/{TENANT}/devices/{d}", "sequence": [str(seq)], "timeMs": [str(T0 + 100 * seq)],
                "metric": ["METRIC_HEART_RATE"], "value": [value]}]})
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return None
        if r.get("accepted", 0) == 1:
            return "accepted"
        reasons = [x.get("reason") for x in r.get("rejections", [])]
        return "duplicate" if reasons == ["REJECTION_REASON_DUPLICATE"] else None

    def test_a_partitioned_leader_stops_acknowledging_and_the_majority_serves_without_a_split_brain(self):
        n0, n1, n2 = self.nodes
        sre = n0.token(TENANT, ["sre"], "sre-1")
        status = node_fixture.retry_unavailable(lambda: n0.api(sre, "ClusterService/GetClusterStatus", {}))
        names = [m["name"] for m in status["members"]]
        owner = lambda name: names[status["shardOwners"][node_fixture.shard_of(name, 16)]]
        # A patient of n0's with its device on n0 too: readings read back from its vitals history.
        pid = next(f"p{i}" for i in range(1000) if owner(f"tenants/{TENANT}/patients/p{i}") == "n0"
                   and owner(f"tenants/{TENANT}/devices/hr-p{i}") == "n0")
        d = f"hr-{pid}"
        node_fixture.retry_unavailable(lambda: n1.api(self.service, "RegistryService/CreatePatient", {
            "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": "HDU", "bed": "7"}}))
        n1.api(self.service, "RegistryService/CreateDevice", {"parent": f"tenants/{TENANT}", "deviceId": d,
                                                              "device": {"type": "DEVICE_TYPE_BEDSIDE_MONITOR"}})
        n1.api(self.service, "RegistryService/AssignDevice", {"device": f"tenants/{TENANT}/devices/{d}",
                                                              "patient": f"tenants/{TENANT}/patients/{pid}"})
        outcome = {}  # seq -> (path that acknowledged it, value, how)
        for seq in range(1, 6):
            self.assertEqual(self.ingest(n0, d, seq, 70), "accepted")
            outcome[seq] = ("n0", 70, "accepted")

        self.partition(0)
        cut = time.time()
        last_minority_ack = None
        seq = 6
        majority_acks = 0
        while time.time() - cut < 12 or majority_acks < 5:
            self.assertLess(time.time() - cut, 60, "the majority side never served n0's device")
            # The same number through the cut-off leader (80) and through the majority side (90).
            minority = self.ingest(n0, d, seq, 80)
            if minority is not None:
                last_minority_ack = time.time()
                outcome[seq] = ("n0", 80, minority)
            deadline = time.time() + 30
            node_fixture.supervise(self.nodes, self.standbys, leave=[n0])
            n1 = self.nodes[1]
            while (majority := self.ingest(n1, d, seq, 90)) is None:
                node_fixture.supervise(self.nodes, self.standbys, leave=[n0])
                n1 = self.nodes[1]
                if time.time() > deadline:
                    self.dump_logs()
                    self.fail(f"reading {seq} never acknowledged by the majority side")
                time.sleep(0.05)
            if minority == "accepted":
                self.assertEqual(majority, "duplicate", f"reading {seq} accepted on both sides: a split brain")
            if majority == "accepted":
                majority_acks += 1
                self.assertNotEqual(minority, "accepted", f"reading {seq} accepted on both sides: a split brain")
                outcome[seq] = ("n1", 90, "accepted")
            elif seq not in outcome:
                outcome[seq] = ("n1", None, "duplicate")  # accepted by the leader's side with some value
            seq += 1
        if last_minority_ack is not None:
            self.assertLess(last_minority_ack - cut, LEASE_BOUND_S, "the cut-off leader acknowledged past its lease")
        serving = [s for s in self.standbys[0] if os.path.exists(s.port_file) and s.proc.poll() is None]
        self.assertEqual(len(serving), 1, "one of n0's standbys on the majority side serves n0")
        self.assertNotEqual(host_of(os.path.basename(serving[0].dir)), 0)
        if n0.proc.poll() is None:
            self.assertFalse(os.path.exists(n0.port_file), "the cut-off leader no longer serves")
        print(f"n0 cut off: last acknowledged {last_minority_ack - cut if last_minority_ack else 0:.2f} s after the "
              f"cut; {'exited with code ' + str(n0.proc.returncode) if n0.proc.poll() is not None else 'waits'}",
              file=sys.stderr)

        self.heal()
        if n0.proc.poll() is not None:  # exited with a write in doubt: its supervisor restarts it
            self.assertEqual(n0.proc.returncode, 6)
            n0.log.close()
            self.nodes[0] = n0 = n0.restart(wait=False)
        node_fixture.supervise(self.nodes, self.standbys)
        n0.wait_ready(timeout=60)
        node_fixture.wait_for(lambda: not os.path.exists(serving[0].port_file) or serving[0].proc.poll() is not None,
                              "the standby to hand n0 back")
        self.assertEqual(self.ingest(n0, d, seq, 70), "accepted", "n0 serves again after the partition heals")
        outcome[seq] = ("n0", 70, "accepted")

        # The checker: every number once, with the value its acknowledgement was for.
        node_fixture.supervise(self.nodes, self.standbys)
        n2 = self.nodes[2]
        history = node_fixture.retry_unavailable(lambda: n2.api(self.service, "TwinService/GetVitalsHistory", {
            "patient": f"tenants/{TENANT}/patients/{pid}", "metric": "METRIC_HEART_RATE",
            "startTimeMs": str(T0), "endTimeMs": str(T0 + 100 * (seq + 1))}), unreachable_too=True)
        times = [int(t) for t in history.get("timeMs", [])]
        values = dict(zip(times, history.get("value", [])))
        self.assertEqual(len(times), len(set(times)), "no reading stored twice")
        for s, (path, value, how) in outcome.items():
            at = T0 + 100 * s
            self.assertIn(at, values, f"acknowledged reading {s} ({how} through {path}) is there")
            if value is not None:
                self.assertEqual(values[at], value, f"reading {s} has the value it was acknowledged for")
        twin = node_fixture.retry_unavailable(lambda: n2.api(
            self.service, "TwinService/GetDeviceTwin", {"name": f"tenants/{TENANT}/devices/{d}"}), unreachable_too=True)
        self.assertEqual(int(twin["readingsAccepted"]), len(outcome), "each reading accepted exactly once")


def main():
    if os.geteuid() != 0:
        skip("needs root: it makes a network namespace and runs each host as a user of its own")
    if os.environ.get("HEALTHTWIN_PARTITION_NETNS") != "1":
        if not shutil.which("unshare") or not shutil.which("nft"):
            skip("needs unshare (util-linux) and nft (nftables)")
        tried = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
        if tried.returncode != 0:
            skip("cannot make a network namespace here: " + tried.stderr.strip()[:200])
        env = dict(os.environ, HEALTHTWIN_PARTITION_NETNS="1")
        try:
            code = subprocess.run(["unshare", "-n", "--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
                                  env=env).returncode
        except OSError as e:
            skip(f"cannot run unshare: {e}")
        sys.exit(code)
    # In the new namespace: its loopback up, and a rule set loads here.
    if subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True).returncode != 0:
        skip("cannot bring up the namespace's loopback")
    probe = subprocess.run(["nft", "add", "table", "inet", "healthtwin_probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        skip("nftables refuses rules here: " + probe.stderr.strip()[:200])
    subprocess.run(["nft", "delete", "table", "inet", "healthtwin_probe"], capture_output=True)
    global ARGS
    ARGS, rest = node_fixture.parse_args("node")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
