//! Fuzz target `backup`: the tar member scanner and the backup.json summary, both on the
//! input as a whole tar and on the input as backup.json text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::backup::{self, meta, tarscan};

fuzz_target!(|data: &[u8]| {
    let _ = meta::summarise(data);
    let tar = data.to_vec();
    if let Ok(members) = tarscan::list(&tar, 64) {
        for m in &members {
            let _ = tarscan::normalise(&m.name);
        }
    }
    let _ = backup::read_summary(&tar, "fuzz.tar");
});
