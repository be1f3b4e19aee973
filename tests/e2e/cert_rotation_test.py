#!/usr/bin/python3
"""Certificates rotate without a restart, as an SRE (or Kubernetes, which
swaps a mounted secret's files at once through a symlinked directory)
rotates them: real nodes on 127.0.0.1 started with --tls-reload-interval-s=1,
stopped by PID.

- One node and an HL7 gateway: after the certificate files change, new TLS
  handshakes on the gRPC, HTTPS and MLLP ports present the new certificate; a connection opened
  before keeps working; the process never restarts. Files that do not load
  (a half-written certificate) leave the last good one in use.
- Two members moving to a new cluster CA, in the runbook's three steps
  (trust both CAs, switch the certificates, drop the old CA), none of them
  restarted; then the second member restarts on the new files: the first
  must present its new certificate, trust the new CA and show its new
  client certificate for the two to see each other up again and forward
  calls.

Usage: cert_rotation_test.py --node PATH --gateway PATH"""

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import node_fixture

ARGS = None
TENANT = "st-anne"


def openssl(d, script):
    subprocess.run(["bash", "-c", "set -e\ncd " + d + "\n" + script], check=True, capture_output=True)


def issue(d, ca, name, version):
    """tls/<version>/node.pem and node.key for localhost/127.0.0.1, signed by ca (ca.pem/ca.key in d)."""
    out = os.path.join("tls", version)
    os.makedirs(os.path.join(d, out), exist_ok=True)
    openssl(d, f"""openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {out}/node.key \
  -out {out}/node.csr -subj /CN={name}
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > {out}/node.ext
openssl x509 -req -in {out}/node.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -out {out}/node.pem -days 1 \
  -extfile {out}/node.ext""")


def switch(d, version):
    """Points tls/current at tls/<version> in one rename (node.pem, node.key follow it)."""
    tmp = os.path.join(d, "tls", "next")
    os.symlink(version, tmp)
    os.replace(tmp, os.path.join(d, "tls", "current"))


def link_files(d):
    for f in ("node.pem", "node.key"):
        path = os.path.join(d, f)
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(os.path.join("tls", "current", f), path)


