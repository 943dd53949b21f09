//! Fuzz the cache cluster's inter-node frames (`cache_cluster::transport::decode` of an `Rpc` or
//! a `Reply`, the bodies a node reads from its peer port): never panics, never allocates without
//! bound, and whatever decodes encodes again and decodes to the same frame.
#![no_main]

use cache_cluster::transport::{decode, encode, Reply, Rpc};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + for<'a> serde::Deserialize<'a>,
{
    if let Ok(msg) = decode::<T>(body) {
        let frame = encode(7, &msg).expect("a decoded frame encodes again");
        // encode's frame: 4-byte length, 8-byte id, then the body.
        let again = encode(7, &decode::<T>(&frame[12..]).expect("an encoded frame decodes")).unwrap();
        assert_eq!(frame, again, "decode(encode(x)) changed the frame");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    if which & 1 == 0 {
        round_trip::<Rpc>(body);
    } else {
        round_trip::<Reply>(body);
    }
});
