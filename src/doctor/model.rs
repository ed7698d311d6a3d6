//! The doctor's findings and decisions, pure: what each check found, whose problem
//! it is, which heals follow from the findings, and how a port probe and a
//! listening table are read. No I/O: the probes in `probe.rs` and `run.rs` gather
//! the facts and these functions judge them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// All is well.
    Pass,
    /// Works now, but something is off (e.g. no lingering).
    Warn,
    /// Broken.
    Fail,
    /// Not checked, with the reason in the finding.
    Skip,
}

impl Status {
    /// The stable lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// Whose problem a failed or warned check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Rootless networking (pasta, the rootless netns, forwards): Magos can heal it.
    Network,
    /// The service inside the container (not listening): restarting the network
    /// does not help.
    Service,
    /// The host's setup (no `/dev/net/tun`, no `passt`, no subuid range): the user
    /// must act.
    Outside,
    /// Podman itself (socket, version).
    Podman,
}

impl Cause {
    /// The stable lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Network => "network",
            Cause::Service => "service",
            Cause::Outside => "outside",
            Cause::Podman => "podman",
        }
    }
}

/// A problem that a heal can address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A `--network pasta` container's own pasta process is gone.
    ContainerPastaDead {
        /// The container.
        container: String,
    },
    /// A published port does not answer although the service inside listens.
    ForwardDead {
        /// The container.
        container: String,
        /// The host port.
        port: u16,
    },
    /// A `--network pasta` container holds host addresses that the host no
    /// longer has (copied by pasta at start).
    ContainerAddressesStale {
        /// The container.
        container: String,
    },
    /// The rootless netns's pasta process is gone.
    NetnsPastaDead,
    /// The rootless netns holds host addresses that the host no longer has.
    NetnsStale,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The stable check name (`socket`, `tun`, `port`, …).
    pub id: &'static str,
    /// What was checked: `host`, `podman`, `rootless-netns` or a container name
    /// (with the port for port checks, e.g. `web-1 127.0.0.1:8080/tcp`).
    pub subject: String,
    /// The outcome.
    pub status: Status,
    /// What was found, in plain words.
    pub finding: String,
    /// What to do about it, when it is not a pass.
    pub fix: Option<String>,
    /// Whose problem it is, when it is not a pass.
    pub cause: Option<Cause>,
    /// The problem a heal can address.
    pub problem: Option<Problem>,
}

impl Check {
    /// A pass.
    pub fn pass(id: &'static str, subject: impl Into<String>, finding: impl Into<String>) -> Self {
        Self {
            id,
            subject: subject.into(),
            status: Status::Pass,
            finding: finding.into(),
            fix: None,
            cause: None,
            problem: None,
        }
    }

    /// A skipped check; `reason` says why.
    pub fn skip(id: &'static str, subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            status: Status::Skip,
            ..Self::pass(id, subject, reason)
        }
    }

    /// A warning or failure with its fix and cause.
    pub fn bad(
        id: &'static str,
        subject: impl Into<String>,
        status: Status,
        cause: Cause,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            id,
            subject: subject.into(),
            status,
            finding: finding.into(),
            fix: Some(fix.into()),
            cause: Some(cause),
            problem: None,
        }
    }

    /// The same check, carrying a problem a heal can address.
    pub fn with_problem(mut self, problem: Problem) -> Self {
        self.problem = Some(problem);
        self
    }
}

/// A heal to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealAction {
    /// Restart one container (its own pasta and forwards are set up again).
    RestartContainer {
        /// The container.
        container: String,
        /// Why, in plain words.
        reason: String,
    },
    /// Stop these stacks' containers (dependents first) and start them again in
    /// dependency order, so the rootless netns is set up again.
    RestartStacks {
        /// The compose projects.
        stacks: Vec<String>,
        /// Why, in plain words.
        reason: String,
    },
}

