//! Signal names and numbers: the create API takes `stop_signal` as a number,
//! inspect reports it as a name.
//!
//! Numbers are Linux's on x86-64 and arm64 (the platforms Podman runs containers on
//! here); names are accepted as Podman accepts them: `SIGTERM`, `TERM`, `term`,
//! `15`, `SIGRTMIN+3`.

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// The number of a signal written as a name or a number, or `None` when it is not
/// a signal.
pub fn number(signal: &str) -> Option<i32> {
    let s = signal.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(known, _)| *known == name) {
        return Some(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let offset = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().ok()?
        };
        let n = base + sign * offset;
        (RTMIN..=RTMAX).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    None
}

/// The canonical `SIGNAME` of a signal number, as Podman's inspect shows it.
pub fn name(number: i32) -> Option<String> {
    if let Some(&(n, _)) = SIGNALS
        .iter()
        .find(|(n, num)| *num == number && !matches!(*n, "IOT" | "CLD" | "POLL"))
    {
        return Some(format!("SIG{n}"));
    }
    match number {
        RTMIN => Some("SIGRTMIN".to_owned()),
        RTMAX => Some("SIGRTMAX".to_owned()),
        n if (RTMIN + 1..RTMAX).contains(&n) => Some(format!("SIGRTMIN+{}", n - RTMIN)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for s in ["SIGTERM", "TERM", "term", "15", " sigterm "] {
            assert_eq!(number(s), Some(15), "{s}");
        }
        assert_eq!(number("SIGKILL"), Some(9));
        assert_eq!(number("SIGWINCH"), Some(28));
        assert_eq!(number("SIGRTMIN"), Some(34));
        assert_eq!(number("SIGRTMIN+3"), Some(37));
        assert_eq!(number("RTMAX-1"), Some(63));
    }

    #[test]
    fn non_signals_are_refused() {
        for s in [
            "",
            "SIG",
            "SIGFOO",
            "0",
            "65",
            "-1",
            "SIGRTMIN+40",
            "RTMINx",
        ] {
            assert_eq!(number(s), None, "{s}");
        }
    }

    #[test]
    fn names_round_trip() {
        for n in 1..=64 {
            if let Some(name) = name(n) {
                assert_eq!(number(&name), Some(n), "{name}");
            }
        }
        assert_eq!(name(15).as_deref(), Some("SIGTERM"));
        assert_eq!(name(6).as_deref(), Some("SIGABRT"));
        assert_eq!(name(36).as_deref(), Some("SIGRTMIN+2"));
        assert_eq!(name(0), None);
    }
}
