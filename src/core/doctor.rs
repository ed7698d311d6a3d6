//! The network doctor's judging, pure: what each check found from the facts
//! the doctor gathered, whose problem it is, which heals follow from the
//! findings, and how procfs tables, Podman's files, a port probe and
//! `nslookup` output are read. No I/O: `doctor/` gathers the facts (its
//! `probe.rs` and `mod.rs`), these functions judge them, and `doctor/heal.rs`
//! carries out the heals they decide.

use std::collections::{BTreeMap, BTreeSet};

// An address is plain data: named from the language core, beside no socket.
use ::core::net::IpAddr;

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

/// `addrs` without the gateways of bridge networks drawn from Podman's default
/// subnet pools (`10.88.0.0/16` for `podman`, then `/24`s from `10.89.0.0` up to
/// `10.255.255.0`): the rootless netns's `info.json` keeps the gateway of a
/// bridge whose network was removed while the netns stayed up, and such an
/// address is no host address pasta copied.
pub fn without_pool_gateways(addrs: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
    addrs
        .iter()
        .filter(|a| match a {
            IpAddr::V4(v4) => {
                let [a, b, _, d] = v4.octets();
                !(a == 10 && b >= 88 && d == 1)
            }
            IpAddr::V6(_) => true,
        })
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

/// A `/proc/net/udp` or `/proc/net/udp6` table's bound sockets: address and
/// port of every line.
pub fn udp_table_bound(table: &str) -> BTreeSet<(IpAddr, u16)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let local = line.split_whitespace().nth(1)?;
            let (hex_addr, hex_port) = local.rsplit_once(':')?;
            let port = u16::from_str_radix(hex_port, 16).ok()?;
            Some((proc_net_address(hex_addr)?, port))
        })
        .collect()
}

/// An address as procfs's socket tables write it: IPv4 as one little-endian
/// 32-bit word, IPv6 as four of them.
fn proc_net_address(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(8 * i..8 * i + 8)?, 16).ok()?;
        Some(w.to_le_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::from(bytes))
        }
        _ => None,
    }
}

/// The names an aardvark-dns network file (`<runtime>/containers/networks/aardvark-dns/<network>`)
/// serves: its first line holds the gateways, each further line `id ipv4s ipv6s names`
/// with comma-separated names and aliases.
pub fn aardvark_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            line.split_whitespace()
                .last()
                .filter(|_| line.split_whitespace().count() >= 3)
        })
        .flat_map(|names| names.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect()
}

/// One bridge network of a container as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsNetwork {
    /// The network's name.
    pub name: String,
    /// Whether Podman serves names on it (aardvark-dns).
    pub dns_enabled: bool,
    /// The network's gateway, where aardvark-dns answers.
    pub gateway: Option<IpAddr>,
    /// The names aardvark-dns serves on it; `None` when its file cannot be read.
    pub names: Option<BTreeSet<String>>,
}

/// What the host sees of Podman's DNS for one bridge-network container:
/// gathered from the network list, aardvark-dns's pid file, its files and its
/// own UDP table, without entering the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFacts {
    /// The live aardvark-dns process, if any.
    pub aardvark_pid: Option<u32>,
    /// The port aardvark-dns serves on (53 unless Podman set another).
    pub aardvark_port: u16,
    /// The addresses its UDP sockets are bound to on that port; `None` when its
    /// table cannot be read.
    pub aardvark_bound: Option<BTreeSet<IpAddr>>,
    /// The container's networks.
    pub networks: Vec<DnsNetwork>,
    /// A peer on a shared network, by the name its service resolves under.
    pub peer: Option<String>,
}

/// Judges Podman's DNS for a bridge-network container from what the host sees:
/// aardvark-dns runs, listens on each DNS network's gateway, and serves the
/// peer's name. A failure here is confirmed inside the container (see
/// [`confirm_dns`]) before it is reported.
pub fn judge_dns(container: &str, f: &DnsFacts) -> Check {
    let id = "dns";
    let dns_nets: Vec<&DnsNetwork> = f.networks.iter().filter(|n| n.dns_enabled).collect();
    if dns_nets.is_empty() {
        return Check::skip(id, container, "DNS is off on its networks");
    }
    let Some(pid) = f.aardvark_pid else {
        return Check::bad(
            id,
            container,
            Status::Fail,
            Cause::Network,
            "aardvark-dns is not running: names of the stack do not resolve",
            "restart the stack so Podman starts aardvark-dns again",
        );
    };
    if let Some(bound) = &f.aardvark_bound {
        let deaf: Vec<String> = dns_nets
            .iter()
            .filter_map(|n| n.gateway)
            .filter(|g| !bound.contains(g))
            .map(|g| format!("{g}:{}", f.aardvark_port))
            .collect();
        if !deaf.is_empty() {
            return Check::bad(
                id,
                container,
                Status::Fail,
                Cause::Network,
                format!(
                    "aardvark-dns (pid {pid}) does not listen on {}: the container's resolver gets no answer",
                    deaf.join(", ")
                ),
                "restart the stack so Podman sets aardvark-dns up again",
            );
        }
    }
    let Some(peer) = &f.peer else {
        return Check::pass(
            id,
            container,
            format!(
                "aardvark-dns (pid {pid}) serves its networks; no other managed container shares them"
            ),
        );
    };
    let known = dns_nets
        .iter()
        .any(|n| n.names.as_ref().is_none_or(|names| names.contains(peer)));
    if !known {
        return Check::bad(
            id,
            container,
            Status::Fail,
            Cause::Network,
            format!(
                "cannot resolve its peer `{peer}`: Podman's DNS (aardvark-dns) does not know it"
            ),
            "check that both containers share a network with DNS enabled; restarting the stack sets aardvark-dns up again",
        );
    }
    Check::pass(
        id,
        container,
        format!("aardvark-dns (pid {pid}) serves its peer `{peer}` on its networks"),
    )
}

