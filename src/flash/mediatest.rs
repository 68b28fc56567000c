//! `media-test`: the destructive check of a new card or SSD (fake capacity, bad areas, speed),
//! like H2testw and f3. This module owns the pure parts — the position-dependent test pattern,
//! the sample plan of `--quick`, the classification of every 512-byte record read back, the
//! real-capacity computation and the report — and [`io`] owns the write/read loop on an open
//! device.
//!
//! Every 512-byte record written carries a header (magic, its own byte offset, the run's random
//! nonce, a header checksum) and a body of pseudo-random words keyed by nonce and offset. A
//! record read back is `ok` when it is exactly what was written there, `aliased` when it is an
//! intact record of *another* offset of this run (the card stored that write here: it wraps
//! around or maps several addresses to one cell), `corrupt` otherwise (stale data, zeros, bit
//! errors), `unreadable` on an I/O error and `write_failed` when writing it failed.
//!
//! Usable capacity: the smallest of the first offset that is corrupt, unreadable or failed to
//! write, and, for every set of offsets found to share storage (a record and all records
//! holding its data), the second-smallest member — below it, each cell is used by one offset
//! only. A card that keeps offset X at X mod 64 MiB therefore reports 64 MiB whatever its
//! advertised size.

pub mod io;

use serde::Serialize;
use std::collections::BTreeSet;

/// Bytes per test record.
pub const RECORD: usize = 512;
const MAGIC: [u8; 8] = *b"LBMTEST1";
const HEADER: usize = 32;
/// Non-ok areas kept in the report; more are counted in `areas_omitted`.
pub const MAX_AREAS: usize = 10_000;
/// Regions of the speed profile.
pub const PROFILE_REGIONS: u64 = 64;

/// SplitMix64's finaliser: a fast, well-mixing bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The test pattern of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    pub nonce: u64,
}

/// What one record read back turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Ok,
    /// An intact record of this run, written for the given offset.
    Aliased(u64),
    Corrupt,
}

impl Pattern {
    pub fn new(nonce: u64) -> Self {
        Pattern { nonce }
    }

    fn header_check(&self, offset: u64) -> u64 {
        mix(offset ^ mix(self.nonce ^ u64::from_le_bytes(MAGIC)))
    }

    fn body_key(&self, offset: u64) -> u64 {
        mix(self.nonce.rotate_left(23) ^ offset.wrapping_mul(0xD6E8_FEB8_6659_FD93))
    }

    /// The record for byte `offset` into `rec` (exactly [`RECORD`] bytes).
    fn fill_record(&self, offset: u64, rec: &mut [u8]) {
        rec[0..8].copy_from_slice(&MAGIC);
        rec[8..16].copy_from_slice(&offset.to_le_bytes());
        rec[16..24].copy_from_slice(&self.nonce.to_le_bytes());
        rec[24..32].copy_from_slice(&self.header_check(offset).to_le_bytes());
        let key = self.body_key(offset);
        for (i, w) in rec[HEADER..].chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&mix(key.wrapping_add(i as u64)).to_le_bytes());
        }
    }

    /// Fill `buf` with the pattern of the device bytes starting at `offset` (both multiples
    /// of [`RECORD`]; a trailing partial record is left as it is).
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        for (i, rec) in buf.chunks_exact_mut(RECORD).enumerate() {
            self.fill_record(offset + (i * RECORD) as u64, rec);
        }
    }

    /// Whether `rec` is an intact record of this run, and for which offset.
    pub fn decode(&self, rec: &[u8]) -> Option<u64> {
        if rec.len() != RECORD || rec[0..8] != MAGIC {
            return None;
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&rec[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let (offset, nonce, check) = (word(8), word(16), word(24));
        if nonce != self.nonce
            || check != self.header_check(offset)
            || !offset.is_multiple_of(RECORD as u64)
        {
            return None;
        }
        let key = self.body_key(offset);
        let body_ok = rec[HEADER..]
            .chunks_exact(8)
            .enumerate()
            .all(|(i, w)| w == mix(key.wrapping_add(i as u64)).to_le_bytes());
        body_ok.then_some(offset)
    }

    /// Classify the record read back at `offset`.
    pub fn check(&self, offset: u64, rec: &[u8]) -> RecordState {
        match self.decode(rec) {
            Some(o) if o == offset => RecordState::Ok,
            Some(o) => RecordState::Aliased(o),
            None => RecordState::Corrupt,
        }
    }
}

/// A byte range `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Extent {
    pub start: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// What to test: the whole device, or samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub quick: bool,
    /// Sorted, disjoint, aligned to `align` (the last one may end at the device's end).
    pub extents: Vec<Extent>,
    /// Spacing of the regular sample lattice (`--quick`), or [`RECORD`] for a full test:
    /// the real capacity is exact to this when the card wraps at a multiple of it.
    pub granularity: u64,
}

