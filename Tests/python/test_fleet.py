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


class Broker:
    """Debian's mosquitto on a loopback port of the test's own, with persistence so that a
    subscriber's session survives a restart of the broker."""

    def __init__(self, folder, port, extra=""):
        self.folder, self.port = folder, port
        folder.mkdir(exist_ok=True)
        self.config = folder / "mosquitto.conf"
        # `user root`: run as root, mosquitto would otherwise switch to its own user, who cannot
        # write the test's folder (it is ignored when not root).
        self.config.write_text(f"listener {port} 127.0.0.1\nuser root\npersistence true\npersistence_location {folder}/\n"
                               f"autosave_interval 1\n{extra or 'allow_anonymous true'}\n")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-v", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=open(self.folder / "log", "a"))
        def listening():
            import socket
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until(listening, 10, "mosquitto listening")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Subscriber:
    """mosquitto_sub with a persistent session (-c): it reconnects by itself, and the broker keeps
    its QoS 1 messages across a broker restart. Lines are `topic payload`."""

    def __init__(self, port, topic, client_id, extra=()):
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-v", "-q", "1", "-c", "-i", client_id, *extra],
                                     stdout=subprocess.PIPE, text=True)
        self.lines = []
        import threading
        threading.Thread(target=lambda: [self.lines.append(l.rstrip("\n")) for l in self.proc.stdout], daemon=True).start()

    def predictions(self):
        out = []
        for line in list(self.lines):
            topic, _, payload = line.partition(" ")
            if topic.endswith("/prediction"):
                out.append(json.loads(payload))
        return out

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def mqtt_daemon(folder, port, wav, speed, loop, extra="", prefix="plant/line1"):
    config = folder / "equivd.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{wav}"\nloop = {str(loop).lower()}\nspeed = {speed}\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\n[socket]\npath = "{folder / "s.sock"}"\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntopic_prefix = "{prefix}"\n'
                      f'queue_directory = "{folder / "queue"}"\ndrain_seconds = 20\n{extra}')
    return subprocess.Popen([EQUIVD, "run", "--config", str(config)], stderr=subprocess.PIPE, text=True)


def long_stream(folder):
    """The six live-test segments end to end: 18 s of audio, 35 windows."""
    from test_service import SEGMENTS, read_wav, write_wav
    import numpy as np
    wav = folder / "stream.wav"
    write_wav(wav, np.concatenate([read_wav(ROOT / "Samples" / s) for s in SEGMENTS]))
    return wav


def replayed_stream_and_broker(folder, topic):
    """The long stream, what `equivd replay` decides on it, and a broker on a port of its own
    with a subscriber to `topic`."""
    from test_service import replay_predictions
    wav = long_stream(folder)
    port = free_port()
    broker = Broker(folder / "broker", port)
    sub = Subscriber(port, topic, "historian")
    time.sleep(0.5)
    return wav, replay_predictions(wav), port, broker, sub


def test_every_prediction_reaches_a_subscriber_across_a_broker_outage(tmp_path):
    """The broker is stopped for 4 s mid-stream and started again: after de-duplication by
    (run, seq) the subscriber has every window `equivd replay` decides, with the same labels."""
    wav, expected, port, broker, sub = replayed_stream_and_broker(tmp_path, "plant/line1/#")
    daemon = mqtt_daemon(tmp_path, port, wav, speed=2, loop=False)
    try:
        from test_service import status
        time.sleep(2)
        broker.stop()
        waited = []
        wait_until(lambda: waited.append(status(tmp_path / "s.sock")["mqtt"]["queued"]) or waited[-1] >= 3, 4,
                   "predictions waiting on disk during the outage")
        time.sleep(max(0, 4 - 0.05 * len(waited)))
        broker.start()
        assert daemon.wait(timeout=60) == 0, daemon.stderr.read()
        wait_until(lambda: len({p["seq"] for p in sub.predictions()}) >= len(expected), 20, "every prediction at the subscriber")
        got = sub.predictions()
        runs = {p["run"] for p in got}
        assert len(runs) == 1 and len(next(iter(runs))) == 16
        unique = {p["seq"]: p for p in got}
        assert sorted(unique) == [e["seq"] for e in expected]
        assert [unique[e["seq"]]["label"] for e in expected] == [e["label"] for e in expected]
        print(f"{len(got)} deliveries, {len(unique)} windows after de-duplication")
        assert not list((tmp_path / "queue").glob("*.msg")), "everything acknowledged was removed from the queue"
        assert any(l == "plant/line1/availability offline" for l in sub.lines)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sub.close()
        broker.stop()