/// What a confirming `nslookup` inside the container gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// It ran: its exit code and output.
    Ran(i32, String),
    /// The image has no `nslookup` (or no shell to run it).
    NoTool,
    /// The exec itself failed.
    Failed(String),
}

/// The `dns` check after a host-side failure was checked inside the container:
/// a name that resolves there overrules the host's view; otherwise the failure
/// stands, saying whether it was confirmed.
pub fn confirm_dns(host: Check, peer: Option<&str>, inside: &Confirmation) -> Check {
    let unconfirmed = |why: &str| Check {
        finding: format!("{} (not confirmed inside: {why})", host.finding),
        ..host.clone()
    };
    match inside {
        Confirmation::NoTool => unconfirmed("the image has no nslookup"),
        Confirmation::Failed(e) => unconfirmed(&format!("nslookup could not run: {e}")),
        Confirmation::Ran(code, out) => match (nslookup_answer(*code, out), peer) {
            (Some(true), Some(peer)) => Check::pass(
                host.id,
                host.subject,
                format!(
                    "resolves its peer `{peer}` (checked inside after the host saw: {})",
                    host.finding
                ),
            ),
            (Some(_), None) => Check::pass(
                host.id,
                host.subject,
                format!(
                    "its resolver answers (checked inside after the host saw: {})",
                    host.finding
                ),
            ),
            (Some(false), Some(_)) | (None, _) => Check {
                finding: format!("{}; confirmed inside: nslookup fails", host.finding),
                ..host
            },
        },
    }
}

/// The firewall driver netavark uses and where that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallDriver {
    /// `nftables`, `iptables`, `firewalld` or `none`.
    pub name: String,
    /// Where it was read: a containers.conf path, or netavark's built-in default.
    pub source: String,
}

/// What bridge networks need, as gathered from `podman info`, containers.conf,
/// netavark and the PATH Podman runs its network programs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendFacts {
    /// `netavark`, `cni` or empty.
    pub backend: String,
    /// netavark's path as Podman reports it, and whether it exists.
    pub netavark: (String, bool),
    /// aardvark-dns's path as Podman reports it, and whether it exists.
    pub aardvark: (String, bool),
    /// The firewall driver; `None` when neither containers.conf nor netavark says.
    pub firewall: Option<FirewallDriver>,
    /// The firewall program the driver runs (`nft`, `iptables`) and where it was
    /// found on `search_path`; `None` for drivers without one.
    pub firewall_program: Option<(&'static str, Option<String>)>,
    /// The PATH searched (the Podman service's own, else systemd's default).
    pub search_path: String,
    /// How the distribution installs packages (`apt install`, `dnf install`, …).
    pub installer: String,
}

/// The program a firewall driver executes, and the package that provides it.
pub fn firewall_program(driver: &str) -> Option<(&'static str, &'static str)> {
    match driver {
        "nftables" => Some(("nft", "nftables")),
        "iptables" => Some(("iptables", "iptables")),
        _ => None,
    }
}

/// The install command of an `/etc/os-release` text's distribution family.
pub fn installer(os_release: &str) -> &'static str {
    let field = |key: &str| -> String {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .trim_matches('"')
            .to_ascii_lowercase()
    };
    let ids = format!("{} {}", field("ID"), field("ID_LIKE"));
    let has = |name: &str| ids.split_whitespace().any(|w| w == name);
    if has("debian") || has("ubuntu") {
        "apt install"
    } else if has("fedora") || has("rhel") || has("centos") {
        "dnf install"
    } else if has("suse") || has("opensuse") {
        "zypper install"
    } else if has("arch") {
        "pacman -S"
    } else if has("alpine") {
        "apk add"
    } else {
        "install the package"
    }
}

/// The `firewall_driver` a containers.conf text sets in its `[network]` table.
pub fn conf_firewall_driver(text: &str) -> Option<String> {
    let mut table = String::new();
    let mut found = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(['[', ']']).trim().to_owned();
        } else if let Some((key, value)) = t.split_once('=')
            && table == "network"
            && key.trim() == "firewall_driver"
        {
            let v = value.split('#').next().unwrap_or_default().trim();
            let v = v.trim_matches(['"', '\'']);
            if !v.is_empty() {
                found = Some(v.to_owned());
            }
        }
    }
    found
}

