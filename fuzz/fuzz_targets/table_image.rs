//! Fuzz target `table_image`: `read_table` over a sparse disk image (see the fuzz crate's
//! lib.rs), so the backup GPT at the end of the disk and EBR chains far into it are reachable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::table;
use lifeboat_fuzz::SparseImage;

fuzz_target!(|data: &[u8]| {
    let img = SparseImage::decode(data);
    let _ = table::read_table(&img, img.sector_size());
});
