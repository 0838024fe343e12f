"""The write key never leaves the process except in the Authorization header; plain
http:// only to loopback hosts; TLS always verified; every file that may hold email
addresses is created 0600.

Real commands run with a distinctive key, through successes and failures (a 401 from the
server, a server that echoes the key back, bad endpoints, mistakes on the command line, an
unexpected error with --debug); then every byte they printed or wrote is scanned.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import os
import re
import shutil
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli_process as cp
from emailsrc.app import app
from emailsrc.transport import EndpointError, HttpTransport, normalize_endpoint
from fake_segment import FakeSegment, Faults, Reply

pytestmark = pytest.mark.timeout(120)

KEY = "wk_LEAKCANARY_9f3b2d71c0a84e56b1d2e3f4a5b6c7d8"
# The key as it could appear: itself, in the Basic token, or split by a line wrap.
FORMS = (
    KEY.encode(),
    base64.b64encode(f"{KEY}:".encode()),
    base64.b64encode(KEY.encode()),
    KEY[8:24].encode(),
    KEY[:16].encode(),  # a key cut short, as a truncated message would leave it
    KEY[-16:].encode(),
)
PACKAGE = Path(__file__).resolve().parent.parent / "cli" / "emailsrc"


def leaks(data: bytes) -> list[bytes]:
    return [form for form in FORMS if form in data]


def scan_tree(root: Path) -> dict[str, list[bytes]]:
    """Every file under root (ledger, -wal, -shm, lock, rejects, output...) with a leak."""
    found: dict[str, list[bytes]] = {}
    for path in root.rglob("*"):
        if path.is_file() and (hits := leaks(path.read_bytes())):
            found[str(path)] = hits
    return found


def assert_no_leak(result: subprocess.CompletedProcess[str], root: Path) -> None:
    """Nothing printed, and nothing written where emailsrc writes (state, the default
    state home, --output and --rejects), holds the key."""
    assert not leaks(result.stdout.encode()), result.stdout
    assert not leaks(result.stderr.encode()), result.stderr
    for folder in ("state", "xdg-state", "out"):
        assert scan_tree(root / folder) == {}


def export_with_problems(path: Path) -> set[str]:
    """Good events plus a record that is rejected (so a rejects file is written)."""
    keys = cp.write_export(path, 300, pad=200)
    with path.open("a") as out:
        out.write('{"event_id": "broken", "metric": "delivered", "timestamp": "never"}\n')
    return cp.message_ids(keys, KEY)


def sending(tmp_path: Path, server: FakeSegment, *args: str) -> list[str]:
    return [
        "backfill",
        str(tmp_path / "export.jsonl"),
        "--endpoint",
        server.url,
        "--state",
        str(tmp_path / "state" / "ledger.sqlite3"),
        "--output",
        str(tmp_path / "out" / "batches.jsonl"),
        "--rejects",
        str(tmp_path / "out" / "rejects.jsonl"),
        "--rate",
        "0",
        *args,
    ]


@pytest.mark.parametrize("how", ["env", "flag", "flag="])
def test_a_run_with_failures_writes_the_key_nowhere(tmp_path: Path, how: str) -> None:
    expected = export_with_problems(tmp_path / "export.jsonl")
    with FakeSegment(KEY) as server:
        server.poison(sorted(expected)[3])  # one event fails: it goes to the rejects file
        server.script(503, 429, "drop")
        env = cp.emailsrc_env(tmp_path, write_key=None, **cp.FAST_RETRIES)
        key_args: list[str] = []
        if how == "env":
            env["SEGMENT_WRITE_KEY"] = KEY
        elif how == "flag":
            key_args = ["--write-key", KEY]
        else:
            key_args = [f"--write-key={KEY}"]
        result = cp.run(sending(tmp_path, server, "--json", *key_args), env)
        assert result.returncode == 1, result.stderr
        assert len(server.received) == len(expected) - 1
        # The human summary (the refused event fails again), a dry run and status print
        # too: scan them as well.
        human = cp.run(sending(tmp_path, server, *key_args), env)
        assert human.returncode == 1 and "HTTP 400" in human.stderr
        dry = cp.run(sending(tmp_path, server, "--dry-run", *key_args), env)
        status = cp.run(["status", "--state", str(tmp_path / "state" / "ledger.sqlite3")], env)
    report = cp.summary(result)
    assert report["rejects_path"] and report["output_path"]
    for each in (result, human, dry, status):
        assert_no_leak(each, tmp_path)


def test_a_ledger_left_by_kill_9_holds_no_key(tmp_path: Path) -> None:
    """Killed mid-run, the ledger's -wal and -shm are left as they were: scan them."""
    cp.write_export(tmp_path / "export.jsonl", 3000, pad=2000)
    with FakeSegment(KEY, faults=Faults(latency=0.05)) as server:
        process = cp.start(sending(tmp_path, server), cp.emailsrc_env(tmp_path, KEY))
        while server.accepted_events < 400 and process.poll() is None:
            time.sleep(0.005)
        process.kill()
        process.communicate(timeout=30)
    state = tmp_path / "state"
    assert (state / "ledger.sqlite3-wal").stat().st_size > 0
    assert scan_tree(state) == {} and scan_tree(tmp_path / "out") == {}


