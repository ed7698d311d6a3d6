//! Tests of the SOPS decrypter: the real-sops YAML fixtures, every format through
//! the test encryptor, tampering, keys and a no-panic property.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::testenc::{self, Options};
use super::tree::{Entry, Node};
use super::*;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sops/age-yaml")
}

fn fixture_identities() -> Identities {
    let text = std::fs::read_to_string(fixtures_dir().join("keys.txt")).unwrap();
    keys::parse_identities(&text, "keys.txt", false).unwrap()
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".yaml") && !n.ends_with("_plaintext.yaml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_decrypts_to_its_plaintext_twin_with_a_verified_mac() {
    let ids = fixture_identities();
    let files = fixture_files();
    assert_eq!(files.len(), 7, "all seven fixtures are present");
    for path in files {
        let text = std::fs::read(&path).unwrap();
        assert!(
            is_sops(&text, Format::Yaml),
            "{} is recognised",
            path.display()
        );
        let decrypted = decrypt(&text, Format::Yaml, &ids)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let twin = path.with_file_name(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".yaml", "_plaintext.yaml"),
        );
        let expected = std::fs::read_to_string(&twin).unwrap();
        let got = decrypted.to_plaintext().unwrap();
        assert_eq!(
            got.expose_str().unwrap(),
            expected,
            "{} reproduces {}",
            path.display(),
            twin.display()
        );
    }
}

#[test]
fn plaintext_twins_are_not_sops_files() {
    for path in fixture_files() {
        let twin = path.with_file_name(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".yaml", "_plaintext.yaml"),
        );
        let text = std::fs::read(&twin).unwrap();
        assert!(!is_sops(&text, Format::Yaml), "{}", twin.display());
        assert!(matches!(
            decrypt(&text, Format::Yaml, &fixture_identities()),
            Err(SopsError::NoMetadata)
        ));
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join(name)).unwrap()
}