impl HealAction {
    /// The stable action name (also the `kind` of the heals metric).
    pub fn kind(&self) -> &'static str {
        match self {
            HealAction::RestartContainer { .. } => "restart_container",
            HealAction::RestartStacks { .. } => "restart_stacks",
        }
    }

    /// The rate limiter's key: the container, or the rootless netns.
    pub fn limit_key(&self) -> String {
        match self {
            HealAction::RestartContainer { container, .. } => format!("container:{container}"),
            HealAction::RestartStacks { .. } => "rootless-netns".to_owned(),
        }
    }

    /// What the action touches, for reports.
    pub fn target(&self) -> String {
        match self {
            HealAction::RestartContainer { container, .. } => container.clone(),
            HealAction::RestartStacks { stacks, .. } => stacks.join(","),
        }
    }

    /// Why.
    pub fn reason(&self) -> &str {
        match self {
            HealAction::RestartContainer { reason, .. }
            | HealAction::RestartStacks { reason, .. } => reason,
        }
    }
}

/// How a heal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealOutcome {
    /// Done, and the checks pass again.
    Healed,
    /// Done, but the checks still fail (or the action itself failed).
    Failed,
    /// Not done: the rate limit was reached.
    RateLimited,
}

impl HealOutcome {
    /// The stable lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HealOutcome::Healed => "healed",
            HealOutcome::Failed => "failed",
            HealOutcome::RateLimited => "rate_limited",
        }
    }
}

/// A heal and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealRecord {
    /// What was (or would have been) done.
    pub action: HealAction,
    /// How it ended.
    pub outcome: HealOutcome,
    /// What was seen afterwards, in plain words.
    pub detail: String,
}

/// What the doctor found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every check, host checks first, then containers by name.
    pub checks: Vec<Check>,
    /// The heals attempted (empty without healing).
    pub heals: Vec<HealRecord>,
}

impl Report {
    /// How many checks ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// No failed check and no failed heal.
    pub fn ok(&self) -> bool {
        self.count(Status::Fail) == 0 && self.heals.iter().all(|h| h.outcome == HealOutcome::Healed)
    }
}

/// What the decision needs to know about a managed container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFacts {
    /// The container's name.
    pub name: String,
    /// Its compose project.
    pub project: Option<String>,
    /// Running now.
    pub running: bool,
    /// Attached to bridge networks (so it lives behind the rootless netns).
    pub bridge: bool,
}

/// The heals that follow from `checks`: a restart per container whose own pasta
/// died, whose addresses went stale or whose forwards are dead; the restart of
/// every running bridge-network stack when the rootless netns is dead or stale.
/// Service problems (nothing listening inside) never lead to a heal.
pub fn decide(checks: &[Check], containers: &[ContainerFacts]) -> Vec<HealAction> {
    let mut per_container: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut netns: Vec<&str> = Vec::new();
    for check in checks {
        match &check.problem {
            Some(Problem::ContainerPastaDead { container }) => per_container
                .entry(container)
                .or_default()
                .push("its pasta process died".to_owned()),
            Some(Problem::ContainerAddressesStale { container }) => per_container
                .entry(container)
                .or_default()
                .push("pasta copied host addresses the host no longer has".to_owned()),
            Some(Problem::ForwardDead { container, port }) => per_container
                .entry(container)
                .or_default()
                .push(format!("published port {port} does not answer")),
            Some(Problem::NetnsPastaDead) => netns.push("the rootless netns's pasta process died"),
            Some(Problem::NetnsStale) => {
                netns.push("the rootless netns holds host addresses the host no longer has")
            }
            None => {}
        }
    }
    let mut actions = Vec::new();
    let mut restarted_stacks: BTreeSet<String> = BTreeSet::new();
    if !netns.is_empty() {
        let stacks: BTreeSet<String> = containers
            .iter()
            .filter(|c| c.running && c.bridge)
            .filter_map(|c| c.project.clone())
            .collect();
        if !stacks.is_empty() {
            restarted_stacks = stacks.clone();
            actions.push(HealAction::RestartStacks {
                stacks: stacks.into_iter().collect(),
                reason: netns.join("; "),
            });
        }
    }
    for (container, mut reasons) in per_container {
        let covered = containers.iter().any(|c| {
            c.name == container
                && c.bridge
                && c.project
                    .as_ref()
                    .is_some_and(|p| restarted_stacks.contains(p))
        });
        if covered {
            continue;
        }
        reasons.dedup();
        actions.push(HealAction::RestartContainer {
            container: container.to_owned(),
            reason: reasons.join("; "),
        });
    }
    actions
}

