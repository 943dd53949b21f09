//! Fuzz the cache cluster's inter-node frames (`cache_cluster::transport::decode` of an `Rpc` or
//! a `Reply`, the bodies a node reads from its peer port): never panics, never allocates without
//! bound, and whatever decodes encodes again and decodes to the same frame. Also a packed batch's
//! bytes (`cache_cluster::command::unpack`, what a replica decodes when it applies a
//! `Cmd::Packed` entry): never panics, and what unpacks packs again to the same commands.
#![no_main]

use cache_cluster::command::{unpack, Command};
use cache_cluster::transport::{decode, encode, Reply, Rpc};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + for<'a> serde::Deserialize<'a>,
{
    if let Ok(msg) = decode::<T>(body) {
        let frame = encode(7, &msg).expect("a decoded frame encodes again");
        // encode's frame: 4-byte length, 8-byte id, then the body.
        let again = encode(
            7,
            &decode::<T>(&frame[12..]).expect("an encoded frame decodes"),
        )
        .unwrap();
        assert_eq!(frame, again, "decode(encode(x)) changed the frame");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => round_trip::<Rpc>(body),
        1 => round_trip::<Reply>(body),
        _ => {
            if let Ok(views) = unpack(body) {
                let owned: Vec<Command> = views
                    .iter()
                    .map(|v| v.to_owned_command().expect("a view encodes and decodes"))
                    .collect();
                let Command::Packed(bytes) = Command::pack(&owned) else {
                    panic!("packing failed")
                };
                let again: Vec<Command> = unpack(&bytes)
                    .expect("packed commands unpack")
                    .iter()
                    .map(|v| v.to_owned_command().expect("a view encodes and decodes"))
                    .collect();
                assert_eq!(again, owned, "unpack(pack(x)) changed the commands");
            }
        }
    }
});
