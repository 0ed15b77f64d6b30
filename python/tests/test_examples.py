"""examples/python: the publisher and the subscriber, run together; the
daemon demo's three roles against a real ringfeedd."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import ringfeed as rf
from conftest import REPO
from daemons import Daemon, minutes

EXAMPLES = REPO / "examples" / "python"


def test_publisher_and_subscriber() -> None:
    sub = subprocess.Popen([sys.executable, str(EXAMPLES / "subscriber.py"), "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pub = subprocess.run(
            [sys.executable, str(EXAMPLES / "publisher.py"), "20", "0.2"], capture_output=True, text=True, timeout=60
        )
        assert pub.returncode == 0, pub.stderr
        assert "published seq 20" in pub.stdout
        out, err = sub.communicate(timeout=60)
        assert sub.returncode == 0, err
        assert out.count("received") == 2
        assert "BTCUSDT" in out and "datetime[ns, UTC]" in out
    finally:
        sub.kill()


def test_daemon_demo_subscribes_feeds_and_queries(tmp_path: Path) -> None:
    """The roles scripts/demo.sh runs: a subscriber of the 1m and 5m topics, a
    feeder of live minutes, and a query of the history."""
    demo = str(EXAMPLES / "daemon_demo.py")
    d = Daemon(tmp_path, dataset="crypto")
    d.start()
    sub = None
    try:
        with rf.connect(d.sock) as c:
            c.append("crypto", minutes(["BTCUSDT", "ETHUSDT", "SOLUSDT"], 0, 2 * 1440))
            sub = subprocess.Popen([sys.executable, demo, "subscribe", d.sock], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            # Feed only once the subscriber reads both topics.
            deadline = time.monotonic() + 60
            while len(re.findall(r'^ringfeed_topic_readers\{topic="crypto/(1m|5m)"\} 1$', c.stat(), re.M)) < 2:
                assert sub.poll() is None, sub.communicate()
                assert time.monotonic() < deadline, "the subscriber did not attach"
                time.sleep(0.05)
        feed = subprocess.run([sys.executable, demo, "feed", d.sock, "3"], capture_output=True, text=True, timeout=60)
        assert feed.returncode == 0, feed.stderr
        query = subprocess.run([sys.executable, demo, "query", d.sock], capture_output=True, text=True, timeout=60)
        assert query.returncode == 0, query.stderr
        assert "python query 1h BTCUSDT (warm): 48 bars" in query.stdout, query.stdout
        assert "python query 1m all symbols: 8649 rows" in query.stdout, query.stdout
    finally:
        status = d.stop()
        if sub is not None:
            try:
                out, err = sub.communicate(timeout=30)
            finally:
                sub.kill()
    assert status == 0
    # The daemon's SIGTERM closed the topics: the subscriber saw every minute, then stopped.
    assert sub.returncode == 0, err
    seqs = [int(s) for s in re.findall(r"python 1m seq +(\d+) rows 3 ", out)]
    assert len(seqs) == 3 and seqs == list(range(seqs[0], seqs[0] + 3)), out
    assert "zero-copy True" in out and "python 5m seq" in out
