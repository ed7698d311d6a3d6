//! The registry client's TLS stack on its own, without the test bed: rustls with
//! the ring provider completes a handshake with a server whose certificate is
//! signed by a CA made here and trusted through `certs.d`, and refuses it
//! without that CA; and the credentials of an HTTPS registry never go to a
//! plain-HTTP token realm. The servers are a few lines of hyper over
//! tokio-rustls answering a tag list (or a challenge), because this must run
//! where no registry is installed; the same path against the real
//! docker-registry with TLS is in `tests/podman/registry.rs`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use magos::registry::{RegistryClient, RegistryError, Settings};

struct Pki {
    ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "magos tls test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// A TLS acceptor (ring provider) presenting the certificate of `pki`.
fn acceptor(pki: &Pki) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert_der.clone().into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into()),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Serves `{"tags":["1.0"]}` over TLS on 127.0.0.1; returns the port.
async fn tls_server(pki: &Pki) -> (u16, tokio::task::JoinHandle<()>) {
    let acceptor = acceptor(pki);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(br#"{"tags":["1.0"]}"#)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_ring_provider_and_a_certs_d_ca() {
    let pki = pki();
    let (port, server) = tls_server(&pki).await;
    let host = format!("127.0.0.1:{port}");
    let image = magos::registry::parse_image(&format!("{host}/team/app:1.0")).unwrap();

    let certs_d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(certs_d.path().join(&host)).unwrap();
    std::fs::write(certs_d.path().join(&host).join("ca.crt"), &pki.ca_pem).unwrap();
    let trusting = RegistryClient::new(Settings {
        certs_dirs: vec![certs_d.path().to_owned()],
        timeout: Duration::from_secs(10),
        ..Settings::default()
    });
    assert_eq!(trusting.tags(&image).await.unwrap(), ["1.0"]);

    let stranger = RegistryClient::new(Settings {
        timeout: Duration::from_secs(10),
        ..Settings::default()
    });
    let err = stranger.tags(&image).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    server.abort();
}

/// An HTTPS registry whose token realm is plain HTTP never receives the
/// credentials: the token endpoint is not even asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_to_a_plain_http_realm() {
    use std::sync::atomic::{AtomicU32, Ordering};

    let token_hits = Arc::new(AtomicU32::new(0));
    let token_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let realm = format!("http://{}/token", token_listener.local_addr().unwrap());
    let hits = token_hits.clone();
    let token_server = tokio::spawn(async move {
        while let Ok((tcp, _)) = token_listener.accept().await {
            hits.fetch_add(1, Ordering::SeqCst);
            drop(tcp);
        }
    });

    let pki = pki();
    let acceptor = acceptor(&pki);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let challenge = format!("Bearer realm=\"{realm}\",service=\"test\"");
    let registry = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let challenge = challenge.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    let challenge = challenge.clone();
                    async move {
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .status(401)
                                .header("www-authenticate", challenge)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });

    let certs_d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(certs_d.path().join(&host)).unwrap();
    std::fs::write(certs_d.path().join(&host).join("ca.crt"), &pki.ca_pem).unwrap();
    let mut settings = Settings {
        certs_dirs: vec![certs_d.path().to_owned()],
        timeout: Duration::from_secs(10),
        ..Settings::default()
    };
    let auth = format!(r#"{{"auths": {{"{host}": {{"auth": "dXNlcjpodW50ZXIy"}}}}}}"#);
    settings
        .auth
        .push_file(certs_d.path().join("auth.json"), &auth)
        .unwrap();
    let client = RegistryClient::new(settings);
    let image = magos::registry::parse_image(&format!("{host}/team/app:1.0")).unwrap();
    let err = client.tags(&image).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Token { .. }) && err.to_string().contains("plain HTTP"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    assert_eq!(token_hits.load(Ordering::SeqCst), 0);
    assert_eq!(client.request_counts(&host).token_gets, 0);
    registry.abort();
    token_server.abort();
}