#[test]
fn fixture_with_a_flipped_ciphertext_names_the_key_path() {
    let text = fixture("age_example.yaml");
    let tampered = text.replacen("data:dlBJ", "data:dlBK", 1);
    assert_ne!(text, tampered);
    let err = decrypt(tampered.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(
        matches!(&err, SopsError::ValueAuth { path } if path == "example_key"),
        "{err}"
    );
    let msg = err.in_file(Path::new("secrets/app.yaml"));
    let chain = format!("{}: {}", msg, std::error::Error::source(&msg).unwrap());
    assert!(chain.contains("secrets/app.yaml"), "{chain}");
    assert!(chain.contains("example_key"), "{chain}");
    assert!(!chain.contains("example_value"), "{chain}");
}

#[test]
fn fixture_with_swapped_list_items_fails_the_mac() {
    // List items share their AAD, so each decrypts; only the MAC sees the swap.
    let text = fixture("age_example.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let a = lines.iter().position(|l| l.starts_with("- ENC[")).unwrap();
    let mut swapped: Vec<&str> = lines.clone();
    swapped.swap(a, a + 1);
    let tampered = swapped.join("\n") + "\n";
    let err = decrypt(tampered.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}

#[test]
fn fixture_with_a_value_moved_to_another_key_fails() {
    let text = fixture("age_encrypted_suffix.yaml");
    // Swap the values of a.1_encrypted.a and a.1_encrypted.b.
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let ia = lines
        .iter()
        .position(|l| l.starts_with("    a: ENC["))
        .unwrap();
    let ib = lines
        .iter()
        .position(|l| l.starts_with("    b: ENC["))
        .unwrap();
    let mut out = lines.clone();
    out[ia] = format!("    a: {}", &lines[ib][7..]);
    out[ib] = format!("    b: {}", &lines[ia][7..]);
    let tampered = out.join("\n") + "\n";
    let err = decrypt(tampered.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(
        matches!(&err, SopsError::ValueAuth { path } if path == "a.1_encrypted.a"),
        "{err}"
    );
}

#[test]
fn fixture_with_a_changed_unencrypted_value_fails_the_mac() {
    let text = fixture("age_unencrypted_suffix.yaml");
    let tampered = text.replacen("    a: aaa", "    a: aab", 1);
    assert_ne!(text, tampered);
    let err = decrypt(tampered.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}

#[test]
fn fixture_mac_only_encrypted_ignores_clear_values_but_not_encrypted_ones() {
    let text = fixture("age_mac_only_encrypted.yaml");
    // Clear values are outside the MAC with mac_only_encrypted.
    let changed_clear = text.replacen("d_unencrypted: aaa", "d_unencrypted: bbb", 1);
    let d = decrypt(
        changed_clear.as_bytes(),
        Format::Yaml,
        &fixture_identities(),
    )
    .unwrap();
    assert!(
        d.to_plaintext()
            .unwrap()
            .expose_str()
            .unwrap()
            .contains("bbb")
    );
    // Without the seed the MAC would differ: turning the flag off fails.
    let no_flag = text.replacen("  mac_only_encrypted: true\n", "", 1);
    let err = decrypt(no_flag.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}

#[test]
fn fixture_with_a_changed_lastmodified_fails() {
    let text = fixture("age_example.yaml");
    let tampered = text.replacen(
        "lastmodified: 2023-12-25T10:31:01Z",
        "lastmodified: 2023-12-25T10:31:02Z",
        1,
    );
    assert_ne!(text, tampered);
    let err = decrypt(tampered.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(matches!(err, SopsError::MacAuth), "{err}");
}

#[test]
fn fixture_with_the_wrong_key_or_no_key_fails() {
    let text = fixture("age_example.yaml");
    let mut other = Identities::new();
    other.push(age::x25519::Identity::generate());
    let err = decrypt(text.as_bytes(), Format::Yaml, &other).unwrap_err();
    assert!(matches!(err, SopsError::NoMatchingIdentity { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("age1se5ghfycr4n8kcwc3qwf234ymvmr2lex2a99wh8gpfx97glwt9hqch4569")
    );
    let err = decrypt(text.as_bytes(), Format::Yaml, &Identities::new()).unwrap_err();
    assert!(matches!(err, SopsError::NoIdentities), "{err}");
}

#[test]
fn decrypted_values_are_redacted_in_debug_output() {
    let d = decrypt(
        fixture("age_example.yaml").as_bytes(),
        Format::Yaml,
        &fixture_identities(),
    )
    .unwrap();
    let dbg = format!(
        "{d:?} {:?} {:?}",
        d.to_plaintext().unwrap(),
        d.env_pairs().ok()
    );
    assert!(!dbg.contains("example_value"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
}

// ---- every format through the test encryptor ----

fn s(v: &str) -> Node {
    Node::Str(v.into())
}

/// A document with every value type, a nested map, a list and comments.
fn sample_doc() -> Vec<Entry> {
    vec![
        Entry::named("password", s("hunter2")),
        Entry::named("port", Node::Int(5432)),
        Entry::named("ratio", Node::Float(0.25)),
        Entry::named("enabled", Node::Bool(true)),
        Entry::named("off", Node::Bool(false)),
        Entry::named("empty", s("")),
        Entry::named("nothing", Node::Null),
        Entry::named("blob", Node::Bytes(vec![0, 159, 146, 150])),
        Entry::named("when", Node::Time("2024-01-02T03:04:05Z".into())),
        Entry::named("public_unencrypted", s("visible")),
        Entry::named(
            "db",
            Node::Map(vec![
                Entry::named("user", s("app")),
                Entry::named("pw", s("s3cret:with,commas]")),
            ]),
        ),
        Entry::named(
            "list",
            Node::Seq(vec![s("one"), Node::Int(2), Node::Comment(" inner".into())]),
        ),
    ]
}

/// A flat document (dotenv, INI sections) with string values and comments.
fn flat_doc() -> Vec<Entry> {
    vec![
        Entry::comment(" database settings"),
        Entry::named("DB_PASSWORD", s("hunter2")),
        Entry::named("MULTI", s("line one\nline two")),
        Entry::named("EMPTY", s("")),
        Entry::named("TOKEN_unencrypted", s("visible")),
        Entry::named("URL", s("postgres://u:p@h/db?x=1")),
    ]
}

fn ini_doc() -> Vec<Entry> {
    vec![
        Entry::named(
            "database",
            Node::Map(vec![
                Entry::named("password", s("hunter2")),
                Entry::named("user", s("app")),
                Entry::named("note_unencrypted", s("visible")),
            ]),
        ),
        Entry::named(
            "cache",
            Node::Map(vec![Entry::named("url", s("redis://h:6379/0"))]),
        ),
    ]
}

fn binary_doc(bytes: &[u8]) -> Vec<Entry> {
    vec![Entry::named(
        "data",
        Node::Str(String::from_utf8(bytes.to_vec()).unwrap()),
    )]
}

struct Keys {
    id: age::x25519::Identity,
    ids: Identities,
}

fn keys() -> Keys {
    let id = age::x25519::Identity::generate();
    let mut ids = Identities::new();
    ids.push(id.clone());
    Keys { id, ids }
}

fn cases(k: &Keys) -> Vec<(Format, Vec<Entry>, Vec<u8>)> {
    let enc = |format, doc: &Vec<Entry>| {
        testenc::encrypt(
            std::slice::from_ref(doc),
            &Options::new(format, k.id.to_public()),
        )
    };
    let sample = sample_doc();
    let flat = flat_doc();
    let ini = ini_doc();
    let bin = binary_doc(b"-----BEGIN KEY-----\nabc\n-----END KEY-----\n");
    vec![
        (Format::Yaml, sample.clone(), enc(Format::Yaml, &sample)),
        (Format::Json, sample.clone(), enc(Format::Json, &sample)),
        (Format::Dotenv, flat.clone(), enc(Format::Dotenv, &flat)),
        (Format::Ini, ini.clone(), enc(Format::Ini, &ini)),
        (Format::Binary, bin.clone(), enc(Format::Binary, &bin)),
    ]
}

#[test]
fn every_format_round_trips_through_the_test_encryptor() {
    let k = keys();
    for (format, doc, encrypted) in cases(&k) {
        let text = String::from_utf8(encrypted.clone()).unwrap();
        assert!(is_sops(&encrypted, format), "{format}: recognised\n{text}");
        assert!(
            !text.contains("hunter2"),
            "{format}: value is encrypted\n{text}"
        );
        let d =
            decrypt(&encrypted, format, &k.ids).unwrap_or_else(|e| panic!("{format}: {e}\n{text}"));
        let expected = formats::emit(std::slice::from_ref(&doc), format).unwrap();
        let got = d.to_plaintext().unwrap();
        assert_eq!(
            String::from_utf8_lossy(got.expose()),
            String::from_utf8_lossy(&expected),
            "{format}"
        );
    }
}

#[test]
fn encrypted_files_hold_every_value_type_and_leave_suffixed_keys_clear() {
    let k = keys();
    let cases = cases(&k);
    let yaml = String::from_utf8(cases[0].2.clone()).unwrap();
    for t in [
        "type:str",
        "type:int",
        "type:float",
        "type:bool",
        "type:bytes",
        "type:time",
    ] {
        assert!(yaml.contains(t), "{t} in\n{yaml}");
    }
    assert!(yaml.contains("public_unencrypted: visible"), "{yaml}");
    assert!(yaml.contains("empty: ''"), "{yaml}");
    let env = String::from_utf8(cases[2].2.clone()).unwrap();
    assert!(env.contains("TOKEN_unencrypted=visible"), "{env}");
    assert!(
        env.contains("#ENC[AES256_GCM,"),
        "comments are encrypted: {env}"
    );
    assert!(
        env.contains("sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\n"),
        "{env}"
    );
    let ini = String::from_utf8(cases[3].2.clone()).unwrap();
    assert!(ini.contains("[sops]"), "{ini}");
    assert!(ini.contains("note_unencrypted = visible"), "{ini}");
}

#[test]
fn dotenv_values_come_out_as_environment_pairs() {
    let k = keys();
    let (_, _, encrypted) = cases(&k).remove(2);
    let d = decrypt(&encrypted, Format::Dotenv, &k.ids).unwrap();
    let pairs: Vec<(String, String)> = d
        .env_pairs()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.expose_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("DB_PASSWORD".into(), "hunter2".into()),
            ("MULTI".into(), "line one\nline two".into()),
            ("EMPTY".into(), String::new()),
            ("TOKEN_unencrypted".into(), "visible".into()),
            ("URL".into(), "postgres://u:p@h/db?x=1".into()),
        ]
    );
    let text = String::from_utf8(d.to_plaintext().unwrap().expose().to_vec()).unwrap();
    assert!(
        text.starts_with("# database settings\nDB_PASSWORD=hunter2\n"),
        "{text}"
    );
}

/// Replaces the first ciphertext's first data character with another.
fn flip_first_value(text: &str) -> String {
    // Skip encrypted comments: sops keeps a comment that does not decrypt as it is.
    let pos = text
        .match_indices("ENC[AES256_GCM,data:")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] != b'#' && !text[..i].ends_with("; "))
        .unwrap()
        + "ENC[AES256_GCM,data:".len();
    let mut bytes = text.as_bytes().to_vec();
    bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_flipped_ciphertext_byte_fails_in_every_format() {
    let k = keys();
    for (format, _, encrypted) in cases(&k) {
        let tampered = flip_first_value(std::str::from_utf8(&encrypted).unwrap());
        let err = decrypt(tampered.as_bytes(), format, &k.ids).unwrap_err();
        assert!(
            matches!(
                err,
                SopsError::ValueAuth { .. } | SopsError::BadValue { .. }
            ),
            "{format}: {err}"
        );
        assert!(!err.to_string().contains("hunter2"));
    }
}

/// Swaps the first two `ENC[…]` values of different keys.
fn swap_two_values(text: &str) -> String {
    let find_all: Vec<(usize, usize)> = text
        .match_indices("ENC[AES256_GCM,")
        .map(|(i, _)| (i, i + text[i..].find(']').unwrap() + 1))
        .collect();
    let (a, b) = (find_all[0], find_all[1]);
    format!(
        "{}{}{}{}{}",
        &text[..a.0],
        &text[b.0..b.1],
        &text[a.1..b.0],
        &text[a.0..a.1],
        &text[b.1..]
    )
}

#[test]
fn swapped_values_fail_in_every_format() {
    let k = keys();
    for (format, _, encrypted) in cases(&k) {
        let text = std::str::from_utf8(&encrypted).unwrap();
        // The binary format has one value: the swap moves the MAC into `data`.
        let tampered = swap_two_values(text);
        assert_ne!(tampered, text);
        let err = decrypt(tampered.as_bytes(), format, &k.ids).unwrap_err();
        assert!(
            matches!(
                err,
                SopsError::ValueAuth { .. } | SopsError::MacAuth | SopsError::MacMismatch
            ),
            "{format}: {err}"
        );
    }
}

#[test]
fn a_changed_lastmodified_fails_in_every_format() {
    let k = keys();
    for (format, _, encrypted) in cases(&k) {
        let text = std::str::from_utf8(&encrypted).unwrap();
        let tampered = text.replacen("2026-01-02T03:04:05Z", "2026-01-02T03:04:06Z", 1);
        assert_ne!(tampered, text, "{format}");
        let err = decrypt(tampered.as_bytes(), format, &k.ids).unwrap_err();
        assert!(matches!(err, SopsError::MacAuth), "{format}: {err}");
    }
}

#[test]
fn the_wrong_key_and_no_key_fail_in_every_format() {
    let k = keys();
    let other = keys();
    for (format, _, encrypted) in cases(&k) {
        let err = decrypt(&encrypted, format, &other.ids).unwrap_err();
        assert!(
            matches!(err, SopsError::NoMatchingIdentity { .. }),
            "{format}: {err}"
        );
        let err = decrypt(&encrypted, format, &Identities::new()).unwrap_err();
        assert!(matches!(err, SopsError::NoIdentities), "{format}: {err}");
    }
}

#[test]
fn a_removed_value_fails_the_mac() {
    let k = keys();
    let (_, _, encrypted) = cases(&k).remove(2);
    let text = String::from_utf8(encrypted).unwrap();
    let tampered: String = text
        .lines()
        .filter(|l| !l.starts_with("URL="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(tampered, text);
    let err = decrypt(tampered.as_bytes(), Format::Dotenv, &k.ids).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}

#[test]
fn a_clear_value_where_an_encrypted_one_belongs_is_refused() {
    let k = keys();
    let (_, _, encrypted) = cases(&k).remove(2);
    let text = String::from_utf8(encrypted).unwrap();
    let start = text.find("DB_PASSWORD=").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let tampered = format!("{}DB_PASSWORD=attacker{}", &text[..start], &text[end..]);
    let err = decrypt(tampered.as_bytes(), Format::Dotenv, &k.ids).unwrap_err();
    assert!(
        matches!(&err, SopsError::BadValue { path, .. } if path == "DB_PASSWORD"),
        "{err}"
    );
}

#[test]
fn several_recipients_each_open_the_file() {
    let a = keys();
    let b = keys();
    let mut opts = Options::new(Format::Json, a.id.to_public());
    opts.recipients.push(b.id.to_public());
    let encrypted = testenc::encrypt(&[sample_doc()], &opts);
    assert!(decrypt(&encrypted, Format::Json, &a.ids).is_ok());
    assert!(decrypt(&encrypted, Format::Json, &b.ids).is_ok());
    // An identity list with a stranger first still finds the right one.
    let mut both = Identities::new();
    both.push(age::x25519::Identity::generate());
    both.push(b.id.clone());
    assert!(decrypt(&encrypted, Format::Json, &both).is_ok());
    assert_eq!(
        recipients(&encrypted, Format::Json).unwrap(),
        vec![a.id.to_public().to_string(), b.id.to_public().to_string()]
    );
}

#[test]
fn rules_and_mac_only_encrypted_round_trip_in_every_format() {
    let k = keys();
    let rules: Vec<Option<(&'static str, String)>> = vec![
        Some(("encrypted_regex", "^(password|DB_PASSWORD|pw|data)$".into())),
        Some(("unencrypted_regex", "^(user|URL)$".into())),
        Some(("encrypted_suffix", "word".into())),
        Some(("unencrypted_suffix", "_clear".into())),
    ];
    // Raw bytes exist only encrypted (a clear YAML or JSON value is text).
    let textual: Vec<Entry> = sample_doc()
        .into_iter()
        .filter(|e| e.name() != Some("blob"))
        .collect();
    let docs = [
        (Format::Yaml, textual.clone()),
        (Format::Json, textual),
        (Format::Dotenv, flat_doc()),
        (Format::Ini, ini_doc()),
    ];
    for rule in &rules {
        for mac_only in [false, true] {
            for (format, doc) in &docs {
                let mut opts = Options::new(*format, k.id.to_public());
                opts.rule = rule.clone();
                opts.mac_only_encrypted = mac_only;
                let encrypted = testenc::encrypt(std::slice::from_ref(doc), &opts);
                let d = decrypt(&encrypted, *format, &k.ids).unwrap_or_else(|e| {
                    panic!(
                        "{format} {rule:?} {mac_only}: {e}\n{}",
                        String::from_utf8_lossy(&encrypted)
                    )
                });
                let expected = formats::emit(std::slice::from_ref(doc), *format).unwrap();
                assert_eq!(d.to_plaintext().unwrap().expose(), &expected[..]);
            }
        }
    }
}

#[test]
fn two_rules_at_once_are_refused() {
    let k = keys();
    let encrypted = testenc::encrypt(
        &[flat_doc()],
        &Options::new(Format::Dotenv, k.id.to_public()),
    );
    let mut text = String::from_utf8(encrypted).unwrap();
    text.push_str("sops_encrypted_regex=^x\nsops_unencrypted_suffix=_u\n");
    let err = decrypt(text.as_bytes(), Format::Dotenv, &k.ids).unwrap_err();
    assert!(matches!(err, SopsError::Metadata { .. }), "{err}");
}

#[test]
fn format_follows_the_extension_as_sops_does() {
    for (name, f) in [
        ("a.yaml", Format::Yaml),
        ("a.yml", Format::Yaml),
        ("a.json", Format::Json),
        ("a.env", Format::Dotenv),
        ("a.ini", Format::Ini),
        ("a.pem", Format::Binary),
        ("env", Format::Binary),
    ] {
        assert_eq!(Format::for_path(Path::new(name)), f, "{name}");
    }
}

#[test]
fn go_number_formatting_matches_sops() {
    assert_eq!(go_float(1234.56789), "1234.56789");
    assert_eq!(go_float(1.0), "1");
    assert_eq!(go_float(1e21), "1000000000000000000000");
    assert_eq!(go_float(0.0000001), "0.0000001");
    assert_eq!(go_float(f64::INFINITY), "+Inf");
}

#[test]
fn identities_parse_as_sops_reads_them() {
    let one = age::x25519::Identity::generate();
    let two = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret as _;
    let a = one.to_string().expose_secret().to_owned();
    let b = two.to_string().expose_secret().to_owned();
    let file = format!("# created: now\n# public key: x\n{a}\n\n{b}\n");
    assert_eq!(keys::parse_identities(&file, "f", false).unwrap().len(), 2);
    // SOPS_AGE_KEY may hold several on one line.
    assert_eq!(
        keys::parse_identities(&format!("{a} {b}"), "SOPS_AGE_KEY", true)
            .unwrap()
            .len(),
        2
    );
    // A file line holds one identity.
    let err = keys::parse_identities(&format!("{a} {b}"), "f", false).unwrap_err();
    assert!(!err.to_string().contains("AGE-SECRET-KEY"), "{err}");
    let err = keys::parse_identities("AGE-PLUGIN-YUBIKEY-1XYZ\n", "f", false).unwrap_err();
    assert!(err.to_string().contains("plugin"), "{err}");
    let err =
        keys::parse_identities("-----BEGIN AGE ENCRYPTED FILE-----\n", "f", false).unwrap_err();
    assert!(err.to_string().contains("passphrase"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decrypting_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let ids = Identities::new();
        for f in [Format::Yaml, Format::Json, Format::Dotenv, Format::Ini, Format::Binary] {
            let _ = decrypt(&bytes, f, &ids);
            let _ = is_sops(&bytes, f);
            let _ = has_sops_marker(&bytes, f);
        }
    }

    #[test]
    fn decrypting_mutated_sops_files_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let ids = fixture_identities();
        let text = fixture("age_example.yaml").into_bytes();
        let mut m = text.clone();
        let i = pos.index(m.len());
        m[i] = byte;
        let _ = decrypt(&m, Format::Yaml, &ids);
        let c = cut.index(text.len());
        let _ = decrypt(&text[..c], Format::Yaml, &ids);
    }

    #[test]
    fn sops_like_text_never_panics(lines in proptest::collection::vec(
        prop_oneof![
            Just("sops_mac=ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]".to_owned()),
            Just("sops_lastmodified=2024-01-01T00:00:00Z".to_owned()),
            Just("sops_age__list_0__map_enc=x".to_owned()),
            Just("sops_age__list_99999999__map_enc=x".to_owned()),
            Just("sops_age__list_x=1".to_owned()),
            Just("sops_a__map___list_=1".to_owned()),
            Just("[sops]".to_owned()),
            Just("K=ENC[AES256_GCM,data:,iv:,tag:,type:int]".to_owned()),
            "[a-z_=\\[\\]:;#\"` ]{0,30}",
        ], 0..12)) {
        let text = lines.join("\n");
        for f in [Format::Dotenv, Format::Ini] {
            let _ = decrypt(text.as_bytes(), f, &fixture_identities());
        }
    }
}

#[test]
fn key_sources_follow_the_environment() {
    let mut env = crate::config::Env::new();
    env.insert("HOME".into(), "/home/u".into());
    let s = keys::KeySources::from_env(&env, None);
    assert!(s.age_key.is_none() && s.age_key_file.is_none() && s.age_key_cmd.is_none());
    if cfg!(target_os = "linux") {
        assert_eq!(
            s.user_keys_file.as_deref(),
            Some(Path::new("/home/u/.config/sops/age/keys.txt"))
        );
        env.insert("XDG_CONFIG_HOME".into(), "/xdg".into());
        let s = keys::KeySources::from_env(&env, None);
        assert_eq!(
            s.user_keys_file.as_deref(),
            Some(Path::new("/xdg/sops/age/keys.txt"))
        );
    }
    env.insert("SOPS_AGE_KEY".into(), "AGE-SECRET-KEY-1X".into());
    env.insert("SOPS_AGE_KEY_FILE".into(), "/k.txt".into());
    let s = keys::KeySources::from_env(&env, Some(Path::new("/configured.txt")));
    assert_eq!(
        s.age_key_file.as_deref(),
        Some(Path::new("/configured.txt"))
    );
    assert!(!format!("{s:?}").contains("AGE-SECRET-KEY"));
}

#[cfg(unix)]
#[test]
fn key_sources_are_combined_and_failures_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        age::x25519::Identity::generate(),
        age::x25519::Identity::generate(),
        age::x25519::Identity::generate(),
    );
    use age::secrecy::ExposeSecret as _;
    let text = |i: &age::x25519::Identity| i.to_string().expose_secret().to_owned();
    let file = tmp.path().join("keys.txt");
    std::fs::write(&file, format!("# test\n{}\n", text(&a))).unwrap();
    let cfg = tmp.path().join("cfg");
    std::fs::create_dir_all(cfg.join("sops/age")).unwrap();
    std::fs::write(cfg.join("sops/age/keys.txt"), text(&b)).unwrap();
    // The command sees the recipient it is asked for.
    let script = tmp.path().join("key-cmd.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$SOPS_AGE_RECIPIENT\" = want ] || exit 3\necho '{}'\n",
            text(&c)
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut env = crate::config::Env::new();
    env.insert("XDG_CONFIG_HOME".into(), cfg.display().to_string());
    env.insert("SOPS_AGE_KEY_CMD".into(), script.display().to_string());
    let sources = keys::KeySources::from_env(&env, Some(&file));
    let (ids, errors) = sources.load(Some("want")).unwrap();
    assert_eq!(ids.len(), 3, "file, command and keys.txt are combined");
    assert!(errors.is_empty());
    // The command failing is reported, the others still count.
    let (ids, errors) = sources.load(Some("other")).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("SOPS_AGE_KEY_CMD"),
        "{}",
        errors[0]
    );
    // Nothing anywhere is an error naming where it looked.
    let empty = keys::KeySources::from_env(
        &crate::config::Env::new(),
        Some(&tmp.path().join("missing.txt")),
    );
    let err = empty.load(None).unwrap_err();
    assert!(err.to_string().contains("missing.txt"), "{err}");
}

#[test]
fn multi_document_yaml_round_trips() {
    let k = keys();
    let docs = vec![
        vec![Entry::named("a", s("first"))],
        vec![Entry::named("b", Node::Seq(vec![s("x"), s("z")]))],
    ];
    let encrypted = testenc::encrypt(&docs, &Options::new(Format::Yaml, k.id.to_public()));
    let text = String::from_utf8(encrypted.clone()).unwrap();
    assert!(text.contains("\n---\n"), "{text}");
    let d = decrypt(&encrypted, Format::Yaml, &k.ids).unwrap();
    assert_eq!(
        d.to_plaintext().unwrap().expose_str().unwrap(),
        "a: first\n---\nb:\n- x\n- z\n"
    );
}

#[test]
fn a_yaml_key_given_twice_is_refused_naming_it() {
    let text = fixture("age_example.yaml").replacen("example_number:", "example_key:", 1);
    let err = decrypt(text.as_bytes(), Format::Yaml, &fixture_identities()).unwrap_err();
    assert!(
        err.to_string().contains("`example_key` appears twice"),
        "{err}"
    );
}

#[test]
fn yaml_comments_are_not_part_of_the_mac() {
    // sops encrypts comments but leaves them out of the MAC; here they are read
    // as YAML comments and dropped from the output.
    let text = fixture("age_example.yaml").replacen(
        "example_key:",
        "#ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:comment]\nexample_key:",
        1,
    );
    let d = decrypt(text.as_bytes(), Format::Yaml, &fixture_identities()).unwrap();
    assert_eq!(
        d.to_plaintext().unwrap().expose_str().unwrap(),
        fixture("age_example_plaintext.yaml")
    );
}

fn arb_key() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_.-]{0,11}".prop_filter("not the metadata key", |k| {
        k != "sops" && !k.starts_with("sops_")
    })
}

fn arb_leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(Node::Str),
        "\\PC{0,20}".prop_map(Node::Str),
        any::<i64>().prop_map(Node::Int),
        (-1e15f64..1e15).prop_map(Node::Float),
        any::<bool>().prop_map(Node::Bool),
        Just(Node::Null),
    ]
}

fn arb_value() -> impl Strategy<Value = Node> {
    arb_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Node::Seq),
            proptest::collection::vec((arb_key(), inner), 0..4)
                .prop_map(|kv| { Node::Map(dedup(kv)) }),
        ]
    })
}

