"""`ringfeed.spark` imports without pyspark (the wheel does not need it), and registering
without pyspark 4 says what to install. The Spark reads themselves are in tests/lake."""

import sys

import pytest

import ringfeed.spark


def test_register_without_pyspark_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pyspark" or m.startswith("pyspark.")]:
        monkeypatch.delitem(sys.modules, name)
    # A None entry makes `import pyspark` fail, as on a machine without it.
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(ImportError, match=r"pyspark 4\.0 or later.*pip install"):
        ringfeed.spark.register(object())


def test_the_module_names_its_data_source() -> None:
    assert callable(ringfeed.spark.register)
    assert "ringfeed_lake" in (ringfeed.spark.__doc__ or "") + (ringfeed.spark.register.__doc__ or "")