impl Plan {
    /// Every byte of a `size`-byte device.
    pub fn full(size: u64) -> Plan {
        Plan {
            quick: false,
            extents: vec![Extent {
                start: 0,
                len: size,
            }],
            granularity: RECORD as u64,
        }
    }

    /// `--quick`: samples at every multiple of a power-of-two step (256 to 511 of them, so
    /// offsets that a wrapping card folds onto each other are both sampled), at power-of-two
    /// boundaries below the step, 32 random places and the last bytes of the device. Sample
    /// length: an eighth of the step, 64 KiB to 512 KiB. `align` is the logical sector size.
    pub fn quick(size: u64, align: u64, seed: u64) -> Plan {
        let align = align.max(RECORD as u64);
        let mut step: u64 = 1 << 20;
        while step.saturating_mul(512) <= size {
            step *= 2;
        }
        let len = (step / 8).clamp(64 << 10, 512 << 10);
        let mut starts: BTreeSet<u64> = BTreeSet::new();
        let mut p = 0;
        while p < size {
            starts.insert(p);
            p += step;
        }
        let mut b: u64 = 1 << 20;
        while b < step.min(size) {
            starts.insert(b);
            b *= 2;
        }
        let mut r = seed;
        for _ in 0..32 {
            r = mix(r);
            if size > len {
                starts.insert((r % (size - len)) / align * align);
            }
        }
        starts.insert(size.saturating_sub(len) / align * align);
        let mut extents: Vec<Extent> = Vec::new();
        for s in starts {
            let e = (s + len).min(size);
            match extents.last_mut() {
                Some(last) if s <= last.end() => {
                    last.len = last.len.max(e - last.start);
                }
                _ => extents.push(Extent {
                    start: s,
                    len: e - s,
                }),
            }
        }
        Plan {
            quick: true,
            extents,
            granularity: step,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }
}

/// Kinds of area in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ok,
    /// Holds another offset's data.
    Aliased,
    Corrupt,
    Unreadable,
    WriteFailed,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Aliased => "holds data written elsewhere",
            Kind::Corrupt => "corrupted",
            Kind::Unreadable => "unreadable (I/O error)",
            Kind::WriteFailed => "write failed",
        }
    }
}

/// A run of records of one kind (for `aliased`: holding the data of a run of offsets at a
/// constant distance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Area {
    pub start: u64,
    pub length: u64,
    pub kind: Kind,
    /// For `aliased`: the offset whose data the first record of the area holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds_data_of: Option<u64>,
}

/// Byte counts per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub aliased: u64,
    pub corrupt: u64,
    pub unreadable: u64,
    pub write_failed: u64,
}

/// The classification of everything read back, built record by record in ascending order.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub counts: Counts,
    /// Non-ok areas, in order, at most [`MAX_AREAS`].
    pub areas: Vec<Area>,
    pub areas_omitted: u64,
    /// The first offset that is corrupt, unreadable or failed to write.
    pub first_bad: Option<u64>,
    /// Aliased areas as (start, length, offset held by `start`), kept even past MAX_AREAS up
    /// to the same bound, for the capacity computation.
    alias: Vec<(u64, u64, u64)>,
    alias_omitted: bool,
}

