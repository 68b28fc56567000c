//! Fuzz target `table`: the pure partition-table parsers (MBR, EBR, GPT header and entry
//! array) on raw bytes, and `read_table` over the input as a whole disk (512 and 4096-byte
//! sectors).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::table::{self, gpt, mbr};

fuzz_target!(|data: &[u8]| {
    let _ = mbr::parse_mbr(data);
    let _ = mbr::parse_ebr(data);
    for off in [0usize, 512, 4096] {
        let Some(s) = data.get(off..) else { continue };
        if let Ok(h) = gpt::parse_header(s) {
            let _ = h.entry_array_len();
            let _ = gpt::header_crc(s, h.header_size);
            let entries = gpt::parse_entries(s, h.entry_count, h.entry_size);
            for e in &entries {
                let _ = e.number();
                let _ = e.size_lba();
                let _ = gpt::check_entry(e, h.first_usable_lba, h.last_usable_lba);
            }
            let _ = gpt::check_entries_crc(s, &h);
        }
    }
    // Entry count and size from the first bytes, entries from the rest.
    if data.len() >= 8 {
        let count = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let size = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        let _ = gpt::parse_entries(&data[8..], count, size);
    }
    let disk = data.to_vec();
    let _ = table::read_table(&disk, 512);
    let _ = table::read_table(&disk, 4096);
});