fn dedup(kv: Vec<(String, Node)>) -> Vec<Entry> {
    let mut seen = std::collections::HashSet::new();
    kv.into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .map(|(k, v)| Entry::named(k, v))
        .collect()
}

fn arb_doc() -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec((arb_key(), arb_value()), 0..6).prop_map(dedup)
}

fn arb_rule() -> impl Strategy<Value = (Option<(&'static str, String)>, bool)> {
    (
        prop_oneof![
            Just(None),
            Just(Some(("unencrypted_suffix", "_u".to_owned()))),
            Just(Some(("encrypted_suffix", "e".to_owned()))),
            Just(Some(("encrypted_regex", "^[a-m]".to_owned()))),
            Just(Some(("unencrypted_regex", "[0-9]".to_owned()))),
        ],
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_document_round_trips_in_yaml_and_json(doc in arb_doc(), (rule, mac_only) in arb_rule()) {
        let k = keys();
        for format in [Format::Yaml, Format::Json] {
            let mut opts = Options::new(format, k.id.to_public());
            opts.rule = rule.clone();
            opts.mac_only_encrypted = mac_only;
            let encrypted = testenc::encrypt(std::slice::from_ref(&doc), &opts);
            let d = decrypt(&encrypted, format, &k.ids).map_err(|e| {
                TestCaseError::fail(format!("{format}: {e}\n{}", String::from_utf8_lossy(&encrypted)))
            })?;
            let expected = formats::emit(std::slice::from_ref(&doc), format).unwrap();
            let got = d.to_plaintext().unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(got.expose()),
                String::from_utf8_lossy(&expected)
            );
        }
    }

    #[test]
    fn any_flat_document_round_trips_in_dotenv(
        kv in proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,11}", "[ -\\[\\]-~]{0,40}"), 0..8),
        (rule, mac_only) in arb_rule(),
    ) {
        let k = keys();
        let doc: Vec<Entry> = dedup(
            kv.into_iter()
                .filter(|(k, _)| !k.starts_with("sops_"))
                .map(|(k, v)| (k, Node::Str(v)))
                .collect(),
        );
        let mut opts = Options::new(Format::Dotenv, k.id.to_public());
        opts.rule = rule;
        opts.mac_only_encrypted = mac_only;
        let encrypted = testenc::encrypt(std::slice::from_ref(&doc), &opts);
        let d = decrypt(&encrypted, Format::Dotenv, &k.ids).map_err(|e| {
            TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&encrypted)))
        })?;
        let pairs: Vec<(String, String)> = d
            .env_pairs()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.expose_str().unwrap().to_owned()))
            .collect();
        let expected: Vec<(String, String)> = doc
            .iter()
            .map(|e| (e.name().unwrap().to_owned(), match &e.value { Node::Str(s) => s.clone(), _ => unreachable!() }))
            .collect();
        prop_assert_eq!(pairs, expected);
    }
}

