"""The real services of the local stack: Mosquitto, Kafka (KRaft), InfluxDB 2 and PostgreSQL.

Each service knows how to install what is missing (Debian package, Maven Central jars, a source build),
start itself on 127.0.0.1 with data in the run folder, check readiness with a real client call, and
report its version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceError
from ..settings import REPO_ROOT, Settings
from .process import ManagedProcess

Progress = Callable[[str], None]
SCRIPTS = REPO_ROOT / "scripts"

# Built from Debian's source with our patches (scripts/build-mosquitto.sh): bookworm's 2.0.11 and an
# unpatched 2.0.21 both crash when restored offline sessions expire after a reload (docs/infra.md).
MOSQUITTO_VERSION = "2.0.21"
MOSQUITTO_TOOLS = ("mosquitto", "mosquitto_passwd", "mosquitto_pub", "mosquitto_sub")
# Registrations within this window of the first one share its broker reload (Mosquitto.ensure_devices).
RELOAD_BATCH_S = 0.2
# The broker's password-file user whose password changes with every write of the file: once the broker
# accepts the newest one, it has loaded that write (no device id can start with "_": core/devices.py).
PROBE_USER = "_reload-probe"
# Mosquitto 2's password hash: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt ("$7$" lines).
MOSQUITTO_HASH_ITERATIONS = 101


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = MOSQUITTO_HASH_ITERATIONS) -> str:
    """A password-file hash in Mosquitto 2's ``$7$`` format, as ``mosquitto_passwd`` writes it.

    >>> import base64
    >>> mosquitto_hash("secretpw", base64.b64decode("4ST9go8ZmocvT7Eb"))[:40]
    '$7$101$4ST9go8ZmocvT7Eb$l/+PvS3dWMZVD9du'
    """
    import base64

    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass
class Health:
    ok: bool
    detail: str


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _run_script(argv: list[str], progress: Progress, what: str) -> None:
    """Run an install script, streaming its output as progress lines."""
    progress(f"{what}: {' '.join(str(a) for a in argv)}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-30:]
        progress(f"  {line}")
    if proc.wait() != 0:
        raise ServiceError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def mosquitto_build_id() -> str:
    """What scripts/build-mosquitto.sh writes to BUILD-ID: the version plus a digest of its patches."""
    patches = sorted(SCRIPTS.glob(f"mosquitto-{MOSQUITTO_VERSION}-*.patch"))
    if not patches:
        return MOSQUITTO_VERSION
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in patches)).hexdigest()[:12]
    return f"{MOSQUITTO_VERSION}+{digest}"


def mosquitto_bindir(settings: Settings) -> Path:
    return settings.cache_dir / "bin" / f"mosquitto-{MOSQUITTO_VERSION}"


def mosquitto_tool(settings: Settings, name: str) -> str:
    """The path of the project's own build of a Mosquitto program (``mosquitto_pub``, ...), not Debian's."""
    if name not in MOSQUITTO_TOOLS:
        raise ValueError(f"not a Mosquitto program the stack builds: {name!r} (one of {', '.join(MOSQUITTO_TOOLS)})")
    path = mosquitto_bindir(settings) / name
    if not path.exists():
        raise ServiceError(f"{path} is missing: run `gridsentinel up` (it builds Mosquitto {MOSQUITTO_VERSION})")
    return str(path)


class Service:
    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.run_dir / self.name
        self.proc = ManagedProcess(self.name, self.dir)

    # Subclasses implement these.
    def install(self, progress: Progress) -> None: ...
    def prepare(self) -> None: ...
    def argv(self) -> list[str]: raise NotImplementedError
    def env(self) -> dict[str, str]: return {}
    def health(self) -> Health: raise NotImplementedError
    def ready(self) -> Health: return self.health()  # what start-up waits for (before after_ready)
    def version(self) -> str: raise NotImplementedError
    def address(self) -> str: raise NotImplementedError
    def after_ready(self, progress: Progress) -> None: ...

    def start(self, progress: Progress, timeout: float = 90.0) -> None:
        self.prepare()
        self.proc.start(self.argv(), env=self.env(), cwd=self.dir)
        self.wait_ready(timeout)
        self.after_ready(progress)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = Health(False, "not checked")
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise ServiceError(f"{self.name} exited during start-up; its log ({self.proc.log_file}) "
                                   f"ends with:\n{self.proc.log_tail()}")
            last = self.ready()
            if last.ok:
                return
            time.sleep(0.3)
        raise ServiceError(f"{self.name} did not become ready within {timeout:.0f}s ({last.detail}); "
                           f"see {self.proc.log_file}")


class Mosquitto(Service):
    """MQTT broker with a generated password file and ACL: a device may write only under its own id."""

    name = "mosquitto"

    def built(self) -> bool:
        bindir = mosquitto_bindir(self.settings)
        try:
            build_id = (bindir / "BUILD-ID").read_text().strip()
        except OSError:
            return False
        return build_id == mosquitto_build_id() and all((bindir / t).exists() for t in MOSQUITTO_TOOLS)

    def install(self, progress: Progress) -> None:
        if self.built():
            return
        progress(f"building Mosquitto {MOSQUITTO_VERSION} from Debian's source (once; about 15 s on 2 cores)")
        _run_script(["bash", str(SCRIPTS / "build-mosquitto.sh"), str(mosquitto_bindir(self.settings))],
                    progress, "build-mosquitto")

    @property
    def passwd_file(self) -> Path:
        return self.dir / "passwd"

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        for secret in ("gateway.secret", "device.secret"):
            path = self.dir / secret
            if not path.exists():
                path.write_text(secrets.token_hex(16))
                path.chmod(0o600)
        acl = self.dir / "acl"
        acl.write_text(
            "# Generated by gridsentinel up. The gateway reads every device topic and writes alerts;\n"
            "# a device (MQTT username = device id) may write only under its own id.\n"
            "user gateway\n"
            "topic read gs/v1/#\n"
            "topic write gs/v1/alerts/#\n"
            "topic read $SYS/#\n"
            "\n"
            "pattern write gs/v1/%u/#\n"
        )
        acl.chmod(0o600)  # Mosquitto >= 2.0.16 warns about readable ones and will refuse them
        if not self.passwd_file.exists():
            self._passwd(["-c", "-b", str(self.passwd_file), "gateway", self.settings.gateway_password])
        self.ensure_devices(self._registry_device_ids(), reload=False)
        self.passwd_file.chmod(0o600)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            "# Generated by gridsentinel up.\n"
            "per_listener_settings false\n"
            f"listener {self.settings.mqtt_port} {self.settings.mqtt_host}\n"
            "allow_anonymous false\n"
            f"password_file {self.passwd_file}\n"
            f"acl_file {acl}\n"
            "persistence true\n"
            f"persistence_location {self.dir / 'data'}/\n"
            "autosave_interval 30\n"
            # Offline queues sized for a gateway outage of minutes at full load.
            "max_queued_messages 2000000\n"
            "max_queued_bytes 0\n"
            "max_inflight_messages 0\n"
            "max_keepalive 120\n"
            f"log_dest file {self.dir / 'broker.log'}\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n"
            "log_type information\n"  # "Reloading config." at each SIGHUP (tests count them)
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )

    def _registry_device_ids(self) -> list[str]:
        path = self.settings.config_dir / "devices.yaml"
        if not path.exists():
            return []
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        return [str(d["id"]) for d in data.get("devices", []) if isinstance(d, dict) and "id" in d]

    def _passwd(self, args: list[str]) -> None:
        res = subprocess.run([mosquitto_tool(self.settings, "mosquitto_passwd"), *args], capture_output=True,
                             text=True)
        if res.returncode != 0:
            raise ServiceError(f"mosquitto_passwd failed: {res.stderr.strip()}")
        self.passwd_file.chmod(0o600)

    def known_users(self) -> set[str]:
        return set(self._read_lines())

    @property
    def _managed_file(self) -> Path:
        return self.dir / "passwd.managed"

    def managed_devices(self) -> set[str]:
        """Devices whose credentials the registry issues (``set_credentials``): ``ensure_devices`` never
        gives them a derived password again, so a revoked or rotated device stays so across ``up``."""
        try:
            return set(self._managed_file.read_text().split())
        except OSError:
            return set()

    def _read_lines(self) -> dict[str, str]:
        """The password file's lines by user (file order)."""
        if not self.passwd_file.exists():
            return {}
        return {line.split(":", 1)[0]: line for line in self.passwd_file.read_text().splitlines() if ":" in line}

    def _write_lines(self, lines: dict[str, str]) -> float:
        """Write the password file (a new file renamed over the old: the broker never reads half of it) with
        a new probe password; returns when it was written. Call with ``passwd.lock`` held."""
        probe = secrets.token_urlsafe(24)
        lines = {u: line for u, line in lines.items() if u != PROBE_USER}
        lines[PROBE_USER] = f"{PROBE_USER}:{mosquitto_hash(probe)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f"passwd.tmp.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(line + "\n" for line in lines.values()))
        os.replace(tmp, self.passwd_file)
        secret = self.dir / "reload-probe.secret"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(probe)
        return time.time()

    def ensure_devices(self, device_ids: list[str], reload: bool = True) -> None:
        """Give each device its credentials (password derived from the device secret). When it returns,
        the running broker has loaded them: the devices can connect. Devices whose credentials the
        registry manages (:meth:`managed_devices`) are left alone.

        Registrations made at about the same time (threads, processes: the lock files are in the run
        folder) share one reload: a caller whose users were written before another caller's reload
        started waits for that reload instead of sending its own SIGHUP."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.dir / "passwd.lock"):
            lines = self._read_lines()
            missing = sorted(set(device_ids) - set(lines) - self.managed_devices())
            if not missing:
                return
            for d in missing:
                lines[d] = f"{d}:{mosquitto_hash(self.settings.device_password(d))}"
            written = self._write_lines(lines)
        if reload:
            self._reload_after(written)

    def set_credentials(self, issue: dict[str, str], revoke: list[str] | tuple[str, ...] = (),
                        reload: bool = True) -> None:
        """Replace the password of each device in ``issue`` (id -> plain password, stored only hashed) and
        remove the lines of the devices in ``revoke``, in one write of the password file; then make sure
        the running broker has reloaded it (batched with other writers, as :meth:`ensure_devices`). On that
        reload the broker also disconnects the connected clients whose password no longer matches."""
        if not issue and not revoke:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.dir / "passwd.lock"):
            lines = self._read_lines()
            for device_id in revoke:
                lines.pop(device_id, None)
            for device_id, password in issue.items():
                lines.pop(device_id, None)
                lines[device_id] = f"{device_id}:{mosquitto_hash(password)}"
            managed = self.managed_devices() | set(issue) | set(revoke)
            tmp = self._managed_file.with_suffix(f".tmp.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text("".join(f"{d}\n" for d in sorted(managed)))
            os.replace(tmp, self._managed_file)
            written = self._write_lines(lines)
        if reload:
            self._reload_after(written)

    def _reload_after(self, written: float, timeout: float = 15.0) -> None:
        """Make sure the broker has reloaded its password file since ``written``: one SIGHUP covers every
        write made before it started; the others wait for it (``reload.lock``). The file does not change
        between the SIGHUP and the probe user's accepted CONNECT (``passwd.lock`` is held)."""
        stamp = self.dir / "reloaded_at"
        with _file_lock(self.dir / "reload.lock"):
            try:
                last = float(stamp.read_text())
            except (OSError, ValueError):
                last = 0.0
            if last >= written:
                return  # a reload that started after our write has completed meanwhile
            time.sleep(RELOAD_BATCH_S)  # registrations of the same burst land now: one reload for all
            pid = self.proc.pid()
            if pid is None:
                return  # not running: it reads the file when it starts
            with _file_lock(self.dir / "passwd.lock"):  # no write between the SIGHUP and the probe
                started = time.time()
                probe = _read_secret_file(self.dir / "reload-probe.secret")
                os.kill(pid, signal.SIGHUP)  # reloads the password file and ACL
                self._wait_accepts(PROBE_USER, timeout, probe)
            stamp.write_text(repr(started))

    def _wait_accepts(self, device_id: str, timeout: float, password: str | None = None) -> None:
        """Wait until the broker accepts ``device_id``'s credentials (a real CONNECT); ``password``
        defaults to the device's derived one."""
        import paho.mqtt.client as mqtt

        deadline = time.monotonic() + timeout
        while True:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gs-reload-{os.getpid()}",
                                 protocol=mqtt.MQTTv5)
            client.username_pw_set(device_id, password or self.settings.device_password(device_id))
            accepted = False
            try:
                client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=5)
                until = time.monotonic() + 2
                while time.monotonic() < until and not client.is_connected():
                    if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                        break  # refused (not loaded yet): the broker closed the connection
                accepted = client.is_connected()
                if accepted:
                    client.disconnect()
                    client.loop(0.1)  # sends the DISCONNECT
            except OSError:
                pass
            finally:
                sock = client.socket()
                if sock is not None:
                    sock.close()
            if accepted:
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"Mosquitto did not accept {device_id} within {timeout:.0f}s of a reload; "
                                   f"see {self.dir / 'broker.log'}")
            time.sleep(0.1)

    def argv(self) -> list[str]:
        return [mosquitto_tool(self.settings, "mosquitto"), "-c", str(self.dir / "mosquitto.conf")]

    def health(self) -> Health:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gs-health-{os.getpid()}",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set("gateway", self.settings.gateway_password)
        try:
            client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=5)
            rc = None
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not client.is_connected():
                client.loop(0.1)
            rc = client.is_connected()
            client.disconnect()
            return Health(bool(rc), "MQTT CONNECT accepted" if rc else "MQTT CONNECT not accepted")
        except OSError as exc:
            return Health(False, f"connect: {exc}")

    def version(self) -> str:
        try:
            res = subprocess.run([mosquitto_tool(self.settings, "mosquitto"), "-h"], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, ServiceError, subprocess.TimeoutExpired):
            return "not built"
        for line in (res.stdout + res.stderr).splitlines():
            if "version" in line:
                return line.split("version", 1)[1].split()[0]
        return "?"

    def address(self) -> str:
        return f"mqtt://{self.settings.mqtt_host}:{self.settings.mqtt_port}"


