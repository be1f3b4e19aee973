"""What the Python end-to-end tests share: stubs generated from our .proto
files, a throwaway PKI made with openssl, an ES256 identity provider, and a
real node on 127.0.0.1 (ports it picks, reported in a port file) trusting
it, stopped by its PID."""

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import jwt

AUDIENCE = "healthtwin"
ISSUER = "https://idp.hospital.example"


def free_port():
    """A port on 127.0.0.1 no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct ports on 127.0.0.1 no one listens on now (all held until every one is picked)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def assert_no_phi(log_paths, phi):
    """No patient identifier or name in our processes' logs (docs/security.md)."""
    for path in log_paths:
        with open(path, errors="replace") as f:
            # Paths in the tests' temp dirs have random names ("...-zo9t30p1/db").
            text = re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s\"',]*", "<temp path>", f.read())
        found = [p for p in phi if p in text]
        assert not found, f"{os.path.basename(path)} names patient data: {found}"


def wait_for(done, what, timeout=30):
    """Polls done() every 50 ms; an AssertionError naming `what` after `timeout` s."""
    deadline = time.time() + timeout
    while not done():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def fhir_validation(validator, d, resource, name):
    """The npm fhir validator (tests/fhir/validate.mjs) on `resource`, written to d/name.json: (exit code, output)."""
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump(resource, f)
    r = subprocess.run(["node", validator, path], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def make_stubs(proto_dir, out_dir):
    os.makedirs(out_dir)
    protos = [os.path.join(root, f) for root, _, files in os.walk(proto_dir)
              for f in files if f.endswith(".proto") and "internal" not in root]
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out_dir, "--grpc_python_out", out_dir,
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + protos, check=True)
    sys.path.insert(0, out_dir)


def make_pki(d):
    """ca.pem, and node.pem/node.key for 127.0.0.1 and localhost, in d."""
    script = f"""set -e
cd {d}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=py-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key -out node.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 1 -extfile node.ext
"""
    subprocess.run(["bash", "-c", script], check=True, capture_output=True)


