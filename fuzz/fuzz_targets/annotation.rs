//! Fuzzes the annotation reader and the parsers it relies on: no input panics,
//! and every error offset lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magos::core::annotation;
use magos::core::range::{Range, parse_tag_version};
use magos::core::reference::ImageRef;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(Err(e)) = annotation::parse_comment(text) {
        assert!(e.offset <= text.len());
        assert!(!e.message.contains('\n'));
    }
    if let Err(e) = annotation::parse_json(text) {
        assert!(e.offset <= text.len());
    }
    let _ = ImageRef::parse(text);
    let _ = Range::parse(text);
    let _ = parse_tag_version(text);
});
