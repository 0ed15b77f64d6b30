use super::*;
use arrow_array::builder::{ListBuilder, StringBuilder, StringDictionaryBuilder};
use arrow_array::cast::AsArray;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::types::Int32Type;
use arrow_array::*;
use arrow_data::ArrayDataBuilder;
use arrow_schema::Field;

/// Exports `columns` as one struct array through the C Data Interface and
/// imports it back. The struct is built without validation, so broken
/// columns reach the import as a careless producer would send them.
fn through_ffi(columns: Vec<(&str, ArrayData)>) -> Result<RecordBatch, ForeignError> {
    let len = columns.first().map_or(0, |(_, d)| d.len());
    let fields: Fields = columns
        .iter()
        .map(|(n, d)| Field::new(*n, d.data_type().clone(), true))
        .collect();
    let children = columns.into_iter().map(|(_, d)| d).collect();
    let builder = ArrayDataBuilder::new(DataType::Struct(fields))
        .len(len)
        .child_data(children);
    // SAFETY: test producer; the result only goes through the FFI export,
    // which reads no values, and then through `import_array`, under test.
    let data = unsafe { builder.build_unchecked() };
    let array = FFI_ArrowArray::new(&data);
    let schema = FFI_ArrowSchema::try_from(data.data_type()).unwrap();
    // SAFETY: both structs were exported by arrow-rs from `data`, whose
    // buffers are as long as its lengths and offsets imply.
    unsafe { import_array(array, &schema) }
}

/// A `Utf8` column over `values` with the given (possibly broken) offsets.
fn utf8(offsets: &[i32], values: &[u8]) -> ArrayData {
    let b = ArrayDataBuilder::new(DataType::Utf8)
        .len(offsets.len() - 1)
        .add_buffer(Buffer::from_slice_ref(offsets))
        .add_buffer(Buffer::from_slice_ref(values));
    // SAFETY: deliberately unvalidated (the point of these tests); the
    // buffers hold len + 1 offsets and the values up to the last one.
    unsafe { b.build_unchecked() }
}

fn sample() -> RecordBatch {
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    let mut list = ListBuilder::new(StringBuilder::new());
    for i in 0..4 {
        dict.append_value(["BTC", "ETH"][i % 2]);
        list.append_value([Some("a"), None, Some("a long string, not inline")]);
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "sym",
            Arc::new(StringArray::from(vec![
                Some("BTC"),
                None,
                Some("ü"),
                Some(""),
            ])),
        ),
        (
            "view",
            Arc::new(StringViewArray::from(vec![
                "x",
                "a string longer than twelve bytes",
                "",
                "y",
            ])),
        ),
        ("px", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]))),
        ("dict", Arc::new(dict.finish())),
        ("list", Arc::new(list.finish())),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

fn column_of(e: &ForeignError) -> &str {
    match e {
        ForeignError::InvalidColumn { column, .. } => column,
        other => panic!("expected InvalidColumn, got {other}"),
    }
}

#[test]
fn a_valid_batch_round_trips_without_a_copy() {
    let b = sample();
    for batch in [b.clone(), b.slice(1, 2)] {
        let data = StructArray::from(batch.clone()).into_data();
        let array = FFI_ArrowArray::new(&data);
        let schema = FFI_ArrowSchema::try_from(data.data_type()).unwrap();
        // SAFETY: both structs were exported by arrow-rs from valid `data`.
        let got = unsafe { import_array(array, &schema) }.unwrap();
        assert_eq!(got, batch);
        let p = |c: &ArrayRef| c.to_data().buffers()[0].as_ptr();
        assert_eq!(
            p(got.column(2)),
            p(batch.column(2)),
            "the producer's buffer"
        );
    }
}

#[test]
fn broken_offsets_are_refused_naming_the_column() {
    let px = || Float64Array::from(vec![1.0, 2.0, 3.0]).into_data();
    let cases = [
        // Decreasing.
        utf8(&[0, 5, 3, 8], b"abcdefgh"),
        // One offset past the values buffer (the last one is inside).
        utf8(&[0, 9, 2, 8], b"abcdefgh"),
        // Invalid UTF-8.
        utf8(&[0, 1, 2, 3], b"a\xffc"),
    ];
    for bad in cases {
        let err = through_ffi(vec![("px", px()), ("sym", bad)]).unwrap_err();
        assert_eq!(column_of(&err), "sym", "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("\"sym\""), "{err}");
    }
    // The same column with sane offsets passes.
    let ok = through_ffi(vec![("px", px()), ("sym", utf8(&[0, 1, 2, 3], b"abc"))]).unwrap();
    assert_eq!(ok.num_rows(), 3);
}

