//! Property tests: over generated compose layouts, a rewrite changes only the
//! image value and rewriting twice equals rewriting once; over arbitrary input,
//! the annotation parser, the scanner, the rewriter and the reference parser
//! never panic.

use magos::core::annotation;
use magos::core::compose::{StackSource, load};
use magos::core::interpolate::{Vars, interpolate};
use magos::core::reference::ImageRef;
use magos::core::rewrite::{Edit, rewrite, scan};
use magos::core::stacks::{Selection, discover};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Service {
    name: String,
    image: String,
    quote: u8,
    comment: Option<String>,
    extra_before: bool,
    extra_after: bool,
    blank_after: bool,
}

fn service() -> impl Strategy<Value = Service> {
    (
        "[a-z][a-z0-9_-]{0,8}",
        "(ghcr\\.io/)?[a-z]{1,6}(/[a-z]{1,6})?:[0-9]{1,2}\\.[0-9]{1,2}",
        0u8..3,
        proptest::option::of("[ -~&&[^\\r\\n]]{0,30}"),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(name, image, quote, comment, extra_before, extra_after, blank_after)| Service {
                name,
                image,
                quote,
                comment,
                extra_before,
                extra_after,
                blank_after,
            },
        )
}

fn document() -> impl Strategy<Value = (String, Vec<Service>)> {
    (
        proptest::collection::vec(service(), 1..6),
        1usize..5,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mut services, step, crlf, final_newline, header)| {
            services.sort_by(|a, b| a.name.cmp(&b.name));
            services.dedup_by(|a, b| a.name == b.name);
            let nl = if crlf { "\r\n" } else { "\n" };
            let i1 = " ".repeat(step);
            let i2 = " ".repeat(step * 2);
            let mut out = String::new();
            if header {
                out.push_str(&format!("# generated{nl}name: demo{nl}{nl}"));
            }
            out.push_str(&format!("services:{nl}"));
            for s in &services {
                out.push_str(&format!("{i1}{}:{nl}", s.name));
                if s.extra_before {
                    out.push_str(&format!("{i2}restart: always # r{nl}"));
                }
                let q = match s.quote {
                    0 => "",
                    1 => "'",
                    _ => "\"",
                };
                out.push_str(&format!("{i2}image: {q}{}{q}", s.image));
                if let Some(c) = &s.comment {
                    out.push_str(&format!(" #{c}"));
                }
                out.push_str(nl);
                if s.extra_after {
                    out.push_str(&format!("{i2}ports:{nl}{i2}  - \"127.0.0.1:80:80\"{nl}"));
                }
                if s.blank_after {
                    out.push_str(nl);
                }
            }
            if !final_newline {
                while out.ends_with('\n') || out.ends_with('\r') {
                    out.pop();
                }
            }
            (out, services)
        })
}

fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn only_the_value_changes_and_twice_is_once(
        (doc, services) in document(),
        pick in any::<prop::sample::Index>(),
        tag in "[0-9]{1,3}\\.[0-9]{1,3}",
        hex in "[0-9a-f]{64}",
    ) {
        let s = &services[pick.index(services.len())];
        let name = s.image.split(':').next().unwrap();
        let new = format!("{name}:{tag}@sha256:{hex}");
        let edit = Edit { service: &s.name, expected: &s.image, new: &new };
        let once = rewrite(&doc, &edit).unwrap();
        let twice = rewrite(&once, &edit).unwrap();
        prop_assert_eq!(&once, &twice);
        let site = scan(&doc).site(&s.name).cloned().unwrap();
        let (before, after) = (split_lines(&doc), split_lines(&once));
        prop_assert_eq!(before.len(), after.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if i + 1 == site.line {
                let start = site.span.0 - site.line_start;
                let end = site.span.1 - site.line_start;
                prop_assert_eq!(&a[..start], &b[..start]);
                prop_assert_eq!(&a[start..start + new.len()], new.as_str());
                prop_assert_eq!(&a[start + new.len()..], &b[end..]);
            } else {
                prop_assert_eq!(a, b);
            }
        }
        // The rewritten file scans to the same services, the new value in place.
        let rescanned = scan(&once);
        prop_assert_eq!(rescanned.sites.len(), services.len());
        prop_assert_eq!(&rescanned.site(&s.name).unwrap().value, &new);
    }

    #[test]
    fn no_panic_on_arbitrary_text(text in "(?s).{0,400}", service in "[a-z]{0,4}", new in ".{0,40}") {
        let _ = scan(&text);
        let _ = rewrite(&text, &Edit { service: &service, expected: "x", new: &new });
        let _ = annotation::parse_comment(&text);
        let _ = annotation::parse_json(&text);
        let _ = ImageRef::parse(&text);
        let vars = Vars::new();
        let loaded = load(&StackSource { compose: ("c.yaml", &text), override_file: None, vars: &vars });
        for d in &loaded.diagnostics {
            prop_assert!(!d.message.contains('\n'));
        }
        let _ = interpolate(&text, &vars);
    }

    #[test]
    fn no_panic_on_arbitrary_paths(paths in proptest::collection::vec("[a-z./_-]{0,12}(compose\\.ya?ml)?", 0..12)) {
        let _ = discover(&paths, "root", &Selection::default());
    }

    #[test]
    fn no_panic_on_yaml_like_text(
        lines in proptest::collection::vec(
            "( {0,6})(services:|image:|[a-z]{1,3}:|- |#|&a |\\*a|'|\"|\\{|\\[|\\$\\{|\\|)?[ -~]{0,20}(\r)?",
            0..20,
        ),
        new in "[a-z]{1,5}:[0-9]",
    ) {
        let text = lines.join("\n");
        let s = scan(&text);
        for site in &s.sites {
            prop_assert!(site.span.0 <= site.span.1 && site.span.1 <= text.len());
            prop_assert!(text.is_char_boundary(site.span.0) && text.is_char_boundary(site.span.1));
            if let Ok(out) = rewrite(&text, &Edit { service: &site.service, expected: &site.value, new: &new }) {
                let again = rewrite(&out, &Edit { service: &site.service, expected: &site.value, new: &new }).unwrap();
                prop_assert_eq!(&out, &again);
            }
        }
    }

    #[test]
    fn no_panic_on_annotation_like_json(
        key in "(policy|range|repo|tag|digest|order|filter|extract|platform|minAge|x)",
        value in "[ -~]{0,30}",
        policy in "(semver|latest|digest|numerical|alphabetical|other)",
    ) {
        let json = format!(
            r#" {{"magos": {{"policy": "{policy}", "{key}": {}}}}}"#,
            serde_json::to_string(&value).unwrap()
        );
        if let Some(Err(e)) = annotation::parse_comment(&json) {
            prop_assert!(e.offset <= json.len());
            prop_assert!(!e.message.contains('\n'));
        }
    }
}
