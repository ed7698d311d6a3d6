//! A stand-in for the StackSpec → Quadlet conversion, replaced by the real one
//! (`magos export quadlet`'s) when it lands: image, name, labels, published
//! ports, healthcheck, `depends_on` and the restart policy only.

use super::plan::pull_reference;
use super::spec::{DependencyCondition, StackSpec};

/// One unit file: its name (`web_httpd_1.container`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The file name.
    pub name: String,
    /// The text.
    pub contents: String,
}

/// The units of a stack.
pub fn stack_units(stack: &StackSpec, user: bool) -> Result<Vec<UnitFile>, String> {
    let target = if user {
        "default.target"
    } else {
        "multi-user.target"
    };
    let mut out = Vec::new();
    for c in &stack.services {
        let mut unit = String::from("[Unit]\n");
        for d in &c.depends_on {
            let dep = stack
                .services
                .iter()
                .find(|s| s.service == d.service)
                .ok_or_else(|| format!("{}: depends on unknown {}", c.service, d.service))?;
            unit.push_str(&format!(
                "Requires={0}.service\nAfter={0}.service\n",
                dep.name
            ));
        }
        unit.push_str("\n[Container]\n");
        unit.push_str(&format!("Image={}\n", pull_reference(&c.image)));
        unit.push_str(&format!("ContainerName={}\n", c.name));
        for (k, v) in c.all_labels(stack) {
            unit.push_str(&format!("Label={k}={v}\n"));
        }
        if !c.secret_environment.is_empty() {
            unit.push_str(&format!(
                "EnvironmentFile=%t/magos/secrets/{}/{}.env\n",
                stack.project, c.name
            ));
        }
        for net in c.networks.keys() {
            unit.push_str(&format!("Network={net}\n"));
        }
        for p in &c.ports {
            let ip = if p.host_ip.is_empty() {
                String::new()
            } else {
                format!("{}:", p.host_ip)
            };
            unit.push_str(&format!(
                "PublishPort={ip}{}:{}/{}\n",
                p.host_port, p.container_port, p.protocol
            ));
        }
        if let Some(h) = &c.healthcheck
            && h.test.first().map(String::as_str) == Some("CMD-SHELL")
        {
            unit.push_str(&format!("HealthCmd={}\n", h.test[1..].join(" ")));
            unit.push_str("HealthInterval=2s\n");
        }
        let waited = stack.services.iter().any(|s| {
            s.depends_on.iter().any(|d| {
                d.service == c.service && d.condition == DependencyCondition::ServiceHealthy
            })
        });
        if waited {
            unit.push_str("Notify=healthy\n");
        }
        unit.push_str("\n[Service]\nRestart=always\nTimeoutStartSec=300\n");
        unit.push_str(&format!("\n[Install]\nWantedBy={target}\n"));
        out.push(UnitFile {
            name: format!("{}.container", c.name),
            contents: unit,
        });
    }
    Ok(out)
}