#[test]
fn bad_views_and_dictionary_keys_are_refused() {
    // A view claiming 20 bytes at offset 10 of an 8-byte data buffer.
    let view = make_view(b"0123456789abcdefghij", 0, 10);
    let b = ArrayDataBuilder::new(DataType::Utf8View)
        .len(1)
        .add_buffer(Buffer::from_slice_ref([view]))
        .add_buffer(Buffer::from_slice_ref(b"01234567"));
    // SAFETY: deliberately unvalidated; the buffers are as long as claimed.
    let views = unsafe { b.build_unchecked() };
    let err = through_ffi(vec![("v", views)]).unwrap_err();
    assert_eq!(column_of(&err), "v", "{err}");

    let dt = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let b = ArrayDataBuilder::new(dt)
        .len(2)
        .add_buffer(Buffer::from_slice_ref([0i32, 7]))
        .add_child_data(StringArray::from(vec!["a", "b"]).into_data());
    // SAFETY: deliberately unvalidated; key 7 is outside the 2 values.
    let dict = unsafe { b.build_unchecked() };
    let err = through_ffi(vec![("d", dict)]).unwrap_err();
    assert_eq!(column_of(&err), "d", "{err}");
}

#[test]
fn non_struct_and_released_inputs_are_refused() {
    let data = Int64Array::from(vec![1, 2]).into_data();
    let array = FFI_ArrowArray::new(&data);
    let schema = FFI_ArrowSchema::try_from(data.data_type()).unwrap();
    // SAFETY: exported by arrow-rs just above.
    let err = unsafe { import_array(array, &schema) }.unwrap_err();
    assert!(matches!(err, ForeignError::NotARecordBatch { .. }), "{err}");
    let schema = FFI_ArrowSchema::try_from(DataType::Struct(Fields::empty())).unwrap();
    // SAFETY: an empty (released) array is refused before it is read.
    let err = unsafe { import_array(FFI_ArrowArray::empty(), &schema) }.unwrap_err();
    assert!(matches!(err, ForeignError::Import(_)), "{err}");
    let data = StructArray::from(sample()).into_data();
    // SAFETY: a released schema is refused before anything reads it.
    let err = unsafe { import_array(FFI_ArrowArray::new(&data), &FFI_ArrowSchema::empty()) };
    assert!(matches!(err, Err(ForeignError::Import(_))));
}

#[test]
fn streams_are_validated_batch_by_batch() {
    let good = sample();
    let schema = good.schema();
    let reader = RecordBatchIterator::new([Ok(good.clone()), Ok(good.slice(1, 2))], schema.clone());
    let stream = FFI_ArrowArrayStream::new(Box::new(reader));
    // SAFETY: exported by arrow-rs from valid batches.
    let (s, got) = unsafe { import_stream(stream) }.unwrap();
    assert_eq!(s, schema);
    assert_eq!(got, vec![good.clone(), good.slice(1, 2)]);

    // A stream whose second batch has decreasing offsets.
    let bad_col = make_array(utf8(&[0, 5, 3, 8], b"abcdefgh"));
    let s = Arc::new(Schema::new(vec![Field::new("sym", DataType::Utf8, true)]));
    let ok = RecordBatch::try_new(s.clone(), vec![Arc::new(StringArray::from(vec!["a"; 3]))]);
    let bad = RecordBatch::try_new(s.clone(), vec![bad_col]);
    let reader = RecordBatchIterator::new([ok, bad], s);
    let stream = FFI_ArrowArrayStream::new(Box::new(reader));
    // SAFETY: exported by arrow-rs; the broken batch's buffers are as long
    // as its offsets claim.
    let err = unsafe { import_stream(stream) }.unwrap_err();
    assert_eq!(column_of(&err), "sym", "{err}");
}