/// Judges the network backend's needs: netavark, the program of its firewall
/// driver on Podman's PATH, and aardvark-dns. A missing one makes every
/// bridge-network container fail to start; the fix names the package.
pub fn judge_backend(f: &BackendFacts) -> Check {
    let id = "network_backend";
    let subject = "podman";
    match f.backend.as_str() {
        "netavark" => {}
        "" => return Check::skip(id, subject, "podman info does not name its network backend"),
        other => {
            return Check::skip(
                id,
                subject,
                format!("network backend {other}: only netavark's needs are checked"),
            );
        }
    }
    let mut missing: Vec<(String, &'static str)> = Vec::new();
    if !f.netavark.1 {
        missing.push((format!("netavark is not at `{}`", f.netavark.0), "netavark"));
    }
    let mut fine = vec![format!("netavark at {}", f.netavark.0)];
    match (&f.firewall, &f.firewall_program) {
        (Some(fw), Some((program, None))) => missing.push((
            format!(
                "netavark's firewall driver is {} ({}) but no `{program}` is on Podman's PATH ({}): every bridge-network container fails to start (`unable to execute {program}`)",
                fw.name, fw.source, f.search_path
            ),
            firewall_program(&fw.name).map_or("nftables", |p| p.1),
        )),
        (Some(fw), Some((_, Some(found)))) => {
            fine.push(format!("firewall driver {} ({}) with {found}", fw.name, fw.source))
        }
        (Some(fw), None) => fine.push(format!("firewall driver {} ({})", fw.name, fw.source)),
        (None, _) => fine.push("firewall driver unknown (netavark did not say)".to_owned()),
    }
    if f.aardvark.0.is_empty() || !f.aardvark.1 {
        let at = if f.aardvark.0.is_empty() {
            "Podman finds no aardvark-dns".to_owned()
        } else {
            format!("aardvark-dns is not at `{}`", f.aardvark.0)
        };
        missing.push((
            format!("{at}: containers on bridge networks cannot resolve each other"),
            "aardvark-dns",
        ));
    } else {
        fine.push(format!("aardvark-dns at {}", f.aardvark.0));
    }
    if missing.is_empty() {
        return Check::pass(id, subject, fine.join(", "));
    }
    let packages: Vec<&str> = missing.iter().map(|m| m.1).collect();
    let findings: Vec<&str> = missing.iter().map(|m| m.0.as_str()).collect();
    let fix = if f.installer.starts_with("install") {
        format!(
            "install the package{} {} as root",
            if packages.len() > 1 { "s" } else { "" },
            packages.join(" ")
        )
    } else {
        format!("as root: {} {}", f.installer, packages.join(" "))
    };
    Check::bad(
        id,
        subject,
        Status::Fail,
        Cause::Outside,
        findings.join("; "),
        fix,
    )
}

/// A user's key quota from a `/proc/key-users` text: keys held and allowed,
/// bytes held and allowed.
pub fn key_quota(text: &str, uid: u32) -> Option<(u64, u64, u64, u64)> {
    let line = text
        .lines()
        .find(|l| l.trim_start().split(':').next() == Some(uid.to_string().as_str()))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let pair = |f: &str| -> Option<(u64, u64)> {
        let (a, b) = f.split_once('/')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let (keys, max_keys) = pair(fields.get(3)?)?;
    let (bytes, max_bytes) = pair(fields.get(4)?)?;
    Some((keys, max_keys, bytes, max_bytes))
}

/// Judges the Podman user's kernel key quota: the OCI runtime gives every
/// container a session keyring, so a full quota makes every further start fail
/// (`unable to create session key: disk quota exceeded`).
pub fn judge_keys(user: &str, quota: (u64, u64, u64, u64)) -> Check {
    let (keys, max_keys, bytes, max_bytes) = quota;
    let fix = "as root: sysctl -w kernel.keys.maxkeys=20000 kernel.keys.maxbytes=2000000 (and the same in /etc/sysctl.d/), or keyring = false under [containers] in containers.conf";
    let full = keys >= max_keys || bytes >= max_bytes;
    let near = keys * 10 >= max_keys * 9 || bytes * 10 >= max_bytes * 9;
    let held =
        format!("{user} holds {keys} of {max_keys} kernel keys ({bytes} of {max_bytes} bytes)");
    if full {
        Check::bad(
            "keys",
            "host",
            Status::Fail,
            Cause::Outside,
            format!(
                "{held}: each container start needs a session keyring, so starts fail with `disk quota exceeded`"
            ),
            fix,
        )
    } else if near {
        Check::bad(
            "keys",
            "host",
            Status::Warn,
            Cause::Outside,
            format!(
                "{held}: only {} more containers can start (each needs a session keyring)",
                max_keys - keys
            ),
            fix,
        )
    } else {
        Check::pass("keys", "host", held)
    }
}

/// A DNS query for `name` (type A, recursion desired) with the transaction `id`;
/// `None` for a name that does not fit DNS's labels.
pub fn dns_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    Some(q)
}

/// Whether `reply` answers the query `id`: same id, the response bit set, and
/// not a server failure or refusal (an NXDOMAIN is an answer).
pub fn dns_reply_answers(id: u16, reply: &[u8]) -> bool {
    reply.len() >= 12
        && reply[..2] == id.to_be_bytes()
        && reply[2] & 0x80 != 0
        && !matches!(reply[3] & 0x0f, 2 | 5)
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn resolv_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            w.next()?.split('%').next()?.parse().ok()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The host and Podman, judged from the facts the doctor gathered.

/// Whether Podman answered on its socket: its version, or the error.
pub fn judge_socket(socket: &str, version: Result<&str, &str>) -> Check {
    match version {
        Ok(version) => Check::pass(
            "socket",
            "podman",
            format!("Podman {version} answers on {socket}"),
        ),
        Err(err) => Check::bad(
            "socket",
            "podman",
            Status::Fail,
            Cause::Podman,
            format!("Podman does not answer on {socket}: {err}"),
            "enable the API socket: systemctl --user enable --now podman.socket (Podman 5 or newer)",
        ),
    }
}

/// A request to Podman that failed (`podman info`, the container list, one
/// container's inspection): `id` and `subject` name the check, `what` the
/// request's failure in words.
pub fn podman_failed(id: &'static str, subject: impl Into<String>, what: String) -> Check {
    Check::bad(
        id,
        subject,
        Status::Fail,
        Cause::Podman,
        what,
        "check the Podman service's log",
    )
}

/// How Podman networks rootless containers, from `podman info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkCmdFacts {
    /// Podman runs rootless.
    pub rootless: bool,
    /// Its rootless network command (`pasta`, `slirp4netns`, or empty).
    pub command: String,
    /// The pasta program Podman found (empty: none).
    pub pasta_executable: String,
    /// That program's version, when Podman reports it.
    pub pasta_version: String,
}

/// Whether rootless networking goes through pasta, and pasta is there.
pub fn judge_network_cmd(f: &NetworkCmdFacts) -> Check {
    if !f.rootless {
        return Check::skip(
            "network_cmd",
            "podman",
            "Podman runs rootful: it uses netavark bridges, not pasta",
        );
    }
    match f.command.as_str() {
        "pasta" if f.pasta_executable.is_empty() => Check::bad(
            "network_cmd",
            "podman",
            Status::Fail,
            Cause::Outside,
            "Podman is set to network through pasta but cannot find the pasta program",
            "install the passt package (it provides pasta), e.g. apt install passt",
        ),
        "pasta" => {
            let program: Vec<&str> = [f.pasta_executable.as_str(), f.pasta_version.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            Check::pass(
                "network_cmd",
                "podman",
                format!("rootless networking through pasta ({})", program.join(" ")),
            )
        }
        "" => Check::skip(
            "network_cmd",
            "podman",
            "podman info does not name its rootless network command",
        ),
        other => Check::bad(
            "network_cmd",
            "podman",
            Status::Warn,
            Cause::Outside,
            format!(
                "rootless networking through {other}, not pasta: the pasta checks do not apply"
            ),
            "install passt and remove default_rootless_network_cmd from containers.conf to use Podman 5's default",
        ),
    }
}

/// Whether `/dev/net/tun` opened read-write (else why not).
pub fn judge_tun(opened: Result<(), &str>) -> Check {
    match opened {
        Ok(()) => Check::pass("tun", "host", "/dev/net/tun opens read-write"),
        Err(e) => Check::bad(
            "tun",
            "host",
            Status::Fail,
            Cause::Outside,
            format!(
                "/dev/net/tun cannot be opened read-write ({e}): pasta cannot create its tap device"
            ),
            "load the tun module (modprobe tun) and make /dev/net/tun mode 0666; in a container or VM, pass the device through",
        ),
    }
}

/// The checks that need the Podman user, skipped when it is unknown.
pub fn unknown_user(id: &'static str) -> Check {
    Check::skip(id, "host", "the Podman user is unknown")
}

/// `user`'s subordinate ids (`id` is `subuid` or `subgid`): `count` of them
/// in the file `path`.
pub fn judge_subid(id: &'static str, user: &str, path: &str, count: u64) -> Check {
    let fix = format!(
        "as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}, then podman system migrate"
    );
    if count >= 65536 {
        Check::pass(
            id,
            "host",
            format!("{user} has {count} subordinate ids in {path}"),
        )
    } else if count > 0 {
        Check::bad(
            id,
            "host",
            Status::Warn,
            Cause::Outside,
            format!(
                "{user} has only {count} subordinate ids in {path}; images that use higher ids fail"
            ),
            fix,
        )
    } else {
        Check::bad(
            id,
            "host",
            Status::Fail,
            Cause::Outside,
            format!("{user} has no subordinate id range in {path}"),
            fix,
        )
    }
}

/// Whether lingering is on for `user` (systemd keeps its services after the
/// user logs out).
pub fn judge_linger(user: &str, lingering: bool) -> Check {
    if lingering {
        Check::pass("linger", "host", format!("lingering is enabled for {user}"))
    } else {
        Check::bad(
            "linger",
            "host",
            Status::Warn,
            Cause::Outside,
            format!("lingering is off for {user}: its containers stop when the user logs out"),
            format!("loginctl enable-linger {user}"),
        )
    }
}

/// The key quota of `user`, when `/proc/key-users` has a line for it.
pub fn judge_key_users(user: &str, quota: Option<(u64, u64, u64, u64)>) -> Check {
    match quota {
        Some(quota) => judge_keys(user, quota),
        None => Check::skip(
            "keys",
            "host",
            format!("/proc/key-users has no line for {user}"),
        ),
    }
}

/// Whether the host's resolver answered a name only an upstream server
/// knows: the server that answered, or why none did.
pub fn judge_upstream(answered: Result<IpAddr, &str>) -> Check {
    match answered {
        Ok(server) => Check::pass(
            "dns_upstream",
            "host",
            format!("the host's resolver {server} answers; the containers' DNS is forwarded to it"),
        ),
        Err(e) => Check::bad(
            "dns_upstream",
            "host",
            Status::Fail,
            Cause::Outside,
            format!(
                "no resolver of /etc/resolv.conf answered ({e}): names outside the stacks do not resolve in any container"
            ),
            "fix the host's DNS (/etc/resolv.conf); containers resolve through it",
        ),
    }
}

/// The rootless netns's pasta process, as gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsFacts {
    /// The pid file pasta writes for the rootless netns.
    pub pid_file: String,
    /// The pid it holds, when it can be read.
    pub pid: Option<u32>,
    /// That process is alive and is pasta.
    pub alive: bool,
    /// A container on a bridge network runs (so it needs the netns).
    pub bridge_running: bool,
}

/// Whether the rootless netns's pasta serves the bridge-network containers.
pub fn judge_netns(f: &NetnsFacts) -> Check {
    let subject = "rootless-netns";
    let Some(pid) = f.pid else {
        let reason = if f.bridge_running {
            format!(
                "{} is missing although bridge-network containers run",
                f.pid_file
            )
        } else {
            "no bridge-network container runs; Podman creates the rootless netns on demand"
                .to_owned()
        };
        return Check::skip("netns", subject, reason);
    };
    if f.alive {
        Check::pass(
            "netns",
            subject,
            format!("its pasta process {pid} is alive"),
        )
    } else if f.bridge_running {
        Check::bad(
            "netns",
            subject,
            Status::Fail,
            Cause::Network,
            format!("its pasta process {pid} is gone: bridge-network containers have no way out (outbound traffic and DNS upstream fail)"),
            "restart the bridge-network stacks so Podman sets the rootless netns up again (magos doctor --heal does it)",
        )
        .with_problem(Problem::NetnsPastaDead)
    } else {
        Check::skip(
            "netns",
            subject,
            format!(
                "its pasta process {pid} is gone, but no bridge-network container runs; Podman starts it again with the next one"
            ),
        )
    }
}

/// Whether the host addresses pasta copied into a namespace (`ns`: the
/// rootless netns's or a container's) are still the host's (`host`); `what`
/// names the namespace, `problem` the heal a stale one calls for.
pub fn judge_addresses(
    id: &'static str,
    subject: &str,
    ns: &BTreeSet<IpAddr>,
    host: &BTreeSet<IpAddr>,
    what: &str,
    problem: Problem,
) -> Check {
    let stale = stale_addresses(ns, host);
    let copied: Vec<String> = ns
        .iter()
        .filter(|a| is_copied(a))
        .map(IpAddr::to_string)
        .collect();
    if stale.is_empty() {
        return Check::pass(
            id,
            subject,
            format!(
                "the host addresses pasta copied at start ({}) are still the host's",
                if copied.is_empty() {
                    "none".to_owned()
                } else {
                    copied.join(", ")
                }
            ),
        );
    }
    let stale: Vec<String> = stale.iter().map(IpAddr::to_string).collect();
    Check::bad(
        id,
        subject,
        Status::Warn,
        Cause::Network,
        format!(
            "{what} holds {} that the host no longer has: the host's address changed after pasta started (DHCP renew, boot before the network was up); forwards bound to it are dead",
            stale.join(", ")
        ),
        "restart so pasta copies the current addresses (magos doctor --heal does it); custom pasta -a options also show up here",
    )
    .with_problem(problem)
}

/// Whether a `--network pasta` container's own pasta process (`pid`, when one
/// serves its network namespace `sandbox`) is alive.
pub fn judge_container_pasta(container: &str, sandbox: &str, pid: Option<u32>) -> Check {
    match pid {
        Some(p) => Check::pass(
            "pasta",
            container,
            format!("its pasta process {p} is alive"),
        ),
        None => Check::bad(
            "pasta",
            container,
            Status::Fail,
            Cause::Network,
            format!("no pasta process serves its network namespace {sandbox}: its published ports and outbound traffic are dead"),
            "restart the container (magos doctor --heal does it)",
        )
        .with_problem(Problem::ContainerPastaDead {
            container: container.to_owned(),
        }),
    }
}

/// The network failures that a done heal `action` should have fixed but that
/// `checks` (of the examination after it) still show; `containers` are the
/// examined containers.
pub fn still_broken(
    action: &HealAction,
    checks: &[Check],
    containers: &[ContainerFacts],
) -> Vec<String> {
    let targets: BTreeSet<String> = match action {
        HealAction::RestartContainer { container, .. } => [container.clone()].into(),
        HealAction::RestartStacks { stacks, .. } => containers
            .iter()
            .filter(|c| c.project.as_ref().is_some_and(|p| stacks.contains(p)))
            .map(|c| c.name.clone())
            .collect(),
    };
    checks
        .iter()
        .filter(|c| {
            c.problem.is_some() || (c.status == Status::Fail && c.cause == Some(Cause::Network))
        })
        .filter(|c| {
            let owner = c.subject.split(' ').next().unwrap_or_default();
            targets.contains(owner)
                || (matches!(action, HealAction::RestartStacks { .. })
                    && c.subject == "rootless-netns")
        })
        .map(|c| format!("{}: {}", c.subject, c.finding))
        .collect()
}

/// The record of a heal carried out: healed when nothing of what it should
/// fix is `left`, else failed with what is left (and, for the rootless
/// netns, what else keeps it alive).
pub fn heal_result(action: HealAction, left: Option<Vec<String>>) -> HealRecord {
    match left {
        None => HealRecord {
            action,
            outcome: HealOutcome::Healed,
            detail: "the checks pass again".to_owned(),
        },
        Some(left) => HealRecord {
            outcome: HealOutcome::Failed,
            detail: match &action {
                HealAction::RestartStacks { .. } => format!(
                    "still broken after the heal: {}; containers Magos does not manage keep the rootless netns alive: stop them too, or run podman unshare --rootless-netns true as the Podman user",
                    left.join("; ")
                ),
                HealAction::RestartContainer { .. } => {
                    format!("still broken after the heal: {}", left.join("; "))
                }
            },
            action,
        },
    }
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
    fn gateways_of_removed_pool_networks_are_not_copied_host_addresses() {
        let ns: BTreeSet<IpAddr> = [
            "10.89.2.1",
            "10.88.0.1",
            "10.200.7.1",
            "192.0.2.2",
            "10.89.2.7",
            "fd00::2",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let kept: Vec<String> = without_pool_gateways(&ns)
            .iter()
            .map(IpAddr::to_string)
            .collect();
        assert_eq!(kept, ["10.89.2.7", "192.0.2.2", "fd00::2"]);
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

    fn backend(driver: Option<&str>, found: Option<&str>) -> BackendFacts {
        let firewall = driver.map(|d| FirewallDriver {
            name: d.to_owned(),
            source: "netavark's default".to_owned(),
        });
        BackendFacts {
            backend: "netavark".into(),
            netavark: ("/usr/lib/podman/netavark".into(), true),
            aardvark: ("/usr/lib/podman/aardvark-dns".into(), true),
            firewall_program: driver
                .and_then(firewall_program)
                .map(|(p, _)| (p, found.map(str::to_owned))),
            firewall,
            search_path: "/usr/bin".into(),
            installer: "apt install".into(),
        }
    }

    #[test]
    fn a_missing_firewall_program_fails_the_backend_check_and_names_the_package() {
        let c = judge_backend(&backend(Some("nftables"), None));
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.cause, Some(Cause::Outside));
        assert!(
            c.finding
                .contains("no `nft` is on Podman's PATH (/usr/bin)"),
            "{}",
            c.finding
        );
        assert_eq!(c.fix.as_deref(), Some("as root: apt install nftables"));
        let c = judge_backend(&backend(Some("iptables"), None));
        assert_eq!(c.fix.as_deref(), Some("as root: apt install iptables"));
        let ok = judge_backend(&backend(Some("nftables"), Some("/usr/sbin/nft")));
        assert_eq!(ok.status, Status::Pass, "{}", ok.finding);
        assert!(ok.finding.contains("/usr/sbin/nft"));
        assert_eq!(
            judge_backend(&backend(Some("firewalld"), None)).status,
            Status::Pass
        );
        let mut no_dns = backend(Some("nftables"), None);
        no_dns.aardvark = (String::new(), false);
        no_dns.installer = "dnf install".into();
        let c = judge_backend(&no_dns);
        assert_eq!(
            c.fix.as_deref(),
            Some("as root: dnf install nftables aardvark-dns")
        );
        let mut cni = backend(None, None);
        cni.backend = "cni".into();
        assert_eq!(judge_backend(&cni).status, Status::Skip);
    }

    #[test]
    fn the_firewall_driver_and_installer_are_read() {
        let conf = "[engine]\nfirewall_driver = \"iptables\"\n[network]\n#firewall_driver = \"none\"\nfirewall_driver = \"iptables\" # chosen\n";
        assert_eq!(conf_firewall_driver(conf).as_deref(), Some("iptables"));
        assert_eq!(
            conf_firewall_driver("[network]\n#firewall_driver = \"\"\n"),
            None
        );
        assert_eq!(
            conf_firewall_driver("[network]\nfirewall_driver = \"\"\n"),
            None
        );
        assert_eq!(installer("ID=debian\nVERSION_ID=\"13\"\n"), "apt install");
        assert_eq!(
            installer("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"),
            "dnf install"
        );
        assert_eq!(installer("ID=ubuntu\nID_LIKE=debian\n"), "apt install");
        assert_eq!(installer(""), "install the package");
    }

    #[test]
    fn aardvark_files_and_udp_tables_are_read() {
        let file = "10.89.0.1\n037449bc5a50 10.89.0.2  dtx-a,svc-a,037449bc5a50\n726c14e32a1e 10.89.0.3  dtx-b,726c14e32a1e\n";
        let names = aardvark_names(file);
        assert!(names.contains("svc-a") && names.contains("dtx-b"));
        assert!(!names.contains("10.89.0.1"));
        let udp = "   sl  local_address rem_address   st\n13643: 0100590A:0035 00000000:0000 07 00000000:00000000\n  1: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07\n";
        let bound = udp_table_bound(udp);
        assert!(
            bound.contains(&("10.89.0.1".parse().unwrap(), 53)),
            "{bound:?}"
        );
        assert!(bound.contains(&("::1".parse().unwrap(), 53)), "{bound:?}");
    }

    fn dns_facts() -> DnsFacts {
        DnsFacts {
            aardvark_pid: Some(7),
            aardvark_port: 53,
            aardvark_bound: Some(["10.89.0.1".parse().unwrap()].into()),
            networks: vec![DnsNetwork {
                name: "n".into(),
                dns_enabled: true,
                gateway: Some("10.89.0.1".parse().unwrap()),
                names: Some(["web".to_owned()].into()),
            }],
            peer: Some("web".into()),
        }
    }

    #[test]
    fn dns_is_judged_from_the_host_and_confirmed_inside_on_failure() {
        assert_eq!(judge_dns("a", &dns_facts()).status, Status::Pass);
        let mut dead = dns_facts();
        dead.aardvark_pid = None;
        let c = judge_dns("a", &dead);
        assert_eq!((c.status, c.cause), (Status::Fail, Some(Cause::Network)));
        let mut deaf = dns_facts();
        deaf.aardvark_bound = Some(BTreeSet::new());
        assert!(
            judge_dns("a", &deaf)
                .finding
                .contains("does not listen on 10.89.0.1:53")
        );
        let mut unknown = dns_facts();
        unknown.peer = Some("db".into());
        let c = judge_dns("a", &unknown);
        assert!(c.finding.contains("does not know it"), "{}", c.finding);
        let mut off = dns_facts();
        off.networks[0].dns_enabled = false;
        assert_eq!(judge_dns("a", &off).status, Status::Skip);

        let resolved = Confirmation::Ran(
            0,
            "Server: 10.89.0.1\nAddress: 10.89.0.1:53\n\nName: db\nAddress: 10.89.0.4\n".into(),
        );
        assert_eq!(
            confirm_dns(c.clone(), Some("db"), &resolved).status,
            Status::Pass
        );
        let failed = confirm_dns(
            c.clone(),
            Some("db"),
            &Confirmation::Ran(1, "** server can't find db: NXDOMAIN".into()),
        );
        assert_eq!(failed.status, Status::Fail);
        assert!(failed.finding.ends_with("confirmed inside: nslookup fails"));
        let no_tool = confirm_dns(c, Some("db"), &Confirmation::NoTool);
        assert_eq!(no_tool.status, Status::Fail);
        assert!(no_tool.finding.contains("not confirmed inside"));
    }

    #[test]
    fn dns_queries_and_replies_are_built_and_read() {
        let q = dns_query(0x1234, "magos-doctor.invalid").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(q[12], 12);
        assert_eq!(&q[13..25], b"magos-doctor");
        assert_eq!(dns_query(1, "a..b"), None);
        let mut reply = q.clone();
        reply[2] |= 0x80;
        reply[3] = 0x83; // NXDOMAIN: an answer
        assert!(dns_reply_answers(0x1234, &reply));
        reply[3] = 0x82; // SERVFAIL
        assert!(!dns_reply_answers(0x1234, &reply));
        assert!(!dns_reply_answers(0x1234, &q), "a query is no reply");
        assert!(!dns_reply_answers(0x4321, &reply));
        let ns = resolv_nameservers(
            "# x\nsearch lan\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver bad\n",
        );
        assert_eq!(
            ns,
            vec![
                "192.0.2.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn the_key_quota_is_read_and_judged() {
        let text =
            "    0:     9 8/8 3/1000000 56/25000000\n 1001:   190 190/190 185/200 6000/20000\n";
        assert_eq!(key_quota(text, 1001), Some((185, 200, 6000, 20000)));
        assert_eq!(key_quota(text, 7), None);
        assert_eq!(judge_keys("u", (10, 200, 300, 20000)).status, Status::Pass);
        let near = judge_keys("u", (185, 200, 6000, 20000));
        assert_eq!(near.status, Status::Warn);
        assert!(
            near.finding.contains("only 15 more containers"),
            "{}",
            near.finding
        );
        let full = judge_keys("u", (200, 200, 6000, 20000));
        assert_eq!(
            (full.status, full.cause),
            (Status::Fail, Some(Cause::Outside))
        );
        assert!(full.fix.unwrap().contains("kernel.keys.maxkeys"));
    }

    #[test]
    fn podman_and_its_network_command_are_judged_from_facts() {
        let up = judge_socket("/run/p.sock", Ok("5.4.2"));
        assert_eq!(up.status, Status::Pass);
        assert!(up.finding.contains("Podman 5.4.2 answers on /run/p.sock"));
        let down = judge_socket("/run/p.sock", Err("connection refused"));
        assert_eq!(
            (down.status, down.cause),
            (Status::Fail, Some(Cause::Podman))
        );
        assert!(down.fix.unwrap().contains("podman.socket"));

        let pasta = NetworkCmdFacts {
            rootless: true,
            command: "pasta".to_owned(),
            pasta_executable: "/usr/bin/pasta".to_owned(),
            pasta_version: "2024_08".to_owned(),
        };
        let ok = judge_network_cmd(&pasta);
        assert_eq!(ok.status, Status::Pass);
        assert!(
            ok.finding.contains("(/usr/bin/pasta 2024_08)"),
            "{}",
            ok.finding
        );
        let missing = judge_network_cmd(&NetworkCmdFacts {
            pasta_executable: String::new(),
            ..pasta.clone()
        });
        assert_eq!(missing.status, Status::Fail);
        assert!(missing.fix.unwrap().contains("passt"));
        let slirp = judge_network_cmd(&NetworkCmdFacts {
            command: "slirp4netns".to_owned(),
            ..pasta.clone()
        });
        assert_eq!(slirp.status, Status::Warn);
        let rootful = judge_network_cmd(&NetworkCmdFacts {
            rootless: false,
            ..pasta
        });
        assert_eq!(rootful.status, Status::Skip);
    }

    #[test]
    fn the_host_is_judged_from_facts() {
        assert_eq!(judge_tun(Ok(())).status, Status::Pass);
        assert_eq!(judge_tun(Err("EPERM")).status, Status::Fail);
        assert_eq!(
            judge_subid("subuid", "u", "/etc/subuid", 65536).status,
            Status::Pass
        );
        assert_eq!(
            judge_subid("subuid", "u", "/etc/subuid", 1000).status,
            Status::Warn
        );
        let none = judge_subid("subgid", "u", "/etc/subgid", 0);
        assert_eq!((none.id, none.status), ("subgid", Status::Fail));
        assert!(none.fix.unwrap().contains("usermod"));
        assert_eq!(judge_linger("u", true).status, Status::Pass);
        let off = judge_linger("u", false);
        assert_eq!(off.status, Status::Warn);
        assert_eq!(off.fix.as_deref(), Some("loginctl enable-linger u"));
        assert_eq!(judge_key_users("u", None).status, Status::Skip);
        assert_eq!(unknown_user("keys").status, Status::Skip);
        let resolver: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(judge_upstream(Ok(resolver)).status, Status::Pass);
        assert_eq!(judge_upstream(Err("timed out")).status, Status::Fail);
    }

    #[test]
    fn the_rootless_netns_and_pasta_are_judged_from_facts() {
        let facts = NetnsFacts {
            pid_file: "/run/user/1000/netns/rootless-netns-conn.pid".to_owned(),
            pid: Some(42),
            alive: false,
            bridge_running: true,
        };
        let dead = judge_netns(&facts);
        assert_eq!(dead.status, Status::Fail);
        assert_eq!(dead.problem, Some(Problem::NetnsPastaDead));
        let idle = judge_netns(&NetnsFacts {
            bridge_running: false,
            ..facts.clone()
        });
        assert_eq!((idle.status, idle.problem), (Status::Skip, None));
        let alive = judge_netns(&NetnsFacts {
            alive: true,
            ..facts.clone()
        });
        assert_eq!(alive.status, Status::Pass);
        let no_pid = judge_netns(&NetnsFacts { pid: None, ..facts });
        assert_eq!(no_pid.status, Status::Skip);
        assert!(no_pid.finding.contains("is missing"), "{}", no_pid.finding);

        let gone = judge_container_pasta("web", "/run/netns/x", None);
        assert_eq!(
            gone.problem,
            Some(Problem::ContainerPastaDead {
                container: "web".to_owned()
            })
        );
        assert_eq!(
            judge_container_pasta("web", "/run/netns/x", Some(7)).status,
            Status::Pass
        );

        let host: BTreeSet<IpAddr> = ["192.0.2.10".parse().unwrap()].into();
        let ns: BTreeSet<IpAddr> = ["192.0.2.9".parse().unwrap()].into();
        let stale = judge_addresses(
            "addresses",
            "web",
            &ns,
            &host,
            "the container",
            Problem::NetnsStale,
        );
        assert_eq!(
            (stale.status, stale.problem),
            (Status::Warn, Some(Problem::NetnsStale))
        );
        assert!(stale.finding.contains("192.0.2.9"), "{}", stale.finding);
        let fresh = judge_addresses(
            "addresses",
            "web",
            &host,
            &host,
            "the container",
            Problem::NetnsStale,
        );
        assert_eq!(fresh.status, Status::Pass);
    }

    #[test]
    fn a_heal_is_judged_by_what_is_still_broken_after_it() {
        let restart = HealAction::RestartContainer {
            container: "web".to_owned(),
            reason: "its pasta process died".to_owned(),
        };
        let containers = vec![ContainerFacts {
            name: "web".to_owned(),
            project: Some("site".to_owned()),
            running: true,
            bridge: false,
        }];
        let still = vec![
            judge_container_pasta("web", "/run/netns/x", None),
            judge_container_pasta("db", "/run/netns/y", None),
        ];
        let left = still_broken(&restart, &still, &containers);
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].starts_with("web: "), "{left:?}");
        let stacks = HealAction::RestartStacks {
            stacks: vec!["site".to_owned()],
            reason: "the rootless netns is gone".to_owned(),
        };
        assert_eq!(still_broken(&stacks, &still, &containers).len(), 1);
        assert!(still_broken(&restart, &still[1..], &containers).is_empty());

        let healed = heal_result(restart.clone(), None);
        assert_eq!(healed.outcome, HealOutcome::Healed);
        let failed = heal_result(stacks, Some(left));
        assert_eq!(failed.outcome, HealOutcome::Failed);
        assert!(
            failed.detail.contains("podman unshare --rootless-netns"),
            "{}",
            failed.detail
        );
    }
}