impl Tally {
    /// Record `len` bytes at `offset` (ascending, after everything added before) as `kind`;
    /// for [`Kind::Aliased`], `held` is the offset whose data the first record holds.
    pub fn add(&mut self, offset: u64, len: u64, kind: Kind, held: Option<u64>) {
        if len == 0 {
            return;
        }
        let c = &mut self.counts;
        match kind {
            Kind::Ok => c.ok += len,
            Kind::Aliased => c.aliased += len,
            Kind::Corrupt => c.corrupt += len,
            Kind::Unreadable => c.unreadable += len,
            Kind::WriteFailed => c.write_failed += len,
        }
        if matches!(kind, Kind::Corrupt | Kind::Unreadable | Kind::WriteFailed)
            && self.first_bad.is_none()
        {
            self.first_bad = Some(offset);
        }
        if kind == Kind::Aliased {
            let h = held.unwrap_or(offset);
            let full = self.alias.len() >= MAX_AREAS;
            match self.alias.last_mut() {
                Some(a) if a.0 + a.1 == offset && a.2 + a.1 == h => a.1 += len,
                _ if full => self.alias_omitted = true,
                _ => self.alias.push((offset, len, h)),
            }
        }
        if kind == Kind::Ok {
            return;
        }
        if let Some(last) = self.areas.last_mut()
            && last.kind == kind
            && last.start + last.length == offset
        {
            let continues = match (last.holds_data_of, held) {
                (Some(a), Some(b)) => a + last.length == b,
                (None, None) => true,
                _ => false,
            };
            if continues {
                last.length += len;
                return;
            }
        }
        if self.areas.len() >= MAX_AREAS {
            self.areas_omitted += 1;
            return;
        }
        self.areas.push(Area {
            start: offset,
            length: len,
            kind,
            holds_data_of: if kind == Kind::Aliased { held } else { None },
        });
    }

    /// The real usable capacity of a `size`-byte device (see the module doc).
    pub fn usable(&self, size: u64) -> u64 {
        let mut cap = self.first_bad.unwrap_or(size).min(size);
        // Offsets sharing storage: S (whose data was found) and every X holding it. For each
        // S, the second-smallest member bounds the capacity. Members X = S - (h - a) grow with
        // S inside each alias segment, so checking the left end of every elementary segment
        // of S-space is enough.
        let mut points: Vec<u64> = Vec::with_capacity(self.alias.len() * 2);
        for &(_, len, h) in &self.alias {
            points.push(h);
            points.push(h + len);
        }
        points.sort_unstable();
        points.dedup();
        // (No early exit: a member can lie far below S.)
        for &s in &points {
            let mut lo = [s, u64::MAX];
            for &(a, len, h) in &self.alias {
                if h <= s && s < h + len {
                    let x = a + (s - h);
                    if x < lo[0] {
                        lo = [x, lo[0]];
                    } else if x < lo[1] && x != lo[0] {
                        lo[1] = x;
                    }
                }
            }
            cap = cap.min(lo[1]);
        }
        cap
    }

    /// Whether some areas were left out of the alias analysis (capacity then an upper bound).
    pub fn alias_incomplete(&self) -> bool {
        self.alias_omitted
    }
}

/// Bytes and time of one phase or region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Speed {
    pub bytes: u64,
    pub seconds: f64,
    /// `bytes / seconds`, when measurable.
    pub bytes_per_second: Option<f64>,
}

impl Speed {
    pub fn new(bytes: u64, seconds: f64) -> Speed {
        Speed {
            bytes,
            seconds,
            bytes_per_second: (seconds > 0.0 && bytes > 0).then(|| bytes as f64 / seconds),
        }
    }
    /// MB/s (10^6 bytes per second), as card makers count.
    pub fn mb_s(&self) -> Option<f64> {
        self.bytes_per_second.map(|b| b / 1e6)
    }
}

