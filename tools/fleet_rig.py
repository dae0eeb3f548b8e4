"""A real mosquitto for the fleet tests and benchmark: free loopback port, certificates made now.

:class:`Broker` renders board/mosquitto/mosquitto.conf for a temporary folder (same TLS and ACL
settings, only the paths, the port and the loopback bind differ), starts ``/usr/sbin/mosquitto``,
waits until it accepts TLS, and stops it. ``restart()`` keeps the port and the persistence file,
as a broker restarted by systemd would. Test rig only: nothing on the device imports it.

:class:`EjabberdBroker` is the same fleet on ejabberd's mod_mqtt, for a manual comparison
(``tools/bench_fleet.py --broker ejabberd``); CI neither installs nor starts ejabberd.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from fleet_certs import make_fleet  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BOARD_CONF = REPO / "board" / "mosquitto" / "mosquitto.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, root: Path, boxes: Mapping[str, str], admins: tuple[str, ...] = ("ops",)) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError(f"mosquitto is not installed ({MOSQUITTO}); tools/bootstrap installs it")
        self.root = root
        self.tls = make_fleet(root / "tls", boxes, admins)
        self.boxes = dict(boxes)
        self.port = free_port()
        self.host = "127.0.0.1"
        (root / "data").mkdir(exist_ok=True)
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(self._render(), encoding="utf-8")
        self.log = root / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _render(self) -> str:
        text = BOARD_CONF.read_text(encoding="utf-8")
        text = text.replace("/etc/mosquitto/parallax/", f"{self.tls}/")
        text = text.replace("/var/lib/mosquitto/", f"{self.root / 'data'}/")
        text = text.replace("listener 8883", f"listener {self.port} 127.0.0.1")
        # Started as root, mosquitto would drop to user "mosquitto", which cannot read a private
        # temporary folder: the test broker stays the user who runs the tests.
        import pwd

        text += f"\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n"
        return text + f"\nlog_dest file {self.root / 'mosquitto.log'}\nlog_type error\nlog_type warning\nlog_type notice\n"

    def cert(self, cn: str) -> tuple[Path, Path, Path]:
        """(ca, cert, key) for a client: a box id, or ``admin-<name>``."""
        return self.tls / "ca.crt", self.tls / f"{cn}.crt", self.tls / f"{cn}.key"

    def start(self, timeout_s: float = 10.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ctx = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
        ctx.load_cert_chain(self.tls / "admin-ops.crt", self.tls / "admin-ops.key") if (self.tls / "admin-ops.crt").exists() else None
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}{log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost"):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not accept TLS on port {self.port} within {timeout_s} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # mosquitto saves its persistence file on SIGTERM
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def reload_acl(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def peak_rss_mb(self) -> float:
        """The broker's peak resident memory so far (VmHWM), in MB."""
        if self.proc is None:
            return 0.0
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
        return 0.0

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EjabberdBroker(Broker):
    """The same fleet on ejabberd's mod_mqtt (MQTT 5) instead of mosquitto: a second implementation
    for docs/fleet-protocol.md's "Beyond one broker". Manual comparison only: CI never installs
    ejabberd (``apt-get install ejabberd``, then stop/disable its packaged service).

    It runs ``erl -s ejabberd`` directly, without Erlang distribution (no node name, so no epmd
    and no distribution port), from a config written here: one mod_mqtt listener on 127.0.0.1,
    TLS with ``tls_verify`` (the fleet CA). ejabberd maps a client certificate to an identity
    only when the client also names it: an empty password plus a username (or, without one, the
    client id) equal to the certificate's CN. The agent's client id is its box id, so it needs
    no change; admins pass their CN as username (``Connection.username``). The mosquitto ACL
    becomes mod_mqtt ``access_publish``/``access_subscribe`` topic filters (``%u`` = the
    authenticated user) mapped to access rules over per-group ACLs.
    """

    ERL = shutil.which("erl") or "/usr/bin/erl"
    LIBS = "/usr/lib/x86_64-linux-gnu"  # where Debian's ejabberd-23.01 and its deps live

    def __init__(self, root: Path, boxes: Mapping[str, str], admins: tuple[str, ...] = ("ops",)) -> None:
        if not any(p.name.startswith("ejabberd-") for p in Path(self.LIBS).glob("ejabberd-*")):
            raise RuntimeError("ejabberd is not installed (apt-get install ejabberd); it is a manual comparison only")
        self.root = root
        self.tls = make_fleet(root / "tls", boxes, admins)
        self.boxes = dict(boxes)
        self.admins = tuple(admins)
        self.port = free_port()
        self.host = "127.0.0.1"
        (root / "spool").mkdir(exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        (self.tls / "server.pem").write_bytes((self.tls / "server.crt").read_bytes() + (self.tls / "server.key").read_bytes())
        self.conf = root / "ejabberd.yml"
        self.conf.write_text(self._render(), encoding="utf-8")
        self.log = root / "logs" / "ejabberd.log"
        self.proc = None

    def _render(self) -> str:
        import json as _j

        q = _j.dumps  # YAML accepts JSON scalars: quoting made safe
        groups = sorted(set(self.boxes.values()))
        acl = [f"  admins:\n    user: {q([f'admin-{a}' for a in self.admins])}"]
        acl += [f"  group_{g}:\n    user: {q(sorted(b for b, bg in self.boxes.items() if bg == g))}" for g in groups]
        acl += [f"  boxes:\n    user: {q(sorted(self.boxes))}"]
        rules = ["  fleet_admin:\n    allow: admins", "  fleet_box:\n    allow: boxes"]
        # One "- allow:" line per ACL: a list under a single allow means all of them at once.
        rules += [f"  fleet_group_{g}:\n    - allow: group_{g}\n    - allow: admins" for g in groups]
        box = "parallax/v1/box/%u"
        pub = {"parallax/v1/#": "fleet_admin", f"{box}/status": "fleet_box", f"{box}/telemetry": "fleet_box", f"{box}/progress": "fleet_box"}
        sub = {"parallax/v1/#": "fleet_admin", f"{box}/offer": "fleet_box", f"{box}/cmd": "fleet_box", f"{box}/artifact/#": "fleet_box"}
        for g in groups:
            for leaf in ("offer", "cmd", "artifact/#"):
                sub[f"parallax/v1/group/{g}/{leaf}"] = f"fleet_group_{g}"
        fmt = lambda m: "\n".join(f"      {q(k)}: {v}" for k, v in m.items())  # noqa: E731
        return f"""# Written by tools/fleet_rig.py (EjabberdBroker): loopback only, mutual TLS, mod_mqtt.
hosts: ["localhost"]
loglevel: info
log_rotate_count: 0
# A mod_mqtt listener takes no certificate options of its own: the server certificate comes from
# certfiles, and tls_verify checks clients against c2s_cafile (the fleet CA; not ca_file, which
# is for ejabberd's outgoing connections).
certfiles: [{q(str(self.tls / 'server.pem'))}]
c2s_cafile: {q(str(self.tls / 'ca.crt'))}
acl:
{chr(10).join(acl)}
access_rules:
{chr(10).join(rules)}
listen:
  - port: {self.port}
    ip: "127.0.0.1"
    module: mod_mqtt
    tls: true
    tls_verify: true
    backlog: 1000
    max_payload_size: 4194304
modules:
  mod_mqtt:
    session_expiry: 0
    max_queue: 5000
    access_publish:
{fmt(pub)}
    access_subscribe:
{fmt(sub)}
"""

    def start(self, timeout_s: float = 30.0) -> None:
        env = dict(os.environ, ERL_LIBS=self.LIBS, EJABBERD_CONFIG_PATH=str(self.conf), EJABBERD_LOG_PATH=str(self.log),
                   EJABBERD_PID_PATH=str(self.root / "ejabberd.pid"), ERL_CRASH_DUMP=str(self.root / "logs" / "erl_crash.dump"))
        cmd = [self.ERL, "-noinput", "-noshell", "-mnesia", "dir", f'"{self.root / "spool"}"', "-s", "ejabberd"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                raise RuntimeError(f"ejabberd exited with {self.proc.returncode}: {err}{log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"ejabberd did not listen on port {self.port} within {timeout_s} s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # the BEAM stops on SIGTERM (init:stop)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def reload_acl(self) -> None:
        raise NotImplementedError("ejabberd reloads its config via ejabberdctl, which needs distribution")


BROKERS = {"mosquitto": Broker, "ejabberd": EjabberdBroker}


class ArtifactServer:
    """HTTPS on loopback serving ``<folder>/<sha256>`` with Range requests, as a CDN would.

    ``cut_after_bytes``: each response stops after that many body bytes (a flaky link), so a client
    must resume with Range to get the whole file. Threaded; ``close()`` stops and joins it.
    """

    def __init__(self, folder: Path, tls_dir: Path, cut_after_bytes: int | None = None) -> None:
        import http.server
        import threading

        self.folder = folder
        self.requests: list[str] = []
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.rsplit("/", 1)[-1]
                path = server_self.folder / name
                if "/" in name or not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                start = 0
                rng = self.headers.get("Range")
                server_self.requests.append(rng or "")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= size:
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                budget = cut_after_bytes if cut_after_bytes is not None else size
                with path.open("rb") as f:
                    f.seek(start)
                    while budget > 0 and (block := f.read(min(1 << 16, budget))):
                        try:
                            self.wfile.write(block)
                        except OSError:
                            return
                        budget -= len(block)
                if cut_after_bytes is not None and start + cut_after_bytes < size:
                    self.close_connection = True  # the cut: fewer bytes than promised

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url_base = f"https://127.0.0.1:{self.port}/artifacts"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


if __name__ == "__main__":  # a quick manual check: start, report, stop
    import tempfile

    with tempfile.TemporaryDirectory() as d, Broker(Path(d), {"box-a": "emea"}) as b:
        print(f"mosquitto pid {b.pid} on {b.host}:{b.port}, peak RSS {b.peak_rss_mb():.1f} MB")
