//! The doctor's host probes, with the standard library and procfs only: device
//! and file checks, process liveness, the pasta processes' command lines, the
//! addresses and listening sockets of a network namespace, and TCP probes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{self, PortProbe};

/// Whether `/dev/net/tun` opens read-write: `Err` carries the reason.
pub fn tun_usable(path: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether a process with this pid exists (what `kill -0` tells, read from
/// procfs) and its command line, split at NUL bytes.
pub fn process_cmdline(proc_root: &Path, pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Whether a command line is a pasta process (`pasta` or `passt` as the
/// program's file name).
pub fn is_pasta(cmdline: &[String]) -> bool {
    cmdline.first().is_some_and(|p| {
        let name = p.rsplit('/').next().unwrap_or(p);
        name == "pasta" || name == "pasta.avx2" || name == "passt"
    })
}

/// The pid of a live pasta process whose `--netns` argument is `netns`.
pub fn pasta_for_netns(proc_root: &Path, netns: &str) -> Option<u32> {
    let entries = std::fs::read_dir(proc_root).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            process_cmdline(proc_root, *pid).is_some_and(|cmd| {
                is_pasta(&cmd) && cmd.windows(2).any(|w| w[0] == "--netns" && w[1] == netns)
            })
        })
}

/// A pid file's pid, when it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The addresses of the network namespace `net_dir` (`/proc/net` or
/// `/proc/<pid>/net`) belongs to; `Err` says what could not be read.
pub fn namespace_addresses(net_dir: &Path) -> Result<BTreeSet<IpAddr>, String> {
    let trie = net_dir.join("fib_trie");
    let v4 = std::fs::read_to_string(&trie).map_err(|e| format!("{}: {e}", trie.display()))?;
    let mut out = model::fib_trie_local_v4(&v4);
    // No IPv6 in the namespace leaves no if_inet6 file: no IPv6 addresses.
    if let Ok(v6) = std::fs::read_to_string(net_dir.join("if_inet6")) {
        out.extend(model::if_inet6_addresses(&v6));
    }
    Ok(out)
}

/// Whether a socket listens on `port` in the namespace `net_dir` belongs to;
/// `None` when its tables cannot be read.
pub fn listens(net_dir: &Path, port: u16) -> Option<bool> {
    let mut any_read = false;
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(net_dir.join(table)) {
            any_read = true;
            if model::tcp_table_listens(&text, port) {
                return Some(true);
            }
        }
    }
    any_read.then_some(false)
}

/// Connects to `addr` and watches the connection for `linger`: a connection the
/// forwarder accepts but closes at once means nothing answered behind it.
pub fn probe_tcp(addr: SocketAddr, timeout: Duration, linger: Duration) -> PortProbe {
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => return PortProbe::Refused,
        Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
            return PortProbe::TimedOut;
        }
        Err(_) => return PortProbe::Refused,
    };
    if stream.set_read_timeout(Some(linger)).is_err() {
        return PortProbe::Open;
    }
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => PortProbe::ClosedAtOnce,
        Ok(_) => PortProbe::Open,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            PortProbe::Open
        }
        Err(_) => PortProbe::ClosedAtOnce,
    }
}

/// The address to probe a port published on `host_ip`: the bound address, or
/// 127.0.0.1 (::1) for the wildcard.
pub fn probe_address(host_ip: &str, port: u16) -> Option<SocketAddr> {
    let ip: IpAddr = if host_ip.is_empty() || host_ip == "0.0.0.0" {
        IpAddr::from([127, 0, 0, 1])
    } else if host_ip == "::" {
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    } else {
        host_ip.trim_matches(['[', ']']).parse().ok()?
    };
    Some(SocketAddr::new(ip, port))
}

/// The user name of `uid` in `/etc/passwd`.
pub fn user_name(passwd: &Path, uid: u32) -> Option<String> {
    let text = std::fs::read_to_string(passwd).ok()?;
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        let name = parts.next()?;
        let _pw = parts.next()?;
        (parts.next()? == uid).then(|| name.to_owned())
    })
}

/// The rootless netns's directory under a runtime directory.
pub fn rootless_netns_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("containers/networks/rootless-netns")
}