def test_queued_predictions_survive_kill_9_during_an_outage(tmp_path):
    """No broker while the daemon runs; it is killed with SIGKILL; with the broker back and the
    daemon started again, every prediction that was on disk reaches the subscriber."""
    from test_service import status
    wav = long_stream(tmp_path)
    port = free_port()
    first = mqtt_daemon(tmp_path, port, wav, speed=4, loop=True)
    wait_until(lambda: (tmp_path / "s.sock").exists() and status(tmp_path / "s.sock")["mqtt"]["queued"] >= 10, 30, "a queue on disk")
    first.kill()
    first.wait()
    queued = [json.loads(f.read_text().split("\n", 1)[1]) for f in sorted((tmp_path / "queue").glob("*.msg"))]
    assert len(queued) >= 10 and not list((tmp_path / "queue").glob("*.partial"))
    assert [q["seq"] for q in queued] == list(range(len(queued))), "every prediction since the start is on disk, in order"
    run = queued[0]["run"]
    broker = Broker(tmp_path / "broker", port)
    sub = Subscriber(port, "plant/line1/prediction", "historian")
    time.sleep(0.5)
    second = mqtt_daemon(tmp_path, port, wav, speed=1, loop=True)
    try:
        wait_until(lambda: {q["seq"] for q in queued} <= {p["seq"] for p in sub.predictions() if p["run"] == run}, 30,
                   "the first run's queued predictions at the subscriber")
        order = [p["seq"] for p in sub.predictions() if p["run"] == run]
        assert order[:len(queued)] == [q["seq"] for q in queued], "delivered in the order they were made"
        wait_until(lambda: {p["run"] for p in sub.predictions()} - {run}, 10, "the second run publishing under a run id of its own")
    finally:
        second.terminate()
        second.wait(timeout=30)
        sub.close()
        broker.stop()


def test_the_queue_quota_drops_the_oldest_and_counts_them(tmp_path):
    from test_service import status
    port, quota = free_port(), 8192  # nobody listens on port
    daemon = mqtt_daemon(tmp_path, port, long_stream(tmp_path), speed=8, loop=True, extra=f"queue_bytes = {quota}\n")
    try:
        wait_until(lambda: (tmp_path / "s.sock").exists() and status(tmp_path / "s.sock")["mqtt"]["dropped"] >= 5, 30, "drops past the quota")
        s = status(tmp_path / "s.sock")["mqtt"]
        assert s["queued_bytes"] <= quota and not s["connected"] and s["failed"] >= 1 and "127.0.0.1" in s["last_error"]
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    files = sorted((tmp_path / "queue").glob("*.msg"))
    assert sum(f.stat().st_size for f in files) <= quota
    seqs = [json.loads(f.read_text().split("\n", 1)[1])["seq"] for f in files]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 0, "the newest kept, in order, the oldest gone"


def test_a_wrong_password_is_named_in_the_log_and_status_and_the_socket_keeps_serving(tmp_path):
    from test_service import status, tail_json
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    passwords = broker_dir / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "equivd", "right-secret"], check=True)
    port = free_port()
    broker = Broker(broker_dir, port, extra=f"allow_anonymous false\npassword_file {passwords}")
    (tmp_path / "password").write_text("wrong-secret\n")
    daemon = mqtt_daemon(tmp_path, port, ROOT / "Samples/gear-nominal.wav", speed=2, loop=True,
                         extra=f'username = "equivd"\npassword_file = "{tmp_path / "password"}"\n')
    tail = None
    try:
        sock = tmp_path / "s.sock"
        wait_until(lambda: sock.exists() and "not authorised" in (status(sock)["mqtt"]["last_error"] or ""), 20,
                   "the refusal in status")
        s = status(sock)
        assert not s["mqtt"]["connected"] and "not authorised" in s["last_error"]
        tail, lines = tail_json(sock)
        wait_until(lambda: len(lines.of("prediction")) >= 2, 20, "predictions on the socket meanwhile")
        assert daemon.poll() is None
    finally:
        if tail:
            tail.terminate()
        daemon.terminate()
        daemon.wait(timeout=30)
    assert "not authorised" in daemon.stderr.read(), "the refusal is in the log"
    # The right password: predictions arrive.
    (tmp_path / "password").write_text("right-secret\n")
    sub = Subscriber(port, "plant/line1/prediction", "historian", extra=("-u", "equivd", "-P", "right-secret"))
    daemon = mqtt_daemon(tmp_path, port, ROOT / "Samples/gear-nominal.wav", speed=2, loop=True,
                         extra=f'username = "equivd"\npassword_file = "{tmp_path / "password"}"\n')
    try:
        wait_until(lambda: len(sub.predictions()) >= 2, 20, "predictions with the right password")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        sub.close()
        broker.stop()


