//! What the daemon keeps between passes about soaks and rollbacks (the file
//! `rollback.json` in the state folder), and the pure rules around it: which
//! digests are rejected, which definitions are held back, and the message of a
//! revert commit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::soak::{Failure, Soak};
use super::spec::ContainerSpec;

/// The trailer a rollback commit carries.
pub const TRAILER: &str = "Magos-Rollback";

/// A pin Magos committed, as the soak remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinCommit {
    /// The commit (pushed, or kept on a local branch).
    pub commit: String,
    /// Whether it pinned this service alone (a `git revert` undoes exactly it).
    pub alone: bool,
    /// The file holding the image line, relative to the repository.
    pub file: String,
}

/// A changed service being watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soaking {
    /// Its stack (project).
    pub stack: String,
    /// The service.
    pub service: String,
    /// The container watched.
    pub container: String,
    /// The config hash of the new definition (the one that must prove itself).
    pub config_hash: String,
    /// The image line's value before the change (`repo:1.0.0@sha256:…`), when
    /// the change was an image change that can be undone on the host.
    #[serde(default)]
    pub from: Option<String>,
    /// The image line's value after the change.
    pub to: String,
    /// The new digest, when pinned.
    #[serde(default)]
    pub to_digest: Option<String>,
    /// Magos's pin commit, when Magos made the change.
    #[serde(default)]
    pub pin: Option<PinCommit>,
    /// The commit the followed branch was at when a person's change was
    /// applied (Magos's own pins name theirs in `pin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The verdict's state.
    pub soak: Soak,
}

impl Soaking {
    /// `stack/service`.
    pub fn who(&self) -> String {
        format!("{}/{}", self.stack, self.service)
    }
}

/// A digest that failed its soak: no policy pins it again until it is cleared
/// (a newer digest is another digest, so it is pinned as usual).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The repository, as in `magos check` (`127.0.0.1:5000/app`).
    pub image: String,
    /// The digest.
    pub digest: String,
    /// The tag it was pinned under, when known.
    #[serde(default)]
    pub tag: Option<String>,
    /// Why.
    pub reason: String,
    /// When (Unix seconds).
    pub at: i64,
}

impl Rejected {
    /// `image@digest`, as `magos rejected --clear` takes it.
    pub fn key(&self) -> String {
        format!("{}@{}", self.image, self.digest)
    }
}

/// A definition that failed its soak while the repository still asks for it
/// (a person's change, or a revert not yet pushed): the daemon leaves the
/// stack as it is, reported as failing, until the repository changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// The config hash of the failed definition.
    pub config_hash: String,
    /// Why, for the stack's error.
    pub reason: String,
    /// The commit that brought it, when known.
    #[serde(default)]
    pub commit: Option<String>,
    /// The last good image line (`repo:1.0.0@sha256:…`) run instead, when the
    /// failed change was an image change Magos pinned.
    #[serde(default)]
    pub from: Option<String>,
}

/// A pin Magos proposed in a pull request (pull-request mode): when a person
/// merges it and it fails its soak, it is Magos's pin to undo, by a pull
/// request of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedPin {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// The file holding the image line, relative to the repository.
    pub file: String,
    /// The image line's value the pull request replaced.
    pub old: String,
    /// The value it proposed (`repo:1.1.0@sha256:…`).
    pub new: String,
    /// The pull-request branch's commit.
    pub commit: String,
    /// Whether the commit pinned this service alone.
    pub alone: bool,
}

/// The git half of a rollback that could not be done yet (the push or the
/// pull request failed): tried again on the next passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRevert {
    /// The failed soak, with Magos's pin and the last good line.
    pub soaking: Soaking,
    /// Why it failed.
    pub failure: Failure,
    /// `image@digest` of the failed pin, for the trailer.
    pub image_at: String,
    /// The attempts so far.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
}

/// Everything `rollback.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Soaks under way.
    #[serde(default)]
    pub soaks: Vec<Soaking>,
    /// Digests rejected.
    #[serde(default)]
    pub rejected: Vec<Rejected>,
    /// Definitions held back.
    #[serde(default)]
    pub held: Vec<Held>,
    /// Pins proposed in pull requests, the newest per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proposed: Vec<ProposedPin>,
    /// Reverts still to push or propose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<PendingRevert>,
    /// The definitions that ran before a person's change, by `stack/service`,
    /// run again while that change is held. Kept in memory only: after a
    /// restart a held change of a person is left as it runs.
    #[serde(skip)]
    pub last_good: BTreeMap<String, ContainerSpec>,
}

