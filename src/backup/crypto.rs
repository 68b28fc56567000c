//! The cryptographic primitives of SecureTar, and nothing else: the SHA-256×100 key and IV of
//! v1/v2, AES-128-CBC block work, the v3 Argon2id root key and keyed-BLAKE2b derivations, and
//! random bytes. The formats around them live in [`super::securetar`]; the v3 stream cipher in
//! [`super::secretstream`]. Key material is wiped on drop ([`zeroize`]).

use aes::Aes128;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use blake2::Blake2bMac;
use blake2::digest::Mac;
use blake2::digest::consts::U32;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// AES block size.
pub const AES_BLOCK: usize = 16;
/// Argon2id parameters of SecureTar v3 (libsodium `crypto_pwhash` with opslimit 8, memlimit 16 MiB).
pub const V3_ARGON2_MEMORY_KIB: u32 = 16 * 1024;
/// Argon2id passes (libsodium opslimit).
pub const V3_ARGON2_PASSES: u32 = 8;
/// BLAKE2b personalisation of every v3 derivation (zero-padded to 16 bytes by BLAKE2b).
pub const V3_PERSONAL: &[u8] = b"SecureTarv3";

/// SHA-256 applied 100 times, first 16 bytes.
fn sha256_100(start: &[u8]) -> Zeroizing<[u8; 16]> {
    let mut d: Zeroizing<[u8; 32]> = Zeroizing::new(Sha256::digest(start).into());
    for _ in 1..100 {
        let next: [u8; 32] = Sha256::digest(&d[..]).into();
        *d = next;
    }
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&d[..16]);
    out
}

/// The v1/v2 AES-128 key: SHA-256 iterated 100 times over the UTF-8 password.
pub fn aes_key(password: &[u8]) -> Zeroizing<[u8; 16]> {
    sha256_100(password)
}

/// The v1/v2 IV: SHA-256 iterated 100 times over `key ‖ salt`.
pub fn aes_iv(key: &[u8; 16], salt: &[u8; 16]) -> [u8; 16] {
    let mut start = Zeroizing::new([0u8; 32]);
    start[..16].copy_from_slice(key);
    start[16..].copy_from_slice(salt);
    *sha256_100(&start[..])
}

/// AES-128-CBC decryption state across calls (the chaining value carries over).
pub struct CbcDecrypt(cbc::Decryptor<Aes128>);

impl CbcDecrypt {
    pub fn new(key: &[u8; 16], iv: &[u8; 16]) -> Self {
        Self(cbc::Decryptor::<Aes128>::new(key.into(), iv.into()))
    }
    /// Decrypt whole blocks in place; `buf.len()` must be a multiple of 16 (extra bytes are
    /// left alone, and callers never pass them).
    pub fn blocks(&mut self, buf: &mut [u8]) {
        let (blocks, _) = aes::Block::slice_as_chunks_mut(buf);
        self.0.decrypt_blocks(blocks);
    }
}

/// AES-128-CBC encryption state across calls.
pub struct CbcEncrypt(cbc::Encryptor<Aes128>);

impl CbcEncrypt {
    pub fn new(key: &[u8; 16], iv: &[u8; 16]) -> Self {
        Self(cbc::Encryptor::<Aes128>::new(key.into(), iv.into()))
    }
    /// Encrypt whole blocks in place (see [`CbcDecrypt::blocks`]).
    pub fn blocks(&mut self, buf: &mut [u8]) {
        let (blocks, _) = aes::Block::slice_as_chunks_mut(buf);
        self.0.encrypt_blocks(blocks);
    }
}

/// The v3 root key: Argon2id v1.3, t=8, m=16 MiB, p=1, 32 bytes, over the UTF-8 password.
pub fn argon2id_root_key(password: &[u8], root_salt: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // The parameters are constants that argon2 accepts; fall back to a loud, impossible key
    // only if the library ever changed its limits (tests pin the vector).
    match argon2::Params::new(V3_ARGON2_MEMORY_KIB, V3_ARGON2_PASSES, 1, Some(32)) {
        Ok(params) => {
            let a =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            if a.hash_password_into(password, root_salt, &mut out[..])
                .is_err()
            {
                out.zeroize();
            }
        }
        Err(_) => out.zeroize(),
    }
    out
}

/// A v3 derived key: keyed BLAKE2b-256 of the empty message with `salt` and the SecureTar
/// personalisation. Used for the validation key and for each file key.
pub fn blake2b_derive(root_key: &[u8; 32], salt: &[u8; 16]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // Key 32 ≤ 64, salt 16 ≤ 16, personal 11 ≤ 16: always valid lengths.
    if let Ok(mac) =
        Blake2bMac::<U32>::new_with_salt_and_personal(Some(root_key), salt, V3_PERSONAL)
    {
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// Constant-time equality of two byte strings of the same length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fill `buf` with random bytes from the operating system.
pub fn random(buf: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(buf)
        .map_err(|e| std::io::Error::other(format!("no random bytes from the OS: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn seq(start: u8) -> [u8; 16] {
        std::array::from_fn(|i| start + i as u8)
    }

    // Test vectors of ha-backup-format.md §4.4 (password "hunter2").
    #[test]
    fn v2_key_and_iv_vectors() {
        let k = aes_key(b"hunter2");
        assert_eq!(hex(&k[..]), "85b58a9f4117fd96b75e0922a9a03323");
        assert_eq!(
            hex(&aes_iv(&k, &[0u8; 16])),
            "538664497a0397956f11258e936d6c3a"
        );
    }

    #[test]
    fn v3_key_vectors() {
        let root = argon2id_root_key(b"hunter2", &seq(0));
        assert_eq!(
            hex(&root[..]),
            "6a3545d502c9df2134c1f8b608516cb64f4dd620ae2e2ba37c5530c044b6ec02"
        );
        assert_eq!(
            hex(&blake2b_derive(&root, &seq(0x10))[..]),
            "aa299548c0ad4438ddb9d8a570e46e227515a136a0e13a1445fe788070f6a422"
        );
        assert_eq!(
            hex(&blake2b_derive(&root, &seq(0x20))[..]),
            "38bd99209a6e5d16ca71d292b582c0827e5ce5ece12d7eac58713f94635321a2"
        );
    }

    #[test]
    fn cbc_roundtrip_across_calls() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        let plain: Vec<u8> = (0..96u8).collect();
        let mut a = plain.clone();
        let mut enc = CbcEncrypt::new(&key, &iv);
        enc.blocks(&mut a[..32]);
        enc.blocks(&mut a[32..]);
        let mut b = plain.clone();
        CbcEncrypt::new(&key, &iv).blocks(&mut b);
        assert_eq!(a, b, "chaining carries across calls");
        let mut dec = CbcDecrypt::new(&key, &iv);
        dec.blocks(&mut a[..48]);
        dec.blocks(&mut a[48..]);
        assert_eq!(a, plain);
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
