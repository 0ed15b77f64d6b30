"""ringfeedd's Arrow Flight face from plain pyarrow.flight: no ringfeed code
on the Flight side, answers compared with the local socket's."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow as pa
import pytest

import ringfeed as rf
from daemons import MIN, T0, minutes, run_daemon

flight = pytest.importorskip("pyarrow.flight")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def flight_daemon(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A daemon with Flight on loopback and small result batches: (socket, grpc location)."""
    port = _free_port()
    extra = f'chunk_rows = 500\n[flight]\nlisten = "127.0.0.1:{port}"'
    with run_daemon(tmp_path, extra) as sock:
        yield sock, f"grpc://127.0.0.1:{port}"


def _seed(sock: str) -> None:
    with rf.connect(sock) as c:
        assert c.append("demo", minutes(["AAA", "BBB", "CCC"], 0, 1500)) == 4500


def test_list_flights_names_every_stored_timeframe(flight_daemon: tuple[str, str]) -> None:
    sock, location = flight_daemon
    _seed(sock)
    client = flight.FlightClient(location)
    infos = list(client.list_flights())
    assert [tuple(i.descriptor.path) for i in infos] == [(b"demo", b"1m"), (b"demo", b"5m"), (b"demo", b"1h")]
    with rf.connect(sock) as c:
        for info in infos:
            tf = info.descriptor.path[1].decode()
            want = c.bars("demo", None, tf)
            table = client.do_get(info.endpoints[0].ticket).read_all()
            assert table.schema == info.schema, tf
            assert info.total_records == -1  # hot days only: not counted without reading them
            got = pl.from_arrow(table)
            assert isinstance(got, pl.DataFrame)
            assert got.equals(want), tf
    client.close()


def test_get_flight_info_and_do_get_equal_the_local_bars(flight_daemon: tuple[str, str]) -> None:
    sock, location = flight_daemon
    _seed(sock)
    query = {
        "dataset": "demo",
        "symbols": ["AAA", "CCC"],
        "timeframe": "1m",
        "start": "2021-01-01 01:00",
        "end": T0 + 1400 * MIN,
    }
    client = flight.FlightClient(location)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(json.dumps(query)))
    with rf.connect(sock) as c:
        want = c.bars("demo", ["AAA", "CCC"], "1m", start="2021-01-01 01:00", end=T0 + 1400 * MIN)
    assert info.total_records == want.height == 2 * 1340
    assert info.total_bytes > 0
    reader = client.do_get(info.endpoints[0].ticket)
    table = reader.read_all()
    assert table.schema == info.schema
    assert len(table.to_batches()) > 1  # a large result streams as several batches
    got = pl.from_arrow(table)
    assert isinstance(got, pl.DataFrame)
    assert got.equals(want)
    # The same JSON as a ticket, with the bars() fields (resampled, limited from the end).
    q2 = {"dataset": "demo", "symbols": "BBB", "timeframe": "15m", "fields": ["close"], "limit": 3, "from_end": True}
    got2 = pl.from_arrow(client.do_get(flight.Ticket(json.dumps(q2))).read_all())
    with rf.connect(sock) as c:
        want2 = c.bars("demo", "BBB", "15m", fields=["close"], limit=3, from_end=True)
    assert isinstance(got2, pl.DataFrame)
    assert got2.equals(want2)
    assert client.get_schema(flight.FlightDescriptor.for_command(json.dumps(q2))).schema == pa.schema(
        client.do_get(flight.Ticket(json.dumps(q2))).read_all().schema
    )
    client.close()


