//! libsodium's `crypto_secretstream_xchacha20poly1305`, bit-exact, over the RustCrypto ChaCha20
//! and Poly1305 primitives: the stream cipher of SecureTar v3. [`Push`] encrypts one chunk at a
//! time, [`Pull`] authenticates and decrypts. Each chunk costs 17 bytes (tag byte + 16-byte
//! MAC). No associated data (SecureTar uses none).

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use poly1305::Poly1305;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use zeroize::Zeroize;

/// Bytes a chunk adds: one tag byte and the 16-byte MAC.
pub const ABYTES: usize = 17;
/// Length of the stream header.
pub const HEADER_BYTES: usize = 24;
/// Tag of an ordinary chunk.
pub const TAG_MESSAGE: u8 = 0;
/// Tag marking a chunk boundary the application cares about.
pub const TAG_PUSH: u8 = 1;
/// Tag asking both sides to rekey after this chunk.
pub const TAG_REKEY: u8 = 2;
/// Tag of the last chunk (PUSH | REKEY).
pub const TAG_FINAL: u8 = 3;

/// Authentication of a chunk failed: wrong key, or the bytes were changed or cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError;

/// The state shared by push and pull: the subkey, the 32-bit counter and the 8-byte inonce.
#[derive(Clone)]
struct State {
    k: [u8; 32],
    nonce: [u8; 12],
}

impl Drop for State {
    fn drop(&mut self) {
        self.k.zeroize();
        self.nonce.zeroize();
    }
}

impl State {
    fn new(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> Self {
        let mut hin = [0u8; 16];
        hin.copy_from_slice(&header[..16]);
        let sub = chacha20::hchacha::<chacha20::R20>(key.into(), &hin.into());
        let mut k = [0u8; 32];
        k.copy_from_slice(&sub);
        let mut nonce = [0u8; 12];
        nonce[0] = 1; // counter = 1, little-endian
        nonce[4..].copy_from_slice(&header[16..]);
        Self { k, nonce }
    }

    fn cipher(&self) -> ChaCha20 {
        ChaCha20::new((&self.k).into(), (&self.nonce).into())
    }

    /// Poly1305 key (keystream block 0) and the cipher positioned at block 1.
    fn start(&self) -> (Poly1305, ChaCha20) {
        let mut c = self.cipher();
        let mut block0 = [0u8; 64];
        c.apply_keystream(&mut block0);
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&block0[..32]);
        let mac = Poly1305::new((&pk).into());
        block0.zeroize();
        pk.zeroize();
        (mac, c)
    }

    /// MAC over `E ‖ c ‖ pad(mlen mod 16) ‖ LE64(0) ‖ LE64(64 + mlen)`, libsodium's layout.
    fn mac(mut mac: Poly1305, e: &[u8; 64], c: &[u8]) -> [u8; 16] {
        let (eb, _) = poly1305::Block::slice_as_chunks(e);
        mac.update(eb);
        let (cb, rest) = poly1305::Block::slice_as_chunks(c);
        mac.update(cb);
        let mut tail = [0u8; 48];
        let r = rest.len();
        tail[..r].copy_from_slice(rest);
        // then r zero bytes of padding (libsodium pads by mlen mod 16, not to 16)
        let mut n = 2 * r;
        tail[n..n + 8].copy_from_slice(&0u64.to_le_bytes());
        n += 8;
        tail[n..n + 8].copy_from_slice(&(64 + c.len() as u64).to_le_bytes());
        n += 8;
        let tag = mac.compute_unpadded(&tail[..n]);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag);
        out
    }

    /// After a chunk: fold the MAC into the inonce, step the counter, rekey when asked.
    fn advance(&mut self, mac: &[u8; 16], tag: u8) {
        for (n, m) in self.nonce[4..].iter_mut().zip(mac) {
            *n ^= m;
        }
        let mut ctr =
            u32::from_le_bytes([self.nonce[0], self.nonce[1], self.nonce[2], self.nonce[3]]);
        ctr = ctr.wrapping_add(1);
        self.nonce[..4].copy_from_slice(&ctr.to_le_bytes());
        if tag & TAG_REKEY != 0 || ctr == 0 {
            self.rekey();
        }
    }

    fn rekey(&mut self) {
        let mut buf = [0u8; 40];
        buf[..32].copy_from_slice(&self.k);
        buf[32..].copy_from_slice(&self.nonce[4..]);
        self.cipher().apply_keystream(&mut buf);
        self.k.copy_from_slice(&buf[..32]);
        self.nonce[4..].copy_from_slice(&buf[32..]);
        self.nonce[..4].copy_from_slice(&1u32.to_le_bytes());
        buf.zeroize();
    }
}

/// Encrypting side.
#[derive(Clone)]
pub struct Push(State);