/// What a TCP probe of a published port saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProbe {
    /// The connection was accepted and stayed open (or the server spoke first).
    Open,
    /// The connection was accepted, then closed or reset at once: the forwarder
    /// answered but found nothing to connect to inside.
    ClosedAtOnce,
    /// The connection was refused: nothing listens on the host port.
    Refused,
    /// No answer within the time limit.
    TimedOut,
}

/// Judges a published port from the host probe and whether the service inside
/// listens on the container port (`None`: could not be read).
pub fn judge_port(
    container: &str,
    subject: &str,
    port: u16,
    probe: PortProbe,
    inside_listening: Option<bool>,
) -> Check {
    let id = "port";
    match (probe, inside_listening) {
        (PortProbe::Open, _) => Check::pass(id, subject, "accepts connections"),
        (_, Some(false)) => Check::bad(
            id,
            subject,
            Status::Fail,
            Cause::Service,
            "the port is published but nothing inside the container listens on it: a service problem, not a network one",
            "check the service's logs and configuration (podman logs); restarting the network does not help",
        ),
        (probe, _) => {
            let seen = match probe {
                PortProbe::ClosedAtOnce => "accepts, then drops every connection",
                PortProbe::Refused => "refuses connections",
                PortProbe::TimedOut => "does not answer",
                PortProbe::Open => unreachable!("handled above"),
            };
            let inside = match inside_listening {
                Some(true) => " although the service inside listens",
                _ => "",
            };
            Check::bad(
                id,
                subject,
                Status::Fail,
                Cause::Network,
                format!("the published port {seen}{inside}: its forward is dead"),
                "restart the container (magos doctor --heal does it)",
            )
            .with_problem(Problem::ForwardDead {
                container: container.to_owned(),
                port,
            })
        }
    }
}

/// Whether a `/proc/net/tcp` or `/proc/net/tcp6` table has a socket listening on
/// `port` (any address).
pub fn tcp_table_listens(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        let Some((_, hex_port)) = local.and_then(|l| l.rsplit_once(':')) else {
            return false;
        };
        state == Some("0A") && u16::from_str_radix(hex_port, 16) == Ok(port)
    })
}

/// The local IPv4 addresses in a `/proc/net/fib_trie` text (the `/32 host LOCAL`
/// entries of its `Local:` table; the main table repeats them).
pub fn fib_trie_local_v4(text: &str) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let mut last: Option<IpAddr> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if let Some(a) = last.filter(|_| t.starts_with("/32 host LOCAL")) {
            out.insert(a);
        }
    }
    out
}

/// The IPv6 addresses of a `/proc/net/if_inet6` text.
pub fn if_inet6_addresses(text: &str) -> BTreeSet<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let mut bytes = [0u8; 16];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(IpAddr::from(bytes))
        })
        .collect()
}

