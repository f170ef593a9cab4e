"""Both listeners (S3 and admin) bound what one client can hold: a request whose
header section does not arrive in time and a connection left idle are closed
within the configured bound, and connections beyond the configured cap are
answered 503 (S3's SlowDown XML; the admin API's JSON error) and closed, while
the server goes on answering everyone else."""

from __future__ import annotations

import json
import socket
import time

import pytest

SHORT = """
header_read_timeout_secs = 2
idle_timeout_secs = 3
"""


def ports(srv) -> dict[str, int]:
    return {"s3": srv.s3_port, "admin": srv.admin_port}


def closed_within(sock: socket.socket, bound: float) -> float | None:
    """Reads until the server closes the connection; returns after how long, or None if it
    was still open after `bound` seconds."""
    start = time.monotonic()
    sock.settimeout(bound)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except socket.timeout:
        return None


def request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, bytes]:
    """Status and body of one response (Content-Length bodies only)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"not an HTTP response: {data[:200]!r}"
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), body


PATHS = {"s3": "/", "admin": "/v1/health"}


@pytest.mark.parametrize("listener", ["s3", "admin"])
def test_a_half_sent_request_header_is_dropped_within_the_bound(private_server_factory, listener):
    srv = private_server_factory(config=SHORT)
    port = ports(srv)[listener]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {PATHS[listener]} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
        after = closed_within(s, 15)
    assert after is not None, f"the {listener} listener kept a half-sent header open for 15 s (bound: 2 s)"
    # The server still answers a whole request.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request(port, PATHS[listener]))
        status, _ = read_response(s)
        assert status in (200, 403), status


@pytest.mark.parametrize("listener", ["s3", "admin"])
def test_an_idle_keep_alive_connection_is_closed_within_the_bound(private_server_factory, listener):
    srv = private_server_factory(config=SHORT)
    port = ports(srv)[listener]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request(port, PATHS[listener]))
        status, _ = read_response(s)
        assert status in (200, 403), status
        after = closed_within(s, 15)
    assert after is not None, f"the {listener} listener kept an idle connection open for 15 s (bound: 3 s)"


# The harness's readiness check may leave a keep-alive connection open: the header-read
# timeout closes it (and would close the connections the test holds after 5 s).
CAPPED = """
max_connections = 3
header_read_timeout_secs = 5
"""


def fill(port: int, path: str, cap: int) -> tuple[list[socket.socket], int]:
    """Opens connections, each served one request and kept open, until one is refused or
    `cap` are open; returns them and the status of the last."""
    held = []
    for _ in range(cap):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(s)
        s.sendall(request(port, path))
        status, _ = read_response(s)
        if status == 503:
            return held, status
    return held, 200


@pytest.mark.parametrize("listener", ["s3", "admin"])
def test_connections_beyond_the_cap_are_answered_503_and_the_server_goes_on(private_server_factory, listener):
    srv = private_server_factory(config=CAPPED)
    port = ports(srv)[listener]
    path = PATHS[listener]
    # A connection of the readiness check may still hold a slot until the header-read timeout
    # closes it: fill the cap again until the three served are ours.
    deadline = time.monotonic() + 30
    while True:
        held, status = fill(port, path, 3)
        if status != 503:
            break
        for s in held:
            s.close()
        assert time.monotonic() < deadline, "the server never served three connections at once (cap 3)"
        time.sleep(0.5)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra.sendall(request(port, path))
            status, body = read_response(extra)
            assert status == 503, f"the connection beyond the cap got {status}: {body[:300]!r}"
            if listener == "s3":
                assert b"<Code>SlowDown</Code>" in body, body
            else:
                assert json.loads(body)["error"] == "unavailable", body
            assert closed_within(extra, 5) is not None, "a refused connection is closed"
        # The held connections are still served.
        held[0].sendall(request(port, path))
        assert read_response(held[0])[0] in (200, 403)
    finally:
        for s in held:
            s.close()
    # Once they are gone, new connections are served again.
    deadline = time.monotonic() + 15
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request(port, path))
            status, _ = read_response(s)
        if status != 503:
            break
        assert time.monotonic() < deadline, "the server refuses connections after the held ones closed"
        time.sleep(0.2)
    assert status in (200, 403), status


def test_a_client_that_stops_reading_its_response_is_cut_off_after_the_idle_timeout(private_server_factory):
    """The header-read timeout does not cover a response the client stops reading: the idle
    timeout does (no byte moved for 3 s while no request is being handled)."""
    import os

    srv = private_server_factory(config=SHORT)
    s3 = srv.client()
    s3.create_bucket(Bucket="slow-reader")
    body = os.urandom(32 * 1024 * 1024)
    s3.put_object(Bucket="slow-reader", Key="big", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "slow-reader", "Key": "big"}, ExpiresIn=600)
    path = url[len(srv.s3_url):]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.s3_port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.s3_port}\r\n\r\n".encode())
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        time.sleep(3 + 5)  # the idle timeout, and time for the server to notice
        got = len(first)
        s.settimeout(10)
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    assert got < len(body), "the server kept a connection whose client stopped reading for 8 s (idle timeout 3 s)"
