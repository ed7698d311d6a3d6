//! A service's `x-magos:` keys for the soak after a change: `soak` (how long it
//! is watched, overriding `rollback.soak`) and `rollback` (`false`: keep the
//! new version even when it fails, e.g. a database whose new version migrates
//! its data).

use std::time::Duration;

use serde_yaml_ng::Value;

use super::Service;

/// What a service's `x-magos:` says about its soak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoakOptions {
    /// `x-magos.soak`: its own soak length.
    pub soak: Option<Duration>,
    /// `x-magos.rollback: false` turns rollback off for it.
    pub rollback: Option<bool>,
}

/// The service-level `x-magos` keys.
pub const SERVICE_KEYS: &[&str] = &["soak", "rollback"];

impl Service {
    /// Reads the service's `x-magos:` soak keys; the error names the key.
    pub fn soak_options(&self) -> Result<SoakOptions, String> {
        let Some(x) = self.other.get("x-magos") else {
            return Ok(SoakOptions::default());
        };
        let Value::Mapping(map) = x else {
            return Err("`x-magos` must be a mapping, e.g. `x-magos: {soak: 30s}`".to_owned());
        };
        let mut out = SoakOptions::default();
        for (k, v) in map {
            match k.as_str() {
                Some("soak") => {
                    let text = v
                        .as_str()
                        .ok_or("`x-magos.soak` must be a duration like `30s`")?;
                    let d = crate::core::duration::parse(text)
                        .map_err(|e| format!("`x-magos.soak`: {e}"))?;
                    out.soak = Some(d);
                }
                Some("rollback") => {
                    out.rollback = Some(
                        v.as_bool()
                            .ok_or("`x-magos.rollback` must be `true` or `false`")?,
                    );
                }
                other => {
                    return Err(format!(
                        "`x-magos.{}` is not a service key; known: {}",
                        other.unwrap_or("?"),
                        SERVICE_KEYS.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn soak_and_rollback_are_read_and_checked() {
        assert_eq!(
            service("image: a").soak_options(),
            Ok(SoakOptions::default())
        );
        assert_eq!(
            service("image: a\nx-magos: {soak: 30s, rollback: false}").soak_options(),
            Ok(SoakOptions {
                soak: Some(Duration::from_secs(30)),
                rollback: Some(false)
            })
        );
        let e = service("image: a\nx-magos: {soak: soon}")
            .soak_options()
            .unwrap_err();
        assert!(e.starts_with("`x-magos.soak`"), "{e}");
        let e = service("image: a\nx-magos: {rollback: maybe}")
            .soak_options()
            .unwrap_err();
        assert!(e.contains("`true` or `false`"), "{e}");
        let e = service("image: a\nx-magos: {sok: 1s}")
            .soak_options()
            .unwrap_err();
        assert!(
            e.contains("x-magos.sok") && e.contains("soak, rollback"),
            "{e}"
        );
    }
}
