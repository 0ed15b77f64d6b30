//! Python arguments of the daemon client as protocol values. Only type
//! dispatch happens here: the time grammar (integers in s/ms/µs/ns by
//! magnitude, ISO without a zone = UTC) and symbol lists (`"A,B"`, `"*"`) are
//! `ringfeed_client`'s, applied where the Rust client and the daemon apply them.

use crate::errors::{argument_type, invalid_argument};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyInt, PyString, PyType};
use ringfeed_client::TimeSpec;

static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A time argument as a [`TimeSpec`]: an `int` is [`TimeSpec::Int`] (unit by
/// magnitude), a `str` is [`TimeSpec::Text`], a `datetime` the exact instant
/// (naive = UTC), a `date` its `YYYY-MM-DD` text (UTC midnight).
pub(crate) fn time_spec(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<TimeSpec> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Err(type_error(obj, what));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<i64>()
            .map(TimeSpec::Int)
            .map_err(|_| invalid_argument(format!("{what}={obj} does not fit in 64 bits")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(TimeSpec::Text(s.to_cow()?.into_owned()));
    }
    // datetime before date: a datetime is a date.
    if obj.is_instance(DATETIME.import(py, "datetime", "datetime")?)? {
        return datetime_nanos(obj, what).map(TimeSpec::Nanos);
    }
    if obj.is_instance(DATE.import(py, "datetime", "date")?)? {
        return Ok(TimeSpec::Text(
            obj.call_method0("isoformat")?.extract::<String>()?,
        ));
    }
    Err(type_error(obj, what))
}

/// [`time_spec`] of an optional argument (`None` stays `None`).
pub(crate) fn opt_time_spec(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<TimeSpec>> {
    obj.filter(|o| !o.is_none())
        .map(|o| time_spec(o, what))
        .transpose()
}

fn type_error(obj: &Bound<'_, PyAny>, what: &str) -> PyErr {
    let ty = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    argument_type(format!(
        "{what} must be an int (Unix time in s, ms, us or ns, told apart by magnitude), a str \
         (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] in UTC, RFC 3339 with a zone), a datetime (naive = UTC) \
         or a date, not {ty}"
    ))
}

/// Exact ns since the epoch of a `datetime` (naive = UTC), in integer
/// arithmetic: `(dt - epoch)` as days, seconds and microseconds, plus the
/// `nanosecond` of types that have one (`pandas.Timestamp`).
fn datetime_nanos(dt: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    let py = dt.py();
    let datetime = py.import("datetime")?;
    let utc = datetime.getattr("timezone")?.getattr("utc")?;
    let aware = if dt.getattr("tzinfo")?.is_none() {
        let kw = PyDict::new(py);
        kw.set_item("tzinfo", &utc)?;
        dt.call_method("replace", (), Some(&kw))?
    } else {
        dt.clone()
    };
    let epoch = DATETIME
        .import(py, "datetime", "datetime")?
        .call1((1970, 1, 1, 0, 0, 0, 0, &utc))?;
    let delta = aware.call_method1("__sub__", (epoch,))?;
    let days: i64 = delta.getattr("days")?.extract()?;
    let seconds: i64 = delta.getattr("seconds")?.extract()?;
    let micros: i64 = delta.getattr("microseconds")?.extract()?;
    let nanos: i64 = match dt.getattr_opt("nanosecond")? {
        Some(n) => n.extract()?,
        None => 0,
    };
    days.checked_mul(86_400)
        .and_then(|s| s.checked_add(seconds))
        .and_then(|s| s.checked_mul(1_000_000))
        .and_then(|us| us.checked_add(micros))
        .and_then(|us| us.checked_mul(1_000))
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or_else(|| {
            invalid_argument(format!(
                "{what}={dt} is outside the range of nanosecond timestamps (1677-09-21 to 2262-04-11)"
            ))
        })
}

/// A symbols argument as given: `None` (every symbol), one `str` (which may
/// be `"A,B"` or `"*"`), or a sequence of `str`. Passed through as a list; the
/// protocol normalises it ([`ringfeed_client::protocol::symbol_list`]).
pub(crate) fn symbols(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    str_list(obj, "symbols", "(\"BTCUSDT\", \"BTCUSDT,ETHUSDT\", \"*\")")
        .map(Option::unwrap_or_default)
}

/// A `fields` argument: `None` (every column), one `str` or a sequence of `str`.
pub(crate) fn fields(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    str_list(obj, "fields", "(\"close\", [\"open\", \"close\"])")
}

/// `None`, one `str`, or a sequence of `str`, as a list.
fn str_list(
    obj: Option<&Bound<'_, PyAny>>,
    what: &str,
    example: &str,
) -> PyResult<Option<Vec<String>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(vec![s.to_cow()?.into_owned()]));
    }
    let wrong = || {
        let ty = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        argument_type(format!(
            "{what} must be a str {example}, a sequence of str, or None, not {ty}"
        ))
    };
    let items = obj.try_iter().map_err(|_| wrong())?;
    items
        .map(|item| {
            let item = item?;
            item.cast::<PyString>()
                .map_err(|_| wrong())?
                .to_cow()
                .map(|s| s.into_owned())
        })
        .collect::<PyResult<Vec<_>>>()
        .map(Some)
}
