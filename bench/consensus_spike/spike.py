#!/usr/bin/python3
"""Replication spike of issue 20 (docs/adr/0036): the two engines Debian
offers, measured on this machine with the ingest log's entry size.

  spike.py --raft-node PATH [--entry-bytes 16000] [--seconds 20] [--kills 10]

C-Raft (libraft): three `raft_node` members on 127.0.0.1 replicate entries
of the ingest log's size (a group commit of ~1,000 readings); the leader
keeps 64 (flat out) or 2 (light load) proposed. Failover: the leader is
SIGKILLed, the time to the next leader's first commit is read from its
output; the member is started again on its log.

etcd (etcd-server 3.4): three members on 127.0.0.1; a gRPC client keeps 64
puts of the same size in flight (the log as etcd keys), then the
coordination role: a holder keeps a leader key alive with a lease, stops
(as if SIGKILLed), and a contender's compare-and-put takes the key once the
lease ran out; then an etcd member is SIGKILLed and the time until a put
succeeds again is taken.

Every process is ours, started with a temp dir and free ports on
127.0.0.1, and stopped by its PID."""

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def now_ms():
    return time.time() * 1000


def stop_all(procs, timeout=20):
    """SIGTERM to each process still running (by PID), SIGKILL to any that does not end."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


# ---- C-Raft -----------------------------------------------------------------

class RaftGroup:
    def __init__(self, binary, root, entry_bytes, in_flight, election_ms=1000, heartbeat_ms=100):
        self.binary, self.root = binary, root
        self.ports = [free_port() for _ in range(3)]
        self.args = [str(entry_bytes), str(in_flight), str(election_ms), str(heartbeat_ms)]
        self.procs = [None] * 3
        for i in range(3):
            os.makedirs(self.dir(i), exist_ok=True)
            self.start(i)

    def dir(self, i):
        return os.path.join(self.root, f"m{i + 1}")

    def out(self, i):
        return os.path.join(self.root, f"m{i + 1}.out")

    def start(self, i):
        starts = self.starts(i)
        with open(self.out(i), "a") as log:
            self.procs[i] = subprocess.Popen(
                [self.binary, str(i + 1), self.dir(i)] + [str(p) for p in self.ports] + self.args,
                stdout=log, stderr=subprocess.STDOUT)
        # Until it says so, its output is its previous process's.
        wait_until(lambda: self.starts(i) > starts, f"member {i + 1} started")

    def starts(self, i):
        if not os.path.exists(self.out(i)):
            return 0
        with open(self.out(i)) as f:
            return sum(1 for line in f if line.startswith("started"))

    def lines(self, i, word):
        """The lines of member i's current process (after its last "started") starting with `word`."""
        with open(self.out(i)) as f:
            text = f.read()
        text = text[text.rfind("started"):]
        return [line.split() for line in text.splitlines() if line.startswith(word)]

    def leader(self):
        """The live member whose last state line (each second) says it leads."""
        for i in range(3):
            states = self.lines(i, "state") if self.procs[i].poll() is None else []
            if states and states[-1][1] == "3":  # RAFT_LEADER
                return i
        return None

    def stop(self):
        stop_all(self.procs)


