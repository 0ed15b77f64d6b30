//! A bar batch over the plain columns C++ passes to `write_bars` and
//! `append_bars`, borrowing them for the length of the call (no copy).

use crate::error::Error;
use crate::ffi::ErrorKind;
use arrow_array::builder::make_view;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use arrow_buffer::{ArrowNativeType, Buffer, ScalarBuffer};
use arrow_schema::{DataType, SchemaRef};
use std::ptr::NonNull;
use std::sync::Arc;

/// The plain columns of a bar batch, as C++ passes them (symbols flattened
/// into one UTF-8 buffer plus offsets).
pub(crate) struct BarColumns<'a> {
    pub(crate) ts: &'a [i64],
    pub(crate) symbol_data: &'a [u8],
    pub(crate) symbol_offsets: &'a [u32],
    pub(crate) open: &'a [f64],
    pub(crate) high: &'a [f64],
    pub(crate) low: &'a [f64],
    pub(crate) close: &'a [f64],
    pub(crate) volume: &'a [f64],
}

/// Builds a record batch of `schema` (the bar schema, or one with its names
/// and types) over `cols` without copying them, and hands it to `f`, which
/// must not keep any of its buffers (it writes or encodes them). `views` is
/// scratch space for the symbol views.
pub(crate) fn with_bar_batch<T>(
    schema: SchemaRef,
    cols: BarColumns<'_>,
    views: &mut Vec<u128>,
    f: impl FnOnce(&RecordBatch) -> Result<T, Error>,
) -> Result<T, Error> {
    let n = cols.ts.len();
    let lens = [
        ("ts", n),
        ("symbol", cols.symbol_offsets.len().saturating_sub(1)),
        ("open", cols.open.len()),
        ("high", cols.high.len()),
        ("low", cols.low.len()),
        ("close", cols.close.len()),
        ("volume", cols.volume.len()),
    ];
    if lens.iter().any(|&(_, k)| k != n) || cols.symbol_offsets.is_empty() {
        let list: Vec<String> = lens.iter().map(|(c, k)| format!("{c}={k}")).collect();
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("bar columns have different lengths ({})", list.join(", ")),
        ));
    }
    let tz = match schema.field(0).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    // Declared first, dropped last: checks that no borrowed buffer survives
    // this call. The columns borrow the C++ vectors (valid for the call).
    let scope = BorrowScope(Arc::new(Borrowed));
    // SAFETY: the arrays below and `batch` are locals of this function,
    // dropped before it returns (and before `scope`); `f` copies or encodes
    // their bytes and keeps none of them (its contract).
    let (fc, ts, sym) = unsafe {
        let fc = |v: &[f64]| -> ArrayRef { Arc::new(Float64Array::new(borrow(v, &scope), None)) };
        let ts = TimestampNanosecondArray::new(borrow(cols.ts, &scope), None).with_timezone_opt(tz);
        let sym = string_views(cols.symbol_data, cols.symbol_offsets, views, &scope)?;
        (fc, ts, sym)
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts),
        Arc::new(sym),
        fc(cols.open),
        fc(cols.high),
        fc(cols.low),
        fc(cols.close),
        fc(cols.volume),
    ];
    let batch = RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::new(ErrorKind::SchemaMismatch, e.to_string()))?;
    f(&batch)
}

/// The owner of Arrow buffers that borrow the caller's memory for the length
/// of one bridge call (`write_bars`): no copy and no allocation per column.
pub(crate) struct Borrowed;

/// Checks, when the call ends (normally or by unwinding), that no buffer
/// borrowing the caller's memory is still alive. Declare it before the
/// borrowing arrays so that it is dropped after them.
pub(crate) struct BorrowScope(pub(crate) Arc<Borrowed>);

impl Drop for BorrowScope {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) != 1 {
            // Something kept a buffer over memory C++ owns and may free: going
            // on could read freed memory later. Nothing in the write path does
            // this; stop loudly if that ever changes.
            eprintln!("ringfeed-cpp: a borrowed buffer outlived write_bars; aborting");
            std::process::abort();
        }
    }
}

