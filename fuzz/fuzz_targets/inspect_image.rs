//! Fuzz target `inspect_image`: the whole offline pipeline (`inspect_reader` at full depth:
//! table, probes, FAT boot partition, bootstate, EROFS/squashfs os-release, ext4 data
//! partition through ext4-view, backups) over a sparse disk image (see the fuzz crate's lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::haos::view::{Depth, SourceView, inspect_reader};
use lifeboat::io::ReadAt;
use lifeboat::io::source::SourceKind;
use lifeboat_fuzz::SparseImage;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let img = SparseImage::decode(data);
    let view = SourceView {
        path: "fuzz.img".into(),
        kind: SourceKind::ImageFile,
        size: img.len(),
        sector_size: img.sector_size(),
    };
    if let Ok(rep) = inspect_reader(Arc::new(img), view, Depth::Full) {
        let _ = rep.is_haos();
        let _ = rep.verdict_name();
    }
});
