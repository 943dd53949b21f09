//! Fuzz `redis_store::Keyspace::import`, which reads snapshot images a joining node receives.
//!
//! Besides "never panics, never over-allocates": an image that imports is read exactly, so
//! exporting it gives the same bytes, and export -> import -> export is a fixed point; an image
//! that does not import leaves the keyspace empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis_store::{Config, Keyspace};

fuzz_target!(|data: &[u8]| {
    let mut ks = Keyspace::new(Config::default());
    match ks.import(data) {
        Ok(()) => {
            let mut first = Vec::new();
            ks.export_into(&mut first);
            assert_eq!(first, data, "an image that imports is exported unchanged");
            let mut again = Keyspace::new(Config::default());
            again.import(&first).expect("an export imports");
            let mut second = Vec::new();
            again.export_into(&mut second);
            assert_eq!(first, second, "export -> import -> export is a fixed point");
        }
        Err(_) => {
            assert_eq!(ks.used_memory(), 0);
            assert!((0..ks.databases()).all(|d| ks.dbsize(d) == 0));
        }
    }
});