def certificates(folder):
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a second
    CA that signed nothing here (openssl)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)
    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=equivd test {ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", f"{name}.crt", *extra)


def test_tls_with_a_client_certificate_and_a_wrong_ca_named(tmp_path):
    """TLS to a broker that requires client certificates: with the right CA and a certificate it
    signed, predictions arrive; with another CA the verification failure is named in status and
    the log while socket clients are served."""
    from test_service import status, tail_json
    certs = tmp_path / "certs"
    certs.mkdir()
    certificates(certs)
    port = free_port()
    broker = Broker(tmp_path / "broker", port, extra=f"allow_anonymous true\ncafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\n"
                                                     f"keyfile {certs / 'server.key'}\nrequire_certificate true")
    tls = f'tls_cert = "{certs / "client.crt"}"\ntls_key = "{certs / "client.key"}"\n'
    daemon = sub = None
    try:
        daemon = mqtt_daemon(tmp_path, port, ROOT / "Samples/gear-nominal.wav", speed=2, loop=True,
                             extra=f'tls_ca = "{certs / "other-ca.crt"}"\n' + tls)
        sock = tmp_path / "s.sock"
        wait_until(lambda: sock.exists() and "certificate verify failed" in (status(sock)["mqtt"]["last_error"] or ""), 20,
                   "the verification failure in status")
        tail, lines = tail_json(sock)
        wait_until(lambda: len(lines.of("prediction")) >= 2, 20, "predictions on the socket meanwhile")
        tail.terminate()
        assert daemon.poll() is None
        daemon.terminate()
        daemon.wait(timeout=30)
        assert "certificate verify failed" in daemon.stderr.read(), "the failure is in the log"
        sub = Subscriber(port, "plant/line1/prediction", "historian",
                         extra=("--cafile", str(certs / "ca.crt"), "--cert", str(certs / "client.crt"), "--key", str(certs / "client.key")))
        daemon = mqtt_daemon(tmp_path, port, ROOT / "Samples/gear-nominal.wav", speed=2, loop=True,
                             extra=f'tls_ca = "{certs / "ca.crt"}"\n' + tls)
        wait_until(lambda: len(sub.predictions()) >= 2, 20, "predictions over TLS")
        assert status(sock)["mqtt"]["connected"]
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)
        if sub:
            sub.close()
        broker.stop()


