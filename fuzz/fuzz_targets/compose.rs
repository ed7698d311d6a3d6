//! Fuzzes loading a whole stack from arbitrary text: never a panic, every
//! diagnostic one line and inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magos::core::compose::{StackSource, load};
use magos::core::interpolate::Vars;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = Vars::new();
    let loaded = load(&StackSource {
        compose: ("compose.yaml", text),
        override_file: None,
        vars: &vars,
    });
    // YAML counts a lone CR as a line break too.
    let lines = text.matches('\n').count() + text.matches('\r').count() + 1;
    for d in &loaded.diagnostics {
        assert!(!d.message.contains('\n'));
        assert!(d.line >= 1 && d.line <= lines, "{d}");
    }
});
