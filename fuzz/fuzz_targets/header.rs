//! Arbitrary bytes as an arena header: validation must return Ok or a typed
//! error, never crash or accept inconsistent offsets.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = ringfeed_shm::layout::Header::from_bytes(data) {
        if ringfeed_shm::validate_header(&h, std::path::Path::new("fuzz")).is_ok() {
            let o = h.geometry().layout();
            assert_eq!(o, h.offsets());
            assert!(o.pool_off <= o.total_len);
        }
    }
});
