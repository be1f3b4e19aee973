#!/usr/bin/python3
"""A real Prometheus (Debian's) scrapes a real node over TLS, as an SRE's
would: the test starts both on 127.0.0.1 with free ports in a temp dir,
ingests readings over gRPC, and asks Prometheus's query API for the ingest
counter, the per-method gRPC series, the ack-latency histogram and the
process metrics; `promtool check metrics` finds nothing to say about what
the node exposes; every query of the chart's Grafana dashboard runs in
Prometheus and names only series the node exposes. Both are stopped by
their PIDs.

Usage: prometheus_scrape_test.py --node PATH --proto-dir DIR --dashboard FILE
Exits 77 (skipped) when prometheus or promtool is missing."""

import argparse
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import grpc

import node_fixture

ARGS = None


class PrometheusScrape(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="healthtwin-prom-")
        d = cls.d = cls.tmp.name
        node_fixture.make_stubs(ARGS.proto_dir, os.path.join(d, "stubs"))
        node_fixture.make_pki(d)
        cls.node = node_fixture.Node(ARGS.node, d)
        cls.prom_port = node_fixture.free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: healthtwin
    scheme: https
    tls_config:
      ca_file: {os.path.join(d, "ca.pem")}
      server_name: localhost
    static_configs:
      - targets: ["127.0.0.1:{cls.node.http_port}"]
""")
        cls.prom_log = open(os.path.join(d, "prometheus.log"), "wb")
        cls.prom = subprocess.Popen(
            ["prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
             f"--web.listen-address=127.0.0.1:{cls.prom_port}"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT)

    @classmethod
    def tearDownClass(cls):
        cls.prom.terminate()
        codes = [cls.prom.wait(timeout=60), cls.node.stop()]
        cls.prom_log.close()
        cls.tmp.cleanup()
        assert codes == [0, 0], f"prometheus and node exited with {codes}"

    def channel(self, roles):
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=self.node.ca),
            grpc.access_token_call_credentials(self.node.token("metro", roles)))
        return grpc.secure_channel(f"127.0.0.1:{self.node.grpc_port}", creds)

    ingested = False

    def ingest(self, n):
        """Registers a monitor and stores n readings over gRPC, once per run."""
        if PrometheusScrape.ingested:
            return
        PrometheusScrape.ingested = True
        from healthtwin.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc, registry_pb2, registry_pb2_grpc
        ch = self.channel(["service"])
        registry_pb2_grpc.RegistryServiceStub(ch).CreateDevice(registry_pb2.CreateDeviceRequest(
            parent="tenants/metro", device_id="mon-p1",
            device=registry_pb2.Device(type=common_pb2.DEVICE_TYPE_BEDSIDE_MONITOR)), timeout=10)
        t0 = int(time.time() * 1000) - 3_600_000
        readings = ingest_pb2.DeviceReadings(device="tenants/metro/devices/mon-p1")
        for i in range(n):
            readings.sequence.append(i + 1)
            readings.time_ms.append(t0 + i * 1000)
            readings.metric.append(common_pb2.METRIC_HEART_RATE)
            readings.value.append(70 + i % 10)
        resp = ingest_pb2_grpc.IngestServiceStub(ch).Ingest(
            ingest_pb2.IngestRequest(batch_id=1, devices=[readings]), timeout=10)
        self.assertEqual(resp.accepted, n)

    def query(self, promql):
        """The instant vector's values, as floats keyed by their labels."""
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        self.assertEqual(body["status"], "success", body)
        return {json.dumps(v["metric"], sort_keys=True): float(v["value"][1]) for v in body["data"]["result"]}

    def wait_for(self, promql, predicate, timeout=60):
        deadline, last = time.time() + timeout, None
        while time.time() < deadline:
            try:
                last = self.query(promql)
                if last and predicate(list(last.values())):
                    return last
            except OSError:
                pass  # Prometheus is still starting
            time.sleep(0.5)
        self.fail(f"{promql}: {last} after {timeout} s; prometheus log: "
                  + open(os.path.join(self.d, "prometheus.log")).read()[-2000:])

    def test_prometheus_scrapes_the_node_over_tls_and_finds_its_series(self):
        self.ingest(120)
        self.wait_for('up{job="healthtwin"}', lambda v: v == [1.0])
        self.wait_for("healthtwin_ingest_readings_accepted_total", lambda v: v[0] >= 120)
        handled = self.wait_for('healthtwin_grpc_server_handled_total{grpc_method="Ingest",grpc_code="OK"}',
                                lambda v: sum(v) >= 1)
        self.assertTrue(any('"grpc_service": "healthtwin.v1.IngestService"' in k for k in handled), handled)
        self.wait_for("healthtwin_ingest_ack_seconds_count", lambda v: v[0] >= 1)
        self.wait_for('count(healthtwin_ingest_ack_seconds_bucket{le="+Inf"})', lambda v: v[0] >= 1)
        self.wait_for("process_resident_memory_bytes", lambda v: v[0] > 1e6)
        self.wait_for("process_open_fds", lambda v: v[0] > 0)

    def exposition(self):
        ctx = ssl.create_default_context(cadata=self.node.ca.decode())
        with urllib.request.urlopen(f"https://127.0.0.1:{self.node.http_port}/metrics", context=ctx,
                                    timeout=10) as r:
            return r.read()

    def test_dashboard_queries_run_and_name_only_series_the_node_exposes(self):
        with open(ARGS.dashboard) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreaterEqual(len(exprs), 10)
        self.ingest(120)  # the per-method gRPC series exist once a call was made
        exposed = {line.split("{")[0].split(" ")[0] for line in self.exposition().decode().splitlines()
                   if line and not line.startswith("#")}
        self.wait_for('up{job="healthtwin"}', lambda v: v == [1.0])
        for expr in exprs:
            names = re.findall(r"\b((?:healthtwin|process)_[a-z0-9_]+)", expr)
            self.assertTrue(names, expr)
            for name in names:
                self.assertIn(name, exposed, f"{expr}: {name} is not a series the node exposes")
            self.query(expr)  # valid PromQL: the query API says success

    def test_promtool_finds_nothing_to_say_about_the_exposition(self):
        text = self.exposition()
        self.assertIn(b"healthtwin_ingest_readings_accepted_total", text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(check.stdout + check.stderr, b"")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True)
    parser.add_argument("--proto-dir", required=True)
    parser.add_argument("--dashboard", required=True)
    ARGS, rest = parser.parse_known_args()
    missing = [b for b in ("prometheus", "promtool") if not shutil.which(b)]
    if missing:
        print(f"SKIPPED: {', '.join(missing)} not installed (Debian package prometheus; scripts/install-deps "
              "installs it)")
        sys.exit(77)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
