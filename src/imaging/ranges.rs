//! Byte ranges ([`Extent`]) and the set operations the imaging code needs on sorted lists of
//! them: merge, complement, intersection, alignment to blocks. Pure and panic-free.

use serde::{Deserialize, Serialize};

/// A half-open byte range `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    /// `[start, start + len)`.
    pub fn new(start: u64, len: u64) -> Self {
        Self { start, len }
    }
    /// One past the last byte (saturating).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
    /// True when the two ranges share at least one byte.
    pub fn overlaps(&self, o: &Extent) -> bool {
        self.start < o.end() && o.start < self.end()
    }
}

/// Sort, drop empty ranges and merge overlapping or touching ones.
pub fn normalize(mut v: Vec<Extent>) -> Vec<Extent> {
    v.retain(|e| e.len > 0);
    v.sort();
    let mut out: Vec<Extent> = Vec::with_capacity(v.len());
    for e in v {
        match out.last_mut() {
            Some(last) if e.start <= last.end() => {
                let end = last.end().max(e.end());
                last.len = end - last.start;
            }
            _ => out.push(e),
        }
    }
    out
}

/// The parts of `[0, size)` not covered by the normalized list `v`.
pub fn complement(v: &[Extent], size: u64) -> Vec<Extent> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for e in v {
        let s = e.start.min(size);
        if s > pos {
            out.push(Extent::new(pos, s - pos));
        }
        pos = pos.max(e.end().min(size));
    }
    if pos < size {
        out.push(Extent::new(pos, size - pos));
    }
    out
}

/// The intersection of two normalized lists.
pub fn intersect(a: &[Extent], b: &[Extent]) -> Vec<Extent> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let s = a[i].start.max(b[j].start);
        let e = a[i].end().min(b[j].end());
        if s < e {
            out.push(Extent::new(s, e - s));
        }
        if a[i].end() < b[j].end() {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a` minus `b` (both normalized).
pub fn subtract(a: &[Extent], b: &[Extent], size: u64) -> Vec<Extent> {
    intersect(a, &complement(b, size))
}

/// Grow every range outward to multiples of `block` (a power of two), clamp to `size`, merge.
pub fn align_out(v: &[Extent], block: u64, size: u64) -> Vec<Extent> {
    let mask = block.saturating_sub(1);
    normalize(
        v.iter()
            .map(|e| {
                let s = e.start & !mask;
                let end = e.end().saturating_add(mask) & !mask;
                let end = end.min(size);
                Extent::new(s.min(end), end.saturating_sub(s))
            })
            .collect(),
    )
}

/// Total bytes of a list.
pub fn total(v: &[Extent]) -> u64 {
    v.iter().map(|e| e.len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(v: &[(u64, u64)]) -> Vec<Extent> {
        v.iter().map(|&(s, l)| Extent::new(s, l)).collect()
    }

    #[test]
    fn normalize_merges_touching_and_overlapping() {
        assert_eq!(
            normalize(x(&[(10, 5), (0, 10), (30, 0), (12, 10), (40, 1)])),
            x(&[(0, 22), (40, 1)])
        );
    }

    #[test]
    fn complement_and_subtract() {
        let v = x(&[(0, 10), (20, 5)]);
        assert_eq!(complement(&v, 30), x(&[(10, 10), (25, 5)]));
        assert_eq!(complement(&v, 22), x(&[(10, 10)]));
        assert_eq!(complement(&[], 7), x(&[(0, 7)]));
        assert_eq!(
            subtract(&x(&[(0, 30)]), &x(&[(5, 5), (20, 100)]), 30),
            x(&[(0, 5), (10, 10)])
        );
    }

    #[test]
    fn intersect_lists() {
        assert_eq!(
            intersect(&x(&[(0, 10), (20, 10)]), &x(&[(5, 20)])),
            x(&[(5, 5), (20, 5)])
        );
    }

    #[test]
    fn align_out_clamps_to_size() {
        assert_eq!(
            align_out(&x(&[(100, 10), (5000, 1), (9000, 100)]), 4096, 9050),
            x(&[(0, 9050)])
        );
        assert_eq!(
            align_out(&x(&[(100, 10), (9000, 100)]), 4096, 100_000),
            x(&[(0, 4096), (8192, 4096)])
        );
        assert_eq!(total(&x(&[(0, 3), (5, 4)])), 7);
    }
}