def test_a_401_stops_the_run_and_leaks_nothing(tmp_path: Path) -> None:
    export_with_problems(tmp_path / "export.jsonl")
    with FakeSegment("the-right-key") as server:
        result = cp.run(sending(tmp_path, server), cp.emailsrc_env(tmp_path, write_key=KEY))
        assert result.returncode == 4, result.stderr
        assert "write key was rejected (HTTP 401)" in result.stderr
        assert not server.received
    assert cp.ledger_ids(tmp_path / "state" / "ledger.sqlite3", "sent", KEY) == set()
    assert_no_leak(result, tmp_path)


def test_a_server_that_echoes_the_key_back_cannot_make_us_write_it(tmp_path: Path) -> None:
    """A proxy or a misconfigured host answers with the request's credentials in its
    error body: the reason kept for the failed events must not carry them."""
    cp.write_export(tmp_path / "export.jsonl", 600, pad=2000)  # three batches
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    body = f'{{"error": "no route", "key": "{KEY}", "authorization": "Basic {token}"}}'
    # The key again where the one-line reason is cut (200 characters): half of it must
    # not survive the cut either.
    cut = f'{{"error": "{"x" * 170}{KEY}"}}'
    with FakeSegment(KEY) as server:
        server.script(*[Reply(404, body=body.encode()), Reply(404, body=cut.encode())] * 2)
        result = cp.run(
            sending(tmp_path, server, "--concurrency", "1"), cp.emailsrc_env(tmp_path, KEY)
        )
        assert result.returncode == 1, result.stderr
        assert len(server.requests) >= 2  # both answers were given
    assert "HTTP 404" in result.stderr
    assert_no_leak(result, tmp_path)


@pytest.mark.parametrize(
    "endpoint",
    [
        f"https://{KEY}@api.segment.io",
        f"https://user:{KEY}@api.segment.io",
        f"http://{KEY}.example.com",
        "http://api.segment.io",
        "ftp://api.segment.io",
        f"https://api.segment.io/?key={KEY}",
        "not a url",
    ],
)
def test_bad_endpoints_are_refused_without_echoing_the_key(tmp_path: Path, endpoint: str) -> None:
    cp.write_export(tmp_path / "export.jsonl", 5)
    result = cp.run(
        [
            "backfill",
            str(tmp_path / "export.jsonl"),
            "--endpoint",
            endpoint,
            "--state",
            str(tmp_path / "state" / "ledger.sqlite3"),
        ],
        cp.emailsrc_env(tmp_path, KEY),
    )
    assert result.returncode == 2, result.stderr
    assert cp.no_traceback(result.stderr)
    assert_no_leak(result, tmp_path)


@pytest.mark.parametrize(
    "mistake",
    [
        ["backfill", KEY, "--dry-run"],  # the key where a file goes
        ["backfill", "{export}", "--state", "{tmp}/" + KEY, "--endpoint", "http://127.0.0.1:9"],
        ["backfill", "{export}", "--output", "{tmp}/" + KEY, "--dry-run"],  # a directory
        ["backfill", "{export}", "--rate", KEY],
        ["status", "--write-key", KEY],
        ["replay", "--since", KEY, "--dry-run"],
    ],
    ids=[
        "key-as-file",
        "key-in-state-path",
        "output-is-a-directory",
        "key-as-rate",
        "unknown-option",
        "key-as-since",
    ],
)
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_command_line_mistakes_do_not_print_the_key(
    tmp_path: Path, mistake: list[str], debug: bool
) -> None:
    export = tmp_path / "export.jsonl"
    cp.write_export(export, 5)
    (tmp_path / KEY).mkdir()
    args = [part.format(export=export, tmp=tmp_path) for part in mistake]
    result = cp.run(
        [*args, *(["--debug"] if debug and args[0] != "status" else [])],
        cp.emailsrc_env(tmp_path, KEY),
    )
    assert result.returncode in (2, 3, 5), result.stderr
    assert result.stderr.strip()
    assert_no_leak(result, tmp_path)