#[test]
fn a_deeply_flattened_metadata_key_is_refused_without_overflow() {
    let key = "sops_a".to_owned() + &"__map_a".repeat(200_000);
    let text = format!("K=ENC[AES256_GCM,data:AA==]\n{key}=1\n");
    let err = decrypt(text.as_bytes(), Format::Dotenv, &Identities::new()).unwrap_err();
    assert!(
        err.to_string().contains("nested too deeply"),
        "{}",
        &err.to_string()[..80]
    );
    let deep_json = "[".repeat(100_000);
    assert!(decrypt(deep_json.as_bytes(), Format::Json, &Identities::new()).is_err());
    let deep_yaml = "- ".repeat(100_000) + "x\n";
    assert!(decrypt(deep_yaml.as_bytes(), Format::Yaml, &Identities::new()).is_err());
}

#[test]
fn clear_yaml_numbers_enter_the_mac_as_sops_reads_them() {
    // sops (go-yaml v3) reads a plain `0755` as octal 493 and `1_000` as 1000.
    let k = keys();
    let doc = vec![
        Entry::named("mode_unencrypted", Node::Int(493)),
        Entry::named("count_unencrypted", Node::Int(1000)),
        Entry::named("pw", s("x")),
    ];
    let encrypted = testenc::encrypt(&[doc], &Options::new(Format::Yaml, k.id.to_public()));
    let text = String::from_utf8(encrypted).unwrap();
    let written = text
        .replacen("mode_unencrypted: 493", "mode_unencrypted: 0755", 1)
        .replacen("count_unencrypted: 1000", "count_unencrypted: 1_000", 1);
    assert_ne!(written, text);
    let d = decrypt(written.as_bytes(), Format::Yaml, &k.ids).unwrap();
    let out = d.to_plaintext().unwrap();
    assert!(
        out.expose_str()
            .unwrap()
            .starts_with("mode_unencrypted: 493\ncount_unencrypted: 1000\n")
    );
    // Quoted, it is the string "0755": not what was authenticated.
    let quoted = text.replacen("mode_unencrypted: 493", "mode_unencrypted: '0755'", 1);
    let err = decrypt(quoted.as_bytes(), Format::Yaml, &k.ids).unwrap_err();
    assert!(matches!(err, SopsError::MacMismatch), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the decrypter writes as YAML reads back as the same document.
    #[test]
    fn written_yaml_reads_back_as_the_same_document(doc in arb_doc()) {
        let text = yaml::emit(std::slice::from_ref(&doc));
        let back = yaml::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let want = if doc.is_empty() { vec![Vec::new()] } else { vec![doc.clone()] };
        prop_assert!(back == want, "{}", text);
    }

    /// Strings of any characters survive being written and read back.
    #[test]
    fn any_string_survives_yaml(v in "\\PC*|[ -~\\n\\t\\r]{0,30}|[\\x00-\\x1f\\u{85}\\u{2028}\\u{feff}a :#'\"-]{0,12}") {
        prop_assume!(v != "k");
        let doc = vec![
            Entry::named("k", Node::Str(v.clone())),
            Entry::named(v.clone(), Node::Seq(vec![Node::Str(v.clone())])),
        ];
        let text = yaml::emit(std::slice::from_ref(&doc));
        let back = yaml::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(back == vec![doc], "{:?}", text);
    }
}
