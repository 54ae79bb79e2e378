"""A private Dovecot IMAP server for tests: the ``dovecot`` fixture.

Each test that asks for ``dovecot`` gets its own server: its own configuration, run
directory, state directory and log under a fresh temporary folder, its own free ports on
127.0.0.1 (one implicit-TLS ``imaps`` listener and one plain listener that requires
STARTTLS), TLS with a self-signed certificate made for the test (``cryptography``), one
user from a passwd-file, and Maildir storage in the same folder. Nothing of the system's
Dovecot is used but its binaries (``dovecot -c CONF -F`` never reads /etc/dovecot, and a
system service listening on 143/993 does not matter). The server is stopped when the test
ends, pass or fail.

Import the fixture by name in a test module::

    from tests.support.dovecot import dovecot  # noqa: F401

Tests are skipped (with the reason) only when the ``dovecot`` binary is not installed:
``apt-get install -y --no-install-recommends dovecot-imapd``.

Runs as root or as any other user. As root, Dovecot's helper processes run as the
``dovecot``/``dovenull`` users the Debian package creates, and mail is stored under the
``nobody`` user (Dovecot refuses mail access as uid 0); the temporary folder is created
directly under the system temp directory so that those users can reach it. As any other
user, every process runs as that user (Dovecot's "rootless" setup: no chroot).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import imaplib
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.net import free_ports

USERNAME = "claims"
PASSWORD = "s3cret-Test-pass"
HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
GRACE_S = 1.5


def _binary(name: str) -> str | None:
    """``name`` on PATH, or in the sbin folders a non-root PATH often lacks."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/usr/local/sbin:/sbin"
    return shutil.which(name, path=path)


def make_self_signed_cert(cert_path: Path, key_path: Path) -> None:
    """A self-signed server certificate for ``localhost`` and 127.0.0.1 (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "claims-ocr test IMAP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


@dataclass
class _Identity:
    """Which users Dovecot's processes and the mail run as."""

    internal_user: str
    internal_group: str
    login_user: str
    mail_uid: int
    mail_gid: int
    rootless: bool


def _identity() -> _Identity:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(os.getegid()).gr_name
        return _Identity(me.pw_name, group, me.pw_name, me.pw_uid, me.pw_gid, rootless=True)

    def user(name: str, fallback: str) -> str:
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            return fallback

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:  # pragma: no cover - every Debian has it
        pytest.skip("running as root, but there is no 'nobody' user to store mail as")
    internal = user("dovecot", "nobody")
    try:
        group = grp.getgrnam("dovecot").gr_name
    except KeyError:
        group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
    login = user("dovenull", internal)
    return _Identity(internal, group, login, nobody.pw_uid, nobody.pw_gid, rootless=False)


@dataclass
class DovecotServer:
    """One running private Dovecot; see the module docstring."""

    root: Path
    port: int  # implicit TLS (imaps)
    starttls_port: int  # plain, STARTTLS required before login
    cert_path: Path
    identity: _Identity
    host: str = HOST
    username: str = USERNAME
    password: str = PASSWORD
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- paths --------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "dovecot.log"

    @property
    def maildir(self) -> Path:
        """The test user's Maildir (INBOX is its top level)."""
        return self.root / "mail" / self.username

    # -- TLS and clients ----------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def client(self, folder: str | None = "INBOX") -> imaplib.IMAP4_SSL:
        """A logged-in imaplib client (with ``folder`` selected unless None)."""
        conn = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=self.ssl_context(), timeout=10)
        conn.login(self.username, self.password)
        if folder is not None:
            typ, data = conn.select(_quote(folder))
            assert typ == "OK", data
        return conn

    def settings_env(self) -> dict[str, str]:
        """The settings that point ``MAIL_SOURCE=imap`` at this server over TLS."""
        return {
            "MAIL_SOURCE": "imap",
            "IMAP_HOST": self.host,
            "IMAP_PORT": str(self.port),
            "IMAP_USER": self.username,
            "IMAP_PASSWORD": self.password,
            "IMAP_CA_FILE": str(self.cert_path),
        }

    def append(
        self,
        data: bytes,
        *,
        folder: str = "INBOX",
        when: dt.datetime | None = None,
        flags: str = "",
    ) -> None:
        """IMAP APPEND ``data`` to ``folder`` with INTERNALDATE ``when`` (default now)."""
        conn = self.client(folder=None)
        try:
            stamp = imaplib.Time2Internaldate(when or dt.datetime.now(dt.UTC))
            typ, resp = conn.append(_quote(folder), f"({flags})" if flags else None, stamp, data)
            assert typ == "OK", resp
        finally:
            conn.logout()

    def create_folder(self, folder: str) -> None:
        conn = self.client(folder=None)
        try:
            typ, resp = conn.create(_quote(folder))
            assert typ == "OK", resp
        finally:
            conn.logout()

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags and keywords of every message in ``folder``."""
        conn = self.client(folder)
        try:
            typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
            assert typ == "OK", data
            out: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                uid_part = item.split(b"UID ", 1)[1].split()[0].rstrip(b")")
                flag_part = item.split(b"FLAGS (", 1)[1].split(b")", 1)[0]
                out[int(uid_part)] = {f.decode() for f in flag_part.split()}
            return out
        finally:
            conn.logout()

    def uidvalidity(self, folder: str = "INBOX") -> int:
        conn = self.client(folder=None)
        try:
            typ, data = conn.status(_quote(folder), "(UIDVALIDITY)")
            assert typ == "OK", data
            return int(data[0].split(b"UIDVALIDITY ", 1)[1].split(b")", 1)[0])
        finally:
            conn.logout()

    # -- lifecycle ----------------------------------------------------------------------

    def write_config(self) -> None:
        ident = self.identity
        login_chroot = "" if ident.rootless else "login"
        conf = f"""\
