//! The checks of the `quadlet` runtime: what systemd must offer for stacks run
//! as Quadlet units. The user's manager answers (`systemctl --user`), the user
//! lingers (`loginctl show-user`: without it the units stop at logout and do not
//! start at boot), and Podman's generator is installed (it turns the unit files
//! into services at every `daemon-reload`). Each failure says what to run.

use crate::systemd::units::{self, Systemctl, UnitDirs};

use super::model::{Cause, Check, Status};

/// The checks, for the unit folder `dirs` (the user's or, as root, the
/// system's).
pub fn checks(dirs: &UnitDirs) -> Vec<Check> {
    let mut out = Vec::new();
    let manager = if dirs.user() {
        "the user's systemd manager"
    } else {
        "the system's systemd manager"
    };
    out.push(match Systemctl::for_dirs(dirs).reachable() {
        Ok(state) => Check::pass("systemd_manager", "host", format!("{manager} answers ({state})")),
        Err(e) => Check::bad(
            "systemd_manager",
            "host",
            Status::Fail,
            Cause::Outside,
            format!("{manager} does not answer: {e}"),
            if dirs.user() {
                "run Magos inside the user's manager (`systemctl --user`, with XDG_RUNTIME_DIR set), and enable lingering: sudo loginctl enable-linger $USER"
            } else {
                "the quadlet runtime needs systemd as PID 1"
            },
        ),
    });
    if dirs.user() {
        let uid = rustix::process::getuid().as_raw().to_string();
        out.push(match units::linger(&uid) {
            Ok(true) => Check::pass(
                "quadlet_linger",
                "host",
                "the user lingers: its units start at boot",
            ),
            Ok(false) => Check::bad(
                "quadlet_linger",
                "host",
                Status::Fail,
                Cause::Outside,
                "the user does not linger: its units stop at logout and do not start at boot",
                format!("sudo loginctl enable-linger {uid}"),
            ),
            Err(e) => Check::bad(
                "quadlet_linger",
                "host",
                Status::Warn,
                Cause::Outside,
                format!("cannot ask logind whether the user lingers: {e}"),
                "check with: loginctl show-user $USER -P Linger (it must say yes)",
            ),
        });
    }
    out.push(match units::generator() {
        Some(path) => Check::pass(
            "quadlet_generator",
            "host",
            format!("Podman's Quadlet generator is {}", path.display()),
        ),
        None => Check::bad(
            "quadlet_generator",
            "host",
            Status::Fail,
            Cause::Podman,
            format!(
                "Podman's Quadlet generator is missing (looked for {})",
                units::GENERATORS.join(", ")
            ),
            "install Podman 5 or newer (package podman), which ships the generator",
        ),
    });
    out
}