def wait_until(cond, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value is not None and value is not False:
            return value
        time.sleep(0.02)
    raise RuntimeError("timed out: " + what)


def raft_throughput(args, in_flight):
    root = tempfile.mkdtemp(prefix="raft-spike-")
    group = RaftGroup(args.raft_node, root, args.entry_bytes, in_flight)
    try:
        leader = wait_until(group.leader, "a raft leader")
        time.sleep(args.seconds)
        seconds = group.lines(leader, "second")[2:]  # the first two warm up
    finally:
        group.stop()
        shutil.rmtree(root)
    entries = [int(s[1]) for s in seconds]
    return {"entries/s": statistics.median(entries),
            "MB/s": statistics.median(entries) * args.entry_bytes / 1e6,
            "p50 ms": statistics.median(float(s[6]) for s in seconds),
            "p99 ms": statistics.median(float(s[9]) for s in seconds)}


def raft_failovers(args):
    root = tempfile.mkdtemp(prefix="raft-spike-")
    group = RaftGroup(args.raft_node, root, args.entry_bytes, 64, election_ms=args.election_ms,
                      heartbeat_ms=max(50, args.election_ms // 10))
    times = []
    try:
        for _ in range(args.kills):
            leader = wait_until(group.leader, "a raft leader")
            time.sleep(3 + random.random())  # under load, a random moment (the restarted member caught up)
            t0 = now_ms()
            group.procs[leader].kill()
            group.procs[leader].wait()

            def first_commit():
                found = [float(p[1]) for i in range(3) if i != leader for p in group.lines(i, "first-commit")
                         if float(p[1]) > t0]
                return min(found) if found else None
            try:
                times.append(wait_until(first_commit, "a commit after the kill") - t0)
            except RuntimeError:
                kept = root + ".failed"
                shutil.copytree(root, kept, ignore=shutil.ignore_patterns("m[123]"))
                print(f"no commit after killing member {leader + 1} at {t0:.0f}; outputs kept in {kept}",
                      file=sys.stderr)
                raise
            group.start(leader)  # back as a follower on its log
    finally:
        group.stop()
        shutil.rmtree(root)
    return times


# ---- etcd ---------------------------------------------------------------------

def etcd_stubs(out):
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "-I", HERE, "--python_out", out, "--grpc_python_out", out,
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    os.path.join(HERE, "etcd_subset.proto")], check=True)
    sys.path.insert(0, out)
    import etcd_subset_pb2
    import etcd_subset_pb2_grpc
    return etcd_subset_pb2, etcd_subset_pb2_grpc


class EtcdCluster:
    def __init__(self, root):
        self.root = root
        self.client = [free_port() for _ in range(3)]
        self.peer = [free_port() for _ in range(3)]
        self.procs = [None] * 3
        for i in range(3):
            self.start(i, "new")

    def start(self, i, state):
        cluster = ",".join(f"e{j}=http://127.0.0.1:{self.peer[j]}" for j in range(3))
        with open(os.path.join(self.root, f"e{i}.log"), "a") as log:
            self.procs[i] = subprocess.Popen(
                ["etcd", "--name", f"e{i}", "--data-dir", os.path.join(self.root, f"e{i}"),
                 "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
                 "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
                 "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
                 "--initial-cluster", cluster, "--initial-cluster-state", state,
                 "--heartbeat-interval", "100", "--election-timeout", "1000",
                 "--quota-backend-bytes", str(8 << 30), "--auto-compaction-mode", "revision",
                 "--auto-compaction-retention", "1000"],
                stdout=log, stderr=subprocess.STDOUT)

    def stop(self):
        stop_all(self.procs)


def etcd_spike(args):
    import grpc
    root = tempfile.mkdtemp(prefix="etcd-spike-")
    pb, rpc = etcd_stubs(os.path.join(root, "stubs"))
    cluster = EtcdCluster(root)
    results = {}
    try:
        channels = [grpc.insecure_channel(f"127.0.0.1:{p}") for p in cluster.client]
        kv = [rpc.KVStub(c) for c in channels]
        wait_until(lambda: _put_ok(kv[0], pb), "etcd up", timeout=60)
        value = os.urandom(args.entry_bytes)

        def load(in_flight, seconds):
            lat, lock, done = [], threading.Lock(), threading.Event()
            count = [0]
            sem = threading.Semaphore(in_flight)

            def finished(t0):
                def cb(fut):
                    if fut.exception() is None:
                        with lock:
                            lat.append(now_ms() - t0)
                            count[0] += 1
                    sem.release()
                return cb
            start = time.time()
            n = 0
            while time.time() - start < seconds:
                sem.acquire()
                f = kv[n % 3].Put.future(pb.PutRequest(key=b"log/%012d" % n, value=value), timeout=10)
                f.add_done_callback(finished(now_ms()))
                n += 1
            for _ in range(in_flight):
                sem.acquire()
            done.set()
            return {"puts/s": count[0] / (time.time() - start), "MB/s": count[0] * args.entry_bytes / 1e6 /
                    (time.time() - start), "p50 ms": pct(lat, 0.5), "p99 ms": pct(lat, 0.99)}
        results["flat out (64 in flight)"] = load(64, args.seconds)
        results["light (2 in flight)"] = load(2, args.seconds)

        # Coordination: a leader key held with a lease.
        lease_stub = rpc.LeaseStub(channels[0])
        failovers, granted = [], None
        for k in range(args.kills):
            key = b"leader/%d" % k
            grant = lease_stub.LeaseGrant(pb.LeaseGrantRequest(TTL=args.lease_s), timeout=5)
            granted = grant.TTL
            take = pb.TxnRequest(compare=[pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.CREATE, key=key,
                                                     create_revision=0)],
                                 success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"a",
                                                                                 lease=grant.ID))])
            assert kv[0].Txn(take, timeout=5).succeeded
            stop = threading.Event()

            def keepalive():
                yield pb.LeaseKeepAliveRequest(ID=grant.ID)
                while not stop.wait(granted / 3):
                    yield pb.LeaseKeepAliveRequest(ID=grant.ID)
            stream = lease_stub.LeaseKeepAlive(keepalive())
            threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
            time.sleep(1 + random.random())
            stop.set()  # the holder is gone: no more keep-alives
            t0 = now_ms()
            contender = pb.TxnRequest(compare=take.compare, success=[pb.RequestOp(
                request_put=pb.PutRequest(key=key, value=b"b"))])
            wait_until(lambda: kv[1].Txn(contender, timeout=5).succeeded, "the contender takes over")
            failovers.append(now_ms() - t0)
            stream.cancel()
        results["lease failover ms"] = failovers
        results["lease TTL granted s"] = granted

        # An etcd member dies: how long until a put succeeds at another.
        stalls = []
        for k in range(min(args.kills, 5)):
            victim = k % 3
            t0 = now_ms()
            cluster.procs[victim].kill()
            cluster.procs[victim].wait()
            other = kv[(victim + 1) % 3]
            wait_until(lambda: _put_ok(other, pb), "a put after an etcd member died")
            stalls.append(now_ms() - t0)
            cluster.start(victim, "existing")
            time.sleep(3)
        results["member kill: put again after ms"] = stalls
    finally:
        cluster.stop()
        shutil.rmtree(root)
    return results


