//! Fuzzes the image-line scanner and the rewriter. The first line of the input
//! is the new image value, the rest the compose text. Checks: no panic, spans on
//! character boundaries, a rewrite only changes the value's bytes, and rewriting
//! twice equals rewriting once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magos::core::rewrite::{Edit, rewrite, scan};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (new, text) = input.split_once('\n').unwrap_or(("nginx:1.0", input));
    let s = scan(text);
    for site in &s.sites {
        assert!(site.span.0 <= site.span.1 && site.span.1 <= text.len());
        assert!(text.is_char_boundary(site.span.0) && text.is_char_boundary(site.span.1));
        let edit = Edit {
            service: &site.service,
            expected: &site.value,
            new,
        };
        if let Ok(out) = rewrite(text, &edit) {
            if out != text {
                assert_eq!(&out[..site.span.0], &text[..site.span.0]);
                assert_eq!(
                    &out[out.len() - (text.len() - site.span.1)..],
                    &text[site.span.1..]
                );
            }
            let again = rewrite(&out, &edit).expect("a rewritten line can be rewritten again");
            assert_eq!(again, out);
        }
    }
});
