//! Fuzz target `haos_text`: the text parsers of HAOS state: `rauc status` output / rauc.db,
//! os-release, the RPi `cmdline.txt` and `config.txt`, and the RPi5 tryboot evaluation
//! (its four files are the input split at NUL bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::haos::bootenv::Slot;
use lifeboat::haos::{osrelease, rauc, rpiboot};

fuzz_target!(|data: &[u8]| {
    if let Ok(st) = rauc::parse_rauc_status_bytes(data) {
        let _ = st.version_of(Slot::A);
        let _ = st.version_of(Slot::B);
        let _ = st.board();
        let _ = st.compatibles();
        let _ = st.system_value("compatible");
        let _ = st.slot("rootfs", 0);
    }
    if let Ok(os) = osrelease::parse_os_release_bytes(data) {
        let _ = os.is_haos();
        let _ = os.version();
        let _ = os.pretty_name();
    }
    let text = String::from_utf8_lossy(data);
    let c = rpiboot::parse_cmdline_txt(&text);
    let _ = c.root_slot();
    let _ = rpiboot::parse_config_txt(&text).os_prefix_slot();
    let _ = rpiboot::parse_cmdline_bytes(data);
    let _ = rpiboot::parse_config_txt_bytes(data);
    let mut parts = data.splitn(4, |b| *b == 0);
    let files = rpiboot::RpiBootFiles {
        cmdline_txt: parts.next(),
        config_txt: parts.next(),
        tryboot_txt: parts.next(),
        cmdline_tryboot_txt: parts.next(),
        good_a: data.len().is_multiple_of(2),
        good_b: data.len().is_multiple_of(3),
    };
    let _ = rpiboot::evaluate(&files);
});