class Node:
    """A node with TLS (d/node.pem) trusting tokens signed by self.signing_key.
    restart(): the same node again (data, port, key) after stop()."""

    def __init__(self, node_bin, d, grpc_port=0, signing_key=None, extra_args=(), wait=True, user=None, http_port=0):
        """Starts the node (as uid `user` if given; HTTP on `http_port` if given, else one it picks);
        with wait (the default) returns once it is ready, else call wait_ready()."""
        self.dir, self.bin, self.extra_args, self.user = d, node_bin, list(extra_args), user
        self.fixed_http_port = self.http_port = http_port
        self.signing_key = signing_key or ec.generate_private_key(ec.SECP256R1())
        with open(os.path.join(d, "idp.pub"), "wb") as f:
            f.write(self.signing_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        port_file = self.port_file = os.path.join(d, "ports.json")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = open(os.path.join(d, "node.log"), "ab")
        self.proc = subprocess.Popen(
            [node_bin, f"--grpc-listen=127.0.0.1:{grpc_port}", f"--http-listen=127.0.0.1:{http_port}",
             "--data-dir=" + os.path.join(d, "db"), "--shards=16", "--port-file=" + port_file,
             "--tls-cert-file=" + os.path.join(d, "node.pem"), "--tls-key-file=" + os.path.join(d, "node.key"),
             "--auth-audience=" + AUDIENCE, "--auth-issuer=" + ISSUER]
            + ([] if any(a.startswith("--auth-jwks-file=") for a in self.extra_args)
               else ["--auth-public-key-file=" + os.path.join(d, "idp.pub")]) + self.extra_args,
            stdout=self.log, stderr=subprocess.STDOUT, user=user)
        self.grpc_port = grpc_port
        with open(os.path.join(d, "ca.pem"), "rb") as f:
            self.ca = f.read()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        """Waits until the node wrote its port file (it is ready)."""
        deadline = time.time() + timeout
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("node did not start: " + open(os.path.join(self.dir, "node.log")).read())
            time.sleep(0.05)
        self._read_ports()
        return self

    def _read_ports(self):
        with open(self.port_file) as f:
            ports = json.load(f)
        self.grpc_port, self.http_port = ports["grpc"], ports["http"]
        self.ports_read = os.stat(self.port_file).st_mtime_ns

    def sync_ports(self):
        """Reads the port file again if the node wrote a new one (a replicated node that stopped
        serving and started again, ADR 0039, serves HTTP on a new port)."""
        try:
            if os.stat(self.port_file).st_mtime_ns != getattr(self, "ports_read", None):
                self._read_ports()
        except (OSError, ValueError, KeyError):
            pass

    def token(self, tenant, roles, subject="ehr-integration", key=None, kid=None):
        """A token signed by `key` (default: this node's signing key), naming `kid` if given."""
        now = int(time.time())
        return jwt.encode({"sub": subject, "tenant": tenant, "roles": roles, "aud": AUDIENCE,
                           "iss": ISSUER, "iat": now, "exp": now + 600}, key or self.signing_key, algorithm="ES256",
                          headers={"kid": kid} if kid else None)

    def restart(self, wait=True):
        """Starts the stopped node again on its port, with its data and key."""
        return Node(self.bin, self.dir, self.grpc_port, self.signing_key, self.extra_args, wait, self.user,
                    self.fixed_http_port)

    def grpc_channel(self, token):
        """A gRPC channel (Python grpcio) to this node over TLS (d/ca.pem), every call sending `token`."""
        import grpc
        creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(root_certificates=self.ca),
                                                   grpc.access_token_call_credentials(token))
        return grpc.secure_channel(f"localhost:{self.grpc_port}", creds)

    def api(self, token, rpc, body):
        """A unary call through the JSON API over HTTPS (d/ca.pem); the answer's JSON."""
        self.sync_ports()
        tls = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        req = urllib.request.Request(f"https://localhost:{self.http_port}/api/v1/{rpc}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, context=tls, timeout=15) as r:
            return json.loads(r.read())

    def metrics(self):
        """The node's /metrics text, over HTTPS (d/ca.pem)."""
        self.sync_ports()
        tls = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.pem"))
        with urllib.request.urlopen(f"https://localhost:{self.http_port}/metrics", context=tls, timeout=15) as r:
            return r.read().decode()

    def desaturate(self, token, tenant, pid, sequence):
        """SpO2 97 then 84 (twice) from the patient's oxi-{pid}, numbered on from sequence[pid];
        waits for the patient's alert and returns its name."""
        now = int(time.time() * 1000)
        first = sequence.get(pid, 1)
        sequence[pid] = first + 3
        self.api(token, "IngestService/Ingest", {"batchId": str(first), "devices": [{
            "device": f"tenants/{tenant}/devices/oxi-{pid}", "sequence": [str(first + i) for i in range(3)],
            "timeMs": [str(now - 200_000), str(now - 8_000), str(now)], "metric": ["METRIC_SPO2"] * 3,
            "value": [97, 84, 84]}]})
        deadline = time.time() + 10
        while time.time() < deadline:
            listed = self.api(token, "AlertService/ListAlerts", {"parent": f"tenants/{tenant}",
                                                                  "patient": f"tenants/{tenant}/patients/{pid}"})
            if listed.get("alerts"):
                return listed["alerts"][0]["name"]
            time.sleep(0.05)
        raise AssertionError(f"no alert for {pid}")

    def kill(self):
        """SIGKILL by PID (no clean stop)."""
        self.proc.kill()
        self.proc.wait(timeout=60)
        self.log.close()

    def stop(self):
        """SIGTERM by PID; the exit code."""
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def https_status(node, path):
    """The HTTP status of GET `path` on the node's HTTPS listener (d/ca.pem)."""
    tls = ssl.create_default_context(cafile=os.path.join(node.dir, "ca.pem"))
    try:
        with urllib.request.urlopen(f"https://localhost:{node.http_port}{path}", context=tls, timeout=15) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def xxh64(data, seed=0):
    """XXH64 of bytes (the public algorithm; the node places twins with it,
    seed 0): lets a test predict which member owns a name's shard."""
    P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                          0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)
    M = (1 << 64) - 1
    rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M

    def round_(acc, lane):
        return (rotl((acc + lane * P2) & M, 31) * P1) & M

    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed & M, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = round_(v[k], int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little"))
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for k in range(4):
            h = ((h ^ round_(0, v[k])) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ round_(0, int.from_bytes(data[i:i + 8], "little")), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (data[i] * P5 & M), 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


def write_jwks(path, keys):
    """A JWKS document of EC P-256 public keys {kid: private key}, swapped in by rename (as a
    mounted secret changes)."""
    import base64

    def b64(n):
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    doc = {"keys": [{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                     "x": b64(k.public_key().public_numbers().x), "y": b64(k.public_key().public_numbers().y)}
                    for kid, k in keys.items()]}
    with open(path + ".next", "w") as f:
        json.dump(doc, f)
    os.replace(path + ".next", path)


def shard_of(name, shards):
    """The shard of a twin or rollout name, as the node computes it."""
    return xxh64(name.encode()) % shards


def retry_unavailable(call, timeout=30, unreachable_too=False):
    """call(), again while it answers 503 (a cluster settling or moving a shard) — or, with
    unreachable_too, while its node does not answer at all (one that starts again) — up to
    `timeout` s."""
    deadline = time.time() + timeout
    while True:
        try:
            return call()
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.time() > deadline:
                raise
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            if not unreachable_too or time.time() > deadline:
                raise
        time.sleep(0.2)


class ApiCalls:
    """JSON API calls for a TestCase whose default token is self.service."""

    def call(self, node, rpc, body, token=None):
        """The answer of `rpc`, asked again while the node answers 503."""
        return retry_unavailable(lambda: node.api(token or self.service, rpc, body))

    def refused(self, node, rpc, body, token=None):
        """The HTTP status and JSON body of a call the node must refuse (the test fails if it answers)."""
        with self.assertRaises(urllib.error.HTTPError) as e:
            node.api(token or self.service, rpc, body)
        return e.exception.code, json.loads(e.exception.read().decode())


def kill_running(nodes):
    """SIGKILLs (by PID) those of `nodes` still running: a cluster that did not start."""
    for node in nodes:
        if node.proc.poll() is None:
            node.kill()


def node_dir(root, name):
    """root/name, made, holding a copy of root's PKI (make_pki): one member's (or standby's) files."""
    d = os.path.join(root, name)
    os.makedirs(d)
    for f in ("ca.pem", "node.pem", "node.key"):
        with open(os.path.join(root, f), "rb") as src, open(os.path.join(d, f), "wb") as dst:
            dst.write(src.read())
    return d


def member_args(name, members, peer_port, d):
    """The flags of cluster member `name` (of `members`, NAME=HOST:PORT,...) listening for peers on
    peer_port, with the CA in d, probing every 200 ms."""
    return [f"--node-name={name}", f"--cluster-members={members}", f"--cluster-listen=127.0.0.1:{peer_port}",
            "--cluster-ca-file=" + os.path.join(d, "ca.pem"), "--cluster-probe-interval-ms=200",
            "--cluster-down-after-ms=1500"]


def start_cluster(node_bin, root, n=3, extra_args=lambda i: [], signing_key=None, grpc_ports=None, wait=True,
                  node_key=None):
    """n members n0.. on 127.0.0.1 in root/n{i}, sharing root's PKI (make_pki), a pseudonym key (or,
    given node_key, that node key file: encrypted stores) and a token signing key (a new one unless
    given), probing each other every 200 ms, on grpc_ports[i] if given; returns (nodes, peer ports).
    Without wait, every node is started before any is waited for (members that need each other to
    start); a node that does not start stops the others (by PID)."""
    make_pki(root)
    peers = [free_port() for _ in range(n)]
    members = ",".join(f"n{i}=127.0.0.1:{p}" for i, p in enumerate(peers))
    pseudonym = os.path.join(root, "pseudonym.key")
    with open(os.open(pseudonym, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(os.urandom(32).hex())
    key = signing_key or ec.generate_private_key(ec.SECP256R1())
    nodes = []
    for i in range(n):
        d = node_dir(root, f"n{i}")
        nodes.append(Node(node_bin, d, grpc_ports[i] if grpc_ports else 0, signing_key=key, extra_args=member_args(
            f"n{i}", members, peers[i], d) + [
            "--encryption-key-file=" + node_key if node_key else "--pseudonym-key-file=" + pseudonym]
            + list(extra_args(i)), wait=wait))
    try:
        for node in nodes:
            node.wait_ready()
    except Exception:
        kill_running(nodes)
        raise
    return nodes, peers


def start_replicated_cluster(node_bin, root, node_key, n=3, factor=3, election_ms=500, extra_args=lambda voter: [],
                             uid_of=None):
    """n members n0.. on 127.0.0.1 whose stores are each a Raft group of `factor` voters (ADR 0039):
    the member and its standbys n{i}@n{j} (j: the factor-1 members after it), each standby a process
    of its own in root/n{i}@n{j} that serves member n{i}, on ports of its own, while it leads n{i}'s
    store. Everything starts before anything is waited for (a member needs a majority of its voters);
    a node that does not start stops the others (by PID). Every voter's gRPC and HTTP ports are
    fixed (a process that starts again keeps them; a waiting standby serves /healthz and /metrics).
    With uid_of (voter name -> uid), each voter runs as that user with its own directory and copy
    of the node key. Returns (members, {i: [its standbys]})."""
    make_pki(root)
    voters = {i: [f"n{i}"] + [f"n{i}@n{(i + k) % n}" for k in range(1, factor)] for i in range(n)}
    all_voters = [v for i in range(n) for v in voters[i]]
    ports = iter(free_ports(n + 4 * len(all_voters)))  # distinct: peer, replication, gRPC, HTTP listeners
    peers = [next(ports) for _ in range(n)]
    members = ",".join(f"n{i}=127.0.0.1:{p}" for i, p in enumerate(peers))
    rport = {v: next(ports) for v in all_voters}
    speer = {v: next(ports) for i in range(n) for v in voters[i][1:]}
    gport = {v: next(ports) for v in all_voters}
    hport = {v: next(ports) for v in all_voters}
    standbys_flag = ",".join(f"n{i}=127.0.0.1:{speer[v]}" for i in range(n) for v in voters[i][1:])
    key = ec.generate_private_key(ec.SECP256R1())

    def start(i, voter):
        d = node_dir(root, voter)
        peer = peers[i] if voter == f"n{i}" else speer[voter]
        uid, voter_key = (uid_of(voter), os.path.join(d, "node.key.hex")) if uid_of else (None, node_key)
        if uid is not None:
            with open(node_key) as src, open(os.open(voter_key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as dst:
                dst.write(src.read())
            for path in [d] + [os.path.join(d, f) for f in os.listdir(d)]:
                os.chown(path, uid, -1)
        return Node(node_bin, d, gport[voter], signing_key=key, wait=False, user=uid, http_port=hport[voter], extra_args=member_args(
            f"n{i}", members, peer, d) + ["--encryption-key-file=" + voter_key,
            f"--replication-factor={factor}", f"--replication-listen=127.0.0.1:{rport[voter]}",
            "--replication-members=" + ",".join(f"{v}=127.0.0.1:{rport[v]}" for v in voters[i]),
            f"--replication-self={voter}", f"--replication-election-ms={election_ms}",
            "--cluster-standbys=" + standbys_flag] + list(extra_args(voter)))

    everyone = []
    try:
        standbys = {}
        for i in range(n):
            standbys[i] = [start(i, v) for v in voters[i][1:]]
            everyone += standbys[i]
        nodes = []
        for i in range(n):
            nodes.append(start(i, f"n{i}"))
            everyone.append(nodes[-1])
        for node in nodes:
            node.wait_ready()
    except Exception:
        kill_running(everyone)
        raise
    return nodes, standbys


def supervise(members, standbys, leave=()):
    """What a supervisor (a StatefulSet, systemd) does for a replicated cluster's processes: every
    one that exited (a write in doubt exits with code 6) is started again, but those in `leave`
    (killed on purpose). `members` (a list) and `standbys` ({i: [standbys]}) are updated in place."""
    def again(n):
        print(f"supervisor: {os.path.basename(n.dir)} exited with code {n.proc.returncode}; starting it again",
              file=sys.stderr)
        n.log.close()
        return n.restart(wait=False)
    for i, n in enumerate(members):
        if n.proc.poll() is not None and n not in leave:
            members[i] = again(n)
    for group in standbys.values():
        for k, n in enumerate(group):
            if n.proc.poll() is not None and n not in leave:
                group[k] = again(n)


def parse_args(*required):
    """The test's required options (e.g. "node", "proto-dir": --node, --proto-dir) and the
    arguments left for unittest."""
    import argparse
    p = argparse.ArgumentParser()
    for name in required:
        p.add_argument("--" + name, required=True)
    return p.parse_known_args()


def run_tests(rest):
    """unittest.main over the test module's cases, verbose, with the arguments parse_args left."""
    import unittest
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2)