def test_an_unexpected_error_is_one_line_and_redacted(tmp_path: Path) -> None:
    """A bug surfaces as one line (exit 70) whose text is redacted, and --debug's
    traceback too; forced here by a sitecustomize that breaks the batcher."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import emailsrc.pipeline as p\n"
        "def broken(*a, **k):\n"
        f"    raise RuntimeError('boom near {KEY}')\n"
        "p.batches = broken\n"
    )
    cp.write_export(tmp_path / "export.jsonl", 5)
    for debug in ([], ["--debug"]):
        with FakeSegment(KEY) as server:
            env = cp.emailsrc_env(tmp_path, KEY, PYTHONPATH=str(hook))
            result = cp.run(sending(tmp_path, server, *debug), env)
        assert result.returncode == 70, result.stderr
        assert "unexpected error: RuntimeError: boom near" in result.stderr
        if debug:
            assert "Traceback" in result.stderr
        else:
            assert cp.no_traceback(result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1
        assert_no_leak(result, tmp_path)


def test_the_key_is_kept_out_of_reprs_and_the_ledger_options(tmp_path: Path) -> None:
    transport = HttpTransport("https://api.segment.io", KEY)
    try:
        assert KEY not in repr(transport)
    finally:
        transport.close()
    from emailsrc.secrets import WriteKey

    key = WriteKey(KEY)
    assert KEY not in repr(key) and KEY not in str(key) and KEY not in f"{key}"
    assert KEY not in key.masked and KEY not in key.fingerprint


# -- endpoints and TLS ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.segment.io",
        "http://events.eu1.segmentapis.com",
        "http://10.0.0.1",
        "http://0.0.0.0:8080",
        "http://127.0.0.1.nip.io",
        "http://localhost.example.com",
        "http://2130706433",
        "http://127.1",
        "HTTP://EXAMPLE.COM",
        "http://[::ffff:a00:1]",
        "http://[fe80::1]",
    ],
)
def test_plain_http_is_refused_for_hosts_that_are_not_loopback(url: str) -> None:
    with pytest.raises(EndpointError, match="only allowed for a loopback host"):
        normalize_endpoint(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9999", "http://localhost:1", "http://[::1]:8080", "http://127.8.9.10"]
)
def test_plain_http_is_allowed_for_loopback_hosts(url: str) -> None:
    assert normalize_endpoint(url).startswith("http://")


def test_plain_http_to_a_remote_host_is_refused_by_the_cli(tmp_path: Path) -> None:
    cp.write_export(tmp_path / "export.jsonl", 5)
    result = CliRunner().invoke(
        app,
        [
            "backfill",
            str(tmp_path / "export.jsonl"),
            "--endpoint",
            "http://api.segment.io",
            "--state",
            str(tmp_path / "ledger.sqlite3"),
        ],
        env={"SEGMENT_WRITE_KEY": KEY},
    )
    assert result.exit_code == 2
    assert "https://" in result.output
    assert not (tmp_path / "ledger.sqlite3").exists()  # refused before anything was opened


def test_the_http_client_always_verifies_tls() -> None:
    transport = HttpTransport("https://api.segment.io", KEY)
    try:
        pool = transport._client._transport._pool  # type: ignore[attr-defined]
        context: ssl.SSLContext = pool._ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert transport._client.follow_redirects is False
    finally:
        transport.close()


def test_no_code_path_turns_tls_verification_off() -> None:
    unsafe = re.compile(
        r"verify\s*=\s*(False|0|None)|CERT_NONE|check_hostname\s*=\s*False"
        r"|_create_unverified_context|PYTHONHTTPSVERIFY|follow_redirects\s*=\s*True"
    )
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert offenders == []


def _self_signed_certificate(cert_file: Path, key_file: Path) -> None:
    """A certificate for 127.0.0.1 signed by itself: with openssl, else cryptography."""
    openssl = shutil.which("openssl")
    if openssl is not None:
        made = subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key_file),
                "-out",
                str(cert_file),
            ],
            capture_output=True,
            check=False,
        )
        if made.returncode == 0:
            return
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.skip("neither openssl nor cryptography can make a test certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def self_signed_https(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate no CA signed; records each POST."""
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    _self_signed_certificate(cert_file, key_file)
    posts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(self.headers.get("Authorization", ""))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(
    tmp_path: Path, self_signed_https: tuple[str, list[str]]
) -> None:
    url, posts = self_signed_https
    export = tmp_path / "export.jsonl"
    expected = cp.message_ids(cp.write_export(export, 20), KEY)
    env = cp.emailsrc_env(
        tmp_path,
        KEY,
        **{**cp.FAST_RETRIES, "EMAILSRC_MAX_ATTEMPTS": "2"},
        PYTHONHTTPSVERIFY="0",  # the stdlib's switch to turn verification off: no effect
    )
    result = cp.run(
        [
            "backfill",
            str(export),
            "--endpoint",
            url,
            "--json",
            "--quiet",
            "--state",
            str(tmp_path / "ledger.sqlite3"),
        ],
        env,
    )
    assert result.returncode == 1, result.stderr
    report = cp.summary(result)
    assert report["events"]["sent"] == 0 and report["events"]["failed"] == len(expected)
    reasons = " ".join(report["events"]["failed_by_reason"]) + " ".join(report["problems"])
    assert "CERTIFICATE_VERIFY_FAILED" in reasons or "certificate" in reasons.lower()
    assert posts == []  # the key never went over the untrusted connection
    assert cp.ledger_ids(tmp_path / "ledger.sqlite3", "sent", KEY) == set()


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    """A redirect would carry the Authorization header elsewhere: it is a failure."""
    export = tmp_path / "export.jsonl"
    cp.write_export(export, 10)
    with FakeSegment(KEY) as server:
        server.script(*[Reply(307, {"Location": "http://127.0.0.1:9/v1/batch"})] * 3)
        result = cp.run(
            [
                "backfill",
                str(export),
                "--endpoint",
                server.url,
                "--json",
                "--quiet",
                "--state",
                str(tmp_path / "ledger.sqlite3"),
            ],
            cp.emailsrc_env(tmp_path, KEY, **cp.FAST_RETRIES),
        )
        assert result.returncode == 1
        assert len(server.requests) == 1  # refused once, not retried, not followed
        assert cp.summary(result)["events"]["failed_by_reason"] == {"HTTP 307": 10}


