//! Recognising container and compression formats by their magic bytes, never by file name.
//!
//! `inspect` uses this to tell a user that `haos_rpi4-64-17.1.img.xz` is xz-compressed (and how
//! to decompress it) instead of reporting "no partition table"; `flash` will use it to pick
//! a decoder.

use serde::Serialize;

/// A wrapping format found at the start of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    Xz,
    Zstd,
    Gzip,
    Bzip2,
    Zip,
    Qcow2,
    Vmdk,
    Vdi,
    Vhdx,
}

impl Container {
    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Container::Xz => "xz-compressed",
            Container::Zstd => "zstd-compressed",
            Container::Gzip => "gzip-compressed",
            Container::Bzip2 => "bzip2-compressed",
            Container::Zip => "zip archive",
            Container::Qcow2 => "QEMU qcow2 virtual disk",
            Container::Vmdk => "VMware VMDK virtual disk",
            Container::Vdi => "VirtualBox VDI virtual disk",
            Container::Vhdx => "Hyper-V VHDX virtual disk",
        }
    }

    /// A command that turns `file` into a raw image the user can inspect.
    pub fn how_to_unpack(self, file: &str) -> String {
        match self {
            Container::Xz => format!("xz -dk '{file}'"),
            Container::Zstd => format!("zstd -d '{file}'"),
            Container::Gzip => format!("gunzip -k '{file}'"),
            Container::Bzip2 => format!("bunzip2 -k '{file}'"),
            Container::Zip => format!("unzip '{file}'"),
            Container::Qcow2 | Container::Vmdk | Container::Vdi | Container::Vhdx => {
                format!("qemu-img convert -O raw '{file}' disk.img")
            }
        }
    }
}

/// Identify a container format from the first bytes of a file (at least 72 bytes for VDI).
pub fn sniff(head: &[u8]) -> Option<Container> {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Container::Xz)
    } else if starts(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Some(Container::Zstd)
    } else if starts(&[0x1F, 0x8B]) {
        Some(Container::Gzip)
    } else if starts(b"BZh") && head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)) {
        Some(Container::Bzip2)
    } else if starts(b"PK\x03\x04") {
        Some(Container::Zip)
    } else if starts(b"QFI\xfb") {
        Some(Container::Qcow2)
    } else if starts(b"KDMV") || starts(b"# Disk DescriptorFile") {
        Some(Container::Vmdk)
    } else if starts(b"vhdxfile") {
        Some(Container::Vhdx)
    } else if head.get(0x40..0x44) == Some(&[0x7f, 0x10, 0xda, 0xbe]) {
        Some(Container::Vdi)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magics() {
        assert_eq!(sniff(b"\xFD7zXZ\0rest"), Some(Container::Xz));
        assert_eq!(sniff(&[0x28, 0xB5, 0x2F, 0xFD, 0]), Some(Container::Zstd));
        assert_eq!(sniff(&[0x1F, 0x8B, 8]), Some(Container::Gzip));
        assert_eq!(sniff(b"BZh9"), Some(Container::Bzip2));
        assert_eq!(sniff(b"BZhx"), None);
        assert_eq!(sniff(b"PK\x03\x04"), Some(Container::Zip));
        assert_eq!(sniff(b"QFI\xfb\0\0\0\x03"), Some(Container::Qcow2));
        let mut vdi = vec![0u8; 80];
        vdi[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        assert_eq!(sniff(&vdi), Some(Container::Vdi));
        assert_eq!(sniff(&[0u8; 512]), None);
        assert_eq!(sniff(&[]), None);
    }
}