fn schema_of(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

#[test]
fn conform_casts_layouts_and_keeps_matching_columns() {
    let long = "a string longer than twelve bytes";
    let strs = vec![Some("BTC"), None, Some(long), Some("")];
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for s in ["x", "y", "x", "z"] {
        dict.append_value(s);
    }
    let mut list = ListBuilder::new(StringBuilder::new());
    for _ in 0..4 {
        list.append_value([Some("a"), Some(long)]);
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("s", Arc::new(StringArray::from(strs.clone()))),
        ("ls", Arc::new(LargeStringArray::from(strs.clone()))),
        (
            "b",
            Arc::new(BinaryArray::from(vec![
                &b"\x00"[..],
                b"",
                b"0123456789abcdef",
                b"z",
            ])),
        ),
        ("d", Arc::new(dict.finish())),
        ("l", Arc::new(list.finish())),
        ("px", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]))),
    ];
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let target = Arc::new(crate::storage_schema(
        &Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("ls", DataType::Utf8, true),
            Field::new("b", DataType::Binary, false),
            Field::new("d", DataType::Utf8, false),
            Field::new("l", DataType::new_list(DataType::Utf8, true), true),
            Field::new("px", DataType::Float64, false),
        ]),
        crate::StringLayout::View,
    ));
    let got = conform(&batch, &target).unwrap();
    assert_eq!(got.schema(), target);
    let s = got.column(0).as_string_view();
    assert_eq!(s.iter().collect::<Vec<_>>(), strs);
    assert_eq!(
        got.column(1).as_string_view().iter().collect::<Vec<_>>(),
        strs
    );
    assert_eq!(got.column(2).as_binary_view().value(2), b"0123456789abcdef");
    assert_eq!(got.column(3).as_string_view().value(3), "z");
    let l = got.column(4).as_list::<i32>();
    assert_eq!(l.value(1).as_string_view().value(1), long);
    // The unchanged column is the caller's array, not a copy.
    assert!(Arc::ptr_eq(got.column(5), batch.column(5)));
    // Conformed data passes full validation.
    for c in got.columns() {
        c.to_data().validate_full().unwrap();
    }
}

#[test]
fn views_of_sliced_and_short_strings() {
    let long = "0123456789abcdefghij";
    let a: ArrayRef = Arc::new(StringArray::from(vec![
        Some("aa"),
        Some(long),
        None,
        Some("b"),
        Some(long),
    ]));
    for (off, len) in [(0, 5), (1, 3), (2, 3), (3, 1), (0, 0), (5, 0)] {
        let src = a.slice(off, len);
        let v = to_layout(&src, &DataType::Utf8View).unwrap();
        v.to_data().validate_full().unwrap();
        let want: Vec<Option<&str>> = src.as_string::<i32>().iter().collect();
        assert_eq!(v.as_string_view().iter().collect::<Vec<_>>(), want);
        // Short strings only: no data buffer at all.
        let any_long = want.iter().flatten().any(|s| s.len() > 12);
        assert_eq!(v.as_string_view().data_buffers().is_empty(), !any_long);
    }
}

#[test]
fn conform_names_every_mismatched_column() {
    let batch = RecordBatch::try_from_iter([
        ("a", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("b", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        (
            "c",
            Arc::new(Float64Array::from(vec![Some(1.0)])) as ArrayRef,
        ),
    ])
    .unwrap();
    let target = schema_of(vec![
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Utf8View, false),
        Field::new("z", DataType::Float64, true),
    ]);
    match conform(&batch, &target).unwrap_err() {
        ForeignError::SchemaMismatch { columns, detail } => {
            assert_eq!(columns, ["a", "z"]);
            assert!(detail.contains("expected Float64"), "{detail}");
            assert!(
                detail.contains("\"z\" expected where the batch has \"c\""),
                "{detail}"
            );
        }
        other => panic!("{other}"),
    }
    let fewer = schema_of(vec![Field::new("a", DataType::Int64, true)]);
    let err = conform(&batch, &fewer).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaMismatch);
    assert!(
        err.to_string()
            .contains("1 columns expected (a), batch has 3"),
        "{err}"
    );
    // Nulls where the ring allows none.
    let nulls = RecordBatch::try_from_iter([(
        "a",
        Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
    )])
    .unwrap();
    let strict = schema_of(vec![Field::new("a", DataType::Int64, false)]);
    let err = conform(&nulls, &strict).unwrap_err().to_string();
    assert!(
        err.contains("not nullable in the ring but has 1 nulls"),
        "{err}"
    );
    // Timestamps of another unit or zone are not bridged.
    let ts = RecordBatch::try_from_iter([(
        "ts",
        Arc::new(TimestampMillisecondArray::from(vec![1])) as ArrayRef,
    )])
    .unwrap();
    let ns = schema_of(vec![Field::new(
        "ts",
        DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None),
        true,
    )]);
    assert!(conform(&ts, &ns).is_err());
}