/// The addresses pasta gave the rootless netns, from Podman's `info.json` there.
pub fn rootless_netns_addresses(dir: &Path) -> Result<BTreeSet<IpAddr>, String> {
    let path = dir.join("info.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let info: NetnsInfo =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(info
        .ip_addresses
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect())
}

/// `rootless-netns/info.json` as Podman writes it, the part read.
#[derive(Debug, serde::Deserialize)]
struct NetnsInfo {
    #[serde(rename = "IPAddresses", default)]
    ip_addresses: Vec<String>,
}

/// Every process's pid and command line, read once per pass (the pasta and
/// Podman service lookups search this instead of procfs again).
pub fn processes(proc_root: &Path) -> Vec<(u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, process_cmdline(proc_root, pid)?)))
        .collect()
}

/// The live pasta processes by the network namespace they serve (`--netns`).
pub fn pasta_by_netns(procs: &[(u32, Vec<String>)]) -> BTreeMap<String, u32> {
    procs
        .iter()
        .filter(|(_, cmd)| is_pasta(cmd))
        .filter_map(|(pid, cmd)| {
            let ns = cmd.windows(2).find(|w| w[0] == "--netns")?[1].clone();
            Some((ns, *pid))
        })
        .collect()
}

/// The PATH of the Podman service of `uid` (`podman system service`), which
/// netavark inherits and searches for its firewall program.
pub fn podman_service_path(
    proc_root: &Path,
    procs: &[(u32, Vec<String>)],
    uid: u32,
) -> Option<String> {
    procs.iter().find_map(|(pid, cmd)| {
        let program = cmd.first()?.rsplit('/').next()?;
        let service = program == "podman"
            && cmd
                .windows(2)
                .any(|w| w[0] == "system" && w[1] == "service");
        if !service {
            return None;
        }
        let dir = proc_root.join(pid.to_string());
        if std::fs::metadata(&dir).ok()?.uid() != uid {
            return None;
        }
        let environ = std::fs::read(dir.join("environ")).ok()?;
        environ.split(|b| *b == 0).find_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            kv.strip_prefix("PATH=").map(str::to_owned)
        })
    })
}

/// Where `program` is on a PATH-style `search_path` (an executable file).
pub fn find_program(program: &str, search_path: &str) -> Option<PathBuf> {
    search_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The containers.conf files Podman reads, lowest precedence first: the
/// distribution's, the administrator's, then the Podman user's (`home`).
pub fn containers_conf_files(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/share/containers"),
        PathBuf::from("/etc/containers"),
    ];
    if let Some(home) = home {
        dirs.push(home.join(".config/containers"));
    }
    let mut out = Vec::new();
    for dir in dirs {
        out.push(dir.join("containers.conf"));
        if let Ok(entries) = std::fs::read_dir(dir.join("containers.conf.d")) {
            let mut drop_ins: Vec<PathBuf> = entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            drop_ins.sort();
            out.extend(drop_ins);
        }
    }
    out
}

/// netavark's built-in firewall driver (`netavark version`'s
/// `default_fw_driver`), run with a two-second limit.
pub fn netavark_default_driver(netavark: &Path) -> Option<String> {
    let mut child = std::process::Command::new(netavark)
        .arg("version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v.get("default_fw_driver")?.as_str().map(str::to_owned)
}

/// The user's home in `/etc/passwd`.
pub fn user_home(passwd: &Path, user: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[0] == user).then(|| PathBuf::from(f[5]))
    })
}

/// aardvark-dns's directory under a runtime directory.
pub fn aardvark_dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("containers/networks/aardvark-dns")
}

/// What the host sees of aardvark-dns: its live pid, its port, and the
/// addresses its UDP sockets are bound to on that port (`None`: unreadable).
pub fn aardvark_process(
    proc_root: &Path,
    dir: &Path,
) -> (Option<u32>, u16, Option<BTreeSet<IpAddr>>) {
    let Some(pid) = read_pid(&dir.join("aardvark.pid")) else {
        return (None, 53, None);
    };
    let Some(cmd) = process_cmdline(proc_root, pid)
        .filter(|c| c.first().is_some_and(|p| p.ends_with("aardvark-dns")))
    else {
        return (None, 53, None);
    };
    let port = cmd
        .windows(2)
        .find(|w| w[0] == "-p" || w[0] == "--port")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(53);
    let net = proc_root.join(pid.to_string()).join("net");
    let mut bound = None::<BTreeSet<IpAddr>>;
    for table in ["udp", "udp6"] {
        if let Ok(text) = std::fs::read_to_string(net.join(table)) {
            bound.get_or_insert_default().extend(
                model::udp_table_bound(&text)
                    .into_iter()
                    .filter(|(_, p)| *p == port)
                    .map(|(a, _)| a),
            );
        }
    }
    (Some(pid), port, bound)
}

