//! Fuzz target `fat`: open a FAT volume given as a sparse image (see the fuzz crate's lib.rs)
//! and list, stat and read everything it lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::fs::fat::FatFs;
use lifeboat_fuzz::{SparseImage, walk_fat};

fuzz_target!(|data: &[u8]| {
    let img = SparseImage::decode(data);
    if let Ok(fs) = FatFs::open(&img) {
        walk_fat(&fs, 1 << 20);
        for p in ["/EFI/BOOT/grubenv", "/slot-A/.good", "/nope/x"] {
            let _ = fs.try_exists(p);
            let _ = fs.read_file(p, 1 << 20);
        }
    }
});
