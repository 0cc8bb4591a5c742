//! The event kinds, expanded from the one table in `kind_table.rs` ([`kinds!`]).
//!
//! One row per kind gives its id (`fl_hdr.kind`), its C enumerator, the Falco event type
//! its records become ([`Kind::name`]), the ABI struct the kernel writes ([`Record`]), the
//! scheduler tracepoints that emit it and the syscalls hooked for it (name, x86_64 number,
//! C handler). From that table:
//! - here: [`Kind`], [`Kind::ALL`], [`Kind::from_u32`], [`Kind::name`], [`Kind::record`],
//!   [`Kind::syscalls`], [`Kind::sched`], [`SYSCALLS`], [`PATHS_CHANGED`], [`RETIRED`],
//!   [`KIND_MAX`];
//! - `probe/build.rs`: the C `enum fl_kind` (`fl_kinds.h`) and every syscall hook program
//!   (`fl_hooks.h`), so the kernel side cannot disagree;
//! - `falco-learn-event`: `EventType::of_kind` and `EventType::syscall`.
//!
//! Ids are never reused: a removed kind's id goes to the table's `retired` list. The checks
//! below run at compile time (ids unique, non-zero, below [`KIND_MAX`], not retired) and
//! in the tests (every id from 1 to the highest is live or retired, so a row removed
//! without retiring its id fails).

include!("kind_table.rs");

/// The ABI struct a record kind is written as (`events.h`): what [`Kind::record`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Record {
    Exec,
    Fork,
    Exit,
    Net,
    Open,
    Socket,
    Dup,
    Link,
    Ptrace,
    Module,
    Ia32,
}

impl Record {
    /// Size of the fixed part (strings follow for exec, open, link and module records).
    pub const fn size(self) -> usize {
        use core::mem::size_of;
        match self {
            Record::Exec => size_of::<crate::Exec>(),
            Record::Fork => size_of::<crate::Fork>(),
            Record::Exit => size_of::<crate::Exit>(),
            Record::Net => size_of::<crate::Net>(),
            Record::Open => size_of::<crate::Open>(),
            Record::Socket => size_of::<crate::Socket>(),
            Record::Dup => size_of::<crate::Dup>(),
            Record::Link => size_of::<crate::Link>(),
            Record::Ptrace => size_of::<crate::Ptrace>(),
            Record::Module => size_of::<crate::Module>(),
            Record::Ia32 => size_of::<crate::Ia32>(),
        }
    }

    /// The C struct (`fl_exec`, `fl_net`, …).
    pub const fn c_struct(self) -> &'static str {
        match self {
            Record::Exec => "fl_exec",
            Record::Fork => "fl_fork",
            Record::Exit => "fl_exit",
            Record::Net => "fl_net",
            Record::Open => "fl_open",
            Record::Socket => "fl_socket",
            Record::Dup => "fl_dup",
            Record::Link => "fl_link",
            Record::Ptrace => "fl_ptrace",
            Record::Module => "fl_module",
            Record::Ia32 => "fl_ia32",
        }
    }
}