def test_actions_and_errors(flight_daemon: tuple[str, str]) -> None:
    sock, location = flight_daemon
    _seed(sock)
    client = flight.FlightClient(location)
    assert [a.type for a in client.list_actions()] == ["ping", "ready", "datasets", "changes", "stat", "delete", "write_down"]
    [pong] = list(client.do_action("ping"))
    assert json.loads(pong.body.to_pybytes()) == {"ok": True}
    [ready] = list(client.do_action(flight.Action("ready", json.dumps({"dataset": "demo"}).encode())))
    assert json.loads(ready.body.to_pybytes())["datasets"][0]["dataset"] == "demo"
    [stat] = list(client.do_action("stat"))
    assert "ringfeed_queries_total" in stat.body.to_pybytes().decode()
    # Errors: pyarrow's exception per gRPC code, with the daemon's message.
    with pytest.raises(KeyError, match="unknown dataset"):  # NOT_FOUND: pyarrow's ArrowKeyError
        client.do_get(flight.Ticket(json.dumps({"dataset": "nope", "timeframe": "1m"}))).read_all()
    with pytest.raises(pa.ArrowInvalid, match="invalid type"):  # INVALID_ARGUMENT
        client.do_get(flight.Ticket(b'{"dataset": 5, "timeframe": "1m"}')).read_all()
    with pytest.raises(pa.ArrowInvalid, match="not UTF-8"):
        client.do_get(flight.Ticket(b"\xff\xfe")).read_all()
    with pytest.raises(pa.ArrowInvalid, match="missing columns ts"):  # a DoPut of the wrong schema
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("demo"), pa.schema([("x", pa.int64())]))
        writer.write_batch(pa.record_batch([pa.array([1])], names=["x"]))
        writer.close()
    # Still serving, over Flight and over the socket.
    got = pl.from_arrow(client.do_get(flight.Ticket(json.dumps({"dataset": "demo", "timeframe": "1h"}))).read_all())
    with rf.connect(sock) as c:
        assert isinstance(got, pl.DataFrame)
        assert got.equals(c.bars("demo", None, "1h"))
    client.close()


