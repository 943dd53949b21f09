//! Fuzz `cache_cluster::redis::pops::Pops::import`, which reads the table of recent pop
//! outcomes in snapshot images a joining node receives.
//!
//! Besides "never panics, never over-allocates": an image that imports is read exactly, so
//! exporting it gives the same bytes.
#![no_main]

use cache_cluster::redis::pops::Pops;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Pops::import(data) {
        let mut again = Vec::new();
        p.export_into(&mut again);
        assert_eq!(again, data, "an image that imports is exported unchanged");
    }
});