macro_rules! define_kinds {
    (
        kinds {
            $(
                $(#[$doc:meta])*
                $kind:ident = $id:literal, $c:ident, $ev:ident $name:literal, record $rec:ident,
                    sched [$($prog:ident = $tp:ident),* $(,)?],
                    exit [$($sc:ident = $nr:literal, ia32 [$($ia:literal),*], x32 $x32:literal => $handler:ident),* $(,)?];
            )*
        }
        retired { $($rid:literal => $rname:literal),* $(,)? }
        kind_max $max:literal;
        x32_slots $x32base:literal;
        paths_changed [$($pc:ident = $pcnr:literal, ia32 [$($pia:literal),*], x32 $px:literal),* $(,)?];
    ) => {
        /// Record kinds (`enum fl_kind`), named after the `evt.type` they become.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum Kind {
            $( $(#[$doc])* $kind = $id, )*
        }

        /// Size of the per-kind counter table (`FL_KIND_MAX`): every id is below it.
        pub const KIND_MAX: u32 = $max;

        /// The first slot of x32 numbers in the compat dispatcher's program array
        /// (`SYSCALL_EXIT_COMPAT`, [`COMPAT_SLOT_COUNT`] slots); ia32 numbers are below it.
        pub const X32_SLOTS: u32 = $x32base;

        /// The size of the compat dispatcher's program array.
        pub const COMPAT_SLOT_COUNT: u32 = 2 * $x32base;

        /// Ids of removed kinds and the names they had: never given to another kind.
        pub const RETIRED: &[(u32, &str)] = &[$(($rid, $rname)),*];

        /// Every syscall hooked for a kind, `(name, x86_64 number)`, in the table's order:
        /// the handlers `fl_exit_<name>` (the `sys_exit` dispatcher's slot `number`) and
        /// `fl_tp_exit_<name>` (`syscalls:sys_exit_<name>`).
        pub const SYSCALLS: &[(&str, u32)] = &[$($((stringify!($sc), $nr),)*)*];

        /// Syscalls that change the paths of existing dentries (renames, mount changes):
        /// their exits end a generation of the kernel's verdict cache of opens. They report
        /// no kind.
        pub const PATHS_CHANGED: &[(&str, u32)] = &[$((stringify!($pc), $pcnr)),*];

        /// The 32-bit syscalls handled as their 64-bit twins, `(name, slot)`: the slots of
        /// `fl_exit_<name>` in the compat dispatcher's program array (`SYSCALL_EXIT_COMPAT`),
        /// an ia32 number as itself and an x32 number (without its bit 30) at
        /// [`X32_SLOTS`]` + number`. Every syscall of [`SYSCALLS`] and [`PATHS_CHANGED`]
        /// with its ia32 numbers (none for `accept`: ia32 reaches it through `socketcall`
        /// only, which `fl_exit_socketcall` handles) and its x32 number (the 64-bit one, or
        /// x32's own where it takes compat structures: `sendmsg` 518, `ptrace` 521).
        pub const COMPAT_SLOTS: &[(&str, u32)] = &[
            $($($((stringify!($sc), $ia),)* (stringify!($sc), X32_SLOTS + $x32),)*)*
            $($((stringify!($pc), $pia),)* (stringify!($pc), X32_SLOTS + $px),)*
        ];

        impl Kind {
            /// How many kinds there are.
            pub const COUNT: usize = [$($id),*].len();

            /// Every kind, in the table's order (by id).
            pub const ALL: [Kind; Kind::COUNT] = [$(Kind::$kind),*];

            pub const fn from_u32(v: u32) -> Option<Kind> {
                match v {
                    $($id => Some(Kind::$kind),)*
                    _ => None,
                }
            }

            /// The `evt.type` of the events records of this kind become (`execve`,
            /// `clone`, `openat`, …): the one name of a kind in metrics and reports.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => $name,)*
                }
            }

            /// The C enumerator (`FL_EXEC`, …).
            pub const fn c_name(self) -> &'static str {
                match self {
                    $(Kind::$kind => stringify!($c),)*
                }
            }

            /// The ABI struct records of this kind are written as.
            pub const fn record(self) -> Record {
                match self {
                    $(Kind::$kind => Record::$rec,)*
                }
            }

            /// The syscalls hooked for this kind, `(name, x86_64 number)`.
            pub const fn syscalls(self) -> &'static [(&'static str, u32)] {
                match self {
                    $(Kind::$kind => &[$((stringify!($sc), $nr)),*],)*
                }
            }

            /// The scheduler tracepoints that emit this kind, `(program, tp_btf tracepoint)`.
            pub const fn sched(self) -> &'static [(&'static str, &'static str)] {
                match self {
                    $(Kind::$kind => &[$((stringify!($prog), stringify!($tp))),*],)*
                }
            }
        }

        // The table's invariants, checked when this crate compiles.
        const _: () = {
            let ids = [$($id),*];
            let retired: &[u32] = &[$($rid),*];
            let mut i = 0;
            while i < ids.len() {
                assert!(ids[i] != 0, "kind id 0 is not a kind");
                assert!(ids[i] < KIND_MAX, "a kind id is not below kind_max");
                let mut j = i + 1;
                while j < ids.len() {
                    assert!(ids[i] != ids[j], "two kinds share an id");
                    j += 1;
                }
                let mut r = 0;
                while r < retired.len() {
                    assert!(ids[i] != retired[r], "a kind reuses a retired id");
                    r += 1;
                }
                i += 1;
            }
        };
    };
}

