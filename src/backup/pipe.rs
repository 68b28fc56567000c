//! A reader that runs its source on another thread: decryption in one, decompression and
//! tar work in the other, so both cores work on one archive. Memory stays flat: a fixed
//! number of 1 MiB buffers circulate between the two threads.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 3;

/// The consuming end of a pipe: reads what the producer thread read from the source.
pub struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

/// Start reading `src` on a thread of `scope`. The thread stops at the end of `src`, on an
/// error (handed to the reader), or when the [`PipeReader`] is dropped.
pub fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut src: R,
) -> PipeReader {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    let (back, free) = sync_channel::<Vec<u8>>(DEPTH + 2);
    for _ in 0..DEPTH + 1 {
        let _ = back.try_send(vec![0u8; CHUNK]);
    }
    scope.spawn(move || {
        loop {
            let mut buf = match free.recv() {
                Ok(b) => b,
                Err(_) => return, // reader gone
            };
            buf.resize(CHUNK, 0);
            let mut got = 0;
            let res = loop {
                if got == buf.len() {
                    break Ok(());
                }
                match src.read(&mut buf[got..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(got);
            let end = got == 0;
            match res {
                Err(e) => {
                    if got > 0 {
                        let _ = tx.send(Ok(buf));
                    }
                    let _ = tx.send(Err(e));
                    return;
                }
                Ok(()) => {
                    if tx.send(Ok(buf)).is_err() || end {
                        return;
                    }
                }
            }
        }
    });
    PipeReader {
        rx,
        back,
        cur: Vec::new(),
        pos: 0,
        done: false,
    }
}

impl PipeReader {
    /// Make sure `cur` has unread bytes, unless the stream ended (then it is empty).
    fn refill(&mut self) -> io::Result<()> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(());
            }
            match self.rx.recv() {
                Ok(Ok(buf)) => {
                    let old = std::mem::replace(&mut self.cur, buf);
                    self.pos = 0;
                    if old.capacity() > 0 {
                        let _ = self.back.try_send(old);
                    }
                    if self.cur.is_empty() {
                        self.done = true;
                    }
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = out.len().min(avail.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Buffered reading straight from the 1 MiB chunks (no second copy through a `BufReader`).
impl BufRead for PipeReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(&self.cur[self.pos.min(self.cur.len())..])
    }
    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("boom"));
            }
            let n = b.len().min(self.0);
            b[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn passes_data_and_errors_through() {
        let data: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        let got = std::thread::scope(|s| {
            let mut p = spawn(s, &data[..]);
            let mut v = Vec::new();
            p.read_to_end(&mut v).unwrap();
            v
        });
        assert_eq!(got, data);
        std::thread::scope(|s| {
            let mut p = spawn(s, Failing(CHUNK + 5));
            let mut v = Vec::new();
            let e = p.read_to_end(&mut v).unwrap_err();
            assert_eq!(e.to_string(), "boom");
            assert_eq!(v.len(), CHUNK + 5);
        });
        // Dropping the reader early ends the thread (the scope would hang otherwise).
        std::thread::scope(|s| {
            let mut p = spawn(s, std::io::repeat(1));
            let mut b = [0u8; 10];
            p.read_exact(&mut b).unwrap();
        });
    }
}
