//! Whether lifeboat may write a disk: [`Ownership`], decided by the pure [`decide`] from the
//! [`Fact`]s discovery collected (mounts, swap, holders, the running system, and anything it
//! could not read).
//!
//! Fail closed: only a disk with no fact at all is [`Ownership::Unused`]. A sysfs attribute
//! that could not be read, a mount table that did not parse, a root filesystem that could not
//! be traced to a disk all become facts, and so reasons to refuse. Each reason is one sentence
//! in plain words, ready to print after "in use: ".

use serde::Serialize;

/// Whether a disk may be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reasons", rename_all = "snake_case")]
pub enum Ownership {
    /// Nothing on this system uses the disk, as far as could be checked.
    Unused,
    /// Something uses the disk, or could not be ruled out; the reasons say what.
    InUse(Vec<String>),
}

impl Ownership {
    /// The reasons, empty for [`Ownership::Unused`].
    pub fn reasons(&self) -> &[String] {
        match self {
            Ownership::Unused => &[],
            Ownership::InUse(r) => r,
        }
    }
}

/// One thing discovery learned that makes a disk unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// `device` (the disk or one of its partitions, `/dev/…`) is mounted on `mount_point`.
    Mounted { device: String, mount_point: String },
    /// `device` is an active swap area.
    Swap { device: String },
    /// `device` is held by another block device (`holders/`: dm-0, md0 …).
    HeldBy { device: String, holder: String },
    /// The disk holds the running system: `mount_point` (`/`, `/boot` …) is on `device`.
    System { mount_point: String, device: String },
    /// Something needed to judge the disk could not be read (`what` names it, e.g.
    /// "sysfs attribute /sys/block/sda/ro").
    Unreadable { what: String, error: String },
    /// Something unexpected that makes the answer uncertain.
    Uncertain(String),
}

impl Fact {
    /// The reason sentence for this fact.
    pub fn reason(&self) -> String {
        match self {
            Fact::Mounted {
                device,
                mount_point,
            } => format!("{device} mounted on {mount_point}"),
            Fact::Swap { device } => format!("{device} is active swap"),
            Fact::HeldBy { device, holder } => format!("{device} held by {holder}"),
            Fact::System {
                mount_point,
                device,
            } => format!("holds the running system ({mount_point} on {device})"),
            Fact::Unreadable { what, error } => {
                format!("could not read {what}: {error} (assuming in use)")
            }
            Fact::Uncertain(what) => format!("{what} (assuming in use)"),
        }
    }
}

/// Decide from the facts about one disk: [`Ownership::Unused`] only when there are none.
/// Reasons keep the order of the facts, without duplicates; the running system comes first
/// because it is the one that matters most.
pub fn decide(facts: &[Fact]) -> Ownership {
    if facts.is_empty() {
        return Ownership::Unused;
    }
    let mut ordered: Vec<&Fact> = facts
        .iter()
        .filter(|f| matches!(f, Fact::System { .. }))
        .collect();
    ordered.extend(facts.iter().filter(|f| !matches!(f, Fact::System { .. })));
    let mut reasons: Vec<String> = Vec::with_capacity(ordered.len());
    for f in ordered {
        let r = f.reason();
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    Ownership::InUse(reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_facts_is_unused() {
        assert_eq!(decide(&[]), Ownership::Unused);
        assert!(Ownership::Unused.reasons().is_empty());
    }

    #[test]
    fn reasons_in_plain_words() {
        let facts = vec![
            Fact::Mounted {
                device: "/dev/sda1".into(),
                mount_point: "/media/x".into(),
            },
            Fact::Swap {
                device: "/dev/sda2".into(),
            },
            Fact::HeldBy {
                device: "/dev/sda".into(),
                holder: "dm-0".into(),
            },
            Fact::System {
                mount_point: "/".into(),
                device: "/dev/sda2".into(),
            },
            Fact::Unreadable {
                what: "sysfs attribute /sys/block/sda/ro".into(),
                error: "Permission denied (os error 13)".into(),
            },
            Fact::Uncertain("could not tell which disk holds / (overlay from overlay)".into()),
            Fact::Swap {
                device: "/dev/sda2".into(),
            },
        ];
        let o = decide(&facts);
        assert_eq!(
            o.reasons(),
            [
                "holds the running system (/ on /dev/sda2)",
                "/dev/sda1 mounted on /media/x",
                "/dev/sda2 is active swap",
                "/dev/sda held by dm-0",
                "could not read sysfs attribute /sys/block/sda/ro: Permission denied (os error 13) (assuming in use)",
                "could not tell which disk holds / (overlay from overlay) (assuming in use)",
            ]
        );
    }

    #[test]
    fn any_single_fact_is_in_use() {
        for f in [
            Fact::Unreadable {
                what: "x".into(),
                error: "y".into(),
            },
            Fact::Uncertain("z".into()),
            Fact::HeldBy {
                device: "/dev/sdb1".into(),
                holder: "md127".into(),
            },
        ] {
            assert!(matches!(decide(&[f]), Ownership::InUse(r) if r.len() == 1));
        }
    }

    #[test]
    fn serializes_state_and_reasons() {
        assert_eq!(
            serde_json::to_value(Ownership::Unused).unwrap(),
            serde_json::json!({"state": "unused"})
        );
        assert_eq!(
            serde_json::to_value(Ownership::InUse(vec!["/dev/sda1 mounted on /".into()])).unwrap(),
            serde_json::json!({"state": "in_use", "reasons": ["/dev/sda1 mounted on /"]})
        );
    }
}