/// Whether an address is one pasta copies from the host: not loopback, not
/// link-local, not unspecified.
pub fn is_copied(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local() && !a.is_unspecified(),
        IpAddr::V6(a) => {
            !a.is_loopback() && !a.is_unspecified() && (a.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// The copied addresses (see [`is_copied`]) of `namespace` that `host` no longer
/// has.
pub fn stale_addresses(namespace: &BTreeSet<IpAddr>, host: &BTreeSet<IpAddr>) -> Vec<IpAddr> {
    namespace
        .iter()
        .filter(|a| is_copied(a) && !host.contains(a))
        .copied()
        .collect()
}

/// Whether `addr` is inside the CIDR `subnet` (`10.89.0.0/24`, `fd00::/64`); a
/// malformed subnet contains nothing.
pub fn in_subnet(addr: &IpAddr, subnet: &str) -> bool {
    let Some((net, bits)) = subnet.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(*a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(*a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The addresses of a namespace that are not Podman's own: the gateways of its
/// bridge networks (inside `subnets`) live in the rootless netns too, but pasta
/// did not copy them from the host.
pub fn without_subnets(addrs: &BTreeSet<IpAddr>, subnets: &[String]) -> BTreeSet<IpAddr> {
    addrs
        .iter()
        .filter(|a| !subnets.iter().any(|s| in_subnet(a, s)))
        .copied()
        .collect()
}

/// The subordinate id range count of `user` (or its numeric `uid`) in an
/// `/etc/subuid`- or `/etc/subgid`-format text: the sum of its ranges.
pub fn subid_count(text: &str, user: &str, uid: u32) -> u64 {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().split(':');
            let who = parts.next()?;
            let _start = parts.next()?;
            let count: u64 = parts.next()?.trim().parse().ok()?;
            (who == user || who == uid).then_some(count)
        })
        .sum()
}

/// What a busybox or glibc `nslookup` printed, judged: `Some(true)` resolved,
/// `Some(false)` the name does not exist (but a server answered), `None` no
/// server answered.
pub fn nslookup_answer(exit_code: i32, output: &str) -> Option<bool> {
    let lower = output.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("no servers could be reached") {
        return None;
    }
    if exit_code == 0 && lower.contains("address") && lower.contains("name:") {
        return Some(true);
    }
    if lower.contains("nxdomain") || lower.contains("can't find") || lower.contains("can't resolve")
    {
        return Some(false);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, project: &str, bridge: bool) -> ContainerFacts {
        ContainerFacts {
            name: name.into(),
            project: Some(project.into()),
            running: true,
            bridge,
        }
    }

    #[test]
    fn a_dead_container_pasta_restarts_that_container_once() {
        let checks = vec![
            Check::bad("pasta", "a", Status::Fail, Cause::Network, "x", "y").with_problem(
                Problem::ContainerPastaDead {
                    container: "a".into(),
                },
            ),
            judge_port(
                "a",
                "a 127.0.0.1:80/tcp",
                80,
                PortProbe::Refused,
                Some(true),
            ),
        ];
        let actions = decide(&checks, &[facts("a", "p", false)]);
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].kind(), "restart_container");
        assert!(actions[0].reason().contains("pasta process died"));
        assert!(actions[0].reason().contains("port 80"));
    }

    #[test]
    fn a_service_problem_is_never_healed() {
        for probe in [
            PortProbe::ClosedAtOnce,
            PortProbe::Refused,
            PortProbe::TimedOut,
        ] {
            let check = judge_port("a", "a", 80, probe, Some(false));
            assert_eq!(check.cause, Some(Cause::Service));
            assert_eq!(check.problem, None);
            assert!(decide(&[check], &[facts("a", "p", false)]).is_empty());
        }
        let open = judge_port("a", "a", 80, PortProbe::Open, Some(false));
        assert_eq!(open.status, Status::Pass, "a port that answers is fine");
    }

    #[test]
    fn a_dead_forward_with_a_listening_service_is_a_network_problem() {
        let c = judge_port("a", "a", 80, PortProbe::ClosedAtOnce, Some(true));
        assert_eq!(c.cause, Some(Cause::Network));
        assert!(c.finding.contains("although the service inside listens"));
        let unknown = judge_port("a", "a", 80, PortProbe::Refused, None);
        assert_eq!(unknown.cause, Some(Cause::Network));
    }

    #[test]
    fn a_dead_netns_restarts_every_running_bridge_stack_and_covers_their_containers() {
        let checks = vec![
            Check::bad(
                "netns",
                "rootless-netns",
                Status::Fail,
                Cause::Network,
                "x",
                "y",
            )
            .with_problem(Problem::NetnsPastaDead),
            judge_port("b1", "b1", 80, PortProbe::Refused, Some(true)),
            judge_port("c1", "c1", 81, PortProbe::Refused, Some(true)),
        ];
        let mut stopped = facts("z1", "z", true);
        stopped.running = false;
        let actions = decide(
            &checks,
            &[facts("b1", "b", true), facts("c1", "c", false), stopped],
        );
        assert_eq!(
            actions,
            vec![
                HealAction::RestartStacks {
                    stacks: vec!["b".into()],
                    reason: "the rootless netns's pasta process died".into()
                },
                HealAction::RestartContainer {
                    container: "c1".into(),
                    reason: "published port 81 does not answer".into()
                }
            ]
        );
    }

    #[test]
    fn tcp_tables_are_read() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0035 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n";
        assert!(tcp_table_listens(table, 8080));
        assert!(!tcp_table_listens(table, 53), "established, not listening");
        assert!(!tcp_table_listens(table, 80));
        assert!(!tcp_table_listens("garbage\nx y z\n", 80));
    }

    #[test]
    fn addresses_are_read_and_compared() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.0.2.2\n        /32 host LOCAL\n     |-- 192.0.2.255\n        /32 link BROADCAST\n";
        let v4 = fib_trie_local_v4(trie);
        assert_eq!(v4.len(), 2);
        let v6 = if_inet6_addresses(
            "fd000000000000000000000000000002 02 40 00 80     eth0\nfe8000000000000000fc00fffe000001 02 40 20 80     eth0\n00000000000000000000000000000001 01 80 10 80       lo\nshort\n",
        );
        assert_eq!(v6.len(), 3);
        let ns: BTreeSet<IpAddr> = ["192.0.2.9", "fd00::2", "fe80::1", "127.0.0.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let host: BTreeSet<IpAddr> = v4.union(&v6).copied().collect();
        assert_eq!(
            stale_addresses(&ns, &host),
            vec!["192.0.2.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn bridge_gateways_are_not_copied_addresses() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_subnet(&a("10.89.0.1"), "10.89.0.0/24"));
        assert!(!in_subnet(&a("10.89.1.1"), "10.89.0.0/24"));
        assert!(in_subnet(&a("fd00:1::1"), "fd00:1::/64"));
        assert!(!in_subnet(&a("10.89.0.1"), "fd00:1::/64"));
        assert!(in_subnet(&a("192.0.2.9"), "0.0.0.0/0"));
        assert!(!in_subnet(&a("10.0.0.1"), "nonsense"));
        assert!(!in_subnet(&a("10.0.0.1"), "10.0.0.0/99"));
        let ns: BTreeSet<IpAddr> = [a("192.0.2.2"), a("10.89.0.1"), a("10.89.3.1")].into();
        let kept = without_subnets(&ns, &["10.89.0.0/24".into(), "10.89.3.0/24".into()]);
        assert_eq!(kept, [a("192.0.2.2")].into());
    }

    #[test]
    fn subordinate_ranges_are_summed_by_name_or_uid() {
        let text = "alice:100000:65536\nbob:165536:65536\n1001:300000:1000\nbad line\n";
        assert_eq!(subid_count(text, "alice", 1000), 65536);
        assert_eq!(subid_count(text, "carol", 1001), 1000);
        assert_eq!(subid_count(text, "nobody", 5), 0);
    }

    #[test]
    fn nslookup_outputs_are_judged() {
        assert_eq!(
            nslookup_answer(
                0,
                "Server:\t\t10.89.0.1\nAddress:\t10.89.0.1:53\n\nName:\tweb.dns.podman\nAddress: 10.89.0.2\n"
            ),
            Some(true)
        );
        assert_eq!(
            nslookup_answer(1, "** server can't find x.invalid: NXDOMAIN\n"),
            Some(false)
        );
        assert_eq!(
            nslookup_answer(1, ";; connection timed out; no servers could be reached\n"),
            None
        );
    }

    #[test]
    fn a_report_is_ok_without_failures() {
        let mut r = Report::default();
        r.checks.push(Check::pass("tun", "host", "ok"));
        r.checks.push(Check::skip("dns", "a", "no peer"));
        assert!(r.ok());
        r.heals.push(HealRecord {
            action: HealAction::RestartContainer {
                container: "a".into(),
                reason: "x".into(),
            },
            outcome: HealOutcome::RateLimited,
            detail: String::new(),
        });
        assert!(!r.ok());
    }
}