impl State {
    /// The rejection of `digest` in `image`, if any.
    pub fn rejected(&self, image: &str, digest: &str) -> Option<&Rejected> {
        self.rejected
            .iter()
            .find(|r| r.image == image && r.digest == digest)
    }

    /// Records a rejection (once per image and digest).
    pub fn reject(&mut self, r: Rejected) {
        if self.rejected(&r.image, &r.digest).is_none() {
            self.rejected.push(r);
        }
    }

    /// Clears the rejection named `image@digest`; whether there was one.
    pub fn clear(&mut self, key: &str) -> bool {
        let before = self.rejected.len();
        self.rejected.retain(|r| r.key() != key);
        self.rejected.len() != before
    }

    /// Starts watching a service, replacing an older soak of it.
    pub fn start(&mut self, s: Soaking) {
        self.soaks
            .retain(|o| !(o.stack == s.stack && o.service == s.service));
        self.soaks.push(s);
    }

    /// Holds a definition back.
    pub fn hold(&mut self, h: Held) {
        self.held
            .retain(|o| !(o.stack == h.stack && o.service == h.service));
        self.held.push(h);
    }

    /// Remembers a proposed pin, replacing an older proposal for its service.
    pub fn propose(&mut self, p: ProposedPin) {
        self.proposed
            .retain(|o| !(o.stack == p.stack && o.service == p.service));
        self.proposed.push(p);
    }

    /// Takes the proposal that pinned `stack/service` to `digest`, if any: the
    /// definition the repository now asks for is Magos's merged pin.
    pub fn take_proposal(
        &mut self,
        stack: &str,
        service: &str,
        digest: &str,
    ) -> Option<ProposedPin> {
        let i = self.proposed.iter().position(|p| {
            p.stack == stack
                && p.service == service
                && p.new.rsplit_once('@').is_some_and(|(_, d)| d == digest)
        })?;
        Some(self.proposed.remove(i))
    }

    /// Records a revert to try again, replacing an older one of its service.
    pub fn pend(&mut self, r: PendingRevert) {
        self.reverts.retain(|o| {
            !(o.soaking.stack == r.soaking.stack && o.soaking.service == r.soaking.service)
        });
        self.reverts.push(r);
    }

    /// The hold on a service whose repository definition hashes to `hash`;
    /// a hold whose definition the repository no longer asks for is dropped.
    pub fn holding(&mut self, stack: &str, service: &str, hash: &str) -> Option<&Held> {
        self.held
            .retain(|h| !(h.stack == stack && h.service == service && h.config_hash != hash));
        self.held
            .iter()
            .find(|h| h.stack == stack && h.service == service)
    }
}