def serial(port, alpn):
    """The serial number of the certificate a new TLS handshake on port presents."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return x509.load_der_x509_certificate(s.getpeercert(binary_form=True)).serial_number


def file_serial(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).serial_number


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write_atomically(path, data):
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.replace(path + ".new", path)


class OneNode(unittest.TestCase):
    @staticmethod
    def serial_or_none(port):
        try:
            return serial(port, "mllp")
        except OSError:
            return None

    def test_new_handshakes_get_the_new_certificate_and_old_connections_stay(self):
        with tempfile.TemporaryDirectory(prefix="healthtwin-certs-") as d:
            node_fixture.make_pki(d)
            issue(d, "ca", "localhost", "v1")
            switch(d, "v1")
            link_files(d)
            node = node_fixture.Node(ARGS.node, d, extra_args=["--tls-reload-interval-s=1"])
            mllp = node_fixture.free_port()  # the HL7 gateway's MLLP listener rotates the same way
            with open(os.path.join(d, "service.jwt"), "w") as f:
                f.write(node.token(TENANT, ["service"], "hl7-gateway"))
            with open(os.path.join(d, "hl7.log"), "wb") as log:
                gateway = subprocess.Popen(
                    [ARGS.gateway, f"--listen=127.0.0.1:{mllp}", f"--target=localhost:{node.grpc_port}",
                     "--tls-ca-file=" + os.path.join(d, "ca.pem"), "--token-file=" + os.path.join(d, "service.jwt"),
                     f"--tenant={TENANT}", "--data-dir=" + os.path.join(d, "hl7"),
                     "--mllp-tls-cert-file=" + os.path.join(d, "node.pem"),
                     "--mllp-tls-key-file=" + os.path.join(d, "node.key"), "--mllp-tls-reload-interval-s=1"],
                    stdout=log, stderr=subprocess.STDOUT)
            try:
                first = file_serial(os.path.join(d, "tls", "v1", "node.pem"))
                self.assertEqual(serial(node.grpc_port, "h2"), first)
                self.assertEqual(serial(node.http_port, "http/1.1"), first)
                node_fixture.wait_for(lambda: self.serial_or_none(mllp) == first, "the gateway's MLLP listener", 30)
                kept = http.client.HTTPSConnection("localhost", node.http_port, timeout=10, context=ssl.create_default_context(
                    cafile=os.path.join(d, "ca.pem")))
                kept.request("GET", "/healthz")
                self.assertEqual(kept.getresponse().read(), b"ok\n")

                issue(d, "ca", "localhost", "v2")
                switch(d, "v2")
                second = file_serial(os.path.join(d, "tls", "v2", "node.pem"))
                node_fixture.wait_for(lambda: serial(node.grpc_port, "h2") == second, "the gRPC port's new certificate", 15)
                node_fixture.wait_for(lambda: serial(node.http_port, "http/1.1") == second,
                                      "the HTTPS port's new certificate", 15)
                node_fixture.wait_for(lambda: serial(mllp, "mllp") == second, "the MLLP port's new certificate", 15)
                kept.request("GET", "/healthz")  # the same connection, opened before
                self.assertEqual(kept.getresponse().read(), b"ok\n")
                kept.close()
                sre = node.token(TENANT, ["sre"], "sre-1")
                self.assertIn("node", node.api(sre, "ClusterService/GetNodeStatus", {}))

                # Files that do not load — a half-written certificate, a key of another
                # certificate — leave the last good ones in use.
                os.makedirs(os.path.join(d, "tls", "broken"))
                os.makedirs(os.path.join(d, "tls", "mismatched"))
                with open(os.path.join(d, "tls", "broken", "node.pem"), "w") as f:
                    f.write("-----BEGIN CERTIFICATE-----\nMIIB\n")
                with open(os.path.join(d, "tls", "broken", "node.key"), "w") as f:
                    f.write("not a key\n")
                for f, version in (("node.pem", "v1"), ("node.key", "v2")):
                    with open(os.path.join(d, "tls", version, f), "rb") as src, \
                            open(os.path.join(d, "tls", "mismatched", f), "wb") as dst:
                        dst.write(src.read())
                for bad in ("broken", "mismatched"):
                    switch(d, bad)
                    time.sleep(2.5)
                    self.assertEqual(serial(node.grpc_port, "h2"), second, bad)
                    self.assertEqual(serial(node.http_port, "http/1.1"), second, bad)
                    self.assertEqual(serial(mllp, "mllp"), second, bad)
                self.assertIsNone(node.proc.poll(), "the node stopped")
                self.assertIsNone(gateway.poll(), "the gateway stopped")
            finally:
                gateway.terminate()
                gateway_code = gateway.wait(timeout=30)
                code = node.stop()
            self.assertEqual((code, gateway_code), (0, 0))
            with open(os.path.join(d, "hl7.log")) as f:
                self.assertEqual(f.read().count("the last good certificate stays in use"), 2)
            with open(os.path.join(d, "node.log")) as f:
                log = f.read()
            self.assertIn("the key does not belong to the certificate", log)
            self.assertIn("the certificate is not a PEM certificate chain", log)


class TwoMembers(unittest.TestCase):
    def status(self, node, token):
        return node.api(token, "ClusterService/GetClusterStatus", {})

    def both_up(self, nodes, token):
        try:
            return all(all(m.get("state") == "MEMBER_STATE_UP" for m in self.status(n, token)["members"])
                       for n in nodes)
        except Exception:
            return False

    def test_members_move_to_a_new_cluster_ca_without_a_restart(self):
        with tempfile.TemporaryDirectory(prefix="healthtwin-certs-cluster-") as root:
            node_fixture.make_pki(root)
            openssl(root, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca2.key "
                          "-out ca2.pem -days 1 -subj /CN=py-ca-2")
            peers = [node_fixture.free_port() for _ in range(2)]
            members = ",".join(f"n{i}=127.0.0.1:{p}" for i, p in enumerate(peers))
            pseudonym = os.path.join(root, "pseudonym.key")
            with open(os.open(pseudonym, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(os.urandom(32).hex())
            key = ec.generate_private_key(ec.SECP256R1())
            dirs, nodes = [], []
            old_ca, new_ca = (read(os.path.join(root, f)) for f in ("ca.pem", "ca2.pem"))
            for i in range(2):
                d = os.path.join(root, f"n{i}")
                dirs.append(d)
                os.makedirs(d)
                for f, to in (("ca.pem", "ca1.pem"), ("ca.key", "ca1.key"), ("ca2.pem", "ca2.pem"),
                              ("ca2.key", "ca2.key")):
                    with open(os.path.join(root, f), "rb") as src, open(os.path.join(d, to), "wb") as dst:
                        dst.write(src.read())
                with open(os.path.join(d, "ca.pem"), "wb") as f:
                    f.write(old_ca + new_ca)  # this test's own client trusts both throughout
                issue(d, "ca1", f"n{i}", "v1")
                switch(d, "v1")
                link_files(d)
                write_atomically(os.path.join(d, "cluster-ca.pem"), old_ca)
            args = lambda i: [
                f"--node-name=n{i}", f"--cluster-members={members}", f"--cluster-listen=127.0.0.1:{peers[i]}",
                "--cluster-ca-file=" + os.path.join(dirs[i], "cluster-ca.pem"), "--cluster-probe-interval-ms=200",
                "--cluster-down-after-ms=1500", "--pseudonym-key-file=" + pseudonym, "--tls-reload-interval-s=1"]
            try:
                for i in range(2):
                    nodes.append(node_fixture.Node(ARGS.node, dirs[i], signing_key=key, extra_args=args(i)))
                sre = nodes[0].token(TENANT, ["sre"], "sre-1")
                node_fixture.wait_for(lambda: self.both_up(nodes, sre), "both members up", 30)

                # 1. Trust both CAs. 2. Certificates of the new CA. 3. Trust only the new CA.
                for d in dirs:
                    write_atomically(os.path.join(d, "cluster-ca.pem"), old_ca + new_ca)
                time.sleep(2)
                for i, d in enumerate(dirs):
                    issue(d, "ca2", f"n{i}", "v2")
                    switch(d, "v2")
                time.sleep(2)
                for d in dirs:
                    write_atomically(os.path.join(d, "cluster-ca.pem"), new_ca)
                time.sleep(2)
                self.assertTrue(self.both_up(nodes, sre), "a member went down during the rotation")
                self.assertTrue(all(n.proc.poll() is None for n in nodes))

                # n1 restarts on the new files: n0, never restarted, must serve, trust and present the new ones.
                nodes[1].stop()
                nodes[1] = nodes[1].restart()
                node_fixture.wait_for(lambda: self.both_up(nodes, sre), "both members up after n1's restart", 30)
                service = nodes[0].token(TENANT, ["service"])
                for i in range(12):  # some patients' shards are n1's: created through n0, forwarded there
                    nodes[0].api(service, "RegistryService/CreatePatient", {
                        "parent": f"tenants/{TENANT}", "patientId": f"q{i}", "patient": {"ward": "W1"}})
                    got = nodes[1].api(service, "RegistryService/GetPatient", {"name": f"tenants/{TENANT}/patients/q{i}"})
                    self.assertEqual(got["ward"], "W1")
            finally:
                for n in nodes:
                    if n.proc.poll() is None:
                        n.stop()


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node", "gateway")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