class Kafka(Service):
    """Single-node Apache Kafka in KRaft mode, run from Maven Central jars."""

    name = "kafka"

    @property
    def libs(self) -> Path:
        return self.settings.cache_dir / f"kafka-{self.settings.kafka_version}" / "libs"

    def install(self, progress: Progress) -> None:
        if (self.libs / ".complete").exists():
            return
        if not shutil.which("java") or not shutil.which("mvn"):
            raise ServiceError("Kafka needs a JDK 17 and Maven: run "
                               "`sudo apt-get install openjdk-17-jdk-headless maven`")
        _run_script(["bash", str(SCRIPTS / "fetch-kafka.sh"), str(self.libs)], progress,
                    f"fetching Kafka {self.settings.kafka_version} jars from Maven Central")

    def prepare(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        host, port = self.settings.kafka_bootstrap.rsplit(":", 1)
        cport = self.settings.kafka_controller_port
        props = self.dir / "server.properties"
        props.write_text(
            "# Generated by gridsentinel up.\n"
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.voters=1@{host}:{cport}\n"
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}\n"
            f"advertised.listeners=PLAINTEXT://{host}:{port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={data}\n"
            "num.partitions=4\n"
            "default.replication.factor=1\n"
            "offsets.topic.replication.factor=1\n"
            "offsets.topic.num.partitions=8\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=true\n"
            "log.retention.hours=168\n"
            "log.segment.bytes=134217728\n"
            "message.max.bytes=10485760\n"
            "replica.fetch.max.bytes=10485760\n"
            "delete.topic.enable=true\n"
        )
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
            "log4j.logger.kafka.server.BrokerServer=INFO\n"
        )
        if not (data / "meta.properties").exists():
            cluster_id = self._java(["kafka.tools.StorageTool", "random-uuid"]).strip().splitlines()[-1]
            self._java(["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props),
                        "--ignore-formatted"])

    def _classpath(self) -> str:
        return f"{self.libs}/*"

    def _java(self, args: list[str]) -> str:
        res = subprocess.run(["java", "-Xmx256m", f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                              "-cp", self._classpath(), *args], capture_output=True, text=True)
        if res.returncode != 0:
            raise ServiceError(f"kafka {' '.join(args[:2])} failed:\n{res.stdout[-1500:]}{res.stderr[-1500:]}")
        return res.stdout

    def argv(self) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true", f"-Djava.io.tmpdir={self.dir}",
                f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", self._classpath(), "kafka.Kafka",
                str(self.dir / "server.properties")]

    def health(self) -> Health:
        host, port = self.settings.kafka_bootstrap.rsplit(":", 1)
        if not _port_open(host, int(port)):
            return Health(False, "port closed")
        from confluent_kafka.admin import AdminClient

        try:
            md = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap,
                              "socket.timeout.ms": 2000}).list_topics(timeout=3)
        except Exception as exc:  # the client raises KafkaException with varied codes
            return Health(False, f"metadata request failed: {exc}")
        if not md.brokers:
            return Health(False, "metadata lists no brokers")
        return Health(True, f"metadata OK, {len(md.brokers)} broker(s), {len(md.topics)} topic(s)")

    def version(self) -> str:
        jars = sorted(self.libs.glob("kafka_2.13-*.jar"))
        return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else self.settings.kafka_version

    def address(self) -> str:
        return f"kafka://{self.settings.kafka_bootstrap}"