/// One region of the speed profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegionSpeed {
    pub start: u64,
    pub length: u64,
    pub write: Speed,
    pub read: Speed,
}

/// Per-region byte and time accumulators.
#[derive(Debug, Clone)]
pub struct Profile {
    region: u64,
    size: u64,
    acc: Vec<[(u64, f64); 2]>,
}

impl Profile {
    pub fn new(size: u64) -> Profile {
        let region = size.div_ceil(PROFILE_REGIONS).max(1);
        let n = size.div_ceil(region).max(1) as usize;
        Profile {
            region,
            size,
            acc: vec![[(0, 0.0); 2]; n],
        }
    }
    /// Account `bytes` at `offset` done in `seconds`; `read` picks the phase.
    pub fn add(&mut self, offset: u64, bytes: u64, seconds: f64, read: bool) {
        let i = ((offset / self.region) as usize).min(self.acc.len() - 1);
        let a = &mut self.acc[i][usize::from(read)];
        a.0 += bytes;
        a.1 += seconds;
    }
    pub fn regions(&self) -> Vec<RegionSpeed> {
        self.acc
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let start = i as u64 * self.region;
                RegionSpeed {
                    start,
                    length: self.region.min(self.size - start),
                    write: Speed::new(a[0].0, a[0].1),
                    read: Speed::new(a[1].0, a[1].1),
                }
            })
            .collect()
    }
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// The card stores less than it advertises.
    FakeCapacity,
    /// Areas that cannot be trusted (corrupt, unreadable, failed writes).
    BadAreas,
}