kinds!(define_kinds);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_fit_the_counter_table() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_u32(k as u32), Some(k));
            assert!((k as u32) < KIND_MAX);
        }
        assert_eq!(Kind::from_u32(0), None);
        assert_eq!(Kind::from_u32(99), None);
    }

    /// Every id from 1 to the highest ever given is a live kind or retired, never both: a
    /// row removed without retiring its id, a renumbered kind or a reused id fails here.
    #[test]
    fn ids_are_never_reused() {
        let live = |id: u32| Kind::from_u32(id).is_some();
        let retired = |id: u32| RETIRED.iter().any(|(r, _)| *r == id);
        let highest = Kind::ALL
            .iter()
            .map(|k| *k as u32)
            .chain(RETIRED.iter().map(|(r, _)| *r))
            .max()
            .unwrap_or(0);
        for id in 1..=highest {
            assert!(
                live(id) != retired(id),
                "kind id {id} is {}",
                if live(id) {
                    "live and retired"
                } else {
                    "neither live nor retired (retire it in kind_table.rs)"
                }
            );
        }
        for (id, _) in RETIRED {
            assert!(*id < KIND_MAX);
        }
    }

    #[test]
    fn names_c_names_and_syscalls_are_unique() {
        for (i, a) in Kind::ALL.iter().enumerate() {
            for b in &Kind::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.c_name(), b.c_name());
            }
            assert!(a.c_name().starts_with("FL_"));
        }
        let all = SYSCALLS.iter().chain(PATHS_CHANGED);
        for (i, (a, an)) in all.clone().enumerate() {
            for (b, bn) in all.clone().skip(i + 1) {
                assert_ne!(a, b);
                assert_ne!(an, bn, "{a} and {b} share a syscall number");
            }
        }
        // every kind is emitted by something
        for k in Kind::ALL {
            assert!(!k.syscalls().is_empty() || !k.sched().is_empty(), "{k:?}");
        }
    }

    #[test]
    fn compat_slots_are_distinct_in_range_and_name_hooked_syscalls() {
        for (i, (a, slot)) in COMPAT_SLOTS.iter().enumerate() {
            assert!(*slot < COMPAT_SLOT_COUNT, "{a} {slot}");
            assert!(
                SYSCALLS.iter().chain(PATHS_CHANGED).any(|(s, _)| s == a),
                "{a}"
            );
            for (b, other) in &COMPAT_SLOTS[i + 1..] {
                assert_ne!(slot, other, "{a} and {b} share a compat slot");
            }
        }
        // every syscall has its x32 slot; ia32 open is 5, the x32 sendmsg its own 518
        for (sc, _) in SYSCALLS.iter().chain(PATHS_CHANGED) {
            assert!(
                COMPAT_SLOTS
                    .iter()
                    .any(|(s, slot)| s == sc && *slot >= X32_SLOTS),
                "{sc}"
            );
        }
        assert!(COMPAT_SLOTS.contains(&("open", 5)));
        assert!(COMPAT_SLOTS.contains(&("umount2", 22)));
        assert!(COMPAT_SLOTS.contains(&("sendmsg", X32_SLOTS + 518)));
        assert!(!COMPAT_SLOTS
            .iter()
            .any(|(s, slot)| *s == "accept" && *slot < X32_SLOTS));
    }
}
