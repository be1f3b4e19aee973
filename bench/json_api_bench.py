#!/usr/bin/python3
"""What the JSON gateway costs: one node (TLS, started here on 127.0.0.1,
stopped by PID) with one patient; GetPatientTwin called N times one after
another over gRPC (Python grpcio) and over HTTPS JSON (/api/v1/, one
kept-alive connection), alternating in rounds; prints the median and p99
latency of each and their ratio.

Usage: bench/json_api_bench.py --node build/services/node/healthtwin [--calls 2000] [--rounds 5]"""

import argparse
import http.client
import json
import os
import ssl
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import node_fixture  # noqa: E402



def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory(prefix="healthtwin-jsonbench-") as d:
        node_fixture.make_stubs(os.path.join(root, "proto"), os.path.join(d, "stubs"))
        from healthtwin.v1 import twin_pb2, twin_pb2_grpc
        node_fixture.make_pki(d)
        node = node_fixture.Node(a.node, d)
        try:
            token = node.token("bench", ["service"])
            tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
            conn = http.client.HTTPSConnection("localhost", node.http_port, context=tls)
            headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token}

            def post(rpc, body):
                conn.request("POST", "/api/v1/" + rpc, json.dumps(body), headers)
                r = conn.getresponse()
                data = r.read()
                assert r.status == 200, data[:300]
                return data

            post("RegistryService/CreatePatient", {"parent": "tenants/bench", "patientId": "p-1",
                                                   "patient": {"ward": "W1", "bed": "1"}})
            name = "tenants/bench/patients/p-1"
            stub = twin_pb2_grpc.TwinServiceStub(node.grpc_channel(token))
            req = twin_pb2.GetPatientTwinRequest(name=name)

            def run_grpc():
                out = []
                for _ in range(a.calls):
                    t = time.perf_counter()
                    stub.GetPatientTwin(req, timeout=10)
                    out.append(time.perf_counter() - t)
                return out

            def run_json():
                out = []
                for _ in range(a.calls):
                    t = time.perf_counter()
                    post("TwinService/GetPatientTwin", {"name": name})
                    out.append(time.perf_counter() - t)
                return out

            run_grpc(), run_json()  # warm up
            medians = {"grpc": [], "json": []}
            p99s = {"grpc": [], "json": []}
            for r in range(a.rounds):
                for kind, fn in (("grpc", run_grpc), ("json", run_json)) if r % 2 == 0 else \
                        (("json", run_json), ("grpc", run_grpc)):
                    xs = fn()
                    medians[kind].append(statistics.median(xs) * 1e6)
                    p99s[kind].append(pct(xs, 0.99) * 1e6)
                print(f"round {r + 1}: gRPC median {medians['grpc'][-1]:.0f} us p99 {p99s['grpc'][-1]:.0f} us | "
                      f"JSON median {medians['json'][-1]:.0f} us p99 {p99s['json'][-1]:.0f} us | "
                      f"ratio {medians['json'][-1] / medians['grpc'][-1]:.2f}")
            print(f"median of {a.rounds} rounds: gRPC {statistics.median(medians['grpc']):.0f} us, "
                  f"JSON {statistics.median(medians['json']):.0f} us, "
                  f"p99 gRPC {statistics.median(p99s['grpc']):.0f} us, JSON {statistics.median(p99s['json']):.0f} us")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
