use super::*;

const FROM: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const TO: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn pinned() -> Event {
    Event::new(EventKind::Pinned, 1_700_000_000)
        .stack("media")
        .service("jellyfin")
        .image("ghcr.io/me/jellyfin")
        .digests(Some(FROM.to_owned()), Some(TO.to_owned()))
        .commit("0123456789abcdef0123456789abcdef01234567")
        .reason("semver ^10: 10.9.1 is the highest")
}

fn failed() -> Event {
    Event::new(EventKind::PassFailed, 1_700_000_000).reason("git fetch failed: connection refused")
}

fn target(kind: SinkKind, url: &str) -> Target<'_> {
    Target {
        kind,
        url,
        token: None,
        secret: None,
    }
}

fn text(r: &Request) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

const PINNED_MESSAGE: &str = "image: ghcr.io/me/jellyfin\ndigest: sha256:111111111111 → sha256:222222222222\ncommit: 0123456789ab\nsemver ^10: 10.9.1 is the highest";

#[test]
fn a_webhook_gets_the_event_as_json_signed_with_its_secret() {
    let t = Target {
        secret: Some("s3cret"),
        token: Some("tok"),
        ..target(SinkKind::Webhook, "https://hooks.example.org/magos")
    };
    let r = request(&t, &pinned());
    let body = format!(
        r#"{{"at":1700000000,"commit":"0123456789abcdef0123456789abcdef01234567","from_digest":"{FROM}","image":"ghcr.io/me/jellyfin","kind":"pinned","message":{},"reason":"semver ^10: 10.9.1 is the highest","service":"jellyfin","stack":"media","title":"Magos: media/jellyfin pinned","to_digest":"{TO}"}}"#,
        serde_json::to_string(PINNED_MESSAGE).unwrap()
    );
    assert_eq!(text(&r), body);
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "https://hooks.example.org/magos");
    assert_eq!(
        r.headers,
        vec![
            ("Content-Type", "application/json".to_owned()),
            ("X-Magos-Event", "pinned".to_owned()),
            (SIGNATURE_HEADER, signature(b"s3cret", body.as_bytes())),
            ("Authorization", "Bearer tok".to_owned()),
        ]
    );
    // Without a secret, no signature.
    let r = request(&target(SinkKind::Webhook, "http://h/x"), &failed());
    assert!(r.headers.iter().all(|(k, _)| *k != SIGNATURE_HEADER));
}

#[test]
fn the_signature_is_the_hmac_sha256_of_the_body_in_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn ntfy_gets_a_plain_text_publication_with_title_tags_and_priority() {
    let t = Target {
        token: Some("tk_abc"),
        ..target(SinkKind::Ntfy, "https://ntfy.sh/homelab")
    };
    let r = request(&t, &pinned());
    assert_eq!(
        r,
        Request {
            method: "POST",
            url: "https://ntfy.sh/homelab".to_owned(),
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                ("Title", "Magos: media/jellyfin pinned".to_owned()),
                ("Tags", "white_check_mark,pinned".to_owned()),
                ("Priority", "3".to_owned()),
                ("Authorization", "Bearer tk_abc".to_owned()),
            ],
            body: PINNED_MESSAGE.as_bytes().to_vec(),
        }
    );
    let r = request(
        &target(SinkKind::Ntfy, "https://ntfy.sh/homelab"),
        &failed(),
    );
    assert_eq!(
        r.headers,
        vec![
            ("Content-Type", "text/plain; charset=utf-8".to_owned()),
            ("Title", "Magos: pass failed".to_owned()),
            ("Tags", "warning,pass_failed".to_owned()),
            ("Priority", "4".to_owned()),
        ]
    );
    assert_eq!(text(&r), "git fetch failed: connection refused");
}

#[test]
fn gotify_gets_a_message_with_the_token_in_a_header() {
    let t = Target {
        token: Some("AbCdEf"),
        ..target(SinkKind::Gotify, "https://gotify.example.org/")
    };
    let r = request(&t, &failed());
    assert_eq!(
        r,
        Request {
            method: "POST",
            url: "https://gotify.example.org/message".to_owned(),
            headers: vec![
                ("Content-Type", "application/json".to_owned()),
                ("X-Gotify-Key", "AbCdEf".to_owned()),
            ],
            body: br#"{"message":"git fetch failed: connection refused","priority":8,"title":"Magos: pass failed"}"#.to_vec(),
        }
    );
    // A URL that names the endpoint (and its token) is used as it is.
    let r = request(
        &target(SinkKind::Gotify, "http://g.lan/message?token=AbC"),
        &failed(),
    );
    assert_eq!(r.url, "http://g.lan/message?token=AbC");
    let r = request(&target(SinkKind::Gotify, "http://g.lan/sub?x=1"), &failed());
    assert_eq!(r.url, "http://g.lan/sub/message?x=1");
}