/// Wraps `v` as an Arrow buffer without copying (copies if `v` is misaligned).
///
/// # Safety
/// The result, and every clone of it, must be dropped before `v`'s memory is
/// freed or written: `scope` checks that when it is dropped.
pub(crate) unsafe fn borrow<T: ArrowNativeType>(v: &[T], scope: &BorrowScope) -> ScalarBuffer<T> {
    match NonNull::new(v.as_ptr().cast_mut().cast::<u8>()) {
        Some(p) if p.as_ptr().align_offset(std::mem::align_of::<T>()) == 0 => {
            // SAFETY: p..p+size_of_val(v) is `v`'s memory, readable for the
            // call; the caller keeps every clone from outliving it.
            let b = unsafe {
                Buffer::from_custom_allocation(p, std::mem::size_of_val(v), scope.0.clone())
            };
            ScalarBuffer::new(b, 0, v.len())
        }
        _ => ScalarBuffer::from(v.to_vec()),
    }
}

/// A `Utf8View` array of the strings `data[offsets[i]..offsets[i + 1]]`.
/// Strings of up to 12 bytes live in their views; longer ones point into
/// `data`, borrowed. One UTF-8 check over `data`, plus a char-boundary check
/// per offset, instead of one check per value. `views` is scratch space.
///
/// # Safety
/// As for [`borrow`]: the result must not outlive `data` or `views`' contents.
pub(crate) unsafe fn string_views(
    data: &[u8],
    offsets: &[u32],
    views: &mut Vec<u128>,
    scope: &BorrowScope,
) -> Result<StringViewArray, Error> {
    let bad = |what: String| Error::new(ErrorKind::InvalidArgument, format!("write_bars: {what}"));
    let text = std::str::from_utf8(data).map_err(|e| bad(format!("symbols are not UTF-8: {e}")))?;
    if offsets.first() != Some(&0) {
        return Err(bad("symbol offsets must start at 0".into()));
    }
    views.clear();
    views.reserve(offsets.len() - 1);
    let mut long = false;
    for (j, w) in offsets.windows(2).enumerate() {
        let (b, e) = (w[0] as usize, w[1] as usize);
        if b > e || e > data.len() || !text.is_char_boundary(b) || !text.is_char_boundary(e) {
            return Err(bad(format!(
                "symbol of row {j} has invalid offsets {b}..{e} (data has {} bytes)",
                data.len()
            )));
        }
        long |= e - b > 12;
        views.push(make_view(&data[b..e], 0, w[0]));
    }
    // SAFETY: forwarded from this function's contract.
    let view_buf = unsafe { borrow(views.as_slice(), scope) };
    let buffers: Vec<Buffer> = if long {
        // SAFETY: forwarded from this function's contract.
        vec![unsafe { borrow(data, scope) }.into_inner()]
    } else {
        Vec::new()
    };
    // SAFETY: every view was made by `make_view` from `data[b..e]`, a range
    // checked to lie inside `data` (buffer 0 whenever a view is not inline)
    // on UTF-8 char boundaries of a string checked to be UTF-8; no nulls.
    // That is everything `StringViewArray::try_new` would validate.
    Ok(unsafe { StringViewArray::new_unchecked(view_buf, buffers.into(), None) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_views_from_flat_symbols() {
        let scope = BorrowScope(Arc::new(Borrowed));
        let mut views = Vec::new();
        let mut sv = |data: &[u8], offsets: &[u32]| {
            // SAFETY: the arrays are dropped inside this test, before `data` and `views`.
            unsafe { string_views(data, offsets, &mut views, &scope) }.map(|a| {
                // Copy out, so the borrowed array does not outlive this call.
                StringViewArray::from_iter_values(a.iter().map(|v| v.unwrap().to_string()))
            })
        };
        let data = "S0a symbol longer than twelve bytesé".as_bytes();
        let a = sv(data, &[0, 2, 35, 35, 37]).unwrap();
        assert_eq!(a.value(0), "S0");
        assert_eq!(a.value(1), "a symbol longer than twelve bytes");
        assert_eq!(a.value(2), "");
        assert_eq!(a.value(3), "é");
        // Offsets inside a UTF-8 sequence, past the end, or not from 0.
        assert!(sv(data, &[0, 36]).is_err());
        assert!(sv(data, &[0, 99]).is_err());
        assert!(sv(data, &[1, 2]).is_err());
        assert!(sv(&[0xff], &[0, 1]).is_err());
        assert_eq!(sv(b"S0S1", &[0, 2, 4]).unwrap().value(1), "S1");
    }
}
