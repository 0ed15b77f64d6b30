"""examples/python: the publisher and the subscriber, run together."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

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