/// The schema cache tells schemas apart by every part of their spelling,
/// at every depth, and hands back the parsed one only for an exact match.
#[test]
fn schema_cache_reparses_any_difference() {
    let item = |nullable| Arc::new(Field::new("item", DataType::Utf8, nullable));
    let base = || {
        vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("l", DataType::List(item(true)), true),
            Field::new_dictionary("d", DataType::Int32, DataType::Utf8, true),
        ]
    };
    let mut variants: Vec<Schema> = vec![Schema::new(base())];
    let mut f = base();
    f[0] = Field::new("tz", DataType::Int64, false); // a name
    variants.push(Schema::new(f));
    let mut f = base();
    f[0] = Field::new("ts", DataType::Int64, true); // nullability
    variants.push(Schema::new(f));
    let mut f = base();
    f[1] = Field::new("l", DataType::List(item(false)), true); // a nested child
    variants.push(Schema::new(f));
    let mut f = base();
    f[2] = Field::new_dictionary("d", DataType::Int16, DataType::Utf8, true); // dictionary keys
    variants.push(Schema::new(f));
    let mut f = base();
    f[2] = Field::new_dictionary("d", DataType::Int32, DataType::LargeUtf8, true); // dictionary values
    variants.push(Schema::new(f));
    let mut f = base();
    f[0] = f[0]
        .clone()
        .with_metadata([("k".to_string(), "v".to_string())]); // field metadata
    variants.push(Schema::new(f));
    variants.push(Schema::new(base()).with_metadata([("k".to_string(), "v".to_string())]));
    let mut f = base();
    f.pop(); // a column fewer
    variants.push(Schema::new(f));

    let mut cache = SchemaCache::default();
    // Each twice in a row (the second from the cache, same Arc), then the next.
    for round in 0..2 {
        for (i, s) in variants.iter().enumerate() {
            let ffi = FFI_ArrowSchema::try_from(s).unwrap();
            let a = cache.schema(&ffi).unwrap();
            assert_eq!(&*a, s, "variant {i}, round {round}");
            let b = cache
                .schema(&FFI_ArrowSchema::try_from(s).unwrap())
                .unwrap();
            assert!(Arc::ptr_eq(&a, &b), "variant {i} parsed twice");
        }
    }
}

/// A batch imported through the cache is validated as fully as without it.
#[test]
fn cached_import_still_validates_values() {
    let s = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
    let mut cache = SchemaCache::default();
    let good: ArrayRef = Arc::new(StringArray::from(vec!["ok"]));
    let bad = ArrayDataBuilder::new(DataType::Utf8)
        .len(1)
        .add_buffer(arrow_buffer::Buffer::from_vec(vec![0i32, 2]))
        .add_buffer(arrow_buffer::Buffer::from_vec(vec![0xffu8, 0xfe]));
    // SAFETY: structurally sound (offsets in range); only the UTF-8 is bad,
    // which the import must catch.
    let bad = unsafe { bad.build_unchecked() };
    for (data, ok) in [(good.to_data(), true), (bad, false), (good.to_data(), true)] {
        let st = ArrayDataBuilder::new(DataType::Struct(s.fields().clone()))
            .len(1)
            .child_data(vec![data]);
        // SAFETY: test producer, as in `through_ffi`.
        let st = unsafe { st.build_unchecked() };
        let array = FFI_ArrowArray::new(&st);
        let ffi = FFI_ArrowSchema::try_from(&s).unwrap();
        // SAFETY: both exported by arrow-rs from `st`.
        let got = unsafe { import_array_cached(array, &ffi, &mut cache) };
        assert_eq!(got.is_ok(), ok, "{got:?}");
    }
}