/// Decide the verdict: aliasing, or a bad tail of at least a tenth of the device reaching its
/// end (a card that drops writes past its real size), is fake capacity; any other bad
/// record is a bad area.
pub fn verdict(tally: &Tally, size: u64, usable: u64) -> Verdict {
    let c = &tally.counts;
    if c.aliased > 0 {
        return Verdict::FakeCapacity;
    }
    let bad = c.corrupt + c.unreadable + c.write_failed;
    if bad == 0 {
        return Verdict::Pass;
    }
    let tail_bad = tally
        .areas
        .last()
        .is_some_and(|a| a.start + a.length == size)
        && tally
            .areas
            .windows(2)
            .all(|w| w[0].start + w[0].length == w[1].start)
        && tally.areas.first().is_some_and(|a| a.start == usable);
    if tail_bad && tally.areas_omitted == 0 && size - usable >= size / 10 {
        Verdict::FakeCapacity
    } else {
        Verdict::BadAreas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Pattern = Pattern {
        nonce: 0x1234_5678_9abc_def0,
    };

    fn rec(p: &Pattern, off: u64) -> Vec<u8> {
        let mut v = vec![0u8; RECORD];
        p.fill(off, &mut v);
        v
    }

    #[test]
    fn records_carry_their_offset_and_check() {
        let r = rec(&P, 4096);
        assert_eq!(&r[0..8], b"LBMTEST1");
        assert_eq!(P.decode(&r), Some(4096));
        assert_eq!(P.check(4096, &r), RecordState::Ok);
        assert_eq!(P.check(0, &r), RecordState::Aliased(4096));
        // Another run's record is not ours.
        assert_eq!(Pattern::new(1).check(4096, &r), RecordState::Corrupt);
        // One flipped bit anywhere.
        for i in [0, 9, 17, 25, 40, 511] {
            let mut b = r.clone();
            b[i] ^= 0x10;
            assert_eq!(P.check(4096, &b), RecordState::Corrupt, "byte {i}");
        }
        assert_eq!(P.check(0, &[0u8; RECORD]), RecordState::Corrupt);
        assert_eq!(P.decode(&r[..100]), None);
        // Bodies differ between offsets and runs.
        assert_ne!(rec(&P, 0)[HEADER..], rec(&P, 512)[HEADER..]);
        assert_ne!(rec(&P, 0)[HEADER..], rec(&Pattern::new(7), 0)[HEADER..]);
    }

    #[test]
    fn fill_is_position_dependent_and_piecewise_equal() {
        let mut a = vec![0u8; 8192];
        P.fill(1 << 20, &mut a);
        let mut b = vec![0u8; 4096];
        P.fill((1 << 20) + 4096, &mut b);
        assert_eq!(&a[4096..], &b[..]);
    }

    #[test]
    fn tally_merges_and_computes_capacity_of_a_wrapping_card() {
        // 256 MiB advertised, 64 MiB real, written in ascending order: X holds the data of the
        // last offset written to X mod 64 MiB.
        let mib = 1u64 << 20;
        let (size, real) = (256 * mib, 64 * mib);
        let mut t = Tally::default();
        let mut x = 0;
        while x < size {
            let last = (size - real) + (x % real);
            if last == x {
                t.add(x, mib, Kind::Ok, None);
            } else {
                t.add(x, mib, Kind::Aliased, Some(last));
            }
            x += mib;
        }
        assert_eq!(t.areas.len(), 3, "{:?}", t.areas);
        assert_eq!(t.areas[0].holds_data_of, Some(192 * mib));
        assert_eq!(t.counts.aliased, 192 * mib);
        assert_eq!(t.usable(size), real);
        assert_eq!(verdict(&t, size, real), Verdict::FakeCapacity);
    }

    #[test]
    fn capacity_of_sampled_wrap_and_bad_sectors() {
        let mib = 1u64 << 20;
        // Samples at 0, 64, 128, 192 MiB of a card wrapping at 64 MiB.
        let mut t = Tally::default();
        t.add(0, mib, Kind::Aliased, Some(192 * mib));
        t.add(64 * mib, mib, Kind::Aliased, Some(192 * mib));
        t.add(128 * mib, mib, Kind::Aliased, Some(192 * mib));
        t.add(192 * mib, mib, Kind::Ok, None);
        assert_eq!(t.usable(256 * mib), 64 * mib);
        // Only two samples: the bound is the larger of the pair.
        let mut t = Tally::default();
        t.add(0, mib, Kind::Aliased, Some(192 * mib));
        assert_eq!(t.usable(256 * mib), 192 * mib);

        // A genuine card with one unreadable sector at 12 MiB.
        let mut t = Tally::default();
        t.add(0, 12 * mib, Kind::Ok, None);
        t.add(12 * mib, 512, Kind::Unreadable, None);
        t.add(12 * mib + 512, 52 * mib - 512, Kind::Ok, None);
        assert_eq!(t.usable(64 * mib), 12 * mib);
        assert_eq!(t.first_bad, Some(12 * mib));
        assert_eq!(verdict(&t, 64 * mib, 12 * mib), Verdict::BadAreas);
        assert_eq!(t.areas.len(), 1);

        // A card that drops every write past 16 MiB: a bad tail.
        let mut t = Tally::default();
        t.add(0, 16 * mib, Kind::Ok, None);
        t.add(16 * mib, 48 * mib, Kind::Corrupt, None);
        assert_eq!(t.usable(64 * mib), 16 * mib);
        assert_eq!(verdict(&t, 64 * mib, 16 * mib), Verdict::FakeCapacity);

        let mut t = Tally::default();
        t.add(0, 64 * mib, Kind::Ok, None);
        assert_eq!(t.usable(64 * mib), 64 * mib);
        assert_eq!(verdict(&t, 64 * mib, 64 * mib), Verdict::Pass);
    }

    #[test]
    fn areas_are_capped() {
        let mut t = Tally::default();
        for i in 0..(MAX_AREAS as u64 + 5) {
            t.add(i * 1024, 512, Kind::Corrupt, None);
            t.add(i * 1024 + 512, 512, Kind::Ok, None);
        }
        assert_eq!(t.areas.len(), MAX_AREAS);
        assert_eq!(t.areas_omitted, 5);
        assert_eq!(t.counts.corrupt, (MAX_AREAS as u64 + 5) * 512);
    }

    #[test]
    fn quick_plan_samples_lattice_boundaries_and_end() {
        let mib = 1u64 << 20;
        let p = Plan::quick(256 * mib, 512, 42);
        assert!(p.quick);
        assert_eq!(p.granularity, mib);
        let starts: Vec<u64> = p.extents.iter().map(|e| e.start).collect();
        for must in [0, 64 * mib, 128 * mib, 192 * mib] {
            assert!(
                p.extents.iter().any(|e| e.start <= must && must < e.end()),
                "{must} not sampled: {starts:?}"
            );
        }
        assert_eq!(p.extents.last().map(|e| e.end()), Some(256 * mib));
        for w in p.extents.windows(2) {
            assert!(w[0].end() < w[1].start, "not disjoint and sorted: {w:?}");
        }
        assert!(
            p.extents
                .iter()
                .all(|e| e.start % 512 == 0 && e.len % 512 == 0)
        );
        assert!(p.bytes() < 64 * mib, "{}", p.bytes());

        // A "32 GB" card of odd size: a lattice of 64 MiB steps, 512 KiB samples.
        let size = 31_914_983_424;
        let p = Plan::quick(size, 512, 1);
        assert_eq!(p.granularity, 64 * mib);
        assert!(
            p.extents.len() > 256 && p.extents.len() < 600,
            "{}",
            p.extents.len()
        );
        assert!(p.extents.iter().any(|e| e.start == 8 << 30));
        assert!(p.extents.iter().any(|e| e.start == mib));
        assert_eq!(p.extents.last().map(|e| e.end()), Some(size));
        // A tiny device: start and end sampled, nothing past the end.
        let p = Plan::quick(mib, 4096, 3);
        assert_eq!(p.extents.first().map(|e| e.start), Some(0));
        assert_eq!(p.extents.last().map(|e| e.end()), Some(mib));
        assert!(p.extents.iter().all(|e| e.start % 4096 == 0 && e.len > 0));
    }

    /// Simulate a card keeping offset X at X mod `real`: write the plan's records in order,
    /// read them back, tally.
    fn simulate(plan: &Plan, real: u64) -> Tally {
        let mut cell: std::collections::HashMap<u64, u64> = Default::default();
        for e in &plan.extents {
            for x in (e.start..e.end()).step_by(RECORD) {
                cell.insert(x % real, x);
            }
        }
        let mut t = Tally::default();
        for e in &plan.extents {
            for x in (e.start..e.end()).step_by(RECORD) {
                let h = cell[&(x % real)];
                if h == x {
                    t.add(x, RECORD as u64, Kind::Ok, None);
                } else {
                    t.add(x, RECORD as u64, Kind::Aliased, Some(h));
                }
            }
        }
        t
    }

    #[test]
    fn quick_finds_the_wrap_for_any_seed() {
        let mib = 1u64 << 20;
        for seed in 0..12 {
            for (size, real) in [(16 * mib, 4 * mib), (256 * mib, 64 * mib)] {
                let plan = Plan::quick(size, 512, seed);
                let t = simulate(&plan, real);
                assert_eq!(t.usable(size), real, "seed {seed} size {size}");
            }
        }
        let plan = Plan::full(16 * mib);
        assert_eq!(simulate(&plan, 4 * mib).usable(16 * mib), 4 * mib);
    }

    #[test]
    fn profile_regions() {
        let mut p = Profile::new(64 << 20);
        p.add(0, 1 << 20, 0.5, false);
        p.add(0, 1 << 20, 0.25, true);
        p.add(63 << 20, 1 << 20, 1.0, false);
        let r = p.regions();
        assert_eq!(r.len(), 64);
        assert_eq!(r[0].write.bytes_per_second, Some(2.0 * (1 << 20) as f64));
        assert_eq!(r[0].read.mb_s(), Some(4.0 * (1 << 20) as f64 / 1e6));
        assert_eq!(r[63].length, 1 << 20);
        assert_eq!(r[5].write.bytes_per_second, None);
    }
}