def _put_ok(kv, pb):
    try:
        kv.Put(pb.PutRequest(key=b"probe", value=b"1"), timeout=0.5)
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raft-node", required=True)
    ap.add_argument("--entry-bytes", type=int, default=16000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--lease-s", type=int, default=2)
    ap.add_argument("--election-ms", type=int, default=1000, help="C-Raft election timeout of the failovers")
    ap.add_argument("--only", choices=["raft", "etcd"])
    args = ap.parse_args()
    if args.only != "etcd":
        print("C-Raft, flat out (64 in flight):", raft_throughput(args, 64), flush=True)
        print("C-Raft, light (2 in flight):", raft_throughput(args, 2), flush=True)
        t = raft_failovers(args)
        print(f"C-Raft (election timeout {args.election_ms} ms) leader SIGKILL -> first commit of the next leader, ms: p50 {pct(t, 0.5):.0f}, "
              f"p99 {pct(t, 0.99):.0f}, all {[round(x) for x in t]}", flush=True)
    if args.only != "raft":
        for k, v in etcd_spike(args).items():
            if isinstance(v, list):
                v = f"p50 {pct(v, 0.5):.0f}, p99 {pct(v, 0.99):.0f}, all {[round(x) for x in v]}"
            print(f"etcd {k}: {v}", flush=True)


if __name__ == "__main__":
    main()
