#!/usr/bin/python3
"""What a call about a patient homed in another region costs: two single-node
regions on 127.0.0.1 (TLS, started here, stopped by PID), eu-central
forwarding and us-east redirecting. One patient homed in us-east;
GetPatientTwin called N times one after another over gRPC (Python grpcio)
at us-east directly and at eu-central (forwarded with the caller's token),
alternating in rounds; then the first call about each of M new patients
through eu-central (the home is not known yet: every region is asked with
LocateTwin first), and a redirect from us-east. Prints medians and p99s.

Usage: bench/region_bench.py --node build/services/node/healthtwin [--calls 2000] [--rounds 5]"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import node_fixture  # noqa: E402

import grpc  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def timed(call, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--new-patients", type=int, default=300)
    a = p.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory(prefix="healthtwin-regionbench-") as d:
        node_fixture.make_stubs(os.path.join(root, "proto"), os.path.join(d, "stubs"))
        from healthtwin.v1 import registry_pb2, registry_pb2_grpc, twin_pb2, twin_pb2_grpc
        eu_dir, us_dir = os.path.join(d, "eu"), os.path.join(d, "us")
        for x in (eu_dir, us_dir):
            os.makedirs(x)
            node_fixture.make_pki(x)
        eu_port, us_port = node_fixture.free_port(), node_fixture.free_port()
        key = ec.generate_private_key(ec.SECP256R1())
        us = node_fixture.Node(a.node, us_dir, us_port, key, [
            "--region=us-east", f"--region-endpoints=eu-central=127.0.0.1:{eu_port}",
            "--region-ca-file=" + os.path.join(eu_dir, "ca.pem")])
        eu = node_fixture.Node(a.node, eu_dir, eu_port, key, [
            "--region=eu-central", f"--region-endpoints=us-east=127.0.0.1:{us_port}", "--region-routing=forward",
            "--region-ca-file=" + os.path.join(us_dir, "ca.pem")])
        try:
            token = us.token("bench", ["service"])

            def stubs(node):
                ch = node.grpc_channel(token)
                return registry_pb2_grpc.RegistryServiceStub(ch), twin_pb2_grpc.TwinServiceStub(ch)

            (us_reg, us_twins), (eu_reg, eu_twins) = stubs(us), stubs(eu)

            def create(pid):
                us_reg.CreatePatient(registry_pb2.CreatePatientRequest(
                    parent="tenants/bench", patient_id=pid, patient=registry_pb2.Patient(ward="W1", bed="1")))

            create("p-0")
            name = "tenants/bench/patients/p-0"
            get = twin_pb2.GetPatientTwinRequest(name=name)
            direct, forwarded = [], []
            for _ in range(a.rounds):
                direct += timed(lambda: us_twins.GetPatientTwin(get), a.calls)
                forwarded += timed(lambda: eu_twins.GetPatientTwin(get), a.calls)
            for pid in (f"p-{i}" for i in range(1, a.new_patients + 1)):
                create(pid)
            first = []
            for i in range(1, a.new_patients + 1):
                req = twin_pb2.GetPatientTwinRequest(name=f"tenants/bench/patients/p-{i}")
                first += timed(lambda: eu_twins.GetPatientTwin(req), 1)
            eu_reg.CreatePatient(registry_pb2.CreatePatientRequest(
                parent="tenants/bench", patient_id="p-eu", patient=registry_pb2.Patient(ward="W1")))
            redirect_req = twin_pb2.GetPatientTwinRequest(name="tenants/bench/patients/p-eu")

            def redirected():
                try:
                    us_twins.GetPatientTwin(redirect_req)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
            redirects = timed(redirected, a.calls)
            rows = [("at the home region (us-east)", direct), ("forwarded from eu-central", forwarded),
                    ("first call, home asked (LocateTwin)", first), ("redirected by us-east", redirects)]
            print(f"GetPatientTwin over gRPC, {a.rounds} rounds of {a.calls} calls (first: {a.new_patients})")
            for label, xs in rows:
                print(f"  {label:40s} p50 {statistics.median(xs):6.3f} ms  p99 {pct(xs, 0.99):6.3f} ms")
            print(f"  forwarded / home p50 ratio: {statistics.median(forwarded) / statistics.median(direct):.2f}")
        finally:
            eu.stop()
            us.stop()


if __name__ == "__main__":
    main()