class InfluxDB(Service):
    """InfluxDB 2 OSS built from source once (see scripts/build-influxd.sh), onboarded automatically."""

    name = "influxdb"

    @property
    def binary(self) -> Path:
        return self.settings.cache_dir / "bin" / f"influxd-{self.settings.influxdb_version}"

    def install(self, progress: Progress) -> None:
        if self.binary.exists():
            return
        progress(f"building InfluxDB {self.settings.influxdb_version} from source (once; 20-40 min on 2 cores)")
        _run_script(["bash", str(SCRIPTS / "build-influxd.sh"), str(self.binary)], progress, "build-influxd")

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        token = self.dir / "token"
        if not token.exists():
            token.write_text(secrets.token_urlsafe(32))
            token.chmod(0o600)

    def argv(self) -> list[str]:
        bind = self.settings.influx_url.split("://", 1)[1].rstrip("/")
        return [str(self.binary), "--bolt-path", str(self.dir / "influxd.bolt"),
                "--engine-path", str(self.dir / "engine"), "--sqlite-path", str(self.dir / "influxd.sqlite"),
                "--http-bind-address", bind, "--reporting-disabled", "--log-level", "warn"]

    def _get(self, path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(self.settings.influx_url + path, timeout=3) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError) as exc:
            return 0, {"message": str(exc)}

    def ready(self) -> Health:
        status, body = self._get("/health")
        if status != 200 or body.get("status") != "pass":
            return Health(False, f"/health: {status} {body.get('message', '')}".strip())
        status, _ = self._get("/ready")
        if status != 200:
            return Health(False, f"/ready: {status}")
        return Health(True, "ready")

    def health(self) -> Health:
        ready = self.ready()
        if not ready.ok:
            return ready
        status, body = self._get("/api/v2/setup")
        if status == 200 and body.get("allowed"):
            return Health(False, "not onboarded: run `gridsentinel up`")
        if self.settings.influx_token:
            from influxdb_client import InfluxDBClient

            try:
                with InfluxDBClient(url=self.settings.influx_url, token=self.settings.influx_token,
                                    org=self.settings.influx_org, timeout=3000) as client:
                    bucket = client.buckets_api().find_bucket_by_name(self.settings.influx_bucket)
            except Exception as exc:  # influxdb-client raises ApiException and urllib3 errors
                reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
                return Health(False, f"bucket lookup failed: {reason} (is the token in {self.dir} current?)")
            if bucket is None:
                return Health(True, "ready, not onboarded yet")
        return Health(True, f"ready, org {self.settings.influx_org}, bucket {self.settings.influx_bucket}")

    def after_ready(self, progress: Progress) -> None:
        status, body = self._get("/api/v2/setup")
        if status == 200 and body.get("allowed"):
            progress("onboarding InfluxDB (org, bucket, operator token)")
            payload = json.dumps({
                "username": "gridsentinel", "password": secrets.token_urlsafe(18),
                "org": self.settings.influx_org, "bucket": self.settings.influx_bucket,
                "retentionPeriodSeconds": 0, "token": self.settings.influx_token,
            }).encode()
            req = urllib.request.Request(self.settings.influx_url + "/api/v2/setup", data=payload,
                                         headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status != 201:
                    raise ServiceError(f"InfluxDB onboarding failed: HTTP {resp.status}")

    def version(self) -> str:
        try:
            res = subprocess.run([str(self.binary), "version"], capture_output=True, text=True, timeout=10)
            return res.stdout.split()[1] if res.stdout else "?"
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not built"

    def address(self) -> str:
        return self.settings.influx_url


class _PostgresProcess(ManagedProcess):
    """SIGTERM is PostgreSQL's *smart* shutdown (waits for every client to leave); ask for *fast* first."""

    def stop(self, timeout: float = 20.0) -> bool:
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid() is not None:
                time.sleep(0.1)
        return super().stop(timeout) or pid is not None


class PostgreSQL(Service):
    """PostgreSQL from Debian, a private cluster in the run folder (the case store for production-like runs).

    ``initdb`` into ``<run>/postgresql/data``; the server listens on 127.0.0.1:``GS_POSTGRES_PORT``
    (15432) and on a Unix socket in the run folder (trust, for set-up only); the ``gridsentinel`` role
    (password generated into the run folder) owns the ``gridsentinel`` database and may create test
    databases. Run as root, the server runs as the ``postgres`` system user (it refuses root).
    """

    name = "postgresql"
    role = "gridsentinel"
    database = "gridsentinel"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.proc = _PostgresProcess(self.name, self.dir)
        self.port = settings.postgres_port

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "socket"

    @staticmethod
    def bindir() -> Path | None:
        """Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin (not on PATH)."""
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        if found:
            return found[-1].parent
        on_path = shutil.which("postgres")
        return Path(on_path).resolve().parent if on_path else None

    def _bin(self, name: str) -> str:
        bindir = self.bindir()
        if bindir is None:
            raise ServiceError("PostgreSQL is not installed: run `sudo apt-get install postgresql`")
        return str(bindir / name)

    def install(self, progress: Progress) -> None:
        if self.bindir() is not None:
            return
        if os.geteuid() != 0:
            raise ServiceError("PostgreSQL is not installed: run `sudo apt-get install postgresql`")
        progress("installing PostgreSQL from Debian (apt-get install postgresql)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                raise ServiceError(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")

    @property
    def password(self) -> str:
        return _read_secret_file(self.dir / "gridsentinel.secret")

    def url(self, database: str | None = None) -> str:
        """The SQLAlchemy/``GS_DATABASE_URL`` URL of the ``gridsentinel`` role (TCP, password)."""
        return (f"postgresql://{self.role}:{self.password}@127.0.0.1:{self.port}/"
                f"{database or self.database}")

    def _as_postgres(self, argv: list[str]) -> list[str]:
        """Run ``argv`` as the postgres system user when we are root (setpriv execs: same pid)."""
        if os.geteuid() != 0:
            return argv
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]

    def _ensure_postgres_user(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql",
                            "--shell", "/usr/sbin/nologin", "postgres"], check=True, capture_output=True)
        # The server must reach its data folder: give other users search (not read) rights on its parents.
        for parent in reversed(self.dir.parents):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        secret = self.dir / "gridsentinel.secret"
        if not secret.exists():
            secret.write_text(secrets.token_hex(16))
            secret.chmod(0o600)
        self._ensure_postgres_user()
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self.socket_dir.chmod(0o700)
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        self.data.chmod(0o700)
        res = subprocess.run(self._as_postgres([
            self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=scram-sha-256"]), capture_output=True, text=True, cwd="/")
        if res.returncode != 0:
            raise ServiceError(f"initdb failed:\n{res.stdout[-1500:]}{res.stderr[-1500:]}")

    def argv(self) -> list[str]:
        return self._as_postgres([
            self._bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
            "-k", str(self.socket_dir), "-c", "max_connections=200", "-c", "shared_buffers=128MB",
            "-c", "logging_collector=off", "-c", "log_min_messages=warning"])

    def _query(self, sql: str, *, superuser: bool) -> tuple[bool, str]:
        """Run one statement with asyncpg (a real client call); (ok, first value or error)."""
        import asyncio

        import asyncpg

        async def run() -> str:
            if superuser:
                conn = await asyncpg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                                             database="postgres", timeout=3)
            else:
                conn = await asyncpg.connect(self.url(), timeout=3)
            try:
                return str(await conn.fetchval(sql))
            finally:
                await conn.close()

        try:
            return True, asyncio.run(run())
        except (OSError, asyncpg.PostgresError, ServiceError, TimeoutError) as exc:
            return False, f"{type(exc).__name__}: {exc}"

    def ready(self) -> Health:
        ok, detail = self._query("SELECT 1", superuser=True)
        return Health(ok, "accepting connections" if ok else detail)

    def health(self) -> Health:
        ok, detail = self._query("SELECT 1", superuser=False)
        if not ok:
            return Health(False, f"SELECT 1 as {self.role}: {detail}")
        return Health(True, f"SELECT 1 OK as {self.role}, database {self.database}")

    def after_ready(self, progress: Progress) -> None:
        ok, exists = self._query(f"SELECT count(*) FROM pg_roles WHERE rolname = '{self.role}'",
                                 superuser=True)
        if not ok:
            raise ServiceError(f"PostgreSQL: {exists}")
        verb = "ALTER" if exists == "1" else "CREATE"
        statements = [f"{verb} ROLE {self.role} LOGIN CREATEDB PASSWORD '{self.password}'"]
        ok, found = self._query(f"SELECT count(*) FROM pg_database WHERE datname = '{self.database}'",
                                superuser=True)
        if ok and found == "0":
            progress(f"creating PostgreSQL role and database {self.database}")
            statements.append(f"CREATE DATABASE {self.database} OWNER {self.role}")
        for sql in statements:
            ok, detail = self._query(sql, superuser=True)
            if not ok:
                raise ServiceError(f"PostgreSQL set-up ({sql.split(' PASSWORD')[0]}): {detail}")

    def version(self) -> str:
        try:
            res = subprocess.run([self._bin("postgres"), "--version"], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, ServiceError, subprocess.TimeoutExpired):
            return "not installed"
        words = res.stdout.split()  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        return words[2] if len(words) > 2 else "?"

    def address(self) -> str:
        return f"postgresql://127.0.0.1:{self.port}/{self.database}"


def _read_secret_file(path: Path) -> str:
    if not path.exists():
        raise ServiceError(f"{path} is missing: run `gridsentinel up` first to create the local stack")
    return path.read_text().strip()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between threads and processes (``flock`` on a file of the run folder)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def all_services(settings: Settings) -> list[Service]:
    return [Mosquitto(settings), Kafka(settings), InfluxDB(settings), PostgreSQL(settings)]