# private test instance (tests/support/dovecot.py); never reads /etc/dovecot
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {self.host}
shutdown_clients = yes
default_internal_user = {ident.internal_user}
default_internal_group = {ident.internal_group}
default_login_user = {ident.login_user}
first_valid_uid = {ident.mail_uid}
last_valid_uid = {ident.mail_uid}
first_valid_gid = 0

ssl = required
ssl_cert = <{self.cert_path}
ssl_key = <{self.root}/tls/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/passwd
}}
mail_location = maildir:{self.root}/mail/%u
mail_uid = {ident.mail_uid}
mail_gid = {ident.mail_gid}

service imap-login {{
  chroot = {login_chroot}
  inet_listener imap {{
    port = {self.starttls_port}
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
        self.conf_path.write_text(conf)
        (self.root / "passwd").write_text(
            f"{self.username}:{{PLAIN}}{self.password}:{ident.mail_uid}:{ident.mail_gid}"
            f"::{self.root}/home/{self.username}::\n"
        )

    def start(self) -> None:
        assert self._proc is None, "already running"
        dovecot = _binary("dovecot")
        assert dovecot is not None
        self.log_path.parent.mkdir(exist_ok=True)
        with open(self.root / "log" / "stderr.log", "ab") as stderr:
            self._proc = subprocess.Popen(
                [dovecot, "-c", str(self.conf_path), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"dovecot exited with {rc} on start:\n{self.logs()}")
            if _accepts(self.host, self.port) and _accepts(self.host, self.starttls_port):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"dovecot did not listen within {START_TIMEOUT_S}s:\n{self.logs()}"
                )
            time.sleep(0.05)

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the server: SIGTERM first when ``graceful``, then SIGKILL to what is left.

        Every IMAP command's changes are on disk when it completes (Maildir file names,
        index), so SIGTERM only gets a short while: Dovecot's master can take seconds to
        collect its helpers. It runs in its own session (``start_new_session``), so its
        process group holds exactly the processes it started; killing the group ends them.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None and graceful:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _accepts(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def logs(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.root / "log" / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def doveadm(self, *args: str) -> str:
        doveadm = _binary("doveadm")
        assert doveadm is not None, "doveadm is not installed"
        done = subprocess.run(
            [doveadm, "-c", str(self.conf_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"doveadm {args} failed: {done.stderr}"
        return done.stdout

    def reset_uidvalidity(self, folder: str = "INBOX") -> None:
        """What a server rebuild does: new UIDVALIDITY, every message numbered again.

        The server is stopped, the folder's Dovecot index and uidlist are deleted (the
        messages and their keyword letters in the Maildir file names stay, with the
        ``dovecot-keywords`` list that names those letters), and the server restarted. A
        fresh UIDVALIDITY is then set explicitly, so it differs from the old one even
        within the same second.
        """
        old = self.uidvalidity(folder)
        self.stop()
        box = self.maildir if folder == "INBOX" else self.maildir / f".{folder}"
        for path in box.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        self.start()
        new = old + 1000
        self.doveadm("mailbox", "update", "-u", self.username, "--uid-validity", str(new), folder)
        assert self.uidvalidity(folder) == new


def _quote(folder: str) -> str:
    """imaplib sends mailbox names as they are: quote them (for names with spaces)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A running private Dovecot with one user and an empty INBOX; stopped afterwards."""
    if _binary("dovecot") is None:
        pytest.skip(
            "the dovecot binary is not installed "
            "(apt-get install -y --no-install-recommends dovecot-imapd)"
        )
    ident = _identity()
    # Under the system temp dir, not pytest's tmp_path: as root, pytest's folder is 0700
    # and Dovecot's unprivileged processes could not reach the Maildir inside it.
    root = Path(tempfile.mkdtemp(prefix="claims-dovecot-"))
    root.chmod(0o755)
    try:
        (root / "tls").mkdir()
        cert, key = root / "tls" / "cert.pem", root / "tls" / "key.pem"
        make_self_signed_cert(cert, key)
        for sub in ("mail", "home"):
            (root / sub).mkdir()
            (root / sub / USERNAME).mkdir(mode=0o700)
            if os.geteuid() == 0:
                os.chown(root / sub, ident.mail_uid, ident.mail_gid)
                os.chown(root / sub / USERNAME, ident.mail_uid, ident.mail_gid)
        ports = free_ports(2)
        server = DovecotServer(
            root=root,
            port=ports[0],
            starttls_port=ports[1],
            cert_path=cert,
            identity=ident,
        )
        server.write_config()
        server.start()
        try:
            yield server
        finally:
            server.stop(graceful=False)  # the folder goes next: nothing to flush
    finally:
        shutil.rmtree(root, ignore_errors=True)
