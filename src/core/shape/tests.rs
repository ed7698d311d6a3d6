use super::*;
use crate::core::compose::{StackSource, load};
use crate::core::interpolate::Vars;

fn loaded(yaml: &str) -> Loaded {
    let l = load(&StackSource {
        compose: ("web/compose.yaml", yaml),
        override_file: None,
        vars: &Vars::new(),
    });
    assert!(l.error.is_none(), "{:?}", l.diagnostics);
    l
}

fn names(l: &Loaded) -> Vec<&str> {
    l.services.iter().map(|s| s.name.as_str()).collect()
}

fn profiles(list: &[&str]) -> Vec<String> {
    list.iter().map(|p| (*p).to_owned()).collect()
}

const PROFILED: &str = "services:
  app:
    image: a
  debug:
    image: d
    profiles: [debug]
  tools:
    image: t
    profiles: [tools, debug]
";

#[test]
fn a_service_without_profiles_always_runs_and_one_with_them_only_when_active() {
    let mut l = loaded(PROFILED);
    assert_eq!(select_profiles(&mut l, &[]), ["debug", "tools"]);
    assert_eq!(names(&l), ["app"]);
    assert!(l.error.is_none());

    let mut l = loaded(PROFILED);
    assert_eq!(select_profiles(&mut l, &profiles(&["tools"])), ["debug"]);
    assert_eq!(names(&l), ["app", "tools"]);

    let mut l = loaded(PROFILED);
    assert!(select_profiles(&mut l, &profiles(&["debug"])).is_empty());
    assert_eq!(names(&l), ["app", "debug", "tools"]);

    let mut l = loaded(PROFILED);
    assert!(select_profiles(&mut l, &profiles(&["*"])).is_empty());
    assert_eq!(names(&l), ["app", "debug", "tools"]);
}

#[test]
fn every_profile_is_named_for_tools_that_do_not_know_the_star() {
    let l = loaded(PROFILED);
    assert_eq!(named_profiles(&l, &profiles(&["*"])), ["debug", "tools"]);
    assert_eq!(named_profiles(&l, &profiles(&["tools"])), ["tools"]);
    assert!(named_profiles(&l, &[]).is_empty());
}

#[test]
fn profiles_are_not_an_unsupported_key() {
    let l = loaded(PROFILED);
    assert!(
        l.services
            .iter()
            .all(|s| s.service.as_ref().unwrap().unsupported().is_empty())
    );
}

#[test]
fn depending_on_a_disabled_service_is_an_error_naming_both() {
    let yaml = "services:
  app:
    image: a
    depends_on:
      db: {condition: service_healthy}
  db:
    image: d
    profiles: [db]
  side:
    image: s
    network_mode: service:db
";
    let mut l = loaded(yaml);
    select_profiles(&mut l, &[]);
    let e = l.error.expect("an error");
    assert_eq!(e.errors.len(), 2, "{e:?}");
    let first = &e.errors[0];
    assert_eq!((first.file.as_str(), first.line), ("web/compose.yaml", 2));
    assert!(
        first
            .message
            .contains("service `app` depends on service `db`")
            && first.message.contains("`db`)"),
        "{}",
        first.message
    );
    assert!(
        e.errors[1]
            .message
            .contains("service `side` depends on service `db`")
    );
    // Enabled together: fine.
    let mut l = loaded(yaml);
    select_profiles(&mut l, &profiles(&["db"]));
    assert!(l.error.is_none());
}

#[test]
fn a_bad_profiles_value_fails_the_stack_at_the_service() {
    for (bad, says) in [
        ("profiles: debug", "must be a list"),
        ("profiles: [\"-x\"]", "not a valid profile name"),
        ("profiles: [[a]]", "must be a list of names"),
    ] {
        let mut l = loaded(&format!(
            "services:\n  app:\n    image: a\n  x:\n    image: b\n    {bad}\n"
        ));
        select_profiles(&mut l, &[]);
        let e = l.error.expect("an error");
        assert_eq!(e.errors[0].line, 4, "{bad}");
        assert!(
            e.errors[0].message.contains(says),
            "{bad}: {}",
            e.errors[0].message
        );
    }
}
