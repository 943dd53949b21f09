//! Fuzz `memcache_proto::text::parse`: never panics, consistent `consumed`, and the input
//! split in two never decides differently from the whole, except that a prefix with no newline
//! that exceeds the line limit may close (see `keel_fuzz::check_lines`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    keel_fuzz::check_lines(data, memcache_proto::text::parse);
});