def test_the_documented_bridge_carries_predictions_to_a_central_broker(tmp_path):
    """docs/fleet/mosquitto-bridge.conf on a site broker (its address pointed at a second broker
    here): a subscriber on the central broker gets the daemon's predictions, and the docs'
    Prometheus config and alert rules pass promtool."""
    central_port, site_port = free_port(), free_port()
    central = Broker(tmp_path / "central", central_port)
    bridge = (ROOT / "docs/fleet/mosquitto-bridge.conf").read_text().replace(
        "central-broker.plant.example:8883", f"127.0.0.1:{central_port}")
    site = Broker(tmp_path / "site", site_port, extra="allow_anonymous true\n" + bridge)
    sub = Subscriber(central_port, "equivd/#", "central-historian")
    daemon = None
    try:
        time.sleep(1)
        daemon = mqtt_daemon(tmp_path, site_port, ROOT / "Samples/gear-nominal.wav", speed=2, loop=True,
                             prefix="equivd/line1-pc")
        wait_until(lambda: len(sub.predictions()) >= 3, 20, "predictions at the central broker")
        assert "equivd/line1-pc/availability online" in sub.lines
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)
        sub.close()
        site.stop()
        central.stop()
    for args in (["check", "rules", "docs/fleet/equivd-alerts.yml"], ["check", "config", "docs/fleet/prometheus.yml"]):
        check = subprocess.run(["promtool", *args], cwd=ROOT, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("publish", ["changes", "fallbacks"])
def test_publish_filters(tmp_path, publish):
    """`publish = "changes"`: only a window whose label differs from the one before it;
    `"fallbacks"`: only top-K and abstained windows. Both checked against `equivd replay`."""
    wav, expected, port, broker, sub = replayed_stream_and_broker(tmp_path, "plant/line1/prediction")
    daemon = mqtt_daemon(tmp_path, port, wav, speed=8, loop=False, extra=f'publish = "{publish}"\n')
    try:
        assert daemon.wait(timeout=60) == 0, daemon.stderr.read()
        if publish == "changes":
            want = [e["seq"] for i, e in enumerate(expected) if i == 0 or e["label"] != expected[i - 1]["label"]]
        else:
            want = [e["seq"] for e in expected if e["fallback"] in ("topk", "abstain")]
        assert 0 < len(want) < len(expected)
        wait_until(lambda: len({p["seq"] for p in sub.predictions()}) >= len(want), 10, "the filtered predictions")
        time.sleep(0.5)
        assert sorted({p["seq"] for p in sub.predictions()}) == want
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sub.close()
        broker.stop()


def test_defaults_retained_status_last_will_and_mqtt_metrics(tmp_path):
    """With only `host` and `port` set: client id and prefix default to the host name; `status`
    is published retained every `status_interval`; `/metrics` has the equivd_mqtt_* family
    (promtool-clean); after kill -9 the broker publishes the last will, so fleet.md's latest-state
    command, run afterwards, reads `offline` and the last status of the PC."""
    import socket as sockets
    host = sockets.gethostname()
    port, http_port = free_port(), free_port()
    broker = Broker(tmp_path / "broker", port)
    config = tmp_path / "equivd.toml"
    config.write_text(f'[source]\nkind = "file"\nfile = "{ROOT / "Samples/gear-nominal.wav"}"\nloop = true\nspeed = 4\n'
                      f'[model]\nbundle = "{ROOT / "Models"}"\n[socket]\npath = "{tmp_path / "s.sock"}"\n'
                      f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nstatus_interval = 1\nqueue_directory = "{tmp_path / "queue"}"\n')
    sub = Subscriber(port, f"equivd/{host}/#", "watcher")
    daemon = subprocess.Popen([EQUIVD, "run", "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: f"equivd/{host}/availability online" in sub.lines, 20, "online under the host-name prefix")
        wait_until(lambda: len([l for l in sub.lines if l.startswith(f"equivd/{host}/status ")]) >= 2, 20, "two status messages")
        wait_until(lambda: "equivd_mqtt_sent_total " in http_get(http_port, "/metrics")[1], 10, "MQTT metrics")
        text = http_get(http_port, "/metrics")[1]
        for name in ("equivd_mqtt_queue_messages", "equivd_mqtt_queue_bytes", "equivd_mqtt_connected 1",
                     "equivd_mqtt_sent_total", "equivd_mqtt_failed_total", "equivd_mqtt_dropped_total"):
            assert f"\n{name}" in text, name
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert lint.returncode == 0 and lint.stdout.strip() == "" and lint.stderr.strip() == "", lint.stdout + lint.stderr
        daemon.kill()
        daemon.wait()
        wait_until(lambda: f"equivd/{host}/availability offline" in sub.lines, 10, "the last will after kill -9")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sub.close()
    latest = subprocess.run(f"mosquitto_sub -h 127.0.0.1 -p {port} -t 'equivd/+/availability' -t 'equivd/+/status' -v -W 2"
                            " | awk '{ print $1, substr($0, index($0, \" \") + 1, 160) }'",
                            shell=True, capture_output=True, text=True)
    broker.stop()
    lines = latest.stdout.splitlines()
    assert f"equivd/{host}/availability offline" in lines, lines
    assert any(l.startswith(f"equivd/{host}/status {{") for l in lines), lines
    assert f"New client connected from 127.0.0.1" in (tmp_path / "broker/log").read_text()
    assert f" as {host} " in (tmp_path / "broker/log").read_text(), "the client id defaults to the host name"
