#!/usr/bin/python3
"""What moving a patient's home costs (RegistryService.MovePatientHome): two
single-node regions on 127.0.0.1 (TLS, started here, stopped by PID), us-east
with its data encrypted. Each of P patients gets a device and H hours of
history (6 vitals at 1 Hz, sent in batches), then is moved to eu-central,
one move after another. Prints per move: records, bytes, seconds
(median and max), and the twin's readings before and after.

Usage: bench/patient_move_bench.py --node build/services/node/healthtwin [--patients 5] [--hours 2]"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import node_fixture  # noqa: E402

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

METRICS = ["METRIC_HEART_RATE", "METRIC_SPO2", "METRIC_RESPIRATION_RATE", "METRIC_TEMPERATURE",
           "METRIC_SYSTOLIC_BP", "METRIC_DIASTOLIC_BP"]
BASE = [72, 97, 16, 36.8, 120, 80]
SPREAD = [8, 2, 3, 0.4, 15, 10]


def vitals(second):
    """Plausible, varying vitals at `second` (a deterministic wander, so chunks compress as real ones)."""
    return [round(b + s * ((second * (7 + k) % 97) / 48.5 - 1), 1) for k, (b, s) in enumerate(zip(BASE, SPREAD))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True)
    p.add_argument("--patients", type=int, default=5)
    p.add_argument("--hours", type=float, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="healthtwin-movebench-") as d:
        eu_dir, us_dir = os.path.join(d, "eu"), os.path.join(d, "us")
        for x in (eu_dir, us_dir):
            os.makedirs(x)
            node_fixture.make_pki(x)
        key_file = os.path.join(d, "us.key")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        eu_port, us_port = node_fixture.free_port(), node_fixture.free_port()
        key = ec.generate_private_key(ec.SECP256R1())
        us = node_fixture.Node(a.node, us_dir, us_port, key, [
            "--region=us-east", f"--region-endpoints=eu-central=127.0.0.1:{eu_port}",
            "--region-ca-file=" + os.path.join(eu_dir, "ca.pem"), "--encryption-key-file=" + key_file])
        eu = node_fixture.Node(a.node, eu_dir, eu_port, key, [
            "--region=eu-central", f"--region-endpoints=us-east=127.0.0.1:{us_port}", "--region-routing=forward",
            "--region-ca-file=" + os.path.join(us_dir, "ca.pem")])
        try:
            service, admin = us.token("bench", ["service"]), us.token("bench", ["ops-admin"], "ops-1")
            seconds = int(a.hours * 3600)
            start = int(time.time() * 1000) - seconds * 1000
            for i in range(a.patients):
                pid = f"p-{i}"
                us.api(service, "RegistryService/CreatePatient",
                       {"parent": "tenants/bench", "patientId": pid, "patient": {"ward": "W1"}})
                us.api(service, "RegistryService/CreateDevice", {"parent": "tenants/bench", "deviceId": f"mon-{i}",
                                                               "device": {"type": "DEVICE_TYPE_BEDSIDE_MONITOR"}})
                us.api(service, "RegistryService/AssignDevice",
                       {"device": f"tenants/bench/devices/mon-{i}", "patient": f"tenants/bench/patients/{pid}"})
                seq = 1
                for t0 in range(0, seconds, 120):  # two minutes a call
                    n = min(120, seconds - t0)
                    times = [str(start + (t0 + k) * 1000) for k in range(n) for _ in METRICS]
                    us.api(service, "IngestService/Ingest", {"batchId": str(seq), "devices": [{
                        "device": f"tenants/bench/devices/mon-{i}",
                        "sequence": [str(seq + k) for k in range(n * len(METRICS))], "timeMs": times,
                        "metric": METRICS * n, "value": [v for k in range(n) for v in vitals(t0 + k)]}]})
                    seq += n * len(METRICS)
            rows = []
            for i in range(a.patients):
                name = f"tenants/bench/patients/p-{i}"
                before = node_fixture.retry_unavailable(
                    lambda: us.api(service, "TwinService/GetPatientTwin", {"name": name}))["readingsApplied"]
                t = time.perf_counter()
                moved = us.api(admin, "RegistryService/MovePatientHome", {"name": name, "homeRegion": "eu-central"})
                took = time.perf_counter() - t
                after = eu.api(service, "TwinService/GetPatientTwin", {"name": name})["readingsApplied"]
                rows.append((int(moved["records"]), int(moved["bytes"]), took, before, after))
            print(f"MovePatientHome, {a.patients} patients of {a.hours} h x 6 vitals at 1 Hz "
                  f"({seconds * 6} readings each), us-east (encrypted) -> eu-central")
            for r in rows:
                print(f"  {r[0]:5d} records {r[1] / 1e6:6.2f} MB  {r[2]:6.3f} s  readings {r[3]} -> {r[4]}")
            print(f"  median {statistics.median(r[2] for r in rows):.3f} s, max {max(r[2] for r in rows):.3f} s")
        finally:
            eu.stop()
            us.stop()


if __name__ == "__main__":
    main()