/// The message of the commit that undoes a failed pin. When Magos's pin
/// commit touched only this service it is `git revert`'s own message for it;
/// otherwise a commit restoring the previous line. Both end with the
/// `Magos-Rollback: <image>@<digest>: <reason>` trailer.
pub fn revert_message(
    pin_subject: Option<&str>,
    pin: &PinCommit,
    who: &str,
    from: &str,
    image_at_digest: &str,
    failure: &Failure,
) -> String {
    let head = match pin_subject {
        Some(subject) if pin.alone => format!(
            "Revert \"{subject}\"\n\nThis reverts commit {}.",
            pin.commit
        ),
        _ => format!(
            "Roll back {who} to {from}\n\nRestores the image line commit {} changed.",
            pin.commit
        ),
    };
    format!("{head}\n\n{TRAILER}: {image_at_digest}: {failure}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(image: &str, digest: &str) -> Rejected {
        Rejected {
            image: image.into(),
            digest: digest.into(),
            tag: Some("1.1.0".into()),
            reason: "its healthcheck reported unhealthy".into(),
            at: 7,
        }
    }

    #[test]
    fn a_digest_is_rejected_once_and_cleared_by_its_key() {
        let mut s = State::default();
        s.reject(rejected("reg/app", "sha256:b"));
        s.reject(rejected("reg/app", "sha256:b"));
        assert_eq!(s.rejected.len(), 1);
        assert!(s.rejected("reg/app", "sha256:b").is_some());
        assert!(
            s.rejected("reg/app", "sha256:c").is_none(),
            "a newer digest is not rejected"
        );
        assert!(s.rejected("reg/other", "sha256:b").is_none());
        assert!(!s.clear("reg/app@sha256:c"));
        assert!(s.clear("reg/app@sha256:b"));
        assert!(s.rejected.is_empty());
    }

    #[test]
    fn a_hold_lasts_while_the_repository_asks_for_the_failed_definition() {
        let mut s = State::default();
        s.hold(Held {
            stack: "web".into(),
            service: "app".into(),
            config_hash: "bad".into(),
            reason: "r".into(),
            commit: Some("c1".into()),
            from: None,
        });
        assert!(s.holding("web", "app", "bad").is_some());
        assert!(s.holding("web", "db", "bad").is_none());
        assert!(s.holding("web", "app", "fixed").is_none());
        assert!(s.held.is_empty(), "a new definition ends the hold");
    }

    #[test]
    fn revert_messages_carry_the_trailer() {
        let pin = PinCommit {
            commit: "abc123".into(),
            alone: true,
            file: "web/compose.yaml".into(),
        };
        let m = revert_message(
            Some("Pin web/app to 1.1.0"),
            &pin,
            "web/app",
            "reg/app:1.0.0@sha256:a",
            "reg/app@sha256:b",
            &Failure::Unhealthy,
        );
        assert_eq!(
            m,
            "Revert \"Pin web/app to 1.1.0\"\n\nThis reverts commit abc123.\n\nMagos-Rollback: reg/app@sha256:b: its healthcheck reported unhealthy\n"
        );
        let shared = PinCommit {
            alone: false,
            ..pin
        };
        let m = revert_message(
            Some("Pin 2 images"),
            &shared,
            "web/app",
            "reg/app:1.0.0@sha256:a",
            "reg/app@sha256:b",
            &Failure::Restarted,
        );
        assert!(
            m.starts_with("Roll back web/app to reg/app:1.0.0@sha256:a\n"),
            "{m}"
        );
        assert!(m.ends_with(
            "Magos-Rollback: reg/app@sha256:b: its restart policy restarted it (crash loop)\n"
        ));
    }

    fn proposal(service: &str, new: &str) -> ProposedPin {
        ProposedPin {
            stack: "web".into(),
            service: service.into(),
            file: "web/compose.yaml".into(),
            old: "reg/app:1.0.0@sha256:a".into(),
            new: new.into(),
            commit: "c1".into(),
            alone: true,
        }
    }

    #[test]
    fn a_merged_proposal_is_found_by_its_digest_once() {
        let mut s = State::default();
        s.propose(proposal("app", "reg/app:1.1.0@sha256:b"));
        s.propose(proposal("app", "reg/app:1.2.0@sha256:c"));
        s.propose(proposal("db", "reg/db:2@sha256:d"));
        assert_eq!(s.proposed.len(), 2, "the newest proposal per service");
        assert!(
            s.take_proposal("web", "app", "sha256:b").is_none(),
            "a superseded proposal is forgotten"
        );
        assert!(s.take_proposal("web", "db", "sha256:c").is_none());
        let p = s.take_proposal("web", "app", "sha256:c").unwrap();
        assert_eq!(p.old, "reg/app:1.0.0@sha256:a");
        assert!(s.take_proposal("web", "app", "sha256:c").is_none());
        assert_eq!(s.proposed.len(), 1);
    }

    #[test]
    fn the_state_reads_back_what_it_wrote() {
        let mut s = State::default();
        s.reject(rejected("reg/app", "sha256:b"));
        let bare = serde_json::to_string(&s).unwrap();
        assert!(
            !bare.contains("proposed") && !bare.contains("reverts"),
            "an older Magos reads what a state without them writes: {bare}"
        );
        s.propose(proposal("app", "reg/app:1.1.0@sha256:b"));
        s.pend(PendingRevert {
            soaking: Soaking {
                stack: "web".into(),
                service: "app".into(),
                container: "web_app_1".into(),
                config_hash: "h".into(),
                from: Some("reg/app:1.0.0@sha256:a".into()),
                to: "reg/app:1.1.0@sha256:b".into(),
                to_digest: Some("sha256:b".into()),
                pin: None,
                commit: None,
                soak: Soak::new(
                    crate::core::soak::Rules {
                        health: None,
                        may_exit: false,
                        soak_ms: 1000,
                    },
                    0,
                ),
            },
            failure: Failure::Unhealthy,
            image_at: "reg/app@sha256:b".into(),
            attempts: 1,
            error: "refused".into(),
        });
        let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let empty: State = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, State::default());
    }
}
