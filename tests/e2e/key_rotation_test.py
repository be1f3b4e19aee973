#!/usr/bin/python3
"""Bearer-token keys rotate without a restart (docs/operations.md, "Rotating
token keys"), on two real cluster members (127.0.0.1, TLS; stopped by PID)
that read their JWKS files again every second:

1. the new key is added to each member's JWKS, one member after the other:
   the members, whose key sets differ for a while but share the old key,
   keep seeing each other up and forwarded calls keep passing;
2. the issuer signs with the new key: its tokens pass on both members,
   forwarded to the other one too;
3. the old key is dropped: its tokens are refused at once (also one that was
   accepted a moment before), no member restarted.

A member given a key set that shares no key with the other's is refused by
it (a forwarded call's token would not verify there), and taken back once
its keys are fixed.

Usage: key_rotation_test.py --node PATH"""

import os
import sys
import tempfile
import time
import unittest
import urllib.error

from cryptography.hazmat.primitives.asymmetric import ec

import node_fixture

ARGS = None
TENANT = "st-anne"


class KeyRotation(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-keys-")
        root = self.tmp.name
        self.old, self.new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        self.jwks = [os.path.join(root, f"idp-n{i}.jwks") for i in range(2)]
        for path in self.jwks:
            node_fixture.write_jwks(path, {"2026-11": self.old})
        self.nodes, _ = node_fixture.start_cluster(ARGS.node, root, n=2, extra_args=lambda i: [
            "--auth-jwks-file=" + self.jwks[i], "--auth-reload-interval-s=1"])
        self.pids = [n.proc.pid for n in self.nodes]

    def tearDown(self):
        for n in self.nodes:
            if n.proc.poll() is None:
                n.stop()
        self.tmp.cleanup()

    def token(self, roles, key, kid):
        return self.nodes[0].token(TENANT, roles, "ops-1", key=key, kid=kid)

    def states(self, node, token):
        return {m["name"]: m.get("state") for m in node.api(token, "ClusterService/GetClusterStatus", {})["members"]}

    def all_up(self, token):
        try:
            return all(set(self.states(n, token).values()) == {"MEMBER_STATE_UP"} for n in self.nodes)
        except urllib.error.HTTPError:
            return False

    def create_and_read(self, key, kid, ids):
        """Patients created through n0 and read through n1: about half are forwarded each way."""
        service = self.token(["service"], key, kid)
        for pid in ids:
            self.nodes[0].api(service, "RegistryService/CreatePatient", {
                "parent": f"tenants/{TENANT}", "patientId": pid, "patient": {"ward": "W2"}})
            got = self.nodes[1].api(service, "RegistryService/GetPatient", {"name": f"tenants/{TENANT}/patients/{pid}"})
            self.assertEqual(got["ward"], "W2")

    def accepts(self, node, token):
        try:
            node.api(token, "RegistryService/GetPatient", {"name": f"tenants/{TENANT}/patients/a0"})
            return True
        except urllib.error.HTTPError:
            return False

    def refused(self, node, token):
        with self.assertRaises(urllib.error.HTTPError) as e:
            node.api(token, "RegistryService/GetPatient", {"name": f"tenants/{TENANT}/patients/a0"})
        return e.exception.code, e.exception.read().decode()

    def test_keys_rotate_in_three_steps_without_a_restart(self):
        old_sre, new_sre = self.token(["sre"], self.old, "2026-11"), self.token(["sre"], self.new, "2026-12")
        node_fixture.wait_for(lambda: self.all_up(old_sre), "both members up", 60)
        self.create_and_read(self.old, "2026-11", [f"a{i}" for i in range(8)])

        # 1. Add the new key, one member at a time: they share the old one meanwhile.
        both = {"2026-11": self.old, "2026-12": self.new}
        node_fixture.write_jwks(self.jwks[1], both)
        new_service = self.token(["service"], self.new, "2026-12")
        node_fixture.wait_for(lambda: self.accepts(self.nodes[1], new_service), "n1 takes the new key", 10)
        self.assertFalse(self.accepts(self.nodes[0], new_service), "n0 has not the new key yet")
        time.sleep(1.5)  # a few probes with different key sets
        self.assertTrue(self.all_up(old_sre), "the members refused each other while they share a key")
        self.create_and_read(self.old, "2026-11", [f"b{i}" for i in range(8)])
        node_fixture.write_jwks(self.jwks[0], both)
        # 2. The issuer signs with the new key.
        node_fixture.wait_for(lambda: self.all_up(new_sre), "both members accept the new key", 10)
        self.create_and_read(self.new, "2026-12", [f"c{i}" for i in range(8)])

        # 3. Drop the old key: its tokens stop passing, even one just accepted.
        old_service = self.token(["service"], self.old, "2026-11")
        self.nodes[0].api(old_service, "RegistryService/GetPatient", {"name": f"tenants/{TENANT}/patients/a0"})
        for path in self.jwks:
            node_fixture.write_jwks(path, {"2026-12": self.new})
        node_fixture.wait_for(lambda: not any(self.accepts(n, old_service) for n in self.nodes),
                              "the old key refused on both members", 10)
        for n in self.nodes:
            code, body = self.refused(n, old_service)
            self.assertEqual(code, 401, body)
            self.assertIn("header kid", body)
        self.assertTrue(self.all_up(new_sre))
        self.create_and_read(self.new, "2026-12", [f"d{i}" for i in range(8)])
        self.assertEqual([n.proc.pid for n in self.nodes], self.pids)
        self.assertTrue(all(n.proc.poll() is None for n in self.nodes), "no member restarted")

        # A member whose keys share none with the other's is refused, and taken back once fixed.
        stranger = ec.generate_private_key(ec.SECP256R1())
        node_fixture.write_jwks(self.jwks[1], {"other": stranger})
        node_fixture.wait_for(lambda: self.states(self.nodes[0], new_sre).get("n1") == "MEMBER_STATE_REFUSED",
                              "n0 refuses n1", 10)
        with open(os.path.join(self.nodes[0].dir, "node.log")) as f:
            log = f.read()
        self.assertIn("no key in common", log)
        node_fixture.write_jwks(self.jwks[1], {"2026-12": self.new})
        node_fixture.wait_for(lambda: self.all_up(new_sre), "n1 taken back", 15)


def main():
    global ARGS
    ARGS, rest = node_fixture.parse_args("node")
    node_fixture.run_tests(rest)


if __name__ == "__main__":
    main()
