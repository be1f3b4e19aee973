#!/usr/bin/python3
"""What a FHIR export costs: one node (TLS, started here on 127.0.0.1,
stopped by PID), one patient with a bedside monitor reporting six vital
signs every `--every-s` seconds for `--hours` hours; times
GET /fhir/{tenant}/Patient/{id}/$everything over that range `--runs` times
and prints the median and the bundle's size.

Usage: bench/fhir_export_bench.py --node build/services/node/healthtwin [--hours 6] [--every-s 5] [--runs 5]"""

import argparse
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import node_fixture  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--hours", type=float, default=6)
    p.add_argument("--every-s", type=int, default=5)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="healthtwin-fhirbench-") as d:
        node_fixture.make_pki(d)
        node = node_fixture.Node(a.node, d)
        try:
            tls = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
            token = node.token("bench", ["service"])

            def call(rpc, body):
                req = urllib.request.Request(f"https://localhost:{node.http_port}/api/v1/{rpc}",
                                             data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": "Bearer " + token})
                with urllib.request.urlopen(req, context=tls, timeout=60) as r:
                    return json.loads(r.read())

            call("RegistryService/CreatePatient", {"parent": "tenants/bench", "patientId": "p-1",
                                                   "patient": {"ward": "W", "bed": "1"}})
            call("RegistryService/CreateDevice", {"parent": "tenants/bench", "deviceId": "mon-1",
                                                  "device": {"type": "DEVICE_TYPE_BEDSIDE_MONITOR"}})
            call("RegistryService/AssignDevice", {"device": "tenants/bench/devices/mon-1",
                                                  "patient": "tenants/bench/patients/p-1"})
            now = int(time.time() * 1000)
            start = now - int(a.hours * 3_600_000)
            metrics = [("METRIC_HEART_RATE", 72), ("METRIC_SPO2", 97), ("METRIC_RESPIRATION_RATE", 15),
                       ("METRIC_TEMPERATURE", 36.8), ("METRIC_SYSTOLIC_BP", 120), ("METRIC_DIASTOLIC_BP", 78)]
            seq, batch = 1, []
            for t in range(start, now, a.every_s * 1000):
                for m, v in metrics:
                    batch.append((seq, t, m, v))
                    seq += 1
                if len(batch) >= 600:  # a request body stays under 64 KiB
                    call("IngestService/Ingest", {"batchId": str(seq), "devices": [{
                        "device": "tenants/bench/devices/mon-1", "sequence": [str(x[0]) for x in batch],
                        "timeMs": [str(x[1]) for x in batch], "metric": [x[2] for x in batch],
                        "value": [x[3] for x in batch]}]})
                    batch = []
            if batch:
                call("IngestService/Ingest", {"batchId": str(seq), "devices": [{
                    "device": "tenants/bench/devices/mon-1", "sequence": [str(x[0]) for x in batch],
                    "timeMs": [str(x[1]) for x in batch], "metric": [x[2] for x in batch],
                    "value": [x[3] for x in batch]}]})
            iso = lambda ms: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".000Z"
            url = (f"https://localhost:{node.http_port}/fhir/bench/Patient/p-1/$everything"
                   f"?start={iso(start - 1000)}&end={iso(now + 1000)}")
            times, size, entries = [], 0, 0
            for _ in range(a.runs):
                t0 = time.perf_counter()
                req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
                with urllib.request.urlopen(req, context=tls, timeout=120) as r:
                    body = r.read()
                times.append(time.perf_counter() - t0)
                size, entries = len(body), len(json.loads(body)["entry"])
            print(f"{seq - 1} readings over {a.hours} h; bundle of {entries} entries, {size / 1e6:.1f} MB; "
                  f"export median {statistics.median(times) * 1000:.0f} ms "
                  f"(runs: {', '.join(f'{x * 1000:.0f}' for x in times)} ms)")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