#[test]
fn discord_gets_an_embed_that_mentions_nobody() {
    let r = request(
        &target(SinkKind::Discord, "https://discord.com/api/webhooks/1/abc"),
        &failed(),
    );
    assert_eq!(
        r,
        Request {
            method: "POST",
            url: "https://discord.com/api/webhooks/1/abc".to_owned(),
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: br#"{"allowed_mentions":{"parse":[]},"embeds":[{"color":14233637,"description":"git fetch failed: connection refused","title":"Magos: pass failed"}],"username":"Magos"}"#.to_vec(),
        }
    );
}

#[test]
fn apprise_gets_title_body_and_type_and_the_token_as_its_urls() {
    let r = request(
        &target(SinkKind::Apprise, "http://apprise.lan:8000/notify/magos"),
        &failed(),
    );
    assert_eq!(
        r,
        Request {
            method: "POST",
            url: "http://apprise.lan:8000/notify/magos".to_owned(),
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: br#"{"body":"git fetch failed: connection refused","title":"Magos: pass failed","type":"failure"}"#.to_vec(),
        }
    );
    let t = Target {
        token: Some("ntfys://topic"),
        ..target(SinkKind::Apprise, "http://apprise.lan:8000/notify")
    };
    let r = request(&t, &pinned());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["urls"], "ntfys://topic");
    assert_eq!(body["type"], "success");
}

#[test]
fn reasons_of_one_failure_share_a_class() {
    assert_eq!(
        reason_class("connect to 127.0.0.1:41234 failed (os error 111)\nmore"),
        "connect to #.#.#.#:# failed (os error #)"
    );
    assert_eq!(
        reason_class("container 3f2a9c1b0d died"),
        reason_class("container 77e0aa12bc died")
    );
    assert_ne!(reason_class("fetch failed"), reason_class("push failed"));
}

#[test]
fn a_lasting_state_is_sent_once_then_reminded_after_the_repeat() {
    let day = 86_400;
    let mut d = Dedupe::default();
    let at = |t: i64| Event {
        at: t,
        ..failed().reason(format!("connect to 127.0.0.1:{t} failed"))
    };
    assert_eq!(d.admit(&at(0), day), Admit::New);
    assert_eq!(d.admit(&at(300), day), Admit::Quiet);
    assert_eq!(d.admit(&at(day - 1), day), Admit::Quiet);
    assert_eq!(d.admit(&at(day), day), Admit::Reminder);
    assert_eq!(d.admit(&at(day + 300), day), Admit::Quiet);
    // Another reason class is another state.
    assert_eq!(d.admit(&failed().reason("push refused"), day), Admit::New);
    // Once the state is over, the next failure is a change of state again.
    assert!(!d.settle(EventKind::Drift, |_, _| true));
    assert!(d.settle(EventKind::PassFailed, |_, _| true));
    assert_eq!(d.admit(&at(day + 600), day), Admit::New);
}

#[test]
fn drift_settles_per_service_and_new_digests_are_new_states() {
    let day = 86_400;
    let mut d = Dedupe::default();
    let drift = |service: &str| {
        Event::new(EventKind::Drift, 10)
            .stack("web")
            .service(service)
            .reason("missing")
    };
    assert_eq!(d.admit(&drift("a"), day), Admit::New);
    assert_eq!(d.admit(&drift("b"), day), Admit::New);
    assert_eq!(d.admit(&drift("a"), day), Admit::Quiet);
    // `a` is back in sync, `b` still drifted.
    assert!(d.settle(EventKind::Drift, |st, sv| {
        (st, sv) != (Some("web"), Some("b"))
    }));
    assert_eq!(d.admit(&drift("a"), day), Admit::New);
    assert_eq!(d.admit(&drift("b"), day), Admit::Quiet);
    // A pin of another digest is another event.
    let pin = |to: &str| pinned().digests(None, Some(to.to_owned()));
    assert_eq!(d.admit(&pin(TO), day), Admit::New);
    assert_eq!(d.admit(&pin(TO), day), Admit::Quiet);
    assert_eq!(d.admit(&pin(FROM), day), Admit::New);
}

#[test]
fn the_record_forgets_states_older_than_the_repeat() {
    let mut d = Dedupe::default();
    for i in 0..100 {
        let e = Event::new(EventKind::Drift, i * 10).service(format!("s{i}"));
        d.admit(&e, 50);
    }
    assert!(d.len() <= 5, "{}", d.len());
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<Dedupe>(&json).unwrap(), d);
}
