//! Pure parser for udev's database records, `/run/udev/data/b<major>:<minor>`: the
//! `E:KEY=VALUE` lines are the device's properties (`ID_SERIAL`, `ID_FS_LABEL`, our own
//! `LIFEBOAT_*` from `udev/61-lifeboat.rules`). Other record types (`S:` symlinks, `G:` tags,
//! `I:` init time …) are ignored. The format is udev's internal one, so a line that is not
//! understood is skipped rather than fatal: these properties are informative only and never
//! decide whether a disk is free.

use std::collections::BTreeMap;

/// All `E:` properties of one record.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_e_lines_only() {
        let t = "S:disk/by-id/usb-JMicron_Generic-0:0\nI:123456\nE:ID_BUS=usb\nE:ID_SERIAL=JMicron_Generic_0123456789ABCDEF-0:0\nE:LIFEBOAT_CANDIDATE=1\nE:EMPTY=\nE:=nokey\nG:systemd\nE:BROKEN\n";
        let p = parse_properties(t);
        assert_eq!(p.len(), 4);
        assert_eq!(p["ID_BUS"], "usb");
        assert_eq!(p["ID_SERIAL"], "JMicron_Generic_0123456789ABCDEF-0:0");
        assert_eq!(p["LIFEBOAT_CANDIDATE"], "1");
        assert_eq!(p["EMPTY"], "");
    }
}
