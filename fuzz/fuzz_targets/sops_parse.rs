//! Fuzzes the SOPS reader: any bytes, read as every format, with the public test
//! identity (so that inputs mutated from the corpus of real sops files reach
//! value decryption and the MAC check) must give a result or an error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magos::secrets::{self, Format, keys};

const TEST_KEY: &str = include_str!("../../tests/data/sops/age-yaml/keys.txt");

fuzz_target!(|data: &[u8]| {
    let ids = keys::parse_identities(TEST_KEY, "test key", false).expect("test key parses");
    for format in [
        Format::Yaml,
        Format::Json,
        Format::Dotenv,
        Format::Ini,
        Format::Binary,
    ] {
        let _ = secrets::is_sops(data, format);
        let _ = secrets::has_sops_marker(data, format);
        let _ = secrets::recipients(data, format);
        if let Ok(d) = secrets::decrypt(data, format, &ids) {
            let _ = d.to_plaintext();
            let _ = d.env_pairs();
        }
    }
});
