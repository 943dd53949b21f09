//! Fuzz `memcache_proto::text::parse`: never panics, consistent `consumed`, and the input
//! split in two never decides differently from the whole (see `keel_fuzz::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_fuzz::check(data, memcache_proto::text::parse);
});