/// Whether one of `servers` answers a DNS query for `name` within `timeout`
/// each: the first that answered, or what went wrong with each.
pub fn resolver_answers(
    servers: &[IpAddr],
    name: &str,
    timeout: Duration,
) -> Result<IpAddr, String> {
    let mut errors = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let id = (std::process::id() as u16) ^ (i as u16);
        let Some(query) = model::dns_query(id, name) else {
            return Err(format!("`{name}` is not a DNS name"));
        };
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let result = (|| -> Result<bool, std::io::Error> {
            let socket = std::net::UdpSocket::bind(bind)?;
            socket.set_read_timeout(Some(timeout))?;
            socket.connect(SocketAddr::new(*server, 53))?;
            socket.send(&query)?;
            let mut buf = [0u8; 512];
            let n = socket.recv(&mut buf)?;
            Ok(model::dns_reply_answers(id, &buf[..n]))
        })();
        match result {
            Ok(true) => return Ok(*server),
            Ok(false) => errors.push(format!("{server}: an answer that is no answer")),
            Err(e) => errors.push(format!("{server}: {e}")),
        }
    }
    if errors.is_empty() {
        Err("no nameserver in /etc/resolv.conf".to_owned())
    } else {
        Err(errors.join("; "))
    }
}

/// [`probe_tcp`] without a thread: many ports are probed at once.
pub async fn probe_tcp_async(addr: SocketAddr, timeout: Duration, linger: Duration) -> PortProbe {
    use tokio::io::AsyncReadExt;
    let mut stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await
    {
        Err(_) => return PortProbe::TimedOut,
        Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => return PortProbe::TimedOut,
        Ok(Err(_)) => return PortProbe::Refused,
        Ok(Ok(s)) => s,
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(linger, stream.read(&mut buf)).await {
        Err(_) => PortProbe::Open,
        Ok(Ok(0)) => PortProbe::ClosedAtOnce,
        Ok(Ok(_)) => PortProbe::Open,
        Ok(Err(_)) => PortProbe::ClosedAtOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasta_is_recognised_by_program_name() {
        let cmd = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(is_pasta(&cmd("/usr/bin/pasta --config-net")));
        assert!(is_pasta(&cmd("pasta.avx2 -t none")));
        assert!(!is_pasta(&cmd("/usr/bin/rootlessport")));
        assert!(!is_pasta(&[]));
    }

    #[test]
    fn probe_addresses_use_loopback_for_the_wildcard() {
        assert_eq!(
            probe_address("0.0.0.0", 80),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(probe_address("", 80), Some("127.0.0.1:80".parse().unwrap()));
        assert_eq!(
            probe_address("192.0.2.5", 81),
            Some("192.0.2.5:81".parse().unwrap())
        );
        assert_eq!(probe_address("::", 82), Some("[::1]:82".parse().unwrap()));
        assert_eq!(probe_address("nonsense", 82), None);
    }

    #[test]
    fn this_process_is_alive_and_its_namespace_readable() {
        let me = std::process::id();
        assert!(process_cmdline(Path::new("/proc"), me).is_some());
        assert!(process_cmdline(Path::new("/proc"), u32::MAX).is_none());
        let addrs = namespace_addresses(Path::new("/proc/net")).unwrap();
        assert!(addrs.contains(&IpAddr::from([127, 0, 0, 1])));
    }

    #[test]
    fn a_listening_socket_is_seen_and_probed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listens(Path::new("/proc/self/net"), port), Some(true));
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            probe_tcp(addr, Duration::from_secs(2), Duration::from_millis(100)),
            PortProbe::Open
        );
        drop(listener);
        assert_eq!(
            probe_tcp(addr, Duration::from_secs(2), Duration::from_millis(100)),
            PortProbe::Refused
        );
    }
}