# -- file modes ----------------------------------------------------------------------------


def test_files_are_created_private_whatever_the_umask(tmp_path: Path) -> None:
    export_with_problems(tmp_path / "export.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "batches.jsonl"
    stale.write_text("an older file, world-readable\n")
    stale.chmod(0o644)
    with FakeSegment(KEY) as server:
        server.poison(sorted(cp.message_ids(["customerio:ev-0000004"], KEY))[0])
        result = subprocess.run(
            cp.command(*sending(tmp_path, server, "--json", "--quiet")),
            env=cp.emailsrc_env(tmp_path, KEY, **cp.FAST_RETRIES),
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: os.umask(0),
            check=False,
        )
    assert result.returncode == 1, result.stderr
    state = tmp_path / "state"
    written = [
        state / "ledger.sqlite3",
        state / "ledger.sqlite3.lock",
        out / "batches.jsonl",
        out / "rejects.jsonl",
    ]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for side in state.glob("ledger.sqlite3-*"):
        assert stat.S_IMODE(side.stat().st_mode) == 0o600, side


def test_default_rejects_file_is_private_and_in_a_private_directory(tmp_path: Path) -> None:
    export_with_problems(tmp_path / "export.jsonl")
    result = subprocess.run(
        cp.command("validate", str(tmp_path / "export.jsonl"), "--json", "--quiet"),
        env=cp.emailsrc_env(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0),
        check=False,
    )
    assert result.returncode == 1, result.stderr
    rejects = Path(cp.summary(result)["rejects_path"])
    assert rejects.is_relative_to(tmp_path / "xdg-state")
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    assert stat.S_IMODE(rejects.parent.stat().st_mode) & 0o077 == 0