def test_a_remote_address_needs_the_explicit_opt_in(tmp_path: Path) -> None:
    from daemons import Daemon

    d = Daemon(tmp_path, '[flight]\nlisten = "0.0.0.0:8815"')
    p = subprocess.run([str(d.exe), "--config", str(d.cfg)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "allow_unauthenticated_remote = true" in p.stderr, p.stderr


# ---- the remote client (rf.connect("grpc://...")) and tokens ----

TOKEN = "research-token-0123456789abcdef"


def _sha(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def auth_daemon(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A daemon whose Flight face needs a token: "research" reads ``demo`` only."""
    port = _free_port()
    extra = (f'chunk_rows = 500\n[flight]\nlisten = "127.0.0.1:{port}"\n'
             f'[[auth.tokens]]\nname = "research"\nsha256 = "{_sha(TOKEN)}"\nread = ["demo"]\n')
    with run_daemon(tmp_path, extra) as sock:
        yield sock, f"grpc://127.0.0.1:{port}"


def test_the_remote_client_answers_as_the_local_one(flight_daemon: tuple[str, str]) -> None:
    sock, location = flight_daemon
    _seed(sock)
    with rf.connect(sock) as local, rf.connect(location) as remote:
        assert isinstance(remote, rf.Client)  # the same type, for the same code
        remote.ping()
        for tf, kw in [("1m", {}), ("5m", {"symbols": "AAA,BBB"}), ("1h", {"limit": 1, "from_end": True}),
                       ("15m", {"start": T0 // 1_000_000 + 60 * 60_000, "end": "2021-01-01T12:00:00Z"})]:
            symbols = kw.pop("symbols", None)
            want = local.bars("demo", symbols, tf, **kw)  # type: ignore[arg-type]
            got = remote.bars("demo", symbols, tf, **kw)  # type: ignore[arg-type]
            assert got.equals(want), (tf, kw)
        assert remote.bars_arrow("demo", "CCC", "1h").num_rows == local.bars_arrow("demo", "CCC", "1h").num_rows
        assert remote.datasets()["demo"]["timeframes"] == local.datasets()["demo"]["timeframes"]
        assert remote.ready("demo")["datasets"][0]["symbols"] == ["AAA", "BBB", "CCC"]
        assert "ringfeed_" in remote.stat()
        # Writes: append (DoPut, acked once durable), delete, write_down; the local
        # client sees them.
        assert remote.append("demo", minutes(["XYZ"], 0, 90)) == 90
        assert local.bars("demo", "XYZ", "1h").height == 2
        assert "day" in remote.delete("demo", T0, T0 + 30 * MIN, symbol="XYZ")
        assert local.bars("demo", "XYZ", "1m").height == 60
        assert remote.write_down("demo", all=True)
        [ds] = local.ready("demo")["datasets"]
        assert all(t["hot_days"] == [] and t["cold_days"] >= 1 for t in ds["timeframes"]), ds
        assert local.bars("demo", "XYZ", "1m").height == 60
        # A bad row is refused whole, with the daemon's message; nothing is stored.
        bad = minutes(["BAD"], 0, 3).with_columns(pl.lit(-1.0).alias("high"))
        with pytest.raises(pa.ArrowInvalid):
            remote.append("demo", bad)
        assert "BAD" not in local.datasets()["demo"]["symbols"]
        # What Flight does not serve yet says so, instead of pretending.
        with pytest.raises(rf.remote.RemoteUnsupportedError, match="not served over Flight yet"):
            remote.trim("demo", T0)
        # A replay: the stored bars of BBB from minute 1490, then live ones, no gap, no
        # duplicate at the seam, other symbols left out.
        with remote.replay("demo", "1m", T0 // 1_000_000 + 1490 * 60_000, symbols="BBB") as rp:
            closes: list[float] = []
            first = rp.read(timeout=20)
            assert first is not None
            closes.extend(first.to_polars()["close"].to_list())
            local.append("demo", minutes(["AAA", "BBB"], 1500, 5))
            while len(closes) < 15:
                b = rp.read(timeout=20)
                assert b is not None, closes
                df = b.to_polars()
                assert set(df["symbol"].cast(pl.String).to_list()) == {"BBB"}
                closes.extend(df["close"].to_list())
            assert closes == [m + 0.5 for m in range(1490, 1505)]


def test_tokens_with_pyarrow_and_the_remote_client(auth_daemon: tuple[str, str]) -> None:
    sock, location = auth_daemon
    _seed(sock)
    # Plain pyarrow: no token → unauthenticated; the Basic handshake gives the bearer.
    client = flight.FlightClient(location)
    with pytest.raises(flight.FlightUnauthenticatedError, match="no token"):
        list(client.list_flights())
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("research", "wrong-token")
    header = client.authenticate_basic_token("research", TOKEN)
    options = flight.FlightCallOptions(headers=[header])
    infos = list(client.list_flights(options=options))
    assert {i.descriptor.path[0] for i in infos} == {b"demo"}
    # Out of scope: permission denied, naming the fix.
    with pytest.raises(flight.FlightUnauthorizedError, match="`admin` list"):
        list(client.do_action(flight.Action("stat", b""), options))
    client.close()
    # The remote client sends the token; a wrong one is refused; writes need scopes.
    with rf.connect(location, token=TOKEN) as remote, rf.connect(sock) as local:
        assert remote.bars("demo", "AAA", "5m").equals(local.bars("demo", "AAA", "5m"))
        with pytest.raises(flight.FlightUnauthorizedError, match="`write` list"):
            remote.append("demo", minutes(["NEW"], 0, 2))
        with pytest.raises(flight.FlightUnauthorizedError, match="`admin` list"):
            remote.delete("demo", T0, T0 + MIN)
        assert "NEW" not in local.datasets()["demo"]["symbols"]
    with rf.connect(location, token="nope") as bad:
        with pytest.raises(flight.FlightUnauthenticatedError, match="unknown token"):
            bad.bars("demo", "AAA", "5m")


def test_the_cpp_flight_example_reads_the_same_rows(auth_daemon: tuple[str, str], tmp_path: Path) -> None:
    """examples/cpp/flight_client.cpp, built against the Arrow C++ inside the pyarrow
    wheel, queries with the token and sums the same closes as the local client."""
    import shutil

    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler (scripts/test_cpp.sh installs g++)")
    sock, location = auth_daemon
    _seed(sock)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([str(root / "scripts" / "build_flight_cpp.sh"), str(tmp_path / "cpp")],
                         capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHON": __import__("sys").executable})
    assert out.returncode == 0, out.stderr
    exe = out.stdout.strip().splitlines()[-1]
    query = json.dumps({"dataset": "demo", "symbols": ["AAA", "BBB"], "timeframe": "5m"})
    run = subprocess.run([exe, location, query, TOKEN], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    with rf.connect(sock) as c:
        want = c.bars("demo", "AAA,BBB", "5m")
    assert int(lines["rows"]) == want.height
    assert abs(float(lines["close_sum"]) - float(want["close"].sum())) < 1e-6
    # Without the token the example fails with the server's message.
    denied = subprocess.run([exe, location, query], capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "no token" in denied.stderr


def _certs(d: Path) -> None:
    """A CA and a localhost server certificate, with the openssl command."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    run("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=client")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "client.pem", "-days", "2", "-extfile", "client.ext")


def _tls_setup(tmp_path: Path, mutual: bool) -> tuple[Path, int, str]:
    """Certificates in ``tmp_path/certs`` and the config of a TLS daemon with a token
    (and, ``mutual``, the client CA): (certs dir, port, config lines). Skips without
    openssl."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make test certificates (scripts/common.sh installs it)")
    certs = tmp_path / "certs"
    certs.mkdir()
    _certs(certs)
    port = _free_port()
    client_ca = f'client_ca = "{certs / "ca.pem"}"\n' if mutual else ""
    extra = (f'chunk_rows = 500\n[flight]\nlisten = "127.0.0.1:{port}"\n'
             f'[flight.tls]\ncert = "{certs / "server.pem"}"\nkey = "{certs / "server.key"}"\n{client_ca}'
             f'[[auth.tokens]]\nname = "research"\nsha256 = "{_sha(TOKEN)}"\nread = ["*"]\n')
    return certs, port, extra


def test_tls_with_pyarrow_and_the_remote_client(tmp_path: Path) -> None:
    certs, port, extra = _tls_setup(tmp_path, mutual=False)
    ca = (certs / "ca.pem").read_bytes()
    with run_daemon(tmp_path, extra) as sock:
        _seed(sock)
        location = f"grpc+tls://localhost:{port}"
        client = flight.FlightClient(location, tls_root_certs=ca)
        options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
        assert {i.descriptor.path[0] for i in client.list_flights(options=options)} == {b"demo"}
        client.close()
        # Without the CA the server's certificate is not trusted.
        untrusting = flight.FlightClient(location)
        with pytest.raises(flight.FlightUnavailableError):
            list(untrusting.list_flights(options=options))
        untrusting.close()
        with rf.connect(location, token=TOKEN, tls_root_certs=ca) as remote, rf.connect(sock) as local:
            assert remote.bars("demo", "BBB", "1h").equals(local.bars("demo", "BBB", "1h"))


def test_asyncio_over_flight(auth_daemon: tuple[str, str]) -> None:
    """connect_async with a grpc URL: awaited queries and an ``async for`` over a remote
    replay, equal to the local client's answers."""
    import asyncio

    from ringfeed.aio import connect_async

    sock, location = auth_daemon
    _seed(sock)

    async def main() -> list[float]:
        async with await connect_async(location, token=TOKEN) as ac:
            with rf.connect(sock) as local:
                got = await ac.bars("demo", "AAA", "5m")
                assert got.equals(local.bars("demo", "AAA", "5m"))
                closes: list[float] = []
                async with await ac.replay("demo", "1m", T0 // 1_000_000 + 1495 * 60_000, symbols="CCC") as r:
                    async for b in r:
                        closes.extend(b.to_polars()["close"].to_list())
                        if len(closes) == 5:
                            break
                return closes

    assert asyncio.run(main()) == [m + 0.5 for m in range(1495, 1500)]


def test_mutual_tls_with_the_remote_client(tmp_path: Path) -> None:
    certs, port, extra = _tls_setup(tmp_path, mutual=True)
    ca = (certs / "ca.pem").read_bytes()
    with run_daemon(tmp_path, extra) as sock:
        _seed(sock)
        location = f"grpc+tls://localhost:{port}"
        with rf.connect(location, token=TOKEN, tls_root_certs=ca,
                        cert_chain=(certs / "client.pem").read_bytes(),
                        private_key=(certs / "client.key").read_bytes()) as remote, rf.connect(sock) as local:
            assert remote.bars("demo", "AAA", "1h").equals(local.bars("demo", "AAA", "1h"))
        # Without a client certificate the TLS handshake is refused.
        with rf.connect(location, token=TOKEN, tls_root_certs=ca) as anonymous:
            with pytest.raises(flight.FlightUnavailableError):
                anonymous.bars("demo", "AAA", "1h")