impl Push {
    /// Start a stream with `header` (24 random bytes, stored next to the ciphertext).
    pub fn new(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> Self {
        Self(State::new(key, header))
    }

    /// Encrypt `msg` with `tag`, appending `msg.len() + 17` bytes to `out`.
    pub fn push(&mut self, msg: &[u8], tag: u8, out: &mut Vec<u8>) {
        let (mac, mut c) = self.0.start();
        let mut e = [0u8; 64];
        e[0] = tag;
        c.apply_keystream(&mut e);
        let start = out.len();
        out.push(e[0]);
        out.extend_from_slice(msg);
        c.apply_keystream(&mut out[start + 1..]);
        let m = State::mac(mac, &e, &out[start + 1..]);
        out.extend_from_slice(&m);
        self.0.advance(&m, tag);
    }
}

/// Decrypting side.
#[derive(Clone)]
pub struct Pull(State);

impl Pull {
    pub fn new(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> Self {
        Self(State::new(key, header))
    }

    /// Authenticate and decrypt one chunk (`1 + m + 16` bytes) in place. Returns the tag and
    /// the plaintext, which is `chunk[1..1 + m]`. The state only advances on success.
    pub fn pull<'a>(&mut self, chunk: &'a mut [u8]) -> Result<(u8, &'a [u8]), AuthError> {
        if chunk.len() < ABYTES {
            return Err(AuthError);
        }
        let m = chunk.len() - ABYTES;
        let (mac, mut c) = self.0.start();
        let mut e = [0u8; 64];
        e[0] = chunk[0];
        c.apply_keystream(&mut e);
        let tag = e[0];
        e[0] = chunk[0];
        let mut stored = [0u8; 16];
        stored.copy_from_slice(&chunk[1 + m..]);
        let computed = State::mac(mac, &e, &chunk[1..1 + m]);
        if !super::crypto::ct_eq(&computed, &stored) {
            return Err(AuthError);
        }
        c.apply_keystream(&mut chunk[1..1 + m]);
        self.0.advance(&stored, tag);
        Ok((tag, &chunk[1..1 + m]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vector_key() -> ([u8; 32], [u8; 24]) {
        let key: [u8; 32] =
            unhex("38bd99209a6e5d16ca71d292b582c0827e5ce5ece12d7eac58713f94635321a2")
                .try_into()
                .unwrap();
        let header: [u8; 24] = std::array::from_fn(|i| 0x30 + i as u8);
        (key, header)
    }

    // ha-backup-format.md §4.4 test vectors, verified there against libsodium.
    #[test]
    fn push_matches_libsodium_vectors() {
        let (key, header) = vector_key();
        let mut p = Push::new(&key, &header);
        let mut out = Vec::new();
        p.push(b"hello", TAG_MESSAGE, &mut out);
        assert_eq!(hex(&out), "8d75b04c92c2aec8e9253452baf06599e1da7d030caa");
        out.clear();
        p.push(b"world!", TAG_FINAL, &mut out);
        assert_eq!(hex(&out), "6b5491515f6c50bffe897adb39d72a3c9f2b4b8c0960d6");
    }

    #[test]
    fn pull_decrypts_vectors_and_rejects_tampering() {
        let (key, header) = vector_key();
        let mut p = Pull::new(&key, &header);
        let mut c1 = unhex("8d75b04c92c2aec8e9253452baf06599e1da7d030caa");
        let mut c2 = unhex("6b5491515f6c50bffe897adb39d72a3c9f2b4b8c0960d6");
        let mut bad = c2.clone();
        bad[3] ^= 1;
        let (t, m) = p.pull(&mut c1).unwrap();
        assert_eq!((t, m), (TAG_MESSAGE, &b"hello"[..]));
        assert_eq!(p.clone().pull(&mut bad), Err(AuthError));
        let (t, m) = p.pull(&mut c2).unwrap();
        assert_eq!((t, m), (TAG_FINAL, &b"world!"[..]));
        // Out of order: the second chunk does not authenticate as the first.
        let mut p = Pull::new(&key, &header);
        let mut c2 = unhex("6b5491515f6c50bffe897adb39d72a3c9f2b4b8c0960d6");
        assert_eq!(p.pull(&mut c2), Err(AuthError));
        assert_eq!(p.pull(&mut [0u8; 3]), Err(AuthError));
    }

    #[test]
    fn roundtrip_all_lengths_and_rekey() {
        let key = [5u8; 32];
        let header = [6u8; 24];
        let mut push = Push::new(&key, &header);
        let mut pull = Pull::new(&key, &header);
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, 4097] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for tag in [TAG_MESSAGE, TAG_PUSH, TAG_REKEY] {
                let mut out = Vec::new();
                push.push(&msg, tag, &mut out);
                assert_eq!(out.len(), len + ABYTES);
                let (t, m) = pull.pull(&mut out).unwrap();
                assert_eq!(t, tag);
                assert_eq!(m, &msg[..]);
            }
        }
    }
}
