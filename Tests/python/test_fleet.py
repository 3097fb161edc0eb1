"""A fleet's view of the daemon, against the real servers on loopback ports of the test's own:
Debian's Prometheus scraping `/metrics` (and `promtool check metrics` linting it), and Debian's
mosquitto receiving predictions over MQTT."""

import json
import pathlib
import subprocess
import time
import urllib.parse

import pytest

from test_faults import free_port, http_get
from test_service import EQUIVD, ROOT, wait_until


def http_daemon(folder, port, sample="gear-nominal.wav", speed=4, extra=""):
    config = folder / "equivd.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{ROOT / "Samples" / sample}"\nloop = true\nspeed = {speed}\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\n[socket]\npath = "{folder / "s.sock"}"\n'
                      f'[http]\nlisten = "127.0.0.1:{port}"\n{extra}')
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(config)], stderr=subprocess.PIPE, text=True)
    def up():
        try:
            return http_get(port, "/healthz")[0] == 200
        except OSError:
            assert daemon.poll() is None, daemon.stderr.read()
            return False
    wait_until(up, 20, "the daemon's HTTP listener")
    return daemon


def test_metrics_pass_promtool_and_a_real_prometheus_scrapes_them(tmp_path):
    port, prom_port = free_port(), free_port()
    daemon = http_daemon(tmp_path, port)
    prometheus = None
    try:
        wait_until(lambda: "equivd_predictions_total{" in http_get(port, "/metrics")[1], 10, "predictions in /metrics")
        code, text = http_get(port, "/metrics")
        assert code == 200
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert lint.returncode == 0 and lint.stdout.strip() == "" and lint.stderr.strip() == "", lint.stdout + lint.stderr
        for name in ("equivd_windows_total", "equivd_windows_dropped_total", "equivd_shift_semitones_bucket",
                     "equivd_decision_latency_seconds_bucket", "equivd_xruns_total", "equivd_reconnects_total",
                     "equivd_clients", "equivd_bundle_info{", "equivd_build_info{"):
            assert f"\n{name}" in text, name
        # A real Prometheus, scraping every second.
        (tmp_path / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: equivd\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def query(expression):
            try:
                code, body = http_get(prom_port, "/api/v1/query?query=" + urllib.parse.quote(expression))
            except OSError:
                return []
            return json.loads(body)["data"]["result"] if code == 200 else []
        wait_until(lambda: query("equivd_windows_total"), 60, "equivd_windows_total in Prometheus")
        first = float(query("equivd_windows_total")[0]["value"][1])
        assert first > 0
        wait_until(lambda: float(query("equivd_windows_total")[0]["value"][1]) > first, 20, "the counter rising in Prometheus")
        gear = query('equivd_predictions_total{label="gear"}')
        assert gear and gear[0]["metric"]["fallback"] in ("none", "topk")
        assert query("up")[0]["value"][1] == "1"
        assert daemon.poll() is None
    finally:
        if prometheus:
            prometheus.terminate()
            prometheus.wait(timeout=20)
        daemon.terminate()
        daemon.wait(timeout=10)
